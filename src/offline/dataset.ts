/**
 * Point-in-time training datasets: `larder dataset` and the library call behind
 * `/get-historical-features`. Resolves the request, loads the entity rows into DuckDB, prunes each
 * view's partitions to the entity time range, and runs the join of point-in-time.ts over the
 * Parquet store, to an Arrow table or, with COPY, straight to a file (no rows pass through JS).
 */
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, dirname, extname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import type * as arrow from 'apache-arrow';
import type { DuckDBConnection } from '@duckdb/node-api';
import { InputError } from '../core/errors.js';
import { utcDate, type EpochMs } from '../core/time.js';
import { duckdbType } from '../core/value-types.js';
import type { Definitions, FeatureView } from '../definitions/types.js';
import { openDuckDB, sqlString } from './duckdb.js';
import { checkEntityRows, entityTimestampSql, loadEntityRows, type EntityColumn, type EntityKeyCheck, type EntityRows } from './entity-input.js';
import { checkAgainstInputColumns, selectFeatures, type ViewRequest } from './feature-selection.js';
import { BACKFILL_FILE, EVENT_TIMESTAMP, listPartitions } from './layout.js';
import { pointInTimeSql, readParquet, type JoinKey, type PointInTimePlan, type ViewPlan } from './point-in-time.js';

export interface DatasetRequest {
  defs: Definitions;
  offlineDir: string;
  /** A .parquet/.csv path, an Arrow table, or JSON columns `{ driver_id: [...], event_timestamp: [...] }`. */
  entities: EntityRows;
  /** `view:feature` references; or give `service`. */
  features?: readonly string[] | undefined;
  service?: string | undefined;
  /** Name feature columns `view__feature`. */
  fullNames?: boolean | undefined;
  /** The entity column holding each row's instant (default `event_timestamp`). */
  timestampColumn?: string | undefined;
  /** Told the join's progress, 0-100, while it runs (the CLI draws it on a terminal). */
  onProgress?: ((percent: number) => void) | undefined;
}

/** DuckDB's buffer pool: with node and DuckDB's own overhead, a 1M x 10M join stays under 2 GiB RSS. */
const MEMORY_LIMIT = process.env.LARDER_DUCKDB_MEMORY ?? '1536MB';

/** The dataset as an Arrow table: the entity rows in order, then the features (CONTRACT s.3). */
export async function getHistoricalFeatures(request: DatasetRequest): Promise<arrow.Table> {
  return withDuckDB(async (connection) => {
    const { sql } = await prepare(connection, request);
    const reader = await connection.runAndReadAll(sql);
    // Loaded here, not at the top: `larder dataset` writes files and never needs apache-arrow.
    const { toArrowTable } = await import('./arrow.js');
    return toArrowTable(reader);
  });
}

