/**
 * Distribution profiles for drift reports: the training rows' features and predicted
 * probabilities, binned, kept in a model's registered version; the serving log is binned with
 * the same edges and compared by PSI.
 */
import { parseValueType, type ValueType } from '../core/value-types.js';

/**
 * One binned quantity. Bins: (-inf, edges[0]), [edges[0], edges[1]), ..., [edges[k-1], +inf), so
 * `counts.length === edges.length + 1`; `nulls` counts missing values apart.
 */
export interface BinnedDistribution {
  /** Feature name, or `prediction` for the predicted probability. A sparse feature gives `<name>.total` and `<name>.nonzeros`. */
  name: string;
  edges: number[];
  counts: number[];
  nulls: number;
}

export interface DistributionProfile {
  rows: number;
  features: BinnedDistribution[];
  /** Predicted probability of class 1, in bins of 0.1. */
  prediction: BinnedDistribution;
}

/** A feature as profiled: its name and type (booleans as 0/1, sparse vectors by their total and non-zeros). */
export interface ProfiledFeature {
  name: string;
  type: ValueType;
}

// ---------------------------------------------------------------------------------------------
// Profiling, binning and PSI.

/** PSI thresholds of common practice: below 0.1 stable, 0.1-0.25 a moderate shift, above 0.25 a major one. */
export const PSI_MODERATE = 0.1;
export const PSI_MAJOR = 0.25;

/** A bin's proportion is at least this in PSI: an empty bin would otherwise make it infinite. */
const PSI_EPSILON = 1e-4;

/** Fixed bins of the predicted probability (the profile's `prediction`). */
export const PREDICTION_EDGES: readonly number[] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/** How a feature of a type is profiled: as one number, as a sparse vector's two numbers, or not at all. */
export type ProfileKind = 'numeric' | 'sparse' | 'skip';

export function profileKind(type: ValueType): ProfileKind {
  const parsed = parseValueType(type);
  if (parsed.kind === 'sparse') return 'sparse';
  if (parsed.kind === 'scalar' && NUMERIC.has(parsed.type)) return 'numeric';
  return 'skip';
}

const NUMERIC = new Set(['int32', 'int64', 'float32', 'float64', 'bool']);

/** The profiled quantities of a feature: `[name]`, `[name.total, name.nonzeros]` for a sparse vector, or none. */
export function profiledQuantities(feature: ProfiledFeature): { name: string; of: 'value' | 'total' | 'nonzeros' }[] {
  switch (profileKind(feature.type)) {
    case 'numeric':
      return [{ name: feature.name, of: 'value' }];
    case 'sparse':
      return [
        { name: `${feature.name}.total`, of: 'total' },
        { name: `${feature.name}.nonzeros`, of: 'nonzeros' },
      ];
    case 'skip':
      return [];
  }
}

/**
 * The training rows' profile: each numeric quantity in (up to) `bins` quantile bins of its own
 * values, and the predicted probabilities in the fixed bins of 0.1. `probabilities[i]` belongs to
 * `rows[i]`.
 */
export function profileRows(features: readonly ProfiledFeature[], rows: readonly Record<string, unknown>[], probabilities: ArrayLike<number>, bins = 10): DistributionProfile {
  if (probabilities.length !== rows.length) throw new Error(`profileRows: ${rows.length} rows but ${probabilities.length} probabilities`);
  if (!Number.isInteger(bins) || bins < 1) throw new Error(`profileRows: bins must be a positive integer, got ${bins}`);
  const out: BinnedDistribution[] = [];
  for (const feature of features) {
    for (const quantity of profiledQuantities(feature)) {
      const values = rows.map((row) => quantityOf(row[feature.name], quantity.of));
      const edges = quantileEdges(values, bins);
      out.push({ name: quantity.name, edges, ...binValues(edges, values) });
    }
  }
  const prediction = binValues(PREDICTION_EDGES, Array.from(probabilities, finiteOrNull));
  return { rows: rows.length, features: out, prediction: { name: 'prediction', edges: [...PREDICTION_EDGES], ...prediction } };
}

