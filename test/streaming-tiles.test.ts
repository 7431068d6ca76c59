/**
 * The streaming tile model (src/streaming) against the window rule of CONTRACT s.2 and against
 * the offline SQL (aggregationSelectSql).
 *
 * For a window w with tile s, the value at t aggregates the entity's events e with
 *     floor((t - w) / s) * s  <=  e  <=  t
 * The online path under test: events -> tileUpdates (one partial per entity and `<s>:<i>` field)
 * -> merged with mergePartial into a per-entity store map, batch after batch in arrival order
 * (each stored tile goes through tileBytes/tileFromBytes as it would through a store) ->
 * valuesAt(layout, storeOfEntity, t).
 *
 * Reads happen at t = now, after the events were pushed, so an event stamped after t is not in
 * the store yet. The tile model relies on that: it reads the whole head tile floor(t / s), i.e.
 * every event up to the END of that tile. The contract comparisons therefore only ever read a
 * store holding events with e <= t: either the full store at t >= every event time of the entity,
 * or a "store as of t" built from the events with e <= t (same arrival order, same batches).
 * One property pins down what the full store gives at an arbitrary t instead (the head tile to
 * its end), so that difference is explicit rather than hidden.
 *
 * `last` ties: greatest e, then greatest created time, then on equal (e, created) the event that
 * arrived (was pushed) later, whether in the same batch or a later one. The offline SQL orders
 * by (e, created) only, so property 2 accepts any of the tied values from it; in practice DuckDB
 * takes the earliest pushed, which a `.fails` case below pins (a train/serve skew to fix).
 *
 * Floats: the contract's 1e-9 relative (1e-12 absolute near 0), widened only by the rounding
 * floor of ill-conditioned windows (roundingFloor); the `ill-conditioned` cases show why.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { entity, featureView, fileSource, pushSource } from '../src/definitions/builders.js';
import type { AggregatedFeature, AggregationFunction, FeatureView } from '../src/definitions/types.js';
import type { EntityKey } from '../src/online/entity-key.js';
import { aggregationSelectSql } from '../src/offline/aggregation-sql.js';
import { openDuckDB } from '../src/offline/duckdb.js';
import { addValue, emptyTile, finalize, mergePartial, PARTIAL_SLOTS, tileBytes, tileFromBytes } from '../src/streaming/partial.js';
import { firstTile, tileField, tileLayout, tilesToRead, tileUpdates, valuesAt, type TileEvent, type TileLayout } from '../src/streaming/tiles.js';

type Db = Awaited<ReturnType<typeof openDuckDB>>;
type Column = 'x' | 'y';
type Store = Map<EntityKey, Map<string, Float64Array>>;

const FNS = ['count', 'sum', 'mean', 'min', 'max', 'stddev', 'last'] as const satisfies readonly AggregationFunction[];
const KEYS = ['a', 'b', 'c'] as const;
/** 'd' never has events. */
const QUERY_KEYS = ['a', 'b', 'c', 'd'] as const;
const entityKey = (k: string): EntityKey => `k=${k}` as EntityKey;

// ---------------------------------------------------------------------------------------------
// definitions

const weld = entity({ name: 'weld', joinKeys: ['k'] });
const pushed = pushSource({ name: 'readings', schema: { k: 'string', x: 'float64', y: 'float32' }, timestampField: 'event_timestamp' });
const filed = fileSource({ name: 'history', path: 'data/history.parquet', timestampField: 'event_timestamp', createdTimestampField: 'created_timestamp' });

/** Windows and tiles from the allowed set: odd sizes (2.5 s, 61 s -> default tile 1016 ms) and tiles that do not divide the window. */
const WINDOWS = ['2500ms', '5s', '7s', '30s', '61s', '90s', '1m', '5m', '10m', '1h'] as const;
const TILES = ['1s', '1500ms', '5s', '7s', '30s', '1m', '10m'] as const;
const MS: Record<string, number> = {
  '1s': 1000, '1500ms': 1500, '2500ms': 2500, '5s': 5000, '7s': 7000, '30s': 30_000, '61s': 61_000, '90s': 90_000,
  '1m': 60_000, '5m': 300_000, '10m': 600_000, '1h': 3_600_000,
};

interface SpecInput {
  column: Column;
  windows: string[];
  tile: string | undefined;
}

/** A valid aggregation list from random specs: a tile no longer than each of its windows, no feature twice. */
function buildView(source: 'push' | 'file', specs: readonly SpecInput[]): FeatureView {
  const seen = new Set<string>();
  const aggregations: { column: string; functions: AggregationFunction[]; windows: string[]; tile?: string }[] = [];
  for (const s of specs) {
    const windows = s.windows.filter((w) => !seen.has(`${s.column}/${w}`) && (s.tile === undefined || MS[s.tile]! <= MS[w]!));
    if (windows.length === 0) continue;
    for (const w of windows) seen.add(`${s.column}/${w}`);
    aggregations.push({ column: s.column, functions: [...FNS], windows, ...(s.tile !== undefined && { tile: s.tile }) });
  }
  if (aggregations.length === 0) aggregations.push({ column: 'x', functions: [...FNS], windows: ['1m'], tile: '30s' });
  return featureView({ name: 'stats', entities: [weld], source: source === 'push' ? pushed : filed, aggregations }) as FeatureView;
}

// ---------------------------------------------------------------------------------------------
// random streams