/** Writes the dataset to a .parquet or .csv file, whole or not at all. */
export async function writeDataset(request: DatasetRequest & { out: string }): Promise<{ rows: number; file: string }> {
  const file = resolve(request.out);
  const format = outputFormat(file);
  return withDuckDB(async (connection) => {
    const { sql, rows } = await prepare(connection, request);
    await mkdir(dirname(file), { recursive: true });
    // Written beside the target under a hidden name, then renamed: readers never see half a file.
    const partial = join(dirname(file), `.${basename(file)}.${process.pid}-${randomBytes(4).toString('hex')}.partial`);
    try {
      await withProgress(connection, request.onProgress, () => connection.run(`COPY (\n${sql}\n) TO ${sqlString(partial)} (${format})`));
      await rename(partial, file);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
    return { rows, file };
  });
}

/** The SQL `writeDataset` and `getHistoricalFeatures` would run, after the same checks. */
export async function explainDataset(request: DatasetRequest): Promise<string> {
  return withDuckDB(async (connection) => {
    const { sql, origin } = await prepare(connection, request);
    return `${origin};\n\n${sql};\n`;
  });
}

function outputFormat(file: string): string {
  const ext = extname(file).toLowerCase();
  if (ext === '.parquet') return 'FORMAT parquet';
  if (ext === '.csv') return 'FORMAT csv, HEADER true';
  throw new InputError(`out: '${file}' is not a .parquet or .csv file`);
}

async function withDuckDB<T>(work: (connection: DuckDBConnection) => Promise<T>): Promise<T> {
  const spill = await mkdtemp(join(tmpdir(), 'larder-dataset-'));
  let db: Awaited<ReturnType<typeof openDuckDB>> | undefined;
  try {
    db = await openDuckDB({ memoryLimit: MEMORY_LIMIT, threads: availableParallelism(), tempDirectory: spill });
    // openDuckDB sets the session to UTC: zone-less entity timestamps are UTC, CSV output prints UTC.
    return await work(db.connection);
  } finally {
    db?.close();
    await rm(spill, { recursive: true, force: true });
  }
}

async function withProgress<T>(connection: DuckDBConnection, onProgress: DatasetRequest['onProgress'], run: () => Promise<T>): Promise<T> {
  if (!onProgress) return run();
  // DuckDB tracks progress only with its progress bar on; it must not print it itself.
  await connection.run('SET enable_progress_bar = true');
  await connection.run('SET enable_progress_bar_print = false');
  const timer = setInterval(() => {
    const { percentage } = connection.progress;
    if (percentage >= 0) onProgress(Math.min(100, percentage));
  }, 250);
  try {
    return await run();
  } finally {
    clearInterval(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// Planning: the request, the entity rows and the store's files -> the join's plan.

interface Prepared {
  sql: string;
  /** How the entity rows were loaded (for --explain). */
  origin: string;
  rows: number;
}

const entityKeys = (view: FeatureView) => view.entities.flatMap((e) => e.joinKeys.map((name) => ({ name, type: e.keyTypes[name]! })));

async function prepare(connection: DuckDBConnection, request: DatasetRequest): Promise<Prepared> {
  const selection = selectFeatures(request.defs, request);
  const timestampColumn = request.timestampColumn ?? EVENT_TIMESTAMP;
  const textColumns = selection.views.flatMap((r) => entityKeys(r.view).filter((k) => k.type === 'string').map((k) => k.name));
  const loaded = await loadEntityRows(connection, request.entities, { timestampColumn, textColumns });
  checkAgainstInputColumns(selection, loaded.columns.map((c) => c.name));

  const column = (name: string): EntityColumn | undefined => loaded.columns.find((c) => c.name === name);
  const names = loaded.columns.map((c) => c.name).join(', ');
  const timestamp = column(timestampColumn);
  if (!timestamp) throw new InputError(`entities: no timestamp column '${timestampColumn}' (columns: ${names}; choose one with --timestamp-column)`);
  const checks: EntityKeyCheck[] = [];
  for (const { view } of selection.views) {
    for (const key of entityKeys(view)) {
      const c = column(key.name);
      if (!c) throw new InputError(`entities: no column '${key.name}', the join key of feature view '${view.name}' (columns: ${names})`);
      checks.push({ column: c, type: key.type, view: view.name });
    }
  }
  const range = await checkEntityRows(connection, loaded, timestamp, checks);
  const views: ViewPlan[] = [];
  // Keys are read from the entity table's own column (`source`: an input `__x` is stored renamed).
  const sourceOf = (name: string): string => column(name)!.source;
  for (const r of selection.views) views.push(await planView(connection, request.offlineDir, r, range, sourceOf));
  const plan: PointInTimePlan = {
    entities: { table: loaded.table, columns: loaded.columns, timestamp: entityTimestampSql(timestamp) },
    views,
    order: selection.features.map((f) => ({ view: selection.views.findIndex((r) => r.view.name === f.view), output: f.output })),
  };
  return { sql: pointInTimeSql(plan), origin: loaded.origin, rows: range.rows };
}

async function planView(
  connection: DuckDBConnection,
  offlineDir: string,
  request: ViewRequest,
  range: { min: EpochMs | null; max: EpochMs | null },
  sourceOf: (key: string) => string,
): Promise<ViewPlan> {
  const { view } = request;
  const joinKeys: JoinKey[] = entityKeys(view).map((k) => ({ ...k, source: sourceOf(k.name) }));
  const partitions = range.min === null || range.max === null ? [] : await listPartitions(offlineDir, view.name);
  const within = (fromMs: number | null, toMs: number) => {
    const lo = fromMs === null ? '' : utcDate(fromMs);
    const hi = utcDate(toMs);
    return partitions.filter((p) => p.date >= lo && p.date <= hi);
  };

  if (view.aggregatedFeatures) {
    const features = request.features.map((f) => ({ feature: view.aggregatedFeatures!.find((a) => a.name === f.feature)!, output: f.output }));
    // The earliest event any window can reach: the tail floor((t - w)/s)*s is at least t - w - s.
    const reach = Math.max(...features.map((f) => f.feature.windowMs + f.feature.tileMs));
    const fromMs = range.min === null ? 0 : range.min - reach;
    const toMs = range.max ?? 0;
    const files = range.max === null ? [] : within(fromMs, toMs).flatMap((p) => p.files);
    const present = files.length ? await fileColumns(connection, files) : new Map<string, string>();
    const missingColumns = [...new Set(features.map((f) => f.feature.column))].filter((c) => !present.has(c));
    return { kind: 'aggregation', view: view.name, joinKeys, features, files, missingColumns, fromMs, toMs };
  }

  // Rows older than the earliest t - ttl can never be joined; without a TTL every older partition can.
  const selected = range.max === null ? [] : within(view.ttlMs > 0 ? range.min! - view.ttlMs : null, range.max);
  const isUnique = (files: string[]) => files.length === 1 && basename(files[0]!) === BACKFILL_FILE;
  const uniqueFiles = selected.filter((p) => isUnique(p.files)).flatMap((p) => p.files);
  const dedupeFiles = selected.filter((p) => !isUnique(p.files)).flatMap((p) => p.files);
  const all = [...uniqueFiles, ...dedupeFiles];
  const present = all.length ? await fileColumns(connection, all) : new Map<string, string>();
  const features = request.features.map((f) => ({ name: f.feature, output: f.output, sqlType: duckdbType(f.type), fileType: present.get(f.feature) }));
  return { kind: 'plain', view: view.name, ttlMs: view.ttlMs, joinKeys, features, uniqueFiles, dedupeFiles };
}

/** Column names and types across a view's files (Parquet footers only). */
async function fileColumns(connection: DuckDBConnection, files: readonly string[]): Promise<Map<string, string>> {
  const rows = (await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${readParquet(files)}`)).getRowObjects();
  // DESCRIBE spells TIMESTAMPTZ out; keep the short name the value-type mapping uses.
  return new Map(rows.map((r) => [String(r.column_name), String(r.column_type).replace('TIMESTAMP WITH TIME ZONE', 'TIMESTAMPTZ')]));
}
