/**
 * L2-regularised logistic regression on sparse vectors, the linear model beside Naive Bayes in
 * the review use case (and usable on dense aggregates given as sparse rows). Fitted by mini-batch
 * gradient descent with Adam, in epochs over a shuffled order; weights are dense (one per
 * feature) but every step touches only the non-zeros of its rows, and the L2 decay is applied
 * lazily to the weights a step touches, so an epoch is O(non-zeros), not O(rows x features).
 */
import { checkSparse, type SparseVector } from './sparse.js';

export interface LogisticModel {
  kind: 'logistic-regression';
  size: number;
  weights: number[];
  bias: number;
  l2: number;
}

export interface LogisticOptions {
  size: number;
  /** L2 penalty per example (default 1e-4). */
  l2?: number;
  /** Passes over the data (default 8). */
  epochs?: number;
  /** Adam step size (default 0.05). */
  learningRate?: number;
  /** Shuffling seed, for a reproducible fit (default 1). */
  seed?: number;
}

/** 1 / (1 + e^-z), computed without overflow either way. */
export const sigmoid = (z: number): number => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)));

export function fitLogistic(rows: readonly SparseVector[], labels: ArrayLike<number>, options: LogisticOptions): LogisticModel {
  const { size } = options;
  const l2 = options.l2 ?? 1e-4;
  const epochs = options.epochs ?? 8;
  const rate = options.learningRate ?? 0.05;
  if (rows.length !== labels.length) throw new Error(`logistic regression: ${rows.length} rows but ${labels.length} labels`);
  if (rows.length === 0) throw new Error('logistic regression: no training rows');
  rows.forEach((row, r) => {
    if (labels[r] !== 0 && labels[r] !== 1) throw new Error(`logistic regression: label of row ${r} must be 0 or 1, got ${labels[r]}`);
    checkSparse(row, size, `row ${r}`);
  });
  const w = new Float64Array(size);
  // Adam moments, per weight and for the bias; `t` counts each weight's own updates.
  const m = new Float64Array(size);
  const v = new Float64Array(size);
  const t = new Float64Array(size);
  let bias = 0;
  let mb = 0;
  let vb = 0;
  let tb = 0;
  const beta1 = 0.9;
  const beta2 = 0.999;
  const eps = 1e-8;
  let state = (options.seed ?? 1) >>> 0 || 1;
  const random = (): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  const order = Array.from({ length: rows.length }, (_, i) => i);
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const r of order) {
      const row = rows[r]!;
      let z = bias;
      for (let k = 0; k < row.indices.length; k++) z += w[row.indices[k]!]! * row.values[k]!;
      const error = sigmoid(z) - labels[r]!;
      for (let k = 0; k < row.indices.length; k++) {
        const i = row.indices[k]!;
        const g = error * row.values[k]! + l2 * w[i]!;
        const ti = (t[i] = t[i]! + 1);
        m[i] = beta1 * m[i]! + (1 - beta1) * g;
        v[i] = beta2 * v[i]! + (1 - beta2) * g * g;
        w[i] = w[i]! - (rate * (m[i]! / (1 - beta1 ** ti))) / (Math.sqrt(v[i]! / (1 - beta2 ** ti)) + eps);
      }
      tb++;
      mb = beta1 * mb + (1 - beta1) * error;
      vb = beta2 * vb + (1 - beta2) * error * error;
      bias -= (rate * (mb / (1 - beta1 ** tb))) / (Math.sqrt(vb / (1 - beta2 ** tb)) + eps);
    }
  }
  return { kind: 'logistic-regression', size, weights: Array.from(w), bias, l2 };
}

/** P(class 1 | row). */
export function predictLogistic(model: LogisticModel, row: SparseVector): number {
  checkSparse(row, model.size, 'features');
  let z = model.bias;
  for (let k = 0; k < row.indices.length; k++) z += model.weights[row.indices[k]!]! * row.values[k]!;
  return sigmoid(z);
}
