import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { mkdtemp, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSampleData, type SampleDataOptions, type SampleDataResult } from '../src/sample-data/index.js';
import { openDuckDB, sqlString } from '../src/offline/duckdb.js';
import { tokenize } from '../src/transforms/tokenize.js';
import { InputError } from '../src/core/errors.js';
import { main } from '../src/cli/main.js';
import type { DuckDBConnection } from '@duckdb/node-api';

const START = Date.parse('2024-01-01T00:00:00Z');
const HOUR = 3_600_000;
// Small on purpose; 60,005 readings checks that the count is exact, not rounded to whole bursts.
const BASE: Omit<SampleDataOptions, 'outDir'> = { seed: 42, reviews: 3000, days: 30, readings: 60_005 };

let root: string;
let db: Awaited<ReturnType<typeof openDuckDB>>;
let conn: DuckDBConnection;
const runs: Record<string, { dir: string; result: SampleDataResult }> = {};

async function generate(name: string, options: Omit<SampleDataOptions, 'outDir'>): Promise<void> {
  const dir = join(root, name);
  runs[name] = { dir, result: await generateSampleData({ ...options, outDir: dir }) };
}

const file = (run: string, name: string): string => sqlString(join(runs[run]!.dir, `${name}.parquet`));

async function rows(sql: string): Promise<Record<string, unknown>[]> {
  return (await conn.runAndReadAll(sql)).getRowObjectsJson() as Record<string, unknown>[];
}
async function one(sql: string): Promise<Record<string, unknown>> {
  return (await rows(sql))[0]!;
}

/** An md5 over every column of every row, in a fixed order: equal digests = identical data. */
const DIGEST = {
  reviews: (run: string) =>
    `SELECT md5(string_agg(concat_ws('|', review_id, sku, customer_id, text, rating, epoch_ms(event_timestamp), epoch_ms(created)), '\n' ORDER BY review_id)) AS d FROM ${file(run, 'reviews')}`,
  readings: (run: string, where = 'true') =>
    `SELECT md5(string_agg(concat_ws('|', weld_id, sensor_id, epoch_ms(event_timestamp), amplitude, temperature, pressure), '\n' ORDER BY weld_id, sensor_id, event_timestamp)) AS d FROM ${file(run, 'weld_readings')} WHERE ${where}`,
  labels: (run: string) =>
    `SELECT md5(string_agg(concat_ws('|', weld_id, epoch_ms(event_timestamp), failed), '\n' ORDER BY weld_id, event_timestamp)) AS d FROM ${file(run, 'weld_labels')}`,
};

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'larder-sample-'));
  db = await openDuckDB();
  conn = db.connection;
  await conn.run(`SET TimeZone = 'UTC'`);
  await generate('a', BASE);
  await generate('again', BASE);
  await generate('other_seed', { ...BASE, seed: 7 });
  await generate('drift', { ...BASE, datasets: ['welds'], drift: 0.8 });
});

afterAll(async () => {
  db?.close();
  await rm(root, { recursive: true, force: true });
});

