/**
 * aggregationSelectSql against a brute-force JS reading of the contract's window rule
 * (CONTRACT s.2): random event streams with equal timestamps, null values, null created
 * timestamps, events exactly on the tail boundary and at t, and points between tiles.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entity, featureView, pushSource } from '../src/definitions/builders.js';
import type { AggregatedFeature } from '../src/definitions/types.js';
import { aggregationAtEventsSql, aggregationSelectSql } from '../src/offline/aggregation-sql.js';
import { openDuckDB } from '../src/offline/duckdb.js';

type Db = Awaited<ReturnType<typeof openDuckDB>>;

interface Event {
  key: string;
  e: number;
  created: number | null;
  x: number | null;
  y: number | null;
}
interface Point {
  row: number;
  key: string | null;
  t: number | null;
}

const mulberry32 = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let r = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
  return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
};

const weld = entity({ name: 'weld', joinKeys: ['weld_id'] });
const readings = pushSource({ name: 'readings', schema: { weld_id: 'string', x: 'float64', y: 'float64' }, timestampField: 'event_timestamp' });
const view = featureView({
  name: 'stats',
  entities: [weld],
  source: readings,
  aggregations: [
    { column: 'x', functions: ['count', 'sum', 'mean', 'min', 'max', 'stddev', 'last'], windows: ['1m', '10m'] },
    { column: 'x', functions: ['count', 'sum', 'stddev', 'last'], windows: ['90s'], tile: '7s' },
    { column: 'y', functions: ['count', 'mean', 'max', 'last', 'stddev'], windows: ['5s'], tile: '5s' },
  ],
});
const FEATURES: readonly AggregatedFeature[] = view.aggregatedFeatures!;

/** floor((t - w) / s) * s <= e <= t, non-null values only. */
function reference(events: readonly Event[], p: Point, f: AggregatedFeature): { value: number | null; lastCandidates?: number[] } {
  if (p.key === null || p.t === null) return { value: f.fn === 'count' ? 0 : null };
  const lo = Math.floor((p.t - f.windowMs) / f.tileMs) * f.tileMs;
  const col = f.column as 'x' | 'y';
  const inWindow = events.filter((ev) => ev.key === p.key && ev.e >= lo && ev.e <= p.t! && ev[col] !== null);
  const values = inWindow.map((ev) => ev[col]!);
  const n = values.length;
  if (f.fn === 'count') return { value: n };
  if (n === 0) return { value: null };
  const sum = values.reduce((a, b) => a + b, 0);
  switch (f.fn) {
    case 'sum':
      return { value: sum };
    case 'mean':
      return { value: sum / n };
    case 'min':
      return { value: Math.min(...values) };
    case 'max':
      return { value: Math.max(...values) };
    case 'stddev': {
      if (n < 2) return { value: null };
      const mean = sum / n;
      return { value: Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) };
    }
    case 'last': {
      const created = (ev: Event) => ev.created ?? -Infinity;
      const best = inWindow.reduce((a, b) => (b.e > a.e || (b.e === a.e && created(b) > created(a)) ? b : a));
      // Equal event time and equal created timestamp: the contract leaves the pick open.
      const tied = inWindow.filter((ev) => ev.e === best.e && created(ev) === created(best)).map((ev) => ev[col]!);
      return { value: best[col], lastCandidates: tied };
    }
  }
}