interface RawEvent {
  key: (typeof KEYS)[number];
  /** Offset from the scenario's base instant. */
  offset: number;
  /** Created time offset: a handful of values, so (e, created) ties are common. */
  created: number;
  x: number | null;
  y: number | null;
  /** Arrival order: events sort by this (stable), so equal keys keep generation order. */
  arrival: number;
  /** Starts a new batch (in arrival order). */
  cut: boolean;
}

interface Event {
  key: string;
  e: number;
  created: number;
  x: number | null;
  y: number | null;
  /** Position in arrival order. */
  rank: number;
}

const HOUR = 3_600_000;
/** STREAMING_TILES_RUNS=20 for a longer search (also prints what the runs covered). */
const RUNS = Number(process.env.STREAMING_TILES_RUNS ?? 1);

type Query =
  | { kind: 'offset'; key: string; ms: number } // anywhere, also before all events
  | { kind: 'atEvent'; i: number; d: number } // exactly at an event time (or 1 ms around it)
  | { kind: 'tail'; i: number; f: number; r: 'before' | 'start' | 'end' | 'after' } // an event's tile is the window's tail tile, at its edges
  | { kind: 'edge'; key: string; f: number; k: number; minus1: boolean } // exactly on a tile boundary
  | { kind: 'afterAll'; key: string; d: number } // at or after every event of the entity
  | { kind: 'afterAllEdge'; key: string; f: number; minus1: boolean }; // first tile boundary at or after the entity's last event

const timeOffset = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 2 * HOUR }), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: 120 }).map((m) => m * 60_000), weight: 2 }, // tile edges of every size dividing 1m
  { arbitrary: fc.integer({ min: 1, max: 7200 }).map((s) => s * 1000 - 1), weight: 1 }, // 1 ms before an edge
  { arbitrary: fc.constantFrom(0, 1, 999, 1000, 1500, 2500, 59_999, 60_000, 600_000), weight: 2 }, // equal times, tile edges
  { arbitrary: fc.constantFrom(HOUR - 1, HOUR, HOUR + 1000), weight: 2 }, // many equal times
  { arbitrary: fc.integer({ min: 0, max: 40 }).map((i) => HOUR + i * 250), weight: 2 }, // dense: many per tile
  { arbitrary: fc.integer({ min: -90_000, max: 90_000 }).map((d) => HOUR + d), weight: 3 }, // a busy few minutes
);

/** Negatives, duplicates, nulls, a large mean with a small spread (hard on a naive stddev), decimals. */
const value = fc.oneof(
  { arbitrary: fc.constant(null), weight: 2 },
  { arbitrary: fc.integer({ min: -5, max: 5 }), weight: 3 },
  { arbitrary: fc.integer({ min: -1_000_000, max: 1_000_000 }).map((v) => v / 1000), weight: 3 },
  { arbitrary: fc.double({ min: 0, max: 1, noNaN: true }).map((v) => 1e5 + v), weight: 2 },
  { arbitrary: fc.double({ min: -1e4, max: 1e4, noNaN: true, noDefaultInfinity: true }), weight: 1 },
  { arbitrary: fc.constantFrom(1e6, -1e6, 0.001, -0.001, 123_456.789, 1e-9), weight: 1 }, // cancellation
);

const rawEvent: fc.Arbitrary<RawEvent> = fc.record({
  key: fc.constantFrom(...KEYS),
  offset: timeOffset,
  created: fc.integer({ min: 0, max: 2 }),
  x: value,
  y: value,
  arrival: fc.nat({ max: 30 }),
  cut: fc.integer({ min: 0, max: 3 }).map((v) => v === 0),
});

const query: fc.Arbitrary<Query> = fc.oneof(
  fc.record({ kind: fc.constant('offset' as const), key: fc.constantFrom(...QUERY_KEYS), ms: fc.integer({ min: -2 * HOUR, max: 5 * HOUR }) }),
  fc.record({ kind: fc.constant('atEvent' as const), i: fc.nat(), d: fc.constantFrom(0, 0, 1, -1) }),
  fc.record({ kind: fc.constant('tail' as const), i: fc.nat(), f: fc.nat(), r: fc.constantFrom('before' as const, 'start' as const, 'end' as const, 'after' as const) }),
  fc.record({ kind: fc.constant('edge' as const), key: fc.constantFrom(...QUERY_KEYS), f: fc.nat(), k: fc.integer({ min: -5, max: 8000 }), minus1: fc.boolean() }),
  fc.record({ kind: fc.constant('afterAll' as const), key: fc.constantFrom(...QUERY_KEYS), d: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 3 * HOUR })) }),
  fc.record({ kind: fc.constant('afterAllEdge' as const), key: fc.constantFrom(...QUERY_KEYS), f: fc.nat(), minus1: fc.boolean() }),
);

const specInput: fc.Arbitrary<SpecInput> = fc.record({
  column: fc.constantFrom('x' as const, 'y' as const),
  windows: fc.subarray([...WINDOWS], { minLength: 1, maxLength: 3 }),
  tile: fc.option(fc.constantFrom(...TILES), { nil: undefined }), // undefined: the default w/60, at least 1 s
});

interface Scenario {
  source: 'push' | 'file';
  specs: SpecInput[];
  base: number;
  raw: RawEvent[];
  /** Copies of raw[i % raw.length] with the same key, e and created time but another value, pushed at their own place. */
  dups: { i: number; x: number | null; arrival: number; cut: boolean }[];
  queries: Query[];
}

