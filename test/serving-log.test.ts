/**
 * The serving log (CONTRACT s.9): predictions appended on the response path come out as
 * Hive-partitioned Parquet under <offline>/_serving_log/<model>/date=D/, typed per the model's
 * features, readable by plain DuckDB; append never waits for I/O; failed writes keep rows pending
 * up to a bound and count what they drop; old date partitions are deleted after the retention.
 */
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asEpochMs, utcDate } from '../src/core/time.js';
import { ServingLog, servingLogLayout, type ServingLogRow } from '../src/inference/serving-log.js';
import type { ModelFeature, ModelVersionMeta } from '../src/models/artifact.js';
import { openDuckDB, sqlString } from '../src/offline/duckdb.js';

type Db = Awaited<ReturnType<typeof openDuckDB>>;
let dir: string;
let db: Db;

const FEATURES: ModelFeature[] = [
  { name: 'amplitude', ref: 'sensor:amplitude', type: 'float64' },
  { name: 'readings', ref: 'sensor:readings', type: 'int32' },
  { name: 'total', ref: 'sensor:total', type: 'int64' },
  { name: 'word_counts', ref: 'text:word_counts', type: 'sparse(16)' },
  { name: 'verified', ref: 'text:verified', type: 'bool' },
  { name: 'seen_at', ref: 'text:seen_at', type: 'timestamp' },
  { name: 'note', ref: 'text:note', type: 'string' },
];

function meta(version = '1', features: ModelFeature[] = FEATURES, name = 'weld_failure'): ModelVersionMeta {
  return {
    name,
    version,
    featureService: name,
    joinKeys: ['weld_id'],
    features,
    definitionsVersion: 'abc',
    definitionsHash: 'abc',
    datasetFingerprint: 'f',
    datasetRows: 0,
    split: { trainUntil: '2024-01-01T00:00:00Z', trainRows: 0, testRows: 0 },
    datasetPath: 'dataset.parquet',
    reviewLabels: 0,
    metrics: {},
    primary: 'logistic_regression',
    reviewThreshold: 0.6,
    trainedAt: '2024-01-01T00:00:00Z',
    trainingSeconds: 1,
    registeredAt: '2024-01-01T00:00:00Z',
    profile: { rows: 0, features: [], prediction: { name: 'prediction', edges: [], counts: [0], nulls: 0 } },
  };
}

const DAY1 = Date.parse('2024-03-01T23:59:58Z');

function row(i: number, at = DAY1 + i * 1000, entity: ServingLogRow['entity'] = { weld_id: `W${i}` }): ServingLogRow {
  return {
    requestId: `req-${i}`,
    at: asEpochMs(at),
    row: i % 3,
    entity,
    features: {
      amplitude: 100 + i / 4,
      readings: i,
      total: BigInt(i) * 10n,
      word_counts: { size: 16, indices: [1, 4 + (i % 3)], values: [1, i] },
      verified: i % 2 === 0,
      seen_at: '2024-02-29T12:00:00Z',
      note: `it's "row" ${i}`,
    },
    prediction: i % 2,
    probability: i / 10,
    needsReview: i % 4 === 0,
  };
}

async function query(sql: string): Promise<Record<string, unknown>[]> {
  return (await db.connection.runAndReadAll(sql)).getRowObjectsJS();
}

/** Every file and folder under `root`, relative, sorted. */
async function tree(root: string): Promise<string[]> {
  return (await readdir(root, { recursive: true })).map(String).sort();
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'larder-serving-log-'));
  db = await openDuckDB({ threads: 1 });
});

