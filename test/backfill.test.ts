/**
 * `larder backfill` (CONTRACT s.4, s.7): a definitions repo in a temp folder, its sources written
 * with DuckDB, backfilled into the Hive-partitioned Parquet layout, then read back with DuckDB as
 * any Parquet reader would. Covers the layout, dedupe, idempotence, replacing a sub-range,
 * transforms with sparse vectors, aggregations at event time, a run killed with SIGKILL, and the
 * command's one-line errors.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDefinitions } from '../src/definitions/loader.js';
import type { Definitions } from '../src/definitions/types.js';
import { parseInstant } from '../src/core/time.js';
import { backfill } from '../src/offline/backfill.js';
import { createProgress } from '../src/cli/progress.js';
import { openDuckDB, sqlString } from '../src/offline/duckdb.js';
import pg from 'pg';
import { createTestDatabase } from './support/services.js';

const BIN = new URL('../bin/larder.mjs', import.meta.url).pathname;
type Db = Awaited<ReturnType<typeof openDuckDB>>;

const DEFINITIONS = `import { entity, fileSource, featureView, pushSource, sparse } from 'larder';

export const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });

const trips = fileSource({ name: 'trips', path: 'data/trips.parquet', timestampField: 'ts', createdTimestampField: 'created' });

export const driverStats = featureView({
  name: 'driver_stats', entities: [driver], source: trips,
  schema: { conv_rate: 'float64', trips: 'int32' },
});

// A word's bucket: the sum of its character codes mod 16 ('a' -> 1, 'b' -> 2, 'c' -> 3).
const bucket = (word: string): number => [...word].reduce((sum, c) => sum + c.charCodeAt(0), 0) % 16;

export const driverNotes = featureView({
  name: 'driver_notes', entities: [driver], source: trips,
  schema: { note_length: 'int32', note_words: sparse(16), conv_rate: 'float32' },
  transform: (row) => {
    const counts = new Map<number, number>();
    for (const word of String(row.note).split(/\\s+/).filter(Boolean)) counts.set(bucket(word), (counts.get(bucket(word)) ?? 0) + 1);
    const indices = [...counts.keys()].sort((a, b) => a - b);
    return { note_length: String(row.note).length, note_words: { size: 16, indices, values: indices.map((i) => counts.get(i)!) } };
  },
});

export const driverActivity = featureView({
  name: 'driver_activity', entities: [driver], source: trips,
  aggregations: [{ column: 'trips', functions: ['count', 'sum', 'max'], windows: ['1h'] }],
});

const livePings = pushSource({ name: 'live_pings', schema: { driver_id: 'int64', speed: 'float64' }, timestampField: 'ts' });
export const driverSpeed = featureView({ name: 'driver_speed', entities: [driver], source: livePings, schema: { speed: 'float64' } });
`;

interface Trip {
  driver_id: number | null;
  ts: string | null;
  created: string | null;
  conv_rate: number;
  trips: number;
  note: string;
}

let repo: string;
let db: Db;
let defs: Definitions;
const cleanups: string[] = [];

const at = (iso: string) => parseInstant(iso);

async function writeTrips(rows: Trip[]): Promise<void> {
  const lit = (v: string | number | null, type: string) => (v === null ? `NULL::${type}` : typeof v === 'string' ? `${sqlString(v)}::${type}` : `${v}::${type}`);
  const values = rows.map((r) => `(${lit(r.driver_id, 'BIGINT')}, ${lit(r.ts, 'TIMESTAMPTZ')}, ${lit(r.created, 'TIMESTAMPTZ')}, ${lit(r.conv_rate, 'DOUBLE')}, ${lit(r.trips, 'INTEGER')}, ${lit(r.note, 'VARCHAR')})`);
  await db.connection.run(`COPY (SELECT * FROM (VALUES ${values.join(', ')}) t(driver_id, ts, created, conv_rate, trips, note)) TO ${sqlString(join(repo, 'data', 'trips.parquet'))} (FORMAT parquet)`);
}

async function query(sql: string): Promise<Record<string, unknown>[]> {
  return (await db.connection.runAndReadAll(sql)).getRowObjectsJS();
}

const offlineOf = (dir: string) => join(dir, '.larder', 'offline');
const glob = (offline: string, view: string) => sqlString(join(offline, view, 'date=*', '*.parquet'));

/** Order-independent digest of every row of a view (or of one partition). */
async function digest(files: string): Promise<string> {
  const [row] = await query(`SELECT count(*)::INTEGER AS n, md5(coalesce(string_agg(r, '\n' ORDER BY r), '')) AS d FROM (SELECT CAST(t AS VARCHAR) AS r FROM read_parquet(${files}) t)`);
  return `${row!.n}:${row!.d}`;
}