const scenario = (maxEvents: number, maxQueries: number): fc.Arbitrary<Scenario> =>
  fc.record({
    source: fc.constantFrom('push' as const, 'file' as const),
    specs: fc.array(specInput, { minLength: 1, maxLength: 3 }),
    // Aligned, not aligned, and around the epoch (negative instants: floor, not truncation).
    base: fc.constantFrom(Date.UTC(2024, 0, 1), 1_700_000_123_457, -HOUR, -1),
    raw: fc.array(rawEvent, { maxLength: maxEvents, size: 'max' }),
    dups: fc.array(fc.record({ i: fc.nat(), x: value, arrival: fc.nat({ max: 30 }), cut: fc.boolean() }), { maxLength: 6 }),
    queries: fc.array(query, { minLength: 1, maxLength: maxQueries }),
  });

interface Prepared {
  view: FeatureView;
  layout: TileLayout;
  features: readonly AggregatedFeature[];
  /** In arrival order; `rank` is the index. */
  events: Event[];
  /** Arrival order split into batches. */
  batches: Event[][];
  points: { key: string; t: number }[];
  /** y is a float32 column of a push source: pushed values are rounded to float32 like the offline store. */
  float32y: boolean;
}

function prepare(s: Scenario): Prepared {
  const view = buildView(s.source, s.specs);
  const layout = tileLayout(view);
  const features = view.aggregatedFeatures!;
  // Duplicates on (key, e, created): the `last` tie that only arrival order breaks.
  const raw = [...s.raw, ...(s.raw.length ? s.dups.map((d) => ({ ...s.raw[d.i % s.raw.length]!, x: d.x, y: d.x, arrival: d.arrival, cut: d.cut })) : [])];
  const order = raw.map((r, i) => ({ r, i })).sort((a, b) => a.r.arrival - b.r.arrival || a.i - b.i);
  const events: Event[] = order.map(({ r }, rank) => ({ key: r.key, e: s.base + r.offset, created: s.base + r.created, x: r.x, y: r.y, rank }));
  const batches: Event[][] = [];
  order.forEach(({ r }, rank) => {
    if (batches.length === 0 || r.cut) batches.push([]);
    batches[batches.length - 1]!.push(events[rank]!);
  });
  const maxE = (key: string) => events.filter((ev) => ev.key === key).reduce((m, ev) => Math.max(m, ev.e), -Infinity);
  const points = s.queries.map((q) => {
    const feature = (f: number) => features[f % features.length]!;
    const ev = (i: number) => (events.length ? events[i % events.length]! : undefined);
    switch (q.kind) {
      case 'offset':
        return { key: q.key, t: s.base + q.ms };
      case 'atEvent': {
        const e = ev(q.i);
        return e ? { key: e.key, t: e.e + q.d } : { key: 'a', t: s.base };
      }
      case 'tail': {
        const e = ev(q.i);
        if (!e) return { key: 'a', t: s.base };
        const { windowMs: w, tileMs: sz } = feature(q.f);
        const start = Math.floor(e.e / sz) * sz; // t in [start + w, start + w + s - 1] has this tile as its tail
        const t = { before: start + w - 1, start: start + w, end: start + w + sz - 1, after: start + w + sz }[q.r];
        return { key: e.key, t };
      }
      case 'edge': {
        const sz = feature(q.f).tileMs;
        return { key: q.key, t: Math.floor(s.base / sz) * sz + q.k * sz - (q.minus1 ? 1 : 0) };
      }
      case 'afterAll': {
        const m = maxE(q.key);
        return { key: q.key, t: (Number.isFinite(m) ? m : s.base) + q.d };
      }
      case 'afterAllEdge': {
        const m = maxE(q.key);
        const sz = feature(q.f).tileMs;
        const at = Number.isFinite(m) ? m : s.base;
        // The first boundary at or after the last event; or the last ms of the last event's tile.
        return { key: q.key, t: q.minus1 ? Math.floor(at / sz) * sz + sz - 1 : Math.ceil(at / sz) * sz };
      }
    }
  });
  return { view, layout, features, events, batches, points, float32y: s.source === 'push' };
}

// ---------------------------------------------------------------------------------------------
// the online path

const toTileEvent = (layout: TileLayout, ev: Event): TileEvent => ({
  key: entityKey(ev.key),
  eventMs: ev.e,
  createdMs: ev.created,
  values: layout.columns.map((c) => ev[c as Column]),
});

/** Folds each batch with tileUpdates and merges it into the store, in arrival order; tiles go through bytes as in a store. */
function buildStore(layout: TileLayout, batches: readonly (readonly Event[])[]): Store {
  const store: Store = new Map();
  for (const batch of batches) {
    if (batch.length === 0) continue;
    for (const [key, tiles] of tileUpdates(layout, batch.map((ev) => toTileEvent(layout, ev)))) {
      let mine = store.get(key);
      if (!mine) store.set(key, (mine = new Map()));
      for (const [field, update] of tiles) {
        const stored = mine.get(field) ?? emptyTile(update.length / PARTIAL_SLOTS);
        for (let at = 0; at < update.length; at += PARTIAL_SLOTS) mergePartial(stored, at, update, at);
        mine.set(field, tileFromBytes(tileBytes(stored)));
      }
    }
  }
  return store;
}

