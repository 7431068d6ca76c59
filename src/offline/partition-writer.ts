/**
 * Replaces the rows of a view with event time in [start, end) in the offline store, one partition
 * at a time and atomically (CONTRACT s.7: a file appears whole or not at all).
 *
 * Every partition the range touches is written whole into `<view>/.staging-<id>/` (beside the
 * partitions, so the rename stays on one filesystem), flushed to disk, then renamed over
 * `date=D/data.parquet`. A crash leaves each partition fully old or fully new; the staging folder it
 * leaves behind is removed by the next run. A day only partly covered by the range keeps its old
 * rows outside the range. Pushed files (`push-*.parquet`) beside `data.parquet` are never touched.
 */
import { syncDir, syncFile } from '../core/fsync.js';
import { access, mkdir, readdir, rename, rm, rmdir, unlink, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import type { DuckDBConnection } from '@duckdb/node-api';
import { InputError } from '../core/errors.js';
import { DAY_MS, formatInstant, utcDate, type EpochMs } from '../core/time.js';
import { sqlIdent, sqlList, sqlString } from './duckdb.js';
import { BACKFILL_FILE, EVENT_TIMESTAMP, datesBetween } from './layout.js';

/** A column of a view's offline files: name and DuckDB type. */
export interface LayoutColumn {
  name: string;
  type: string;
}

export interface ReplaceRangeInput {
  connection: DuckDBConnection;
  /** `<offline>/<view>`. */
  viewDir: string;
  /** A relation of the new rows: `columns`, in order, every event_timestamp in [start, end). */
  rows: string;
  columns: readonly LayoutColumn[];
  /** Sort order within a file after the partition date: the join keys (event_timestamp follows). */
  sortKeys: readonly string[];
  start: EpochMs;
  end: EpochMs;
}

export interface ReplaceRangeResult {
  /** Partitions that hold rows after the replace. */
  written: number;
  /** Partitions whose backfilled file was removed because no row is left in them. */
  emptied: number;
}

const STAGING_PREFIX = '.staging-';
const LOCK_FILE = '.backfill.lock';

/** Writes the new content of every partition in [start, end), then swaps each in by rename. */
export async function replaceRange(input: ReplaceRangeInput): Promise<ReplaceRangeResult> {
  const { connection, viewDir, start, end } = input;
  const dates = datesBetween(start, end);
  if (dates.length === 0) return { written: 0, emptied: 0 };
  await mkdir(viewDir, { recursive: true });
  return withViewLock(viewDir, async () => {
    await removeStaleStaging(viewDir);
    const staging = join(viewDir, `${STAGING_PREFIX}${randomUUID()}`);
    await mkdir(staging);
    try {
      const kept = await keptOldRows(connection, viewDir, input.columns, start, end);
      await copyPartitioned(connection, staging, input, kept);
      const staged = await stagedFiles(connection, staging);
      let written = 0;
      let emptied = 0;
      for (const date of dates) {
        const target = join(viewDir, `date=${date}`, BACKFILL_FILE);
        const file = staged.get(date);
        if (file) {
          await mkdir(join(viewDir, `date=${date}`), { recursive: true });
          await rename(file, target);
          await syncDir(join(viewDir, `date=${date}`));
          written++;
        } else if (await removeIfPresent(target)) {
          emptied++;
          await rmdir(join(viewDir, `date=${date}`)).catch(() => {}); // kept when pushed files remain
        }
      }
      await syncDir(viewDir);
      return { written, emptied };
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  });
}

/**
 * Old rows that survive: those of a partly covered first or last day, outside [start, end).
 * Read from the existing files, adapted to the current columns (a feature added since reads null).
 */
async function keptOldRows(connection: DuckDBConnection, viewDir: string, columns: readonly LayoutColumn[], start: EpochMs, end: EpochMs): Promise<string | undefined> {
  const partial = new Set<string>();
  if (start % DAY_MS !== 0) partial.add(utcDate(start));
  if (end % DAY_MS !== 0) partial.add(utcDate(end));
  const files: string[] = [];
  for (const date of partial) {
    const file = join(viewDir, `date=${date}`, BACKFILL_FILE);
    if (await exists(file)) files.push(file);
  }
  if (files.length === 0) return undefined;
  const described = await connection.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${sqlList(files)}, union_by_name = true)`);
  const old = new Set(described.getRowObjectsJS().map((r) => String(r.column_name)));
  const select = columns.map((c) => (old.has(c.name) ? `CAST(${sqlIdent(c.name)} AS ${c.type})` : `CAST(NULL AS ${c.type})`) + ` AS ${sqlIdent(c.name)}`);
  const ts = sqlIdent(EVENT_TIMESTAMP);
  const lit = (ms: EpochMs): string => `TIMESTAMPTZ ${sqlString(formatInstant(ms))}`;
  return `SELECT ${select.join(', ')} FROM read_parquet(${sqlList(files)}, union_by_name = true) WHERE NOT (${ts} >= ${lit(start)} AND ${ts} < ${lit(end)})`;
}

/**
 * One COPY with PARTITION_BY into staging: DuckDB writes each date's file in one pass, sorted by
 * date, keys and event time (measured on 1M rows with short sparse vectors over 348 dates: 1.5 s,
 * against 2.9 s for one COPY per date).
 */
async function copyPartitioned(connection: DuckDBConnection, staging: string, input: ReplaceRangeInput, kept: string | undefined): Promise<void> {
  const names = input.columns.map((c) => sqlIdent(c.name)).join(', ');
  const union = kept ? `SELECT ${names} FROM ${input.rows} UNION ALL ${kept}` : `SELECT ${names} FROM ${input.rows}`;
  const order = [...input.sortKeys.map(sqlIdent), sqlIdent(EVENT_TIMESTAMP)].join(', ');
  await connection.run(`SET TimeZone = 'UTC'`);
  await connection.run(
    `COPY (SELECT ${names}, strftime(${sqlIdent(EVENT_TIMESTAMP)}, '%Y-%m-%d') AS "date" FROM (${union}) ORDER BY "date", ${order})
     TO ${sqlString(staging)} (FORMAT parquet, COMPRESSION zstd, PARTITION_BY ("date"), FILENAME_PATTERN 'part_{i}')`,
  );
}

/** The one staged file per date, flushed to disk. Should DuckDB split a date into several files, they are merged. */
async function stagedFiles(connection: DuckDBConnection, staging: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of await readdir(staging)) {
    const m = /^date=(\d{4}-\d{2}-\d{2})$/.exec(name);
    if (!m) continue;
    const dir = join(staging, name);
    const files = (await readdir(dir)).filter((f) => f.endsWith('.parquet')).sort();
    if (files.length === 0) continue;
    let file = join(dir, files[0]!);
    if (files.length > 1) {
      file = join(dir, BACKFILL_FILE);
      await connection.run(
        // The order columns are read, not written; the staging folder's date= is not a column either.
        `COPY (SELECT * EXCLUDE (filename, file_row_number) FROM read_parquet(${sqlList(files.map((f) => join(dir, f)))}, file_row_number = true, filename = true, hive_partitioning = false) ORDER BY filename, file_row_number)
         TO ${sqlString(file)} (FORMAT parquet, COMPRESSION zstd)`,
      );
    }
    await syncFile(file);
    out.set(m[1]!, file);
  }
  return out;
}

/** Staging folders left by a run that died; safe to remove under the view lock. */
async function removeStaleStaging(viewDir: string): Promise<void> {
  for (const name of await readdir(viewDir)) {
    if (name.startsWith(STAGING_PREFIX)) await rm(join(viewDir, name), { recursive: true, force: true });
  }
}

/**
 * One backfill per view at a time: a lock file holding the pid. A lock whose process is gone (a
 * killed run) is taken over.
 */
async function withViewLock<T>(viewDir: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(viewDir, LOCK_FILE);
  if (!(await tryLock(lock))) {
    const holder = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
    if (holder > 0 && holder !== process.pid && isAlive(holder)) {
      throw new InputError(`another backfill of '${viewDir}' is running (process ${holder}; lock ${lock})`);
    }
    await unlink(lock).catch(() => {});
    if (!(await tryLock(lock))) throw new InputError(`another backfill of '${viewDir}' is running (lock ${lock})`);
  }
  try {
    return await fn();
  } finally {
    await unlink(lock).catch(() => {});
  }
}

async function tryLock(lock: string): Promise<boolean> {
  try {
    await writeFile(lock, String(process.pid), { flag: 'wx' });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const exists = (path: string): Promise<boolean> => access(path).then(
  () => true,
  () => false,
);

async function removeIfPresent(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