async function run(offline: string, start: string, end: string, views?: string[]) {
  return backfill({ defs, offlineDir: offline, start: at(start), end: at(end), ...(views && { views }) });
}

/** 3 days of trips for drivers 1-3, every 2 hours, plus a duplicate, a row without time and one without driver. */
function baseTrips(): Trip[] {
  const rows: Trip[] = [];
  for (let h = 0; h < 72; h += 2) {
    for (const d of [1, 2, 3]) {
      const ts = new Date(Date.UTC(2024, 0, 1, h)).toISOString();
      rows.push({ driver_id: d, ts, created: ts, conv_rate: d + h / 100, trips: h, note: d === 1 ? 'a b a' : 'c' });
    }
  }
  // The same driver and event time, created later: it wins.
  rows.push({ driver_id: 2, ts: '2024-01-01T04:00:00Z', created: '2024-01-01T05:00:00Z', conv_rate: 99, trips: 999, note: 'b' });
  rows.push({ driver_id: 2, ts: null, created: null, conv_rate: 0, trips: 0, note: 'no time' });
  rows.push({ driver_id: null, ts: '2024-01-02T00:00:00Z', created: null, conv_rate: 0, trips: 0, note: 'no driver' });
  return rows;
}

beforeAll(async () => {
  repo = await mkdtemp(join(tmpdir(), 'larder-backfill-'));
  cleanups.push(repo);
  await mkdir(join(repo, 'data'));
  await writeFile(join(repo, 'definitions.ts'), DEFINITIONS);
  db = await openDuckDB({ threads: 1 });
  await db.connection.run(`SET TimeZone = 'UTC'`);
  await writeTrips(baseTrips());
  defs = await loadDefinitions(repo);
});

afterAll(async () => {
  db?.close();
  await Promise.all(cleanups.map((d) => rm(d, { recursive: true, force: true })));
});