/** The store as of a read at `t`: only the events stamped <= t have been pushed (same order, same batches). */
const storeAsOf = (p: Prepared, t: number): Store => buildStore(p.layout, p.batches.map((b) => b.filter((ev) => ev.e <= t)));

const NO_TILES: ReadonlyMap<string, Float64Array> = new Map();

// ---------------------------------------------------------------------------------------------
// the oracle: the contract's rule over the raw events

/** Shewchuk's exact summation (as Python's math.fsum), correctly rounded: independent of order. */
function fsum(xs: readonly number[]): number {
  const partials: number[] = [];
  for (let x of xs) {
    let i = 0;
    for (let y of partials) {
      if (Math.abs(x) < Math.abs(y)) [x, y] = [y, x];
      const hi = x + y;
      const lo = y - (hi - x);
      if (lo !== 0) partials[i++] = lo;
      x = hi;
    }
    partials.length = i;
    partials.push(x);
  }
  let n = partials.length;
  if (n === 0) return 0;
  let hi = partials[--n]!;
  let lo = 0;
  while (n > 0) {
    const x = hi;
    const y = partials[--n]!;
    hi = x + y;
    lo = y - (hi - x);
    if (lo !== 0) break;
  }
  if (n > 0 && ((lo < 0 && partials[n - 1]! < 0) || (lo > 0 && partials[n - 1]! > 0))) {
    const y = lo * 2;
    const x = hi + y;
    if (y === x - hi) hi = x;
  }
  return hi;
}

interface Expected {
  value: number | null;
  /** For `last`: every value tied with the winner on (e, created); the offline SQL may pick any. */
  tied?: number[];
  /** The window's non-null values: how many, the sum and the largest of their magnitudes (the rounding floor). */
  n: number;
  sumAbs: number;
  maxAbs: number;
}

/**
 * The feature over the events of `key` with lo <= e <= hi, lo = floor((t - w) / s) * s. The
 * contract's rule is hi = t; `headToTileEnd` gives the tile model's reading of the full store
 * instead (hi = the last ms of the head tile).
 */
function oracle(p: Prepared, f: AggregatedFeature, key: string, t: number, headToTileEnd = false): Expected {
  const lo = Math.floor((t - f.windowMs) / f.tileMs) * f.tileMs;
  const hi = headToTileEnd ? Math.floor(t / f.tileMs) * f.tileMs + f.tileMs - 1 : t;
  const col = f.column as Column;
  const round = col === 'y' && p.float32y ? Math.fround : (v: number) => v;
  const inWindow = p.events
    .filter((ev) => ev.key === key && ev.e >= lo && ev.e <= hi && ev[col] !== null)
    .map((ev) => ({ ev, v: round(ev[col]!) }));
  const values = inWindow.map((w) => w.v);
  const n = values.length;
  const scale = { n, sumAbs: fsum(values.map(Math.abs)), maxAbs: values.reduce((m, v) => Math.max(m, Math.abs(v)), 0) };
  const out = (value: number | null, tied?: number[]): Expected => ({ value, ...(tied && { tied }), ...scale });
  if (f.fn === 'count') return out(n);
  if (n === 0) return out(null);
  switch (f.fn) {
    case 'sum':
      return out(fsum(values));
    case 'mean':
      return out(fsum(values) / n);
    case 'min':
      return out(values.reduce((a, b) => (b < a ? b : a)));
    case 'max':
      return out(values.reduce((a, b) => (b > a ? b : a)));
    case 'stddev': {
      if (n < 2) return out(null);
      const mean = fsum(values) / n;
      const d = values.map((v) => v - mean);
      const sd = fsum(d);
      return out(Math.sqrt(Math.max(0, fsum(d.map((x) => x * x)) - (sd * sd) / n) / (n - 1)));
    }
    case 'last': {
      // Greatest e, then greatest created, then the later arrival (a later push wins).
      const best = inWindow.reduce((a, b) => (b.ev.e > a.ev.e || (b.ev.e === a.ev.e && (b.ev.created > a.ev.created || (b.ev.created === a.ev.created && b.ev.rank > a.ev.rank))) ? b : a));
      const tied = inWindow.filter((w) => w.ev.e === best.ev.e && w.ev.created === best.ev.created).map((w) => w.v);
      return out(best.v, tied);
    }
  }
}

const FLOAT_FNS = new Set<AggregationFunction>(['sum', 'mean', 'stddev']);
/** The contract's tolerance for float functions: 1e-9 relative, or 1e-12 absolute near zero. */
const closeStrict = (a: number, b: number): boolean => a === b || Math.abs(a - b) <= Math.max(1e-9 * Math.max(Math.abs(a), Math.abs(b)), 1e-12);

/**
 * What rounding alone can put between two floating-point evaluations of the function over the
 * same values in different orders (first-order bounds, eps = 2^-52): sums 2 n eps sum|x|; a mean
 * or a stddev 4 n eps max|x|. In a well-conditioned window this is far below 1e-9 relative; it
 * only matters under cancellation (sum or mean near 0 against large values) or for a stddev near
 * the spacing of doubles at the mean, where CONTRACT s.2's plain 1e-9 relative cannot be met by
 * any single-pass evaluation, DuckDB's included (see 'ill-conditioned windows' below).
 */