describe('generateSampleData', () => {
  it('writes the three files with the asked row counts, and nothing else', async () => {
    const { dir, result } = runs.a!;
    expect(result.files).toEqual({
      reviews: join(dir, 'reviews.parquet'),
      weld_readings: join(dir, 'weld_readings.parquet'),
      weld_labels: join(dir, 'weld_labels.parquet'),
    });
    expect((await readdir(dir)).sort()).toEqual(['reviews.parquet', 'weld_labels.parquet', 'weld_readings.parquet']);
    expect(result.counts.reviews).toBe(3000);
    expect(result.counts.weld_readings).toBe(60_005);
    expect(await one(`SELECT count(*)::INTEGER AS n FROM ${file('a', 'reviews')}`)).toEqual({ n: 3000 });
    expect(await one(`SELECT count(*)::INTEGER AS n FROM ${file('a', 'weld_readings')}`)).toEqual({ n: 60_005 });
    expect(await one(`SELECT count(*)::INTEGER AS n FROM ${file('a', 'weld_labels')}`)).toEqual({ n: result.counts.weld_labels });
  });

  it('gives identical rows for the same seed and different rows for another seed', async () => {
    for (const digest of [DIGEST.reviews, DIGEST.readings, DIGEST.labels]) {
      const [a, again, other] = await Promise.all(['a', 'again', 'other_seed'].map((run) => one(digest(run))));
      expect(again).toEqual(a);
      expect(other).not.toEqual(a);
    }
  });

  it('writes reviews with the documented columns and types', async () => {
    const schema = await rows(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM ${file('a', 'reviews')})`);
    expect(schema).toEqual([
      { column_name: 'review_id', column_type: 'VARCHAR' },
      { column_name: 'sku', column_type: 'VARCHAR' },
      { column_name: 'customer_id', column_type: 'VARCHAR' },
      { column_name: 'text', column_type: 'VARCHAR' },
      { column_name: 'rating', column_type: 'INTEGER' },
      { column_name: 'event_timestamp', column_type: 'TIMESTAMP WITH TIME ZONE' },
      { column_name: 'created', column_type: 'TIMESTAMP WITH TIME ZONE' },
    ]);
    const first = await one(`SELECT review_id, sku FROM ${file('a', 'reviews')} ORDER BY review_id LIMIT 1`);
    expect(first.review_id).toBe('r0000001');
    expect(first.sku).toMatch(/^SKU-\d{6}$/);
  });

  it('skews ratings to 4-5, over hundreds of SKUs with skewed popularity', async () => {
    const r = await one(`
      SELECT min(rating) AS lo, max(rating) AS hi, count(DISTINCT rating)::INTEGER AS distinct_ratings,
             avg((rating >= 4)::INTEGER) AS positive, count(DISTINCT sku)::INTEGER AS skus
      FROM ${file('a', 'reviews')}`);
    expect(r).toMatchObject({ lo: 1, hi: 5, distinct_ratings: 5 });
    expect(r.positive).toBeGreaterThan(0.65);
    expect(r.positive).toBeLessThan(0.88);
    expect(r.skus).toBeGreaterThan(100);
    const top = await rows(`SELECT count(*)::INTEGER AS n FROM ${file('a', 'reviews')} GROUP BY sku ORDER BY n DESC`);
    // The most reviewed SKU has many times the median SKU's reviews.
    expect(top[0]!.n as number).toBeGreaterThan(10 * (top[Math.floor(top.length / 2)]!.n as number));
  });

  it('spreads reviews over the days asked, in review_id order, ingested 2 s to 20 min after the review', async () => {
    const r = await one(`
      SELECT epoch_ms(min(event_timestamp))::DOUBLE AS first, epoch_ms(max(event_timestamp))::DOUBLE AS last,
             min(epoch_ms(created) - epoch_ms(event_timestamp))::DOUBLE AS min_lag, max(epoch_ms(created) - epoch_ms(event_timestamp))::DOUBLE AS max_lag
      FROM ${file('a', 'reviews')}`);
    expect(r.first as number).toBeGreaterThanOrEqual(START);
    expect(r.first as number).toBeLessThan(START + 2 * HOUR);
    expect(r.last as number).toBeLessThan(START + 30 * 24 * HOUR);
    expect(r.last as number).toBeGreaterThan(START + 29 * 24 * HOUR);
    expect(r.min_lag as number).toBeGreaterThanOrEqual(2000);
    expect(r.max_lag as number).toBeLessThanOrEqual(20 * 60_000);
    const outOfOrder = await one(`
      SELECT count(*)::INTEGER AS n FROM (
        SELECT event_timestamp < lag(event_timestamp) OVER (ORDER BY review_id) AS back FROM ${file('a', 'reviews')}) WHERE back`);
    expect(outOfOrder.n).toBe(0);
  });

  it('writes review text a Naive Bayes model classifies clearly better than chance, but not perfectly', async () => {
    const data = (await rows(`SELECT text, rating FROM ${file('a', 'reviews')} ORDER BY review_id`)) as { text: string; rating: number }[];
    const train = data.slice(0, 2400);
    const test = data.slice(2400);
    const counts = [new Map<string, number>(), new Map<string, number>()];
    const totals = [0, 0];
    const docs = [0, 0];
    const vocabulary = new Set<string>();
    for (const r of train) {
      const y = r.rating >= 4 ? 1 : 0;
      docs[y]!++;
      for (const t of tokenize(r.text)) {
        counts[y]!.set(t, (counts[y]!.get(t) ?? 0) + 1);
        totals[y]!++;
        vocabulary.add(t);
      }
    }
    const score = (text: string, y: number): number =>
      tokenize(text).reduce((s, t) => s + Math.log(((counts[y]!.get(t) ?? 0) + 1) / (totals[y]! + vocabulary.size)), Math.log(docs[y]! / train.length));
    const accuracy = test.filter((r) => (score(r.text, 1) > score(r.text, 0) ? 1 : 0) === (r.rating >= 4 ? 1 : 0)).length / test.length;
    const majority = test.filter((r) => r.rating >= 4).length / test.length;
    expect(accuracy).toBeGreaterThan(0.8);
    expect(accuracy).toBeGreaterThan(majority + 0.05);
    expect(accuracy).toBeLessThan(0.97);
  });

  it('writes weld readings at 10 Hz in 1 s bursts, with the documented columns', async () => {
    const schema = await rows(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM ${file('a', 'weld_readings')})`);
    expect(schema.map((c) => `${c.column_name} ${c.column_type}`)).toEqual([
      'weld_id VARCHAR',
      'sensor_id INTEGER',
      'event_timestamp TIMESTAMP WITH TIME ZONE',
      'amplitude FLOAT',
      'temperature FLOAT',
      'pressure FLOAT',
    ]);
    const r = await one(`
      SELECT count(DISTINCT weld_id)::INTEGER AS welds, min(sensor_id) AS s_lo, max(sensor_id) AS s_hi, min(weld_id) AS first_weld,
             epoch_ms(min(event_timestamp))::DOUBLE AS first, epoch_ms(max(event_timestamp))::DOUBLE AS last,
             count(*) FILTER (WHERE epoch_ms(event_timestamp) % 100 <> 0)::INTEGER AS off_grid
      FROM ${file('a', 'weld_readings')}`);
    expect(r).toMatchObject({ welds: runs.a!.result.weldLayout!.welds, s_lo: 1, s_hi: 10, first_weld: 'W0001', off_grid: 0 });
    expect(r.first as number).toBeGreaterThanOrEqual(START);
    expect(r.last as number).toBeLessThan(START + 24 * HOUR + 1000);
    // Within a burst a sensor's readings are 100 ms apart.
    const gaps = await one(`
      SELECT count(*) FILTER (WHERE gap = 100)::INTEGER AS in_burst, count(*) FILTER (WHERE gap < 100)::INTEGER AS too_close FROM (
        SELECT epoch_ms(event_timestamp) - lag(epoch_ms(event_timestamp)) OVER (PARTITION BY weld_id, sensor_id ORDER BY event_timestamp) AS gap
        FROM ${file('a', 'weld_readings')})`);
    expect(gaps.too_close).toBe(0);
    expect(gaps.in_burst as number).toBeGreaterThan(0.85 * 60_005);
  });

  it('labels every weld every 10 minutes with both classes, consistent with the readings', async () => {
    const r = await one(`
      SELECT count(*) FILTER (WHERE failed)::INTEGER AS failed, count(*) FILTER (WHERE NOT failed)::INTEGER AS healthy,
             count(DISTINCT weld_id)::INTEGER AS welds, count(*) FILTER (WHERE epoch_ms(event_timestamp) % 600000 <> 0)::INTEGER AS off_grid
      FROM ${file('a', 'weld_labels')}`);
    expect(r.failed as number).toBeGreaterThan(0);
    expect(r.healthy as number).toBeGreaterThan(r.failed as number);
    expect(r).toMatchObject({ welds: runs.a!.result.weldLayout!.welds, off_grid: 0 });
  });

  it('shows a drifting signature in the hour before a failure: higher amplitude stddev than healthy welds', async () => {
    // Healthy windows: no failure label for that weld from 2 h before to 5 h after.
    const windows = await rows(`
      WITH labels AS (SELECT * FROM ${file('a', 'weld_labels')}),
      kind AS (
        SELECT l.weld_id, l.event_timestamp AS t,
               CASE WHEN l.failed THEN 'failing'
                    WHEN NOT EXISTS (SELECT 1 FROM labels p WHERE p.weld_id = l.weld_id AND p.failed
                                     AND p.event_timestamp BETWEEN l.event_timestamp - INTERVAL 2 HOUR AND l.event_timestamp + INTERVAL 5 HOUR) THEN 'healthy'
               END AS kind
        FROM labels l)
      SELECT kind, count(*)::INTEGER AS windows, avg(sd) AS amplitude_sd, avg(temp) AS temperature FROM (
        SELECT k.kind, k.weld_id, k.t, stddev(r.amplitude) AS sd, avg(r.temperature) AS temp
        FROM kind k JOIN ${file('a', 'weld_readings')} r
          ON r.weld_id = k.weld_id AND r.event_timestamp > k.t - INTERVAL 1 HOUR AND r.event_timestamp <= k.t
        WHERE k.kind IS NOT NULL GROUP BY ALL)
      GROUP BY kind ORDER BY kind`);
    const [failing, healthy] = windows as { kind: string; windows: number; amplitude_sd: number; temperature: number }[];
    expect(failing!.kind).toBe('failing');
    expect(healthy!.kind).toBe('healthy');
    expect(healthy!.windows).toBeGreaterThan(10);
    expect(failing!.amplitude_sd).toBeGreaterThan(1.3 * healthy!.amplitude_sd);
    expect(failing!.temperature).toBeGreaterThan(healthy!.temperature + 1);
  });

  it('shifts the later half of the amplitude distribution with --drift, leaving the first half untouched', async () => {
    const half = `event_timestamp < TIMESTAMPTZ '2024-01-01 12:00:00+00'`;
    expect(await one(DIGEST.readings('drift', half))).toEqual(await one(DIGEST.readings('a', half)));
    const stats = async (run: string) =>
      (await rows(`
        WITH d AS (
          SELECT event_timestamp >= TIMESTAMPTZ '2024-01-01 12:00:00+00' AS late, amplitude,
                 amplitude - lag(amplitude) OVER w AS step, epoch_ms(event_timestamp) - epoch_ms(lag(event_timestamp) OVER w) AS gap
          FROM ${file(run, 'weld_readings')} WINDOW w AS (PARTITION BY weld_id, sensor_id ORDER BY event_timestamp))
        SELECT late, avg(amplitude) AS mean, stddev(step) FILTER (WHERE gap = 100) AS noise FROM d GROUP BY late ORDER BY late`)) as {
        mean: number;
        noise: number;
      }[];
    const [still, stillLate] = await stats('a');
    const [, drifted] = await stats('drift');
    // Without drift the halves look alike; with 0.8 the later mean rises ~16% and the noise doubles.
    expect(stillLate!.mean / still!.mean).toBeGreaterThan(0.95);
    expect(stillLate!.mean / still!.mean).toBeLessThan(1.05);
    expect(drifted!.mean / stillLate!.mean).toBeGreaterThan(1.1);
    expect(drifted!.noise / stillLate!.noise).toBeGreaterThan(1.8);
  });

  it('refuses impossible sizes with one line naming the flag, writing nothing', async () => {
    const dir = join(root, 'refused');
    await expect(generateSampleData({ outDir: dir, readings: 50, datasets: ['welds'] })).rejects.toThrow(InputError);
    await expect(generateSampleData({ outDir: dir, readings: 50, datasets: ['welds'] })).rejects.toThrow(/^--readings: 50 is less than one 1-second burst/);
    await expect(generateSampleData({ outDir: dir, readings: 10_000_000, welds: 1, hours: 2, datasets: ['welds'] })).rejects.toThrow(/^--readings: .* raise --hours or --welds$/);
    await expect(generateSampleData({ outDir: dir, drift: 2, datasets: ['welds'] })).rejects.toThrow(/^--drift: expected a number from 0 to 1/);
    await expect(generateSampleData({ outDir: dir, reviews: 0, datasets: ['reviews'] })).rejects.toThrow(/^--reviews: expected a positive integer/);
    await expect(readdir(dir)).rejects.toThrow(/ENOENT/);
  });

  it('leaves no partial or temporary file when a write fails', async () => {
    const dir = join(root, 'blocked');
    await mkdir(join(dir, 'reviews.parquet'), { recursive: true }); // a folder where the file should go
    await writeFile(join(dir, 'reviews.parquet', 'keep'), 'x');
    await expect(generateSampleData({ outDir: dir, reviews: 100, datasets: ['reviews'] })).rejects.toThrow();
    expect(await readdir(dir)).toEqual(['reviews.parquet']);
  });
});