describe('backfill of a plain view', () => {
  it('writes the CONTRACT s.7 layout: one data.parquet per UTC date, keys, times, then features', async () => {
    const offline = join(repo, 'layout');
    const result = await run(offline, '2024-01-01T00:00:00Z', '2024-01-04T00:00:00Z', ['driver_stats']);
    expect(result.views).toEqual([{ name: 'driver_stats', rows: 108, partitions: 3, droppedRows: 2, seconds: expect.any(Number) }]);

    expect((await readdir(join(offline, 'driver_stats'))).sort()).toEqual(['date=2024-01-01', 'date=2024-01-02', 'date=2024-01-03']);
    for (const date of ['2024-01-01', '2024-01-02', '2024-01-03']) {
      expect(await readdir(join(offline, 'driver_stats', `date=${date}`))).toEqual(['data.parquet']);
    }
    const file = sqlString(join(offline, 'driver_stats', 'date=2024-01-02', 'data.parquet'));
    const columns = await query(`DESCRIBE SELECT * FROM read_parquet(${file}, hive_partitioning = false)`);
    expect(columns.map((c) => [c.column_name, c.column_type])).toEqual([
      ['driver_id', 'BIGINT'],
      ['event_timestamp', 'TIMESTAMP WITH TIME ZONE'],
      ['created_timestamp', 'TIMESTAMP WITH TIME ZONE'],
      ['conv_rate', 'DOUBLE'],
      ['trips', 'INTEGER'],
    ]);
    // Only that day's events, sorted by driver then event time.
    const rows = await query(`SELECT driver_id, event_timestamp FROM read_parquet(${file}, hive_partitioning = false, file_row_number = true) ORDER BY file_row_number`);
    expect(rows.every((r) => (r.event_timestamp as Date).toISOString().startsWith('2024-01-02'))).toBe(true);
    const sorted = [...rows].sort((a, b) => Number(a.driver_id) - Number(b.driver_id) || (a.event_timestamp as Date).getTime() - (b.event_timestamp as Date).getTime());
    expect(rows).toEqual(sorted);
    // Hive readers see the date as a partition column.
    const [hive] = await query(`SELECT count(DISTINCT date)::INTEGER AS dates FROM read_parquet(${glob(offline, 'driver_stats')}, hive_partitioning = true)`);
    expect(hive!.dates).toBe(3);
  });

  it('keeps the row with the greatest created timestamp for equal driver and event time', async () => {
    const offline = join(repo, 'dedupe');
    await run(offline, '2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z', ['driver_stats']);
    const rows = await query(`SELECT conv_rate, trips, created_timestamp FROM read_parquet(${glob(offline, 'driver_stats')}) WHERE driver_id = 2 AND event_timestamp = TIMESTAMPTZ '2024-01-01 04:00:00+00'`);
    expect(rows).toEqual([{ conv_rate: 99, trips: 999, created_timestamp: new Date('2024-01-01T05:00:00Z') }]);
  });

  it('is idempotent: twice gives the same rows and no duplicates', async () => {
    const offline = join(repo, 'twice');
    await run(offline, '2024-01-01T00:00:00Z', '2024-01-04T00:00:00Z', ['driver_stats']);
    const first = await digest(glob(offline, 'driver_stats'));
    await run(offline, '2024-01-01T00:00:00Z', '2024-01-04T00:00:00Z', ['driver_stats']);
    expect(await digest(glob(offline, 'driver_stats'))).toBe(first);
    const [counts] = await query(`SELECT count(*)::INTEGER AS n, count(DISTINCT (driver_id, event_timestamp))::INTEGER AS keys FROM read_parquet(${glob(offline, 'driver_stats')})`);
    expect(counts).toEqual({ n: 108, keys: 108 });
    expect((await readdir(join(offline, 'driver_stats'))).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('re-running a sub-range replaces only that range; rows outside it, and pushed files, survive', async () => {
    const offline = join(repo, 'subrange');
    await run(offline, '2024-01-01T00:00:00Z', '2024-01-04T00:00:00Z', ['driver_stats']);
    const pushed = join(offline, 'driver_stats', 'date=2024-01-02', 'push-0001.parquet');
    await db.connection.run(`COPY (SELECT 9::BIGINT AS driver_id) TO ${sqlString(pushed)} (FORMAT parquet)`);
    const before = await query(`SELECT * FROM read_parquet(${glob(offline, 'driver_stats')}, union_by_name = true) WHERE driver_id <> 9 ORDER BY ALL`);

    // The source changes everywhere: one row removed inside the range, every conv_rate bumped.
    const changed = baseTrips()
      .filter((r) => !(r.driver_id === 1 && r.ts === '2024-01-02T10:00:00.000Z'))
      .map((r) => ({ ...r, conv_rate: r.conv_rate + 1000 }));
    await writeTrips(changed);
    try {
      const result = await run(offline, '2024-01-02T06:00:00Z', '2024-01-02T18:00:00Z', ['driver_stats']);
      expect(result.views[0]).toMatchObject({ rows: 17, partitions: 1 });
      const after = await query(`SELECT * FROM read_parquet(${glob(offline, 'driver_stats')}, union_by_name = true) WHERE driver_id <> 9 ORDER BY ALL`);
      const inRange = (r: Record<string, unknown>) => {
        const t = (r.event_timestamp as Date).getTime();
        return t >= at('2024-01-02T06:00:00Z') && t < at('2024-01-02T18:00:00Z');
      };
      expect(after.filter((r) => !inRange(r))).toEqual(before.filter((r) => !inRange(r)));
      expect(after.filter(inRange)).toEqual(
        before.filter(inRange).flatMap((r) =>
          r.driver_id === 1n && (r.event_timestamp as Date).toISOString() === '2024-01-02T10:00:00.000Z' ? [] : [{ ...r, conv_rate: (r.conv_rate as number) + 1000 }],
        ),
      );
      expect(existsSync(pushed)).toBe(true);
    } finally {
      await writeTrips(baseTrips());
    }
  });

  it('a range left empty removes its partitions', async () => {
    const offline = join(repo, 'emptied');
    await run(offline, '2024-01-01T00:00:00Z', '2024-01-04T00:00:00Z', ['driver_stats']);
    await writeTrips(baseTrips().filter((r) => !r.ts?.startsWith('2024-01-03')));
    try {
      const result = await run(offline, '2024-01-03T00:00:00Z', '2024-01-04T00:00:00Z', ['driver_stats']);
      expect(result.views[0]).toMatchObject({ rows: 0, partitions: 0 });
      expect((await readdir(join(offline, 'driver_stats'))).sort()).toEqual(['date=2024-01-01', 'date=2024-01-02']);
    } finally {
      await writeTrips(baseTrips());
    }
  });
});

describe('backfill of a transform view', () => {
  it('runs the transform per row, takes untransformed features from the source, stores sparse vectors as structs', async () => {
    const offline = join(repo, 'transform');
    const result = await run(offline, '2024-01-01T00:00:00Z', '2024-01-04T00:00:00Z', ['driver_notes']);
    expect(result.views[0]).toMatchObject({ rows: 108, partitions: 3, droppedRows: 2 });
    const columns = await query(`DESCRIBE SELECT * FROM read_parquet(${glob(offline, 'driver_notes')}, hive_partitioning = false)`);
    expect(columns.map((c) => [c.column_name, c.column_type])).toEqual([
      ['driver_id', 'BIGINT'],
      ['event_timestamp', 'TIMESTAMP WITH TIME ZONE'],
      ['created_timestamp', 'TIMESTAMP WITH TIME ZONE'],
      ['note_length', 'INTEGER'],
      ['note_words', 'STRUCT(indices INTEGER[], "values" FLOAT[])'],
      ['conv_rate', 'FLOAT'],
    ]);
    const rows = await query(
      `SELECT driver_id, note_length, note_words, conv_rate FROM read_parquet(${glob(offline, 'driver_notes')})
       WHERE event_timestamp = TIMESTAMPTZ '2024-01-01 04:00:00+00' ORDER BY driver_id`,
    );
    expect(rows).toEqual([
      { driver_id: 1n, note_length: 5, note_words: { indices: [1, 2], values: [2, 1] }, conv_rate: Math.fround(1.04) }, // 'a b a'
      { driver_id: 2n, note_length: 1, note_words: { indices: [2], values: [1] }, conv_rate: 99 }, // the later 'b' wins
      { driver_id: 3n, note_length: 1, note_words: { indices: [3], values: [1] }, conv_rate: Math.fround(3.04) }, // 'c'
    ]);
  });
});

describe('backfill of an aggregation view', () => {
  it('stores each event with its window features at its own time and the raw input', async () => {
    // Driver 7: trips 1, 2, 4, 8, 16 at 10:00:00, 10:00:30, 10:30:00, 11:00:30, 11:05:00.
    const events: [string, number][] = [
      ['2024-01-05T10:00:00Z', 1],
      ['2024-01-05T10:00:30Z', 2],
      ['2024-01-05T10:30:00Z', 4],
      ['2024-01-05T11:00:30Z', 8],
      ['2024-01-05T11:05:00Z', 16],
    ];
    await writeTrips([...baseTrips(), ...events.map(([ts, trips]) => ({ driver_id: 7, ts, created: null, conv_rate: 0, trips, note: '' }))]);
    try {
      const offline = join(repo, 'aggregation');
      // The range starts at 11:00: the events before it are read as history, not written.
      const result = await run(offline, '2024-01-05T11:00:00Z', '2024-01-06T00:00:00Z', ['driver_activity']);
      expect(result.views[0]).toMatchObject({ rows: 2, partitions: 1, droppedRows: 1 });
      const columns = await query(`DESCRIBE SELECT * FROM read_parquet(${glob(offline, 'driver_activity')}, hive_partitioning = false)`);
      expect(columns.map((c) => [c.column_name, c.column_type])).toEqual([
        ['driver_id', 'BIGINT'],
        ['event_timestamp', 'TIMESTAMP WITH TIME ZONE'],
        ['created_timestamp', 'TIMESTAMP WITH TIME ZONE'],
        ['trips_count_1h', 'BIGINT'],
        ['trips_sum_1h', 'DOUBLE'],
        ['trips_max_1h', 'DOUBLE'],
        ['trips', 'DOUBLE'],
      ]);
      const rows = await query(`SELECT event_timestamp, trips_count_1h, trips_sum_1h, trips_max_1h, trips FROM read_parquet(${glob(offline, 'driver_activity')}) ORDER BY event_timestamp`);
      // 1h window, 60s tiles: at 11:00:30 the tail is floor((11:00:30 - 1h) / 60s) * 60s = 10:00:00,
      // so all four events up to it count; at 11:05:00 the tail is 10:05:00: 10:30, 11:00:30, 11:05.
      expect(rows).toEqual([
        { event_timestamp: new Date('2024-01-05T11:00:30Z'), trips_count_1h: 4n, trips_sum_1h: 15, trips_max_1h: 8, trips: 8 },
        { event_timestamp: new Date('2024-01-05T11:05:00Z'), trips_count_1h: 3n, trips_sum_1h: 28, trips_max_1h: 16, trips: 16 },
      ]);
    } finally {
      await writeTrips(baseTrips());
    }
  });
});

describe('backfill from PostgreSQL', () => {
  it('streams a table source (connection from DATABASE_URL) into the same layout', async () => {
    const database = await createTestDatabase('backfill');
    const saved = process.env.DATABASE_URL;
    const pgRepo = await mkdtemp(join(tmpdir(), 'larder-backfill-pg-'));
    cleanups.push(pgRepo);
    try {
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      // Naive timestamps in PostgreSQL mean UTC, as in files.
      await client.query(`CREATE TABLE rides AS
        SELECT (i % 4)::int8 AS driver_id, TIMESTAMP '2024-06-01 00:00:00' + i * interval '30 minutes' AS ts, (i * 0.25)::numeric AS fare
        FROM generate_series(0, 143) i`);
      await client.end();
      await writeFile(
        join(pgRepo, 'rides.ts'),
        `import { entity, featureView, postgresSource } from 'larder';
export const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
export const rides = featureView({
  name: 'driver_fares', entities: [driver],
  source: postgresSource({ name: 'rides', table: 'rides', timestampField: 'ts' }),
  schema: { fare: 'float64' },
});
`,
      );
      process.env.DATABASE_URL = database.url;
      const pgDefs = await loadDefinitions(pgRepo);
      const offline = join(pgRepo, 'offline');
      const result = await backfill({ defs: pgDefs, offlineDir: offline, start: at('2024-06-01T12:00:00Z'), end: at('2024-06-03T00:00:00Z'), batchSize: 10 });
      expect(result.views[0]).toMatchObject({ name: 'driver_fares', rows: 72, partitions: 2, droppedRows: 0 });
      expect((await readdir(join(offline, 'driver_fares'))).sort()).toEqual(['date=2024-06-01', 'date=2024-06-02']);
      const rows = await query(`SELECT driver_id, event_timestamp, created_timestamp, fare FROM read_parquet(${glob(offline, 'driver_fares')}) ORDER BY event_timestamp LIMIT 2`);
      expect(rows).toEqual([
        { driver_id: 0n, event_timestamp: new Date('2024-06-01T12:00:00Z'), created_timestamp: null, fare: 6 },
        { driver_id: 1n, event_timestamp: new Date('2024-06-01T12:30:00Z'), created_timestamp: null, fare: 6.25 },
      ]);
    } finally {
      if (saved === undefined) delete process.env.DATABASE_URL;
      else process.env.DATABASE_URL = saved;
      await database.drop();
    }
  });
});

describe('which views', () => {
  it('skips a push view without batch source when backfilling everything, refuses it by name', async () => {
    const offline = join(repo, 'all');
    const result = await run(offline, '2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z');
    expect(result.views.map((v) => [v.name, v.skipped ?? v.rows])).toEqual([
      ['driver_stats', 36],
      ['driver_notes', 36],
      ['driver_activity', 37], // aggregation views keep every event, the duplicate too
      ['driver_speed', `push source 'live_pings' has no batchSource to backfill from`],
    ]);
    await expect(run(offline, '2024-01-01T00:00:00Z', '2024-01-02T00:00:00Z', ['driver_speed'])).rejects.toThrow(
      `featureView 'driver_speed': push source 'live_pings' has no batchSource to backfill from`,
    );
  });
});

describe('larder backfill on the command line', () => {
  const cli = (args: string[], home: string) =>
    spawnSync(process.execPath, [BIN, 'backfill', '--repo', repo, ...args], { env: { ...process.env, LARDER_HOME: home }, encoding: 'utf8' });

  it('prints one line per view', async () => {
    const home = join(repo, 'cli-home');
    const out = cli(['--start', '2024-01-01T00:00:00Z', '--end', '2024-01-04T00:00:00Z', '--views', 'driver_stats'], home);
    expect(out.stderr).toBe('');
    expect(out.status).toBe(0);
    expect(out.stdout).toMatch(/^backfill driver_stats: 108 rows into 3 partitions \(\d+\.\d s\); 2 source rows dropped \(null event time or join key\)\n$/);
    expect(existsSync(join(home, 'offline', 'driver_stats', 'date=2024-01-03', 'data.parquet'))).toBe(true);
  });

  it.each([
    { args: ['--start', 'yesterday', '--end', '2024-01-02'], line: /^larder backfill: --start: expected an ISO-8601 instant/ },
    { args: ['--start', '2024-01-02', '--end', '2024-01-02'], line: /^larder backfill: --end \(2024-01-02T00:00:00.000Z\) must be after --start/ },
    { args: ['--end', '2024-01-02'], line: /^larder backfill: --start is required$/ },
    { args: ['--start', '2024-01-01', '--end', '2024-01-02', '--views', 'driver_stats,nope'], line: /^larder backfill: --views: unknown view 'nope' \(defined: driver_activity, driver_notes, driver_speed, driver_stats\)$/ },
  ])('$args: one line, exit 1, nothing written', ({ args, line }) => {
    const home = join(repo, `cli-bad-${Math.random().toString(36).slice(2)}`);
    const out = cli(args, home);
    expect(out.status).toBe(1);
    expect(out.stdout).toBe('');
    expect(out.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(out.stderr.trimEnd()).toMatch(line);
    expect(existsSync(join(home, 'offline'))).toBe(false);
  });
});

describe('progress', () => {
  /** A writable that records what a terminal (or a log) would receive. */
  const sink = (isTTY: boolean) => {
    const chunks: string[] = [];
    const stream = { isTTY, columns: 120, write: (s: string) => chunks.push(s) > 0 } as unknown as NodeJS.WriteStream;
    return { stream, text: () => chunks.join('') };
  };

  it('redraws one line with rows, rate and elapsed time on a terminal, then leaves the summary', () => {
    let clock = 0;
    const term = sink(true);
    const out = sink(false);
    const progress = createProgress('backfill review_text', { stream: term.stream, out: out.stream, now: () => clock, intervalMs: 100 });
    clock = 5_000;
    progress.update(812_000);
    clock = 5_050;
    progress.tick(1_000); // within 100 ms of the last draw: not redrawn
    expect(term.text()).toBe('\rbackfill review_text  812,000 rows  162k rows/s  00:05\x1b[K');
    progress.done('backfill review_text: 813,000 rows into 12 partitions (5.1 s)');
    expect(term.text().endsWith('\r\x1b[K')).toBe(true);
    expect(out.text()).toBe('backfill review_text: 813,000 rows into 12 partitions (5.1 s)\n');
  });

  it('draws a bar when the total is known, and off a terminal prints only the summary', () => {
    let clock = 0;
    const term = sink(true);
    const bar = createProgress('materialize', { total: 1_000, stream: term.stream, out: sink(false).stream, now: () => clock });
    clock = 2_000;
    bar.update(500);
    expect(term.text()).toContain('materialize  [############------------]  500 / 1,000 rows  250 rows/s  00:02');

    const log = sink(false);
    const out = sink(false);
    const quiet = createProgress('backfill x', { stream: log.stream, out: out.stream, now: () => clock });
    quiet.update(10);
    clock = 4_000;
    quiet.done();
    expect(log.text()).toBe('');
    expect(out.text()).toBe('backfill x: 10 rows in 2.0 s (5 rows/s)\n');
  });
});

describe('a backfill killed half-way', () => {
  it('leaves every partition fully old or fully new, and the next run converges', async () => {
    // A bigger repo: 100,000 notes over 20 days through the transform, a few seconds of work.
    const big = await mkdtemp(join(tmpdir(), 'larder-backfill-kill-'));
    cleanups.push(big);
    await mkdir(join(big, 'data'));
    await writeFile(join(big, 'definitions.ts'), DEFINITIONS);
    const source = join(big, 'data', 'trips.parquet');
    const write = (version: number) =>
      db.connection.run(`COPY (
        SELECT (i % 5000)::BIGINT AS driver_id, TIMESTAMPTZ '2024-02-01 00:00:00+00' + to_milliseconds(i * 17280) AS ts, NULL::TIMESTAMPTZ AS created,
               (i % 100) / 100 + ${version} AS conv_rate, (i % 50)::INTEGER AS trips,
               repeat('a b c ', 1 + (i % 7)::INTEGER) || 'v${version}' AS note
        FROM range(100000) t(i)) TO ${sqlString(source)} (FORMAT parquet)`);
    const args = ['backfill', '--repo', big, '--views', 'driver_notes', '--start', '2024-02-01T00:00:00Z', '--end', '2024-02-21T00:00:00Z'];
    const envFor = (home: string) => ({ ...process.env, LARDER_HOME: home });
    const home = join(big, 'home');
    const offline = offlineOf(big).replace(join(big, '.larder'), home);
    const view = join(offline, 'driver_notes');

    const perPartition = async (offlineDir: string): Promise<Map<string, string>> => {
      const out = new Map<string, string>();
      for (const name of (await readdir(join(offlineDir, 'driver_notes'))).filter((n) => n.startsWith('date='))) {
        out.set(name, await digest(sqlString(join(offlineDir, 'driver_notes', name, '*.parquet'))));
      }
      return out;
    };

    await write(1);
    expect(spawnSync(process.execPath, [BIN, ...args], { env: envFor(home), encoding: 'utf8' }).status).toBe(0);
    const old = await perPartition(offline);
    expect(old.size).toBe(20);

    // What a clean run over the new source gives, in a separate store.
    await write(2);
    const cleanHome = join(big, 'clean');
    expect(spawnSync(process.execPath, [BIN, ...args], { env: envFor(cleanHome), encoding: 'utf8' }).status).toBe(0);
    const fresh = await perPartition(join(cleanHome, 'offline'));
    expect([...fresh.keys()]).toEqual([...old.keys()]);
    for (const [date, d] of fresh) expect(d).not.toBe(old.get(date));

    // Kill it while it stages partitions, then again right after it swaps in the first one.
    const first = join(view, [...old.keys()][0]!, 'data.parquet');
    for (const moment of ['staging', 'swapping'] as const) {
      const inode = statSync(first).ino;
      const child = spawn(process.execPath, [BIN, ...args], { env: envFor(home), stdio: 'ignore' });
      const exited = new Promise((resolve) => child.on('exit', resolve));
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline && child.exitCode === null) {
        if (moment === 'staging' && readdirSync(view).some((n) => n.startsWith('.staging-'))) break;
        if (moment === 'swapping' && statSync(first).ino !== inode) break;
        await new Promise((r) => setImmediate(r));
      }
      child.kill('SIGKILL');
      await exited;
      expect(child.signalCode).toBe('SIGKILL');

      const now = await perPartition(offline);
      expect([...now.keys()]).toEqual([...old.keys()]);
      for (const [date, d] of now) expect([old.get(date), fresh.get(date)]).toContain(d);
      const swapped = [...now].filter(([date, d]) => d === fresh.get(date)).length;
      if (moment === 'staging') expect(swapped).toBe(0);
      else expect(swapped).toBeGreaterThan(0); // its first partition is new, the others whichever they were
    }

    // The next run cleans up after the killed one and ends where a clean run ends.
    const rerun = spawnSync(process.execPath, [BIN, ...args], { env: envFor(home), encoding: 'utf8' });
    expect(rerun.stderr).toBe('');
    expect(rerun.status).toBe(0);
    expect(await perPartition(offline)).toEqual(fresh);
    expect((await readdir(view)).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});
