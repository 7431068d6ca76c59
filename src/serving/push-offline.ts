/**
 * Pushed rows into the offline store (CONTRACT s.7): per touched date partition, one file
 * `push-<time>-<uuid>.parquet` beside backfill's `data.parquet`, in exactly backfill's layout
 * (`offlineColumns(view)`), sorted by join keys and event time. A file is written through DuckDB
 * under a hidden temp name in its partition folder and flushed to disk (`stage`), then renamed
 * into place (`commit`): it appears whole or not at all, and a push whose online write fails
 * after staging is dropped (`abort`) without a trace. Hive readers skip the hidden names.
 */
import { syncDir, syncFile } from '../core/fsync.js';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { DuckDBDataChunk, type DuckDBConnection, type DuckDBInstance, type DuckDBValue } from '@duckdb/node-api';
import { joinKeysOf } from '../definitions/loader.js';
import type { FeatureView } from '../definitions/types.js';
import { offlineColumns } from '../offline/backfill.js';
import type { LayoutColumn } from '../offline/partition-writer.js';
import { openDuckDB, sqlIdent, sqlString } from '../offline/duckdb.js';
import { CREATED_TIMESTAMP, EVENT_TIMESTAMP, partitionDir } from '../offline/layout.js';
import { OfflineWriteError } from './errors.js';

/**
 * The columns a push gives of a view's offline layout, in order: all of them, but for an
 * aggregation view the features (always null in pushed rows) are left out, and filled with
 * NULL when the file is written (appending 39 null cells a row from JavaScript cost most of a
 * weld push).
 */
export function pushedColumns(view: FeatureView): LayoutColumn[] {
  const all = offlineColumns(view);
  if (!view.aggregatedFeatures) return all;
  const features = new Set(Object.keys(view.schema));
  return all.filter((c) => !features.has(c.name));
}

/** One row in `pushedColumns(view)` order, and its partition date. Times are epoch ms (numbers). */
export interface OfflineRow {
  date: string;
  values: readonly DuckDBValue[];
}

/**
 * Rows as columns, in `pushedColumns(view)` order, and each row's partition date: what the push
 * path of aggregation views builds, without an array per row. Times are epoch ms (numbers).
 */
export interface OfflineColumns {
  dates: string[];
  columns: DuckDBValue[][];
}

/** Rows as columns (`columns` is the number of columns). */
export function rowsToColumns(rows: readonly OfflineRow[], columns: number): OfflineColumns {
  const out: OfflineColumns = { dates: rows.map((r) => r.date), columns: Array.from({ length: columns }, () => new Array<DuckDBValue>(rows.length)) };
  rows.forEach((row, r) => {
    for (let c = 0; c < columns; c++) out.columns[c]![r] = row.values[c]!;
  });
  return out;
}

/** Appends `more` to `into`, column by column. */
export function appendColumns(into: OfflineColumns, more: OfflineColumns): void {
  for (const d of more.dates) into.dates.push(d);
  more.columns.forEach((column, c) => {
    const target = (into.columns[c] ??= []);
    for (const v of column) target.push(v);
  });
}

/** The pushed columns' types in the staging table: times arrive as epoch ms and become TIMESTAMPTZ in the COPY. */
const TIME_COLUMNS = new Set([EVENT_TIMESTAMP, CREATED_TIMESTAMP]);
const stagingType = (c: LayoutColumn): string => (TIME_COLUMNS.has(c.name) ? 'DOUBLE' : c.type);
const fromStaging = (c: LayoutColumn): string =>
  TIME_COLUMNS.has(c.name) ? `make_timestamptz(CAST(round(${sqlIdent(c.name)} * 1000) AS BIGINT)) AS ${sqlIdent(c.name)}` : sqlIdent(c.name);

export interface StagedFile {
  /** The hidden name it is written under. */
  temp: string;
  /** Where it goes on commit. */
  path: string;
}

const failed = (what: string, err: unknown): OfflineWriteError => new OfflineWriteError(`offline store: ${what}: ${(err as Error)?.message?.split('\n')[0] ?? String(err)}`, { cause: err });

/** DuckDB vector size: an appended chunk holds at most this many rows. */
const CHUNK = 2048;
let tableCounter = 0;

/** A hidden staged file older than this was left by a process that died between stage and commit. */
const STALE_TEMP_MS = 3_600_000;

export class PushFileWriter {
  private db: Promise<{ instance: DuckDBInstance; close(): void }> | undefined;
  /** Partition folders already cleared of stale staged files by this writer. */
  private readonly swept = new Set<string>();

  constructor(private readonly offlineDir: string) {}