describe('larder sample-data', () => {
  it('writes into <repo>/data by default and reports the files', async () => {
    const repo = join(root, 'repo');
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      const code = await main(['sample-data', '--repo', repo, '--reviews', '200', '--readings', '20000', '--seed', '3', '--hours', '4']);
      expect(code).toBe(0);
      const printed = out.mock.calls.map((c) => String(c[0])).join('');
      expect(printed).toContain(`wrote ${join(repo, 'data', 'reviews.parquet')} (200 rows)`);
      expect(printed).toContain(`wrote ${join(repo, 'data', 'weld_readings.parquet')} (20,000 rows)`);
    } finally {
      out.mockRestore();
    }
    expect((await readdir(join(repo, 'data'))).sort()).toEqual(['reviews.parquet', 'weld_labels.parquet', 'weld_readings.parquet']);
  });

  it('exits non-zero with one line naming a bad flag', async () => {
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await main(['sample-data', '--out', join(root, 'bad'), '--drift', 'lots'])).toBe(1);
      expect(await main(['sample-data', '--out', join(root, 'bad'), '--only', 'cats'])).toBe(1);
      const lines = err.mock.calls.map((c) => String(c[0]));
      expect(lines).toEqual([`larder sample-data: --drift: expected a number, got 'lots'\n`, `larder sample-data: --only: expected reviews and/or welds, got 'cats'\n`]);
    } finally {
      err.mockRestore();
    }
  });
});
