/**
 * Partial aggregates: what a tile keeps of one input column's events, enough to give every
 * aggregation function of CONTRACT s.2 and to be combined with other tiles in any order.
 *
 * A partial is PARTIAL_SLOTS float64 values: count, sum, mean, m2 (the sum of squared deviations
 * from the mean, Welford), min, max, and the last value with its event time and created time.
 * Tiles store several columns' partials back to back (one Float64Array), little-endian on disk and
 * on the wire (`tileBytes`). Both stores merge with `mergePartial` (Redis by compare-and-set,
 * redis/tile-merge.ts), so a tile's doubles are the same whichever store holds it.
 *
 * Combining is Chan et al.'s pairwise update of (count, mean, m2), which stays accurate whatever
 * the order of events or tiles; sums are plain float sums, which agree with the offline store's
 * compensated sums within the contract's 1e-9 relative bound unless large values cancel out (a
 * sum near 0 of values of 1e9 would not).
 */
import type { AggregationFunction } from '../definitions/types.js';

export const PARTIAL_SLOTS = 9;
const COUNT = 0;
const SUM = 1;
const MEAN = 2;
const M2 = 3;
const MIN = 4;
const MAX = 5;
const LAST_MS = 6;
const LAST_CREATED = 7;
const LAST = 8;

/** The partial of no event, written at `at` (slot offset) of `tile`. */
export function clearPartial(tile: Float64Array, at: number): void {
  tile[at + COUNT] = 0;
  tile[at + SUM] = 0;
  tile[at + MEAN] = 0;
  tile[at + M2] = 0;
  tile[at + MIN] = Infinity;
  tile[at + MAX] = -Infinity;
  tile[at + LAST_MS] = -Infinity;
  tile[at + LAST_CREATED] = -Infinity;
  tile[at + LAST] = 0;
}

/** `columns` empty partials back to back. */
export function emptyTile(columns: number): Float64Array {
  const tile = new Float64Array(columns * PARTIAL_SLOTS);
  for (let c = 0; c < columns; c++) clearPartial(tile, c * PARTIAL_SLOTS);
  return tile;
}

/**
 * Adds one event's value. Null values do not count (as SQL aggregates skip nulls). On an equal
 * event time and created time the value added later is the last: a later push wins.
 */
export function addValue(tile: Float64Array, at: number, value: number | null, eventMs: number, createdMs: number): void {
  if (value === null) return;
  const n = tile[at + COUNT]! + 1;
  const delta = value - tile[at + MEAN]!;
  tile[at + COUNT] = n;
  tile[at + SUM] = tile[at + SUM]! + value;
  tile[at + MEAN] = tile[at + MEAN]! + delta / n;
  tile[at + M2] = tile[at + M2]! + delta * (value - tile[at + MEAN]!);
  if (value < tile[at + MIN]!) tile[at + MIN] = value;
  if (value > tile[at + MAX]!) tile[at + MAX] = value;
  const lastMs = tile[at + LAST_MS]!;
  if (eventMs > lastMs || (eventMs === lastMs && createdMs >= tile[at + LAST_CREATED]!)) {
    tile[at + LAST_MS] = eventMs;
    tile[at + LAST_CREATED] = createdMs;
    tile[at + LAST] = value;
  }
}

/**
 * Merges the partial at `from` of `source` into the one at `at` of `target`. `source` is the
 * newer side: on an equal (event time, created time) its last value wins.
 */
export function mergePartial(target: Float64Array, at: number, source: Float64Array, from: number): void {
  const nb = source[from + COUNT]!;
  if (nb === 0) return;
  const na = target[at + COUNT]!;
  if (na === 0) {
    // Copied, not combined: the arithmetic below would move the mean by an ulp.
    for (let k = 0; k < PARTIAL_SLOTS; k++) target[at + k] = source[from + k]!;
    return;
  }
  const n = na + nb;
  const delta = source[from + MEAN]! - target[at + MEAN]!;
  target[at + COUNT] = n;
  target[at + SUM] = target[at + SUM]! + source[from + SUM]!;
  target[at + MEAN] = target[at + MEAN]! + (delta * nb) / n;
  target[at + M2] = target[at + M2]! + source[from + M2]! + (delta * delta * na * nb) / n;
  if (source[from + MIN]! < target[at + MIN]!) target[at + MIN] = source[from + MIN]!;
  if (source[from + MAX]! > target[at + MAX]!) target[at + MAX] = source[from + MAX]!;
  const lastMs = source[from + LAST_MS]!;
  const lastCreated = source[from + LAST_CREATED]!;
  if (lastMs > target[at + LAST_MS]! || (lastMs === target[at + LAST_MS]! && lastCreated >= target[at + LAST_CREATED]!)) {
    target[at + LAST_MS] = lastMs;
    target[at + LAST_CREATED] = lastCreated;
    target[at + LAST] = source[from + LAST]!;
  }
}

/** Merges every column's partial of `source` into the same column of `target` (tiles of one size). */
export function mergeTile(target: Float64Array, source: Float64Array): void {
  for (let at = 0; at < target.length; at += PARTIAL_SLOTS) mergePartial(target, at, source, at);
}

/**
 * The value of an aggregation function over a partial (CONTRACT s.2): count is 0 without events;
 * every other function is null then; stddev is the sample deviation, null below 2 values.
 */
export function finalize(fn: AggregationFunction, tile: Float64Array, at: number): number | null {
  const n = tile[at + COUNT]!;
  if (fn === 'count') return n;
  if (n === 0) return null;
  switch (fn) {
    case 'sum':
      return tile[at + SUM]!;
    case 'mean':
      return tile[at + MEAN]!;
    case 'min':
      return tile[at + MIN]!;
    case 'max':
      return tile[at + MAX]!;
    case 'stddev':
      return n < 2 ? null : Math.sqrt(Math.max(0, tile[at + M2]!) / (n - 1));
    case 'last':
      return tile[at + LAST]!;
  }
}

/** The greatest event time of the values in a tile of any number of columns (-Infinity: none). */
export function latestEventMs(tile: Float64Array): number {
  let latest = -Infinity;
  for (let at = 0; at < tile.length; at += PARTIAL_SLOTS) if (tile[at + COUNT]! > 0 && tile[at + LAST_MS]! > latest) latest = tile[at + LAST_MS]!;
  return latest;
}

/** Whether this machine's doubles are little-endian, as stored: bytes are then copied, not converted. */
const LITTLE_ENDIAN = new Uint8Array(new Float64Array([1]).buffer)[7] === 0x3f;

/** A tile as bytes (little-endian float64s) for a store, and back. */
export const tileBytes = (tile: Float64Array): Buffer => {
  if (LITTLE_ENDIAN) return Buffer.from(new Uint8Array(tile.buffer, tile.byteOffset, tile.byteLength));
  const out = Buffer.allocUnsafe(tile.length * 8);
  for (let i = 0; i < tile.length; i++) out.writeDoubleLE(tile[i]!, i * 8);
  return out;
};

export function tileFromBytes(bytes: Uint8Array): Float64Array {
  const tile = new Float64Array(bytes.length >>> 3);
  if (LITTLE_ENDIAN) {
    // One copy (a read's ~180 tiles a request): the bytes need not be 8-aligned in their buffer.
    new Uint8Array(tile.buffer).set(bytes.length === tile.length * 8 ? bytes : bytes.subarray(0, tile.length * 8));
    return tile;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < tile.length; i++) tile[i] = view.getFloat64(i * 8, true);
  return tile;
}
