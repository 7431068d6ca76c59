/**
 * `generateSampleData`: the seeded sample data of the two example use cases, as Parquet.
 *   reviews.parquet        review_id, sku, customer_id, text, rating (int32), event_timestamp, created
 *   weld_readings.parquet  weld_id, sensor_id (int32), event_timestamp, amplitude, temperature, pressure (float32)
 *   weld_labels.parquet    weld_id, event_timestamp, failed (bool)
 * Timestamps are TIMESTAMPTZ (UTC). The same options give the same rows on any machine. Each file
 * appears whole or not at all. See reviews.ts and welds.ts for what the data looks like.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { InputError } from '../core/errors.js';
import { parseInstant } from '../core/time.js';
import { openDuckDB } from '../offline/duckdb.js';
import type { DuckDBConnection } from '@duckdb/node-api';
import { generateReviews, type ReviewOptions } from './reviews.js';
import { generateLabels, generateReadings, labelCount, planWelds, type WeldPlan } from './welds.js';
import { CHUNK_ROWS, RowAppender, epochMsToTimestamp, writeParquet } from './write.js';

export type SampleDataset = 'reviews' | 'welds';

export interface SampleDataOptions {
  /** Folder the files go to (created if missing). */
  outDir: string;
  /** Default 42. */
  seed?: number;
  /** Where reviews and readings start; default 2024-01-01T00:00:00Z so outputs are reproducible. */
  start?: number | string | Date;
  /** Number of reviews; default 20,000. */
  reviews?: number;
  /** Days the reviews span; default 60. */
  days?: number;
  /** Number of weld readings; default 200,000. */
  readings?: number;
  /** Welds; default round(readings / 20,000) within [4, 1000]. */
  welds?: number;
  /** Sensors per weld; default 10. */
  sensors?: number;
  /** Hours the readings span; default 24. */
  hours?: number;
  /** 0-1: shifts the amplitude distribution in the later half of the readings; default 0. */
  drift?: number;
  /** Which datasets to write; default both. */
  datasets?: readonly SampleDataset[];
  /** Called as rows are generated. */
  onProgress?: (file: string, rows: number, total: number) => void;
}

export interface WeldLayout {
  welds: number;
  sensorsPerWeld: number;
  /** A sensor sends a 1 s burst of 10 readings once per period. */
  periodMs: number;
  hours: number;
  failures: number;
  labels: number;
  positiveLabels: number;
}

export interface SampleDataResult {
  /** Absolute paths by dataset file: reviews, weld_readings, weld_labels. */
  files: Record<string, string>;
  /** Rows written, by the same keys. */
  counts: Record<string, number>;
  /** How the weld readings were laid out, when they were written. */
  weldLayout?: WeldLayout;
}

export const SAMPLE_DEFAULTS = {
  seed: 42,
  start: '2024-01-01T00:00:00Z',
  reviews: 20_000,
  days: 60,
  readings: 200_000,
  sensors: 10,
  hours: 24,
  drift: 0,
} as const;

export async function generateSampleData(options: SampleDataOptions): Promise<SampleDataResult> {
  const seed = options.seed ?? SAMPLE_DEFAULTS.seed;
  if (!Number.isSafeInteger(seed)) throw new InputError(`--seed: expected an integer, got ${seed}`);
  let start: number;
  try {
    start = parseInstant(options.start ?? SAMPLE_DEFAULTS.start);
  } catch (err) {
    throw new InputError(`--start: ${(err as Error).message}`);
  }
  const datasets = new Set(options.datasets ?? ['reviews', 'welds']);
  // Validate everything before writing anything.
  const reviews = datasets.has('reviews') ? reviewOptions(options, seed, start) : undefined;
  const plan = datasets.has('welds')
    ? planWelds({
        seed,
        start,
        readings: options.readings ?? SAMPLE_DEFAULTS.readings,
        hours: options.hours ?? SAMPLE_DEFAULTS.hours,
        sensors: options.sensors ?? SAMPLE_DEFAULTS.sensors,
        drift: options.drift ?? SAMPLE_DEFAULTS.drift,
        ...(options.welds !== undefined && { welds: options.welds }),
      })
    : undefined;
  const outDir = resolve(options.outDir);
  await mkdir(outDir, { recursive: true });

  const result: SampleDataResult = { files: {}, counts: {} };
  // Bounded: DuckDB spills the staging tables to a hidden folder beside the output, removed after.
  const spill = join(outDir, `.sample-data-${process.pid}.tmp`);
  const db = await openDuckDB({ memoryLimit: '512MB', tempDirectory: spill });
  try {
    if (reviews) {
      const file = join(outDir, 'reviews.parquet');
      result.counts.reviews = await writeReviews(db.connection, reviews, file, options.onProgress);
      result.files.reviews = file;
    }
    if (plan) {
      const readingsFile = join(outDir, 'weld_readings.parquet');
      const labelsFile = join(outDir, 'weld_labels.parquet');
      result.counts.weld_readings = await writeReadings(db.connection, plan, readingsFile, options.onProgress);
      result.files.weld_readings = readingsFile;
      const labels = await writeLabels(db.connection, plan, labelsFile);
      result.counts.weld_labels = labels.count;
      result.files.weld_labels = labelsFile;
      result.weldLayout = {
        welds: plan.welds.length,
        sensorsPerWeld: plan.sensors.length / plan.welds.length,
        periodMs: plan.periodMs,
        hours: plan.spanMs / 3_600_000,
        failures: plan.welds.reduce((n, w) => n + w.failures.filter((f) => f.at > plan.start && f.at <= plan.start + plan.spanMs).length, 0),
        labels: labels.count,
        positiveLabels: labels.positive,
      };
    }
  } finally {
    db.close();
    await rm(spill, { recursive: true, force: true });
  }
  return result;
}