afterAll(async () => {
  db?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('serving log files', () => {
  it('writes every appended row, typed, into whole files per UTC date, readable by plain DuckDB with Hive partitions', async () => {
    const offline = join(dir, 'layout');
    const log = new ServingLog({ offlineDir: offline, flushMs: 60_000, log: () => {} });
    log.append(meta(), [row(0), row(1)]); // 2024-03-01 23:59:58 and :59
    log.append(meta(), [row(2), row(3), row(4, undefined, null)]); // 2024-03-02: row 4 is a raw input
    expect(log.stats).toEqual({ written: 0, dropped: 0, pending: 5, failedFlushes: 0 });
    await log.close();
    expect(log.stats).toEqual({ written: 5, dropped: 0, pending: 0, failedFlushes: 0 });

    const root = join(offline, '_serving_log', 'weld_failure');
    const files = await tree(root);
    // One file per date, whole: no hidden temp names left behind.
    expect(files.filter((f) => !f.endsWith('.parquet'))).toEqual(['date=2024-03-01', 'date=2024-03-02']);
    expect(files.filter((f) => f.endsWith('.parquet'))).toEqual([
      expect.stringMatching(/^date=2024-03-01\/\d{8}T\d{9}Z-[0-9a-f]{12}\.parquet$/),
      expect.stringMatching(/^date=2024-03-02\/\d{8}T\d{9}Z-[0-9a-f]{12}\.parquet$/),
    ]);

    const glob = sqlString(join(offline, '_serving_log', '*', 'date=*', '*.parquet'));
    const types = await query(`DESCRIBE SELECT * FROM read_parquet(${glob}, hive_partitioning = true)`);
    expect(types.map((t) => `${t.column_name} ${t.column_type}`)).toEqual([
      'request_id VARCHAR',
      'event_timestamp TIMESTAMP WITH TIME ZONE',
      'row INTEGER',
      'model VARCHAR',
      'model_version VARCHAR',
      'entity VARCHAR',
      'weld_id VARCHAR',
      'prediction INTEGER',
      'probability DOUBLE',
      'needs_review BOOLEAN',
      'amplitude DOUBLE',
      'readings INTEGER',
      'total BIGINT',
      'word_counts STRUCT(indices INTEGER[], "values" FLOAT[])',
      'verified BOOLEAN',
      'seen_at TIMESTAMP WITH TIME ZONE',
      'note VARCHAR',
      'date DATE',
    ]);
    const rows = await query(
      `SELECT request_id, strftime(event_timestamp, '%Y-%m-%dT%H:%M:%SZ') AS at, CAST(date AS VARCHAR) AS date, row, model, model_version, entity, weld_id, prediction, probability, needs_review,
              amplitude, readings, total, word_counts, verified, strftime(seen_at, '%Y-%m-%dT%H:%M:%SZ') AS seen_at, note
       FROM read_parquet(${glob}, hive_partitioning = true) ORDER BY request_id`,
    );
    expect(rows).toHaveLength(5);
    expect(rows[0]).toEqual({
      request_id: 'req-0',
      at: '2024-03-01T23:59:58Z',
      date: '2024-03-01',
      row: 0,
      model: 'weld_failure',
      model_version: '1',
      entity: '{"weld_id":"W0"}',
      weld_id: 'W0',
      prediction: 0,
      probability: 0,
      needs_review: true,
      amplitude: 100,
      readings: 0,
      total: 0n,
      word_counts: { indices: [1, 4], values: [1, 0] },
      verified: true,
      seen_at: '2024-02-29T12:00:00Z',
      note: `it's "row" 0`,
    });
    expect(rows.map((r) => [r.request_id, r.date])).toEqual([
      ['req-0', '2024-03-01'],
      ['req-1', '2024-03-01'],
      ['req-2', '2024-03-02'],
      ['req-3', '2024-03-02'],
      ['req-4', '2024-03-02'],
    ]);
    expect(rows[3]).toMatchObject({ row: 0, prediction: 1, probability: 0.3, needs_review: false, amplitude: 100.75, total: 30n, word_counts: { indices: [1, 4], values: [1, 3] }, verified: false });
    expect(rows[4]).toMatchObject({ entity: null, weld_id: null });
  });

  it('writes versions with different feature lists to different files, and names clashing columns apart', async () => {
    const offline = join(dir, 'versions');
    const v2Features: ModelFeature[] = [
      { name: 'amplitude', ref: 'sensor:amplitude', type: 'float32' },
      { name: 'prediction', ref: 'odd:prediction', type: 'float64' },
    ];
    expect(servingLogLayout(meta('2', v2Features)).features.map((f) => f.column)).toEqual(['amplitude', 'feature_prediction']);
    const log = new ServingLog({ offlineDir: offline, flushMs: 60_000, log: () => {} });
    log.append(meta('1'), [row(1)]);
    log.append(meta('2', v2Features), [{ ...row(2), at: asEpochMs(DAY1), features: { amplitude: 1.5, prediction: 0.25 } }]);
    await log.close();
    const files = (await tree(join(offline, '_serving_log', 'weld_failure'))).filter((f) => f.endsWith('.parquet'));
    expect(files).toHaveLength(2);
    const byVersion = await query(
      `SELECT model_version, amplitude, feature_prediction, readings FROM read_parquet(${sqlString(join(offline, '_serving_log', '*', '*', '*.parquet'))}, union_by_name = true) ORDER BY 1`,
    );
    expect(byVersion).toEqual([
      { model_version: '1', amplitude: 100.25, feature_prediction: null, readings: 1 },
      { model_version: '2', amplitude: 1.5, feature_prediction: 0.25, readings: null },
    ]);
  });

  it('appends synchronously while a flush is writing, and writes those rows with the next flush', async () => {
    const offline = join(dir, 'sync');
    const log = new ServingLog({ offlineDir: offline, flushMs: 60_000, log: () => {} });
    log.append(meta(), Array.from({ length: 2000 }, (_, i) => row(i)));
    let done = false;
    const flushing = log.flush().then(() => (done = true));
    await new Promise((resolve) => setImmediate(resolve)); // the flush has taken its rows and is writing
    // Append neither waits for the write nor returns a promise.
    const result: unknown = log.append(meta(), [row(5000)]);
    expect(result).toBeUndefined();
    expect(done).toBe(false);
    expect(log.stats.pending).toBe(2001);
    await flushing;
    expect(log.stats).toMatchObject({ written: 2000, pending: 1 });
    await log.close();
    expect(log.stats).toMatchObject({ written: 2001, pending: 0, dropped: 0 });
    const [{ n }] = (await query(`SELECT count(*)::INTEGER AS n FROM read_parquet(${sqlString(join(offline, '_serving_log', '*', '*', '*.parquet'))})`)) as [{ n: number }];
    expect(n).toBe(2001);
  });

  it('keeps rows of failed flushes pending up to the bound, drops the oldest beyond it, and says so', async () => {
    // The offline "folder" is a file: every write fails until it becomes a folder.
    const offline = join(dir, 'not-a-folder');
    await writeFile(offline, 'x');
    const lines: string[] = [];
    const log = new ServingLog({ offlineDir: offline, flushMs: 60_000, maxPendingRows: 100, log: (l) => lines.push(l) });
    log.append(meta(), Array.from({ length: 60 }, (_, i) => row(i)));
    await expect(log.flush()).rejects.toThrow(/ENOTDIR|not a directory|EEXIST/);
    expect(log.stats).toEqual({ written: 0, dropped: 0, pending: 60, failedFlushes: 1 });
    expect(lines.join('\n')).toMatch(/^serving log: writing to .*not-a-folder\/_serving_log failed, 60 rows kept pending: /m);

    log.append(meta(), Array.from({ length: 70 }, (_, i) => row(60 + i)));
    expect(log.stats).toEqual({ written: 0, dropped: 30, pending: 100, failedFlushes: 1 });
    await expect(log.flush()).rejects.toThrow();
    expect(lines.filter((l) => l.includes('dropped'))).toEqual(['serving log: dropped 30 prediction rows (at most 100 wait to be written; writes are failing or behind)']);

    // The store comes back: the 100 newest rows are written, none twice.
    await rm(offline);
    await mkdir(offline);
    await log.close();
    expect(log.stats).toEqual({ written: 100, dropped: 30, pending: 0, failedFlushes: 2 });
    const ids = await query(`SELECT request_id FROM read_parquet(${sqlString(join(offline, '_serving_log', '*', '*', '*.parquet'))}) ORDER BY row, request_id`);
    expect(new Set(ids.map((r) => r.request_id))).toEqual(new Set(Array.from({ length: 100 }, (_, i) => `req-${30 + i}`)));
  });

  it('never throws from append, even after close or for rows without a valid time', async () => {
    const log = new ServingLog({ offlineDir: join(dir, 'closed'), flushMs: 60_000, log: () => {} });
    log.append(meta(), [{ ...row(1), at: asEpochMs(Number.NaN) }]);
    await log.close();
    expect(() => log.append(meta(), [row(2)])).not.toThrow();
    expect(() => log.append(meta(), null as unknown as ServingLogRow[])).not.toThrow();
    expect(log.stats).toMatchObject({ written: 0, dropped: 2 });
  });
});

describe('serving log retention', () => {
  const touch = async (file: string, ageMs = 0) => {
    await mkdir(join(file, '..'), { recursive: true });
    await writeFile(file, 'x');
    const t = new Date(Date.now() - ageMs);
    await utimes(file, t, t);
  };

  it('deletes date partitions older than the retention under every model and keeps recent ones', async () => {
    const offline = join(dir, 'retention');
    const root = join(offline, '_serving_log');
    const today = utcDate(Date.now());
    const recent = utcDate(Date.now() - 29 * 86_400_000);
    await touch(join(root, 'weld_failure', 'date=2020-01-01', 'a.parquet'));
    await touch(join(root, 'weld_failure', `date=${recent}`, 'b.parquet'));
    await touch(join(root, 'weld_failure', `date=${today}`, 'c.parquet'));
    await touch(join(root, 'weld_failure', `date=${today}`, '.d.parquet.partial'), 2 * 3_600_000); // a crashed write's leftover
    await touch(join(root, 'weld_failure', `date=${today}`, '.e.parquet.partial')); // a write in progress
    await touch(join(root, 'review_sentiment', 'date=2021-06-30', 'f.parquet'));

    const log = new ServingLog({ offlineDir: offline, flushMs: 60_000, retentionDays: 30, log: () => {} });
    const removed = await log.applyRetention();
    await log.close();
    expect(removed.sort()).toEqual([join(root, 'review_sentiment', 'date=2021-06-30'), join(root, 'weld_failure', 'date=2020-01-01')]);
    expect(await tree(root)).toEqual(
      ['review_sentiment', 'weld_failure', `weld_failure/date=${recent}`, `weld_failure/date=${recent}/b.parquet`, `weld_failure/date=${today}`, `weld_failure/date=${today}/.e.parquet.partial`, `weld_failure/date=${today}/c.parquet`].sort(),
    );
  });

  it('keeps everything with 0 days, and takes its default from LARDER_SERVING_LOG_RETENTION_DAYS (else five years)', async () => {
    const offline = join(dir, 'forever');
    await touch(join(offline, '_serving_log', 'm', 'date=1999-01-01', 'a.parquet'));
    const forever = new ServingLog({ offlineDir: offline, retentionDays: 0, log: () => {} });
    expect(await forever.applyRetention()).toEqual([]);
    await forever.close();
    expect(existsSync(join(offline, '_serving_log', 'm', 'date=1999-01-01', 'a.parquet'))).toBe(true);

    const saved = process.env.LARDER_SERVING_LOG_RETENTION_DAYS;
    try {
      delete process.env.LARDER_SERVING_LOG_RETENTION_DAYS;
      const byDefault = new ServingLog({ offlineDir: join(dir, 'default'), log: () => {} });
      expect(byDefault.retentionDays).toBe(1825);
      await byDefault.close();
      process.env.LARDER_SERVING_LOG_RETENTION_DAYS = '7';
      const fromEnv = new ServingLog({ offlineDir: join(dir, 'default'), log: () => {} });
      expect(fromEnv.retentionDays).toBe(7);
      await fromEnv.close();
      process.env.LARDER_SERVING_LOG_RETENTION_DAYS = 'a week';
      expect(() => new ServingLog({ offlineDir: join(dir, 'default'), log: () => {} })).toThrow(
        "LARDER_SERVING_LOG_RETENTION_DAYS: expected a whole number of days (0 keeps forever), got 'a week'",
      );
    } finally {
      if (saved === undefined) delete process.env.LARDER_SERVING_LOG_RETENTION_DAYS;
      else process.env.LARDER_SERVING_LOG_RETENTION_DAYS = saved;
    }
  });
});
