/**
 * Multinomial Naive Bayes over sparse count vectors (the review model of CONTRACT s.9): per class
 * c, log P(c) + Σ_i x_i · log θ_ci, with θ_ci = (N_ci + α) / (N_c + α·n) (Laplace smoothing α,
 * N_ci the class's total count of feature i). Binary classes 0 and 1; the probability of class 1
 * comes from the two log-likelihoods without leaving log space, so long texts do not underflow.
 *
 * Training is one pass over the rows and O(non-zeros); a prediction is O(non-zeros of the row).
 * The fitted model is plain numbers (JSON-serialisable) so an artifact can store it as it is.
 */
import { sigmoid } from './logistic.js';
import { checkSparse, type SparseVector } from './sparse.js';

export interface NaiveBayesModel {
  kind: 'multinomial-naive-bayes';
  size: number;
  alpha: number;
  /** log P(class 0), log P(class 1). */
  logPrior: [number, number];
  /** Per class, log θ for each of the `size` features. */
  logLikelihood: [number[], number[]];
}

export function fitNaiveBayes(rows: readonly SparseVector[], labels: ArrayLike<number>, options: { size: number; alpha?: number }): NaiveBayesModel {
  const { size } = options;
  const alpha = options.alpha ?? 1;
  if (!(alpha > 0)) throw new Error(`naive bayes: alpha must be above 0, got ${alpha}`);
  if (rows.length !== labels.length) throw new Error(`naive bayes: ${rows.length} rows but ${labels.length} labels`);
  if (rows.length === 0) throw new Error('naive bayes: no training rows');
  const counts = [new Float64Array(size), new Float64Array(size)] as const;
  const totals = new Float64Array(2);
  const classRows = new Float64Array(2);
  rows.forEach((row, r) => {
    const label = labels[r];
    if (label !== 0 && label !== 1) throw new Error(`naive bayes: label of row ${r} must be 0 or 1, got ${label}`);
    checkSparse(row, size, `row ${r}`);
    classRows[label] = classRows[label]! + 1;
    const c = counts[label];
    for (let k = 0; k < row.indices.length; k++) {
      const x = row.values[k]!;
      if (!(x >= 0)) throw new Error(`naive bayes: row ${r} has a negative or missing count ${x} (the model takes counts)`);
      const i = row.indices[k]!;
      c[i] = c[i]! + x;
      totals[label] = totals[label]! + x;
    }
  });
  const logLikelihood = ([0, 1] as const).map((label) => {
    const denominator = Math.log(totals[label]! + alpha * size);
    return Array.from(counts[label], (n) => Math.log(n + alpha) - denominator);
  }) as [number[], number[]];
  // A class without rows keeps a tiny prior instead of -Infinity, so predictions stay finite.
  const prior = (n: number) => Math.log(Math.max(n, 1e-9) / rows.length);
  return { kind: 'multinomial-naive-bayes', size, alpha, logPrior: [prior(classRows[0]!), prior(classRows[1]!)], logLikelihood };
}

/** P(class 1 | row). */
export function predictNaiveBayes(model: NaiveBayesModel, row: SparseVector): number {
  checkSparse(row, model.size, 'features');
  let l0 = model.logPrior[0];
  let l1 = model.logPrior[1];
  for (let k = 0; k < row.indices.length; k++) {
    const i = row.indices[k]!;
    const x = row.values[k]!;
    l0 += x * model.logLikelihood[0][i]!;
    l1 += x * model.logLikelihood[1][i]!;
  }
  // 1 / (1 + e^(l0 - l1)), stable for large differences either way.
  return sigmoid(l1 - l0);
}