const roundingFloor = (fn: AggregationFunction, w: Expected): number =>
  (fn === 'sum' ? 2 * w.n * w.sumAbs : 4 * w.n * w.maxAbs) * Number.EPSILON;

const conditioning = { strict: 0, floorOnly: 0 };

/** '' when `got` is what `want` says; else a description. count, min, max, last exact (-0 equals 0), float functions within tolerance. */
function mismatch(fn: AggregationFunction, got: unknown, want: number | null, scale: Expected, tied?: readonly number[]): string {
  if (want === null) return got === null ? '' : `got ${String(got)}, want null`;
  if (typeof got !== 'number') return `got ${String(got)}, want ${want}`;
  if (FLOAT_FNS.has(fn)) {
    if (closeStrict(got, want)) {
      conditioning.strict++;
      return '';
    }
    if (Math.abs(got - want) <= roundingFloor(fn, scale)) {
      conditioning.floorOnly++;
      return '';
    }
    return `got ${got}, want ${want} (rel ${Math.abs(got - want) / Math.abs(want)}, n ${scale.n}, max|x| ${scale.maxAbs})`;
  }
  if (tied) return tied.includes(got) ? '' : `got ${got}, want one of ${tied.join(', ')}`;
  return got === want ? '' : `got ${got}, want ${want}`;
}

function assertValues(p: Prepared, got: readonly (number | null)[], key: string, t: number, headToTileEnd: boolean, what: string, stats?: Stats): void {
  p.features.forEach((f, i) => {
    const want = oracle(p, f, key, t, headToTileEnd);
    const problem = mismatch(f.fn, got[i], want.value, want);
    if (problem) throw new Error(`${what}: ${f.name} (w ${f.windowMs} ms, s ${f.tileMs} ms) of ${key} at t=${t}: ${problem}`);
    if (stats) {
      if (f.fn === 'count' && (want.value as number) >= 2) stats.nonEmpty++;
      if (f.fn === 'last' && want.tied && want.tied.length > 1) stats.lastTies++;
    }
  });
}

interface Stats {
  runs: number;
  reads: number;
  afterAllReads: number;
  nonEmpty: number;
  lastTies: number;
}

// ---------------------------------------------------------------------------------------------

describe('streaming tiles: the window rule of CONTRACT s.2', () => {
  it('the layout rounds float32 push columns like the offline store, and nothing else', () => {
    const push = tileLayout(buildView('push', [{ column: 'x', windows: ['1m'], tile: undefined }, { column: 'y', windows: ['1m'], tile: undefined }]));
    const file = tileLayout(buildView('file', [{ column: 'x', windows: ['1m'], tile: undefined }, { column: 'y', windows: ['1m'], tile: undefined }]));
    expect(push.columns).toEqual(['x', 'y']);
    expect(push.toDouble[0]!(0.1)).toBe(0.1);
    expect(push.toDouble[1]!(0.1)).toBe(Math.fround(0.1));
    expect(file.toDouble[1]!(0.1)).toBe(0.1);
  });

  it('resolves default tiles to w/60 (at least 1 s) and keeps explicit ones', () => {
    const view = buildView('push', [
      { column: 'x', windows: ['1h', '61s', '30s'], tile: undefined },
      { column: 'y', windows: ['10m'], tile: '30s' },
    ]);
    expect(view.aggregatedFeatures!.filter((f) => f.fn === 'count').map((f) => [f.window, f.tileMs])).toEqual([
      ['1h', 60_000],
      ['61s', 1016],
      ['30s', 1000],
      ['10m', 30_000],
    ]);
  });

  it('property: valuesAt over batched, shuffled merges equals the contract rule over the raw events', () => {
    const stats: Stats = { runs: 0, reads: 0, afterAllReads: 0, nonEmpty: 0, lastTies: 0 };
    conditioning.strict = conditioning.floorOnly = 0;
    fc.assert(
      fc.property(scenario(60, 12), (s) => {
        const p = prepare(s);
        stats.runs++;
        const full = buildStore(p.layout, p.batches);
        // Merge order must not matter: one batch of everything gives the same tiles' values.
        const oneBatch = buildStore(p.layout, [p.events]);
        for (const { key, t } of p.points) {
          const tiles = full.get(entityKey(key)) ?? NO_TILES;
          stats.reads++;
          // (A) Reads at t = now after every event of the entity was pushed: the full store.
          if (p.events.every((ev) => ev.key !== key || ev.e <= t)) {
            stats.afterAllReads++;
            assertValues(p, valuesAt(p.layout, tiles, t), key, t, false, 'full store, t >= last event', stats);
            assertValues(p, valuesAt(p.layout, oneBatch.get(entityKey(key)) ?? NO_TILES, t), key, t, false, 'single batch', stats);
          }
          // (B) Any t (before all events, at an event, on tile edges): the store as of t.
          const asOf = storeAsOf(p, t).get(entityKey(key)) ?? NO_TILES;
          assertValues(p, valuesAt(p.layout, asOf, t), key, t, false, 'store as of t', stats);
          // (C) The full store read at an earlier t: the head tile counts to its end (events after
          // t in t's own tile are in), and nothing else differs. Only ever the case if a read could
          // precede a push of an event stamped <= the end of the head tile (e.g. a future timestamp).
          assertValues(p, valuesAt(p.layout, tiles, t), key, t, true, 'full store, head tile to its end');
          // tilesToRead names every field valuesAt reads.
          const fields = new Set(tilesToRead(p.layout, t));
          const restricted = new Map([...tiles].filter(([field]) => fields.has(field)));
          expect(valuesAt(p.layout, restricted, t)).toEqual(valuesAt(p.layout, tiles, t));
        }
      }),
      { numRuns: 150 * RUNS },
    );
    // The streams must exercise real windows and the tie rule, not just empty ones.
    expect(stats.nonEmpty).toBeGreaterThan(stats.runs);
    expect(stats.afterAllReads).toBeGreaterThan(stats.runs / 2);
    expect(stats.lastTies).toBeGreaterThan(10);
    if (RUNS !== 1) console.log('tiles vs contract:', stats, conditioning);
  });

  it('last: on equal (e, created) the later-arriving event wins, within a batch and across batches, whatever the tiles', () => {
    const view = buildView('push', [{ column: 'x', windows: ['1m'], tile: '30s' }, { column: 'x', windows: ['10m'], tile: undefined }]);
    const layout = tileLayout(view);
    const last = layout.features.map((f, i) => [f, i] as const).filter(([f]) => f.feature.fn === 'last');
    const t0 = Date.UTC(2024, 0, 1, 12);
    const ev = (x: number | null, e = t0, created = t0 + 5): TileEvent => ({ key: entityKey('a'), eventMs: e, createdMs: created, values: [x] });
    const read = (batches: TileEvent[][]): (number | null)[] => {
      const store: Store = new Map();
      for (const b of batches) {
        for (const [key, tiles] of tileUpdates(layout, b)) {
          const mine = store.get(key) ?? new Map<string, Float64Array>();
          store.set(key, mine);
          for (const [field, u] of tiles) {
            const stored = mine.get(field) ?? emptyTile(u.length / PARTIAL_SLOTS);
            for (let at = 0; at < u.length; at += PARTIAL_SLOTS) mergePartial(stored, at, u, at);
            mine.set(field, stored);
          }
        }
      }
      const values = valuesAt(layout, store.get(entityKey('a')) ?? NO_TILES, t0 + 1);
      return last.map(([, i]) => values[i]!);
    };
    expect(read([[ev(1), ev(2), ev(3)]])).toEqual([3, 3]); // same batch: the later one
    expect(read([[ev(1)], [ev(2)], [ev(3)]])).toEqual([3, 3]); // later batch
    expect(read([[ev(3), ev(2)], [ev(1)]])).toEqual([1, 1]);
    expect(read([[ev(1), ev(9, t0, t0 + 6)], [ev(2)]])).toEqual([9, 9]); // a greater created time beats arrival
    expect(read([[ev(9, t0, t0 + 6), ev(1)]])).toEqual([9, 9]); // also within a batch
    expect(read([[ev(1), ev(7, t0 - 40_000)], [ev(2, t0 - 50_000, t0 + 99)]])).toEqual([1, 1]); // greater e beats created and arrival
    expect(read([[ev(1)], [ev(null)]])).toEqual([1, 1]); // a null is no value
  });
});