function reviewOptions(options: SampleDataOptions, seed: number, start: number): ReviewOptions {
  const count = options.reviews ?? SAMPLE_DEFAULTS.reviews;
  const days = options.days ?? SAMPLE_DEFAULTS.days;
  if (!Number.isInteger(count) || count < 1) throw new InputError(`--reviews: expected a positive integer, got ${count}`);
  if (!(days > 0)) throw new InputError(`--days: expected a positive number, got ${days}`);
  return { seed, count, start, days };
}

async function writeReviews(
  connection: DuckDBConnection,
  options: ReviewOptions,
  file: string,
  onProgress: SampleDataOptions['onProgress'],
): Promise<number> {
  const stage = await RowAppender.create(connection, 'stage_reviews', [
    ['review_id', 'VARCHAR'],
    ['sku', 'VARCHAR'],
    ['customer_id', 'VARCHAR'],
    ['text', 'VARCHAR'],
    ['rating', 'INTEGER'],
    ['event_ms', 'DOUBLE'],
    ['created_ms', 'DOUBLE'],
  ]);
  const [id, sku, customer, text] = [0, 1, 2, 3].map((k) => stage.strings(k)) as [string[], string[], string[], string[]];
  const [rating, event, created] = [4, 5, 6].map((k) => stage.numbers(k)) as [Float64Array, Float64Array, Float64Array];
  for (const r of generateReviews(options)) {
    const i = stage.row;
    id[i] = r.review_id;
    sku[i] = r.sku;
    customer[i] = r.customer_id;
    text[i] = r.text;
    rating[i] = r.rating;
    event[i] = r.event_timestamp;
    created[i] = r.created;
    stage.endRow();
    if (stage.row === 0) onProgress?.('reviews.parquet', stage.count, options.count);
  }
  stage.close();
  await writeParquet(
    connection,
    `SELECT review_id, sku, customer_id, text, rating, ${epochMsToTimestamp('event_ms')} AS event_timestamp, ${epochMsToTimestamp('created_ms')} AS created FROM stage_reviews`,
    file,
  );
  await connection.run('DROP TABLE stage_reviews');
  return stage.count;
}

async function writeReadings(
  connection: DuckDBConnection,
  plan: WeldPlan,
  file: string,
  onProgress: SampleDataOptions['onProgress'],
): Promise<number> {
  const stage = await RowAppender.create(connection, 'stage_readings', [
    ['weld', 'INTEGER'],
    ['sensor_id', 'INTEGER'],
    ['event_ms', 'DOUBLE'],
    ['amplitude', 'FLOAT'],
    ['temperature', 'FLOAT'],
    ['pressure', 'FLOAT'],
  ]);
  const [weld, sensor, event, amplitude, temperature, pressure] = [0, 1, 2, 3, 4, 5].map((k) => stage.numbers(k)) as Float64Array[];
  const progressEvery = CHUNK_ROWS * 50;
  generateReadings(plan, (w, s, t, a, temp, p) => {
    const i = stage.row;
    weld![i] = w;
    sensor![i] = s;
    event![i] = t;
    amplitude![i] = a;
    temperature![i] = temp;
    pressure![i] = p;
    stage.endRow();
    if (stage.count % progressEvery === 0) onProgress?.('weld_readings.parquet', stage.count, plan.readings);
  });
  stage.close();
  await writeParquet(
    connection,
    `SELECT ${WELD_ID_SQL} AS weld_id, sensor_id, ${epochMsToTimestamp('event_ms')} AS event_timestamp, amplitude, temperature, pressure FROM stage_readings`,
    file,
  );
  await connection.run('DROP TABLE stage_readings');
  return stage.count;
}

async function writeLabels(connection: DuckDBConnection, plan: WeldPlan, file: string): Promise<{ count: number; positive: number }> {
  const stage = await RowAppender.create(connection, 'stage_labels', [
    ['weld', 'INTEGER'],
    ['event_ms', 'DOUBLE'],
    ['failed', 'BOOLEAN'],
  ]);
  const [weld, event, failed] = [0, 1, 2].map((k) => stage.numbers(k)) as Float64Array[];
  let positive = 0;
  generateLabels(plan, (w, t, f) => {
    weld![stage.row] = w;
    event![stage.row] = t;
    failed![stage.row] = f ? 1 : 0;
    if (f) positive++;
    stage.endRow();
  });
  stage.close();
  if (stage.count !== labelCount(plan)) throw new Error(`weld labels: wrote ${stage.count}, expected ${labelCount(plan)}`);
  await writeParquet(connection, `SELECT ${WELD_ID_SQL} AS weld_id, ${epochMsToTimestamp('event_ms')} AS event_timestamp, failed FROM stage_labels`, file);
  await connection.run('DROP TABLE stage_labels');
  return { count: stage.count, positive };
}

/** 'W0001' from the weld index, in SQL, so the 10M-row stream carries an integer, not a string (see weldId). */
const WELD_ID_SQL = `'W' || lpad(CAST(weld + 1 AS VARCHAR), 4, '0')`;