/** A feature value as the number profiled: the value (booleans 0/1), or a sparse vector's total or non-zeros. */
export function quantityOf(value: unknown, of: 'value' | 'total' | 'nonzeros'): number | null {
  if (value === null || value === undefined) return null;
  if (of === 'value') {
    if (typeof value === 'boolean') return value ? 1 : 0;
    if (typeof value === 'number' || typeof value === 'bigint') return finiteOrNull(Number(value));
    return null;
  }
  // Arrays, typed arrays and Arrow vectors (a sparse value read from a dataset) alike.
  const v = value as { indices?: { length: number }; values?: Iterable<unknown> };
  if (of === 'nonzeros') return v.indices && typeof v.indices.length === 'number' ? v.indices.length : null;
  if (!v.values || typeof (v.values as Iterable<unknown>)[Symbol.iterator] !== 'function') return null;
  let total = 0;
  for (const x of v.values) total += Number(x);
  return finiteOrNull(total);
}

const finiteOrNull = (x: number): number | null => (Number.isFinite(x) ? x : null);

/**
 * Cut points between `bins` equally populated bins: the value at each rank n*j/bins, distinct.
 * Taking data values (not interpolating) keeps discrete features' bins exact: a 0/1 feature gets
 * edges [0, 1], so bins "below 0", "0" and "1 and above". A constant c gets [c, next double after
 * c], so values above or below the training constant land in bins of their own. No values, no edges.
 */
export function quantileEdges(values: readonly (number | null)[], bins: number): number[] {
  const sorted = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  if (sorted.length === 0) return [];
  const edges: number[] = [];
  for (let j = 1; j < bins; j++) {
    const edge = sorted[Math.floor((j * sorted.length) / bins)]!;
    if (edges.length === 0 || edge > edges[edges.length - 1]!) edges.push(edge);
  }
  if (edges.length === 0) edges.push(sorted[0]!);
  // One cut point (a constant, or one value holding most rows): split "exactly it" from "above it".
  if (edges.length === 1) edges.push(nextUp(edges[0]!));
  return edges;
}

/** The smallest double above x. */
function nextUp(x: number): number {
  if (x === 0) return Number.MIN_VALUE;
  const buffer = new DataView(new ArrayBuffer(8));
  buffer.setFloat64(0, x);
  const bits = buffer.getBigInt64(0);
  buffer.setBigInt64(0, x > 0 ? bits + 1n : bits - 1n);
  return buffer.getFloat64(0);
}

/** Counts per bin of `edges` (see BinnedDistribution): bin i holds edges[i-1] <= v < edges[i]. Nulls and NaN apart. */
export function binValues(edges: readonly number[], values: Iterable<number | null>): { counts: number[]; nulls: number } {
  const counts = new Array<number>(edges.length + 1).fill(0);
  let nulls = 0;
  for (const v of values) {
    if (v === null || Number.isNaN(v)) {
      nulls++;
      continue;
    }
    counts[binIndex(edges, v)]!++;
  }
  return { counts, nulls };
}

/** Number of edges <= v: the bin v falls in. */
function binIndex(edges: readonly number[], v: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (edges[mid]! <= v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Population stability index of `actual` against `expected`, both counts (or proportions) over
 * the same bins: sum of (a - e) * ln(a / e) over proportions, each at least a small epsilon so an
 * empty bin on one side weighs heavily but finitely. NaN when either side is empty: no evidence
 * either way.
 */
export function psi(expected: readonly number[], actual: readonly number[]): number {
  if (expected.length !== actual.length) throw new Error(`psi: ${expected.length} expected bins but ${actual.length} actual bins`);
  const e = proportions(expected);
  const a = proportions(actual);
  if (!e || !a) return Number.NaN;
  let sum = 0;
  for (let i = 0; i < e.length; i++) {
    const pe = Math.max(e[i]!, PSI_EPSILON);
    const pa = Math.max(a[i]!, PSI_EPSILON);
    sum += (pa - pe) * Math.log(pa / pe);
  }
  return sum;
}

function proportions(counts: readonly number[]): number[] | null {
  const total = counts.reduce((s, c) => s + c, 0);
  return total > 0 ? counts.map((c) => c / total) : null;
}

export type DriftStatus = 'ok' | 'moderate' | 'major' | 'no-data';

export function psiStatus(value: number): DriftStatus {
  if (Number.isNaN(value)) return 'no-data';
  return value >= PSI_MAJOR ? 'major' : value >= PSI_MODERATE ? 'moderate' : 'ok';
}