describe('streaming tiles against the offline SQL (train/serve consistency)', () => {
  let db: Db;
  beforeAll(async () => {
    db = await openDuckDB({ threads: 1 });
  });
  afterAll(() => db.close());

  async function offline(p: Prepared): Promise<Record<string, unknown>[]> {
    const c = db.connection;
    // A float32 push column is stored as FLOAT offline: DuckDB rounds the pushed doubles itself.
    await c.run(`CREATE OR REPLACE TABLE ev (k VARCHAR, event_timestamp TIMESTAMPTZ, created_timestamp TIMESTAMPTZ, x DOUBLE, y ${p.float32y ? 'FLOAT' : 'DOUBLE'})`);
    await c.run('CREATE OR REPLACE TABLE pt (k VARCHAR, __t TIMESTAMPTZ, __row BIGINT)');
    const ts = (ms: number) => `make_timestamptz(${ms}::BIGINT * 1000)`;
    // From a string: a bare literal with many digits parses as DECIMAL and can land 1 ulp off.
    const num = (v: number | null) => (v === null ? 'NULL' : `CAST('${v}' AS DOUBLE)`);
    // Inserted in arrival order (the offline log's order), though the SQL does not look at it.
    if (p.events.length) {
      await c.run(`INSERT INTO ev VALUES ${p.events.map((e) => `('${e.key}', ${ts(e.e)}, ${ts(e.created)}, ${num(e.x)}, ${num(e.y)})`).join(', ')}`);
    }
    await c.run(`INSERT INTO pt VALUES ${p.points.map((q, row) => `('${q.key}', ${ts(q.t)}, ${row})`).join(', ')}`);
    const sql = aggregationSelectSql({ points: 'SELECT * FROM pt', events: 'SELECT * FROM ev', joinKeys: ['k'], features: p.features });
    return (await c.runAndReadAll(`${sql} ORDER BY __row`)).getRowObjects() as Record<string, unknown>[];
  }

  it('property: aggregationSelectSql at the same instants gives what valuesAt gives', async () => {
    const stats = { runs: 0, points: 0, nonEmpty: 0, lastTies: 0, lastTiesOfflineOther: 0 };
    conditioning.strict = conditioning.floorOnly = 0;
    await fc.assert(
      fc.asyncProperty(scenario(40, 10), async (s) => {
        const p = prepare(s);
        stats.runs++;
        const rows = await offline(p);
        if (rows.length !== p.points.length) throw new Error(`offline gave ${rows.length} rows for ${p.points.length} points`);
        p.points.forEach(({ key, t }, row) => {
          const r = rows[row]!;
          if (Number(r.__row) !== row) throw new Error(`row order: ${String(r.__row)} at ${row}`);
          // Online at now = t: the events stamped <= t are in (the full store when t is after them all).
          const online = valuesAt(p.layout, storeAsOf(p, t).get(entityKey(key)) ?? NO_TILES, t);
          stats.points++;
          p.features.forEach((f, i) => {
            const got = r[f.name];
            const on = online[i]!;
            const where = `${f.name} (w ${f.windowMs} ms, s ${f.tileMs} ms) of ${key} at t=${t}`;
            if (f.fn === 'count') {
              if (typeof got !== 'bigint' || Number(got) !== on) throw new Error(`${where}: offline ${String(got)}, online ${on}`);
              if (on >= 2) stats.nonEmpty++;
              return;
            }
            // Offline cannot see arrival order: on equal (e, created) it may pick any tied value.
            const want = oracle(p, f, key, t);
            const tied = f.fn === 'last' && want.tied && want.tied.length > 1 ? want.tied : undefined;
            if (tied) stats.lastTies++;
            if (tied && got !== on) stats.lastTiesOfflineOther++; // offline picked another of the tied values
            const problem = mismatch(f.fn, got, on, want, tied);
            if (problem) throw new Error(`${where}: offline vs online: ${problem}`);
          });
        });
      }),
      { numRuns: 80 * RUNS },
    );
    expect(stats.nonEmpty).toBeGreaterThan(stats.runs);
    if (RUNS !== 1) console.log('tiles vs offline SQL:', stats, conditioning);
  });

  /**
   * `last` on equal (e, created): the contract says the later push wins and the tiles do that, but
   * the offline SQL orders by (e, created) only and DuckDB's arg_max keeps the FIRST row it meets
   * among equal keys, i.e. the earliest pushed. Equal created times are the norm within one push
   * request (push.ts stamps every row of a request with the same created time), so two readings of
   * one entity at one event time in a request give online and training different `last` values.
   * The property above accepts any tied value offline; this pins the skew.
   */
  it.fails('last on equal (e, created): the offline SQL also takes the later-pushed row (it takes the first)', async () => {
    const p = prepare({
      source: 'push',
      specs: [{ column: 'x', windows: ['1m'], tile: undefined }],
      base: Date.UTC(2024, 0, 1),
      raw: [1, 2, 3].map((x, i) => ({ key: 'a' as const, offset: 100, created: 0, x, y: null, arrival: i, cut: i === 2 })),
      dups: [],
      queries: [{ kind: 'offset', key: 'a', ms: 5000 }],
    });
    const i = p.features.findIndex((f) => f.fn === 'last');
    const online = valuesAt(p.layout, buildStore(p.layout, p.batches).get(entityKey('a')) ?? NO_TILES, p.points[0]!.t)[i];
    expect(online).toBe(3); // holds: the later push wins online
    const [row] = await offline(p);
    expect(row![p.features[i]!.name]).toBe(3); // fails: offline gives 1
  });

  /**
   * Windows where rounding, not the model, decides: CONTRACT s.2 promises 1e-9 relative "whatever
   * the order of summation", which no single-pass float evaluation can give here. The online tile
   * sums in arrival order within a tile; the SQL in event-time order with DuckDB's fsum, which is
   * plain Kahan (not Neumaier: fsum of 1, 1e100, 1, -1e100 is 0 in DuckDB 1.5.5), and favg is that
   * sum / n while the tile's mean is Welford's running mean. The values agree within the rounding
   * floor; the `.fails` cases pin the contract's literal bound failing, so they flip when the
   * arithmetic (or the contract's wording) changes.
   */
  const ILL: { name: string; fn: AggregationFunction; events: { offset: number; x: number }[] }[] = [
    // Arrival 1e6, 0.001, -1e6 (one tile): online (1e6 + 0.001) - 1e6 = 0.0010000000474974513;
    // event-time order 1e6, -1e6, 0.001 offline: exactly 0.001.
    { name: 'sum of 1e6, 0.001, -1e6 (cancellation)', fn: 'sum', events: [{ offset: 0, x: 1e6 }, { offset: 2, x: 0.001 }, { offset: 1, x: -1e6 }] },
    // Same arrival and event order both sides: Welford's mean 3.3333332976e-4, favg 3.3333334917e-4 (exact 3.3333333333e-4).
    { name: 'mean of 1e6, 0.001, -1e6 (cancellation)', fn: 'mean', events: [{ offset: 0, x: 1e6 }, { offset: 1, x: 0.001 }, { offset: 2, x: -1e6 }] },
    // Two values one ulp apart at 1e5 (exact stddev 1.03e-11): Welford gives 0 or 1.455e-11 by
    // order, on either side; arrival is the reverse of event time, so the sides disagree.
    { name: 'stddev of 1e5 and 1e5 + 1 ulp', fn: 'stddev', events: [{ offset: 1, x: 100000.00000000001 }, { offset: 0, x: 100000 }] },
  ];

  async function illConditioned(c: (typeof ILL)[number]): Promise<{ online: number | null; offline: unknown; want: Expected }> {
    const p = prepare({
      source: 'file',
      specs: [{ column: 'x', windows: ['1m'], tile: undefined }],
      base: Date.UTC(2024, 0, 1),
      raw: c.events.map((ev, i) => ({ key: 'a', offset: ev.offset, created: 0, x: ev.x, y: null, arrival: i, cut: false })),
      dups: [],
      queries: [{ kind: 'offset', key: 'a', ms: 5000 }],
    });
    const i = p.features.findIndex((f) => f.fn === c.fn);
    const { key, t } = p.points[0]!;
    const online = valuesAt(p.layout, buildStore(p.layout, p.batches).get(entityKey(key)) ?? NO_TILES, t)[i]!;
    const [row] = await offline(p);
    return { online, offline: row![p.features[i]!.name], want: oracle(p, p.features[i]!, key, t) };
  }

  for (const c of ILL) {
    it(`ill-conditioned ${c.name}: online and offline agree within the rounding floor`, async () => {
      const { online, offline: off, want } = await illConditioned(c);
      expect(mismatch(c.fn, off, online, want)).toBe('');
      expect(mismatch(c.fn, online, want.value, want)).toBe('');
    });
    it.fails(`ill-conditioned ${c.name}: CONTRACT s.2's plain 1e-9 relative between online and offline does not hold`, async () => {
      const { online, offline: off } = await illConditioned(c);
      expect(typeof off === 'number' && online !== null && closeStrict(online, off)).toBe(true);
    });
  }
});