  /** Writes the rows of one view into hidden files, one per date, flushed to disk. */
  async stage(view: FeatureView, rows: readonly OfflineRow[] | OfflineColumns, stamp: string): Promise<StagedFile[]> {
    const columns = pushedColumns(view);
    const batch = Array.isArray(rows) ? rowsToColumns(rows as readonly OfflineRow[], columns.length) : (rows as OfflineColumns);
    const count = batch.dates.length;
    if (count === 0) return [];
    const given = new Set(columns.map((c) => c.name));
    let connection: DuckDBConnection;
    try {
      connection = await (await this.instance()).connect();
    } catch (err) {
      throw failed('opening DuckDB', err);
    }
    const table = `__push_${++tableCounter}`;
    const staged: StagedFile[] = [];
    try {
      await connection.run(`CREATE TABLE ${sqlIdent(table)} (${[...columns.map((c) => `${sqlIdent(c.name)} ${stagingType(c)}`), '__date VARCHAR'].join(', ')})`);
      const appender = await connection.createAppender(table);
      try {
        const types = Array.from({ length: appender.columnCount }, (_, i) => appender.columnType(i));
        for (let start = 0; start < count; start += CHUNK) {
          const n = Math.min(CHUNK, count - start);
          const chunk = DuckDBDataChunk.create(types, n);
          const slice = (column: readonly DuckDBValue[]) => (start === 0 && n === column.length ? column : column.slice(start, start + n));
          chunk.setColumns([...batch.columns.map(slice), slice(batch.dates)]);
          appender.appendDataChunk(chunk);
        }
        appender.flushSync();
      } finally {
        appender.closeSync();
      }
      const order = [...joinKeysOf(view), EVENT_TIMESTAMP].map(sqlIdent).join(', ');
      const names = offlineColumns(view)
        .map((c) => (given.has(c.name) ? fromStaging(c) : `CAST(NULL AS ${c.type}) AS ${sqlIdent(c.name)}`))
        .join(', ');
      for (const date of [...new Set(batch.dates)].sort()) {
        const dir = partitionDir(this.offlineDir, view.name, date);
        const name = `push-${stamp}-${randomUUID()}.parquet`;
        const file: StagedFile = { temp: join(dir, `.${name}.tmp`), path: join(dir, name) };
        await mkdir(dir, { recursive: true });
        if (!this.swept.has(dir)) {
          this.swept.add(dir);
          await removeStaleTemps(dir);
        }
        staged.push(file);
        await connection.run(
          `COPY (SELECT ${names} FROM ${sqlIdent(table)} WHERE __date = ${sqlString(date)} ORDER BY ${order}) TO ${sqlString(file.temp)} (FORMAT parquet, COMPRESSION zstd)`,
        );
        await syncFile(file.temp);
      }
      return staged;
    } catch (err) {
      await this.abort(staged);
      throw failed(`writing the pushed rows of '${view.name}'`, err);
    } finally {
      await connection.run(`DROP TABLE IF EXISTS ${sqlIdent(table)}`).catch(() => {});
      connection.closeSync();
    }
  }

  /** Renames the staged files into place and makes the renames durable. */
  async commit(files: readonly StagedFile[]): Promise<void> {
    try {
      for (const f of files) await rename(f.temp, f.path);
    } catch (err) {
      throw failed('moving pushed files into place', err);
    }
    for (const dir of new Set(files.map((f) => join(f.path, '..')))) await syncDir(dir);
  }

  /** Removes staged files: nothing of the push shows. */
  async abort(files: readonly StagedFile[]): Promise<void> {
    await Promise.all(files.map((f) => rm(f.temp, { force: true })));
  }

  close(): void {
    const db = this.db;
    this.db = undefined;
    void db?.then((d) => d.close(), () => {});
  }

  /** One DuckDB for the server's pushes, opened on the first one. */
  private async instance(): Promise<DuckDBInstance> {
    this.db ??= openDuckDB({ memoryLimit: '256MB', threads: 1 }).catch((err: unknown) => {
      this.db = undefined;
      throw err;
    });
    return (await this.db).instance;
  }
}

/** Staged files (`.push-*.parquet.tmp`) a killed server left: never read by datasets, only disk. */
async function removeStaleTemps(dir: string): Promise<void> {
  const now = Date.now();
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!/^\.push-.*\.parquet\.tmp$/.test(name)) continue;
    const path = join(dir, name);
    const info = await stat(path).catch(() => undefined);
    if (info && now - info.mtimeMs > STALE_TEMP_MS) await rm(path, { force: true });
  }
}

/** "2024-01-01T10:00:00.123Z" -> "20240101T100000123Z": sortable and safe in a file name. */
export const fileStamp = (ms: number): string => new Date(ms).toISOString().replace(/[-:.]/g, '');

