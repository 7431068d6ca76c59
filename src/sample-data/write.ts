/**
 * Streams generated rows into DuckDB and writes them out as Parquet. Rows are buffered 2,048 at a
 * time (one DuckDB vector) and appended as a data chunk, so JavaScript never holds more than one
 * chunk; DuckDB holds the staging table (and may spill it) until the one COPY writes the file.
 */
import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { BOOLEAN, DOUBLE, DuckDBDataChunk, FLOAT, INTEGER, VARCHAR, type DuckDBAppender, type DuckDBConnection, type DuckDBType } from '@duckdb/node-api';
import { sqlIdent, sqlString } from '../offline/duckdb.js';

export type StagingType = 'VARCHAR' | 'INTEGER' | 'DOUBLE' | 'FLOAT' | 'BOOLEAN';

const DUCKDB_TYPES: Record<StagingType, DuckDBType> = { VARCHAR, INTEGER, DOUBLE, FLOAT, BOOLEAN };

export const CHUNK_ROWS = 2048;

/** A staging table filled row by row: set `numbers(k)[row]` / `strings(k)[row]`, then endRow(). */
export class RowAppender {
  /** Index of the row being filled within the current chunk. */
  row = 0;
  /** Rows appended so far. */
  count = 0;
  private readonly buffers: (Float64Array | string[])[];
  private readonly duckdbTypes: DuckDBType[];
  private chunk: DuckDBDataChunk | undefined;

  private constructor(
    private readonly appender: DuckDBAppender,
    private readonly types: readonly StagingType[],
  ) {
    this.buffers = types.map((t) => (t === 'VARCHAR' ? new Array<string>(CHUNK_ROWS).fill('') : new Float64Array(CHUNK_ROWS)));
    this.duckdbTypes = types.map((t) => DUCKDB_TYPES[t]);
  }

  /** Creates the temporary table `table` with these columns and an appender on it. */
  static async create(connection: DuckDBConnection, table: string, columns: readonly (readonly [string, StagingType])[]): Promise<RowAppender> {
    const ddl = columns.map(([name, type]) => `${sqlIdent(name)} ${type}`).join(', ');
    await connection.run(`CREATE OR REPLACE TEMP TABLE ${sqlIdent(table)} (${ddl})`);
    const appender = await connection.createAppender(table);
    return new RowAppender(appender, columns.map(([, type]) => type));
  }

  /** The buffer of a numeric or boolean (0/1) column. */
  numbers(column: number): Float64Array {
    return this.buffers[column] as Float64Array;
  }

  strings(column: number): string[] {
    return this.buffers[column] as string[];
  }

  endRow(): void {
    this.count++;
    if (++this.row === CHUNK_ROWS) this.flush();
  }

  /** Appends what is buffered and closes the appender. */
  close(): void {
    this.flush();
    this.appender.flushSync();
    this.appender.closeSync();
  }

  private flush(): void {
    const n = this.row;
    if (n === 0) return;
    // One chunk, reused: a new one per flush leaves its native memory to the garbage collector.
    const chunk = (this.chunk ??= DuckDBDataChunk.create(this.duckdbTypes));
    chunk.reset();
    chunk.rowCount = n;
    this.types.forEach((type, k) => {
      const vector = chunk.getColumnVector(k);
      const buffer = this.buffers[k]!;
      if (type === 'BOOLEAN') for (let j = 0; j < n; j++) vector.setItem(j, buffer[j] === 1);
      else for (let j = 0; j < n; j++) vector.setItem(j, buffer[j]!);
      vector.flush();
    });
    this.appender.appendDataChunk(chunk);
    this.row = 0;
  }
}

/**
 * Writes the result of `select` to `path` as Parquet (zstd). The file appears whole or not at all:
 * DuckDB writes a hidden temporary file in the same folder, which is renamed over `path`.
 */
export async function writeParquet(connection: DuckDBConnection, select: string, path: string): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await connection.run(`COPY (${select}) TO ${sqlString(temp)} (FORMAT parquet, COMPRESSION zstd)`);
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/** SQL for a TIMESTAMPTZ from a column of epoch milliseconds (the session runs in UTC). */
export const epochMsToTimestamp = (column: string): string => `epoch_ms(CAST(${sqlIdent(column)} AS BIGINT))::TIMESTAMPTZ`;