describe('partials: finalize edges and bytes', () => {
  const fnsOf = (tile: Float64Array) => Object.fromEntries(FNS.map((fn) => [fn, finalize(fn, tile, 0)]));

  it('an empty window: count 0, every other function null', () => {
    expect(fnsOf(emptyTile(1))).toEqual({ count: 0, sum: null, mean: null, min: null, max: null, stddev: null, last: null });
    // Null values do not count.
    const tile = emptyTile(1);
    addValue(tile, 0, null, 1000, 1000);
    expect(fnsOf(tile)).toEqual({ count: 0, sum: null, mean: null, min: null, max: null, stddev: null, last: null });
  });

  it('one event: stddev null, the others that value', () => {
    const tile = emptyTile(1);
    addValue(tile, 0, -2.5, 1000, 1000);
    expect(fnsOf(tile)).toEqual({ count: 1, sum: -2.5, mean: -2.5, min: -2.5, max: -2.5, stddev: null, last: -2.5 });
  });

  it('two equal values: stddev exactly 0, also when merged from two tiles', () => {
    const tile = emptyTile(1);
    addValue(tile, 0, 0.1, 1000, 1000);
    addValue(tile, 0, 0.1, 1000, 1000);
    expect(fnsOf(tile)).toEqual({ count: 2, sum: 0.2, mean: 0.1, min: 0.1, max: 0.1, stddev: 0, last: 0.1 });
    const a = emptyTile(1);
    const b = emptyTile(1);
    addValue(a, 0, 1e5 + 0.3, 1000, 1000);
    addValue(b, 0, 1e5 + 0.3, 2000, 1000);
    mergePartial(a, 0, b, 0);
    expect(finalize('stddev', a, 0)).toBe(0);
  });

  it('merging with an empty partial changes nothing, in either direction', () => {
    const a = emptyTile(2);
    addValue(a, PARTIAL_SLOTS, 3, 5000, 1);
    addValue(a, PARTIAL_SLOTS, -4, 4000, 2);
    const before = Array.from(a);
    mergePartial(a, PARTIAL_SLOTS, emptyTile(1), 0);
    expect(Array.from(a)).toEqual(before);
    const into = emptyTile(1);
    mergePartial(into, 0, a, PARTIAL_SLOTS);
    expect(Array.from(into)).toEqual(before.slice(PARTIAL_SLOTS));
  });

  it('tileBytes / tileFromBytes round trip, Infinity and -Infinity included, also from an offset view', () => {
    const empty = emptyTile(3);
    expect(Array.from(tileFromBytes(tileBytes(empty)))).toEqual(Array.from(empty));
    expect(tileFromBytes(tileBytes(empty))[4]).toBe(Infinity);
    expect(tileFromBytes(tileBytes(empty))[5]).toBe(-Infinity);
    expect(tileBytes(Float64Array.of(1)).toString('hex')).toBe('000000000000f03f'); // little-endian
    fc.assert(
      fc.property(fc.array(fc.double(), { maxLength: 40 }), fc.nat({ max: 7 }), (values, pad) => {
        const tile = Float64Array.from(values);
        const bytes = tileBytes(tile);
        expect(bytes.length).toBe(tile.length * 8);
        // Bytes from a larger buffer at an unaligned offset (as a store client may hand them over).
        const shifted = Buffer.alloc(bytes.length + pad + 3);
        bytes.copy(shifted, pad);
        const back = tileFromBytes(shifted.subarray(pad, pad + bytes.length));
        expect(back.length).toBe(tile.length);
        tile.forEach((v, i) => expect(Object.is(back[i], v)).toBe(true));
      }),
      { numRuns: 200 },
    );
  });

  it('firstTile floors negative instants and tileField names the size and index', () => {
    expect(firstTile(0, 60_000, 1000)).toBe(-60);
    expect(firstTile(-1, 1000, 1000)).toBe(-2);
    expect(tileField(1500, -3)).toBe('1500:-3');
  });
});
