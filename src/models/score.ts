/**
 * Scoring a row of features with a registered estimator: the one function `/predict`, training
 * evaluation and offline re-scoring all call, so a prediction online equals the one made offline
 * on the same feature values.
 *
 * Feature values arrive as the online store answers them (JSON numbers, `{size, indices, values}`
 * sparse vectors) or as DuckDB reads a dataset (int64 as strings, sparse structs without size);
 * `numberOf` and `sparseOf` accept both.
 */
import type { Estimator, StandardisedLogisticModel } from './artifact.js';
import { predictLogistic, sigmoid } from './logistic.js';
import { predictNaiveBayes } from './naive-bayes.js';
import type { SparseVector } from './sparse.js';

export interface Score {
  /** P(class 1). */
  probability: number;
  /** False when a feature the estimator reads was missing (scored as empty or as the training mean). */
  complete: boolean;
}

export function scoreRow(estimator: Estimator, features: Readonly<Record<string, unknown>>): Score {
  if (estimator.kind === 'sparse-feature') {
    const { model } = estimator;
    const vector = sparseOf(features[estimator.feature], model.size, estimator.feature);
    const row = vector ?? { size: model.size, indices: [], values: [] };
    const probability = model.kind === 'multinomial-naive-bayes' ? predictNaiveBayes(model, row) : predictLogistic(model, row);
    return { probability, complete: vector !== null };
  }
  return scoreStandardised(estimator, features);
}

function scoreStandardised(estimator: StandardisedLogisticModel, features: Readonly<Record<string, unknown>>): Score {
  const { model, means, scales } = estimator;
  let z = model.bias;
  let complete = true;
  estimator.features.forEach((name, j) => {
    const x = numberOf(features[name], name);
    // A missing value (no events in a window) is the training mean: it adds nothing to z.
    if (x === null) complete = false;
    else z += model.weights[j]! * ((x - means[j]!) / scales[j]!);
  });
  return { probability: sigmoid(z), complete };
}

/** A numeric feature value, or null when missing. Throws naming the feature on anything else. */
export function numberOf(value: unknown, name: string): number | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'bigint') return Number(value);
  if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
  throw new TypeError(`feature '${name}': expected a number, got ${JSON.stringify(value)}`);
}

/** A sparse feature value as a SparseVector of width `size`, or null when missing. */
export function sparseOf(value: unknown, size: number, name: string): SparseVector | null {
  if (value === null || value === undefined) return null;
  const v = value as { size?: unknown; indices?: unknown; values?: unknown };
  if (typeof v !== 'object' || !isNumberList(v.indices) || !isNumberList(v.values)) {
    throw new TypeError(`feature '${name}': expected a sparse vector {size, indices, values}, got ${JSON.stringify(value).slice(0, 80)}`);
  }
  if (v.size !== undefined && v.size !== size) throw new TypeError(`feature '${name}': a sparse vector of size ${String(v.size)}, the model takes size ${size}`);
  return { size, indices: v.indices, values: v.values };
}

const isNumberList = (v: unknown): v is ArrayLike<number> => Array.isArray(v) || ArrayBuffer.isView(v);