function generate(seed: number, base: number): { events: Event[]; points: Point[] } {
  const rnd = mulberry32(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const keys = ['a', 'b', 'c', 'd'];
  const span = 20 * 60_000;
  const events: Event[] = [];
  for (let i = 0; i < 1500; i++) {
    // A third on whole seconds (ties and tile edges), the rest anywhere.
    const e = base + (rnd() < 0.33 ? int(span / 1000) * 1000 : int(span));
    const x = rnd() < 0.1 ? null : (rnd() - 0.3) * 1000;
    // y like a sensor reading: a large mean and a small spread, hard on a naive stddev.
    const y = rnd() < 0.1 ? null : 1e5 + rnd();
    events.push({ key: keys[int(keys.length)]!, e, created: rnd() < 0.2 ? null : base + int(50), x, y });
  }
  const points: Point[] = [];
  const push = (key: string | null, t: number | null) => points.push({ row: points.length, key, t });
  for (let i = 0; i < 400; i++) {
    const ev = events[int(events.length)]!;
    const f = FEATURES[int(FEATURES.length)]!;
    switch (i % 5) {
      case 0: // at an event's own time
        push(ev.key, ev.e);
        break;
      case 1: {
        // the event sits exactly on the tail boundary, or 1 ms before it
        const aligned = Math.floor(ev.e / f.tileMs) * f.tileMs;
        const t = aligned + f.windowMs + int(f.tileMs);
        push(ev.key, rnd() < 0.5 ? t : t + (ev.e - aligned) + 1);
        break;
      }
      case 2: // between tiles, anywhere
        push(keys[int(keys.length)]!, base + int(span + 120_000) - 60_000);
        break;
      case 3: // just after an event
        push(ev.key, ev.e + 1 + int(3000));
        break;
      default:
        push(ev.key, Math.floor(ev.e / 1000) * 1000 + f.windowMs);
    }
  }
  push('zzz', base + 60_000); // a key with no events
  push(null, base + 60_000);
  push('a', null);
  return { events, points };
}

async function load(db: Db, events: readonly Event[], points: readonly Point[]): Promise<void> {
  const c = db.connection;
  await c.run('CREATE OR REPLACE TABLE ev (weld_id VARCHAR, event_timestamp TIMESTAMPTZ, created_timestamp TIMESTAMPTZ, x DOUBLE, y DOUBLE)');
  await c.run('CREATE OR REPLACE TABLE pt (weld_id VARCHAR, __t TIMESTAMPTZ, __row BIGINT)');
  const ts = (ms: number | null) => (ms === null ? 'NULL' : `make_timestamptz(${ms}::BIGINT * 1000)`);
  const num = (v: number | null) => (v === null ? 'NULL' : `${v}::DOUBLE`);
  const str = (v: string | null) => (v === null ? 'NULL' : `'${v}'`);
  await c.run(`INSERT INTO ev VALUES ${events.map((e) => `(${str(e.key)}, ${ts(e.e)}, ${ts(e.created)}, ${num(e.x)}, ${num(e.y)})`).join(', ')}`);
  if (points.length) await c.run(`INSERT INTO pt VALUES ${points.map((p) => `(${str(p.key)}, ${ts(p.t)}, ${p.row})`).join(', ')}`);
}

async function run(db: Db, features: readonly AggregatedFeature[] = FEATURES): Promise<Record<string, unknown>[]> {
  const sql = aggregationSelectSql({ points: 'SELECT * FROM pt', events: 'SELECT * FROM ev', joinKeys: ['weld_id'], features });
  return (await db.connection.runAndReadAll(`${sql} ORDER BY __row`)).getRowObjects() as Record<string, unknown>[];
}

const close = (actual: number, expected: number) => Math.abs(actual - expected) <= 1e-9 * Math.max(Math.abs(expected), 1e-300);

describe('aggregationSelectSql', () => {
  let db: Db;
  beforeAll(async () => {
    db = await openDuckDB({ threads: 2 });
  });
  afterAll(() => db.close());

  for (const [seed, base] of [
    [1, Date.UTC(2024, 0, 1)],
    [2, Date.UTC(2024, 5, 30, 23, 50)],
    [3, -5 * 60_000], // times around the epoch: the tile floor of negative instants
  ] as const) {
    it(`matches a brute-force evaluation of the window rule (seed ${seed})`, async () => {
      const { events, points } = generate(seed, base);
      await load(db, events, points);
      const rows = await run(db);
      expect(rows.map((r) => Number(r.__row))).toEqual(points.map((p) => p.row));
      let nonEmpty = 0;
      for (const p of points) {
        const row = rows[p.row]!;
        for (const f of FEATURES) {
          const want = reference(events, p, f);
          const got = row[f.name];
          const where = `row ${p.row} (key ${p.key}, t ${p.t}) ${f.name}`;
          if (f.fn === 'count') {
            expect(typeof got, where).toBe('bigint');
            expect(Number(got), where).toBe(want.value);
            if ((want.value as number) > 1) nonEmpty++;
          } else if (want.value === null) {
            expect(got, where).toBeNull();
          } else if (want.lastCandidates) {
            expect(want.lastCandidates, where).toContain(got);
          } else {
            expect(typeof got, where).toBe('number');
            if (!close(got as number, want.value)) expect(got, where).toBe(want.value);
          }
        }
      }
      // The random streams must exercise real windows, not just empty ones.
      expect(nonEmpty).toBeGreaterThan(points.length);
    });
  }

  it('at the events themselves, gives what the same events as points give', async () => {
    const { events } = generate(4, Date.UTC(2024, 2, 1));
    await load(db, events, []);
    // Every third event is a point; the others are only context.
    const sql = aggregationAtEventsSql({
      events: 'SELECT *, rowid AS __row FROM ev',
      pointsWhere: '__row % 3 = 0',
      joinKeys: ['weld_id'],
      features: FEATURES,
    });
    const rows = (await db.connection.runAndReadAll(`${sql} ORDER BY __row`)).getRowObjects();
    const chosen = events.map((ev, row) => ({ ev, row })).filter(({ row }) => row % 3 === 0);
    expect(rows.map((r) => Number(r.__row))).toEqual(chosen.map((c) => c.row));
    rows.forEach((row, i) => {
      const { ev, row: id } = chosen[i]!;
      for (const f of FEATURES) {
        const want = reference(events, { row: id, key: ev.key, t: ev.e }, f);
        const got = row[f.name];
        const where = `event ${id} ${f.name}`;
        if (f.fn === 'count') expect(Number(got), where).toBe(want.value);
        else if (want.value === null) expect(got, where).toBeNull();
        else if (want.lastCandidates) expect(want.lastCandidates, where).toContain(got);
        else if (!close(got as number, want.value)) expect(got, where).toBe(want.value);
      }
    });
  });

  it('counts an event exactly on the tail boundary and at t, and not 1 ms outside', async () => {
    const [countTen] = FEATURES.filter((f) => f.name === 'x_count_10m'); // w = 10m, s = 10s
    const t0 = Date.UTC(2024, 0, 1, 12);
    const t = t0 + 10 * 60_000 + 4_000; // tail = floor((t - w)/s)*s = t0
    await load(
      db,
      [
        { key: 'a', e: t0 - 1, created: null, x: 1, y: null }, // 1 ms before the tail: out
        { key: 'a', e: t0, created: null, x: 2, y: null }, // on the tail: in
        { key: 'a', e: t, created: null, x: 3, y: null }, // at t: in
        { key: 'a', e: t + 1, created: null, x: 4, y: null }, // after t: out
      ],
      [{ row: 0, key: 'a', t }],
    );
    const [row] = await run(db, [countTen!, FEATURES.find((f) => f.name === 'x_sum_10m')!]);
    expect(row).toEqual({ __row: 0n, x_count_10m: 2n, x_sum_10m: 5 });
  });

  it('breaks ties on event time by the greater created timestamp for last', async () => {
    const last = FEATURES.find((f) => f.name === 'x_last_1m')!;
    const t = Date.UTC(2024, 0, 1, 12);
    await load(
      db,
      [
        { key: 'a', e: t - 500, created: t + 2, x: 1, y: null },
        { key: 'a', e: t - 500, created: t + 9, x: 2, y: null }, // pushed later: wins
        { key: 'a', e: t - 500, created: null, x: 3, y: null },
        { key: 'a', e: t - 100, created: t + 1, x: null, y: null }, // newest, but null: ignored
      ],
      [{ row: 7, key: 'a', t }],
    );
    expect(await run(db, [last])).toEqual([{ __row: 7n, x_last_1m: 2 }]);
  });
});
