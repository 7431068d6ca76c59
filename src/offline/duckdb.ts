/** One place that opens DuckDB and quotes what goes into its SQL. */
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';

export interface DuckDBOptions {
  /** e.g. '1536MB'; bounds DuckDB's buffer pool so a join spills instead of growing RSS. */
  memoryLimit?: string;
  threads?: number;
  /** Where DuckDB spills; defaults to its own temp folder. */
  tempDirectory?: string;
}

export async function openDuckDB(options: DuckDBOptions = {}): Promise<{ instance: DuckDBInstance; connection: DuckDBConnection; close(): void }> {
  const config: Record<string, string> = {};
  if (options.memoryLimit) config.memory_limit = options.memoryLimit;
  if (options.threads) config.threads = String(options.threads);
  if (options.tempDirectory) config.temp_directory = options.tempDirectory;
  const instance = await DuckDBInstance.create(':memory:', config);
  const connection = await instance.connect();
  // Timestamps are UTC everywhere in Larder; DuckDB would otherwise cast and print TIMESTAMPTZ in
  // the machine's local zone. (As a statement: the instance option cannot autoload ICU.)
  // ICU is built in; loading it explicitly avoids a rare autoload failure seen under load.
  await connection.run('LOAD icu');
  await connection.run(`SET TimeZone = 'UTC'`);
  return {
    instance,
    connection,
    close() {
      connection.closeSync();
      instance.closeSync();
    },
  };
}

/** A SQL string literal. */
export const sqlString = (value: string): string => `'${value.replace(/'/g, "''")}'`;

/** A quoted SQL identifier. Names reaching SQL are validated identifiers already; quoting is belt and braces. */
export const sqlIdent = (name: string): string => `"${name.replace(/"/g, '""')}"`;

/**
 * A file path for DuckDB's readers (read_parquet, read_csv, read_json), matching exactly that file.
 * The readers expand glob patterns, so a path holding `*`, `?` or `[` would read other files (a
 * source `data/events[1].parquet` read `data/events1.parquet`; `*` every file beside it). Each
 * such character is escaped as a one-character class (`[*]`, `[?]`, `[[]`), which DuckDB's glob
 * matches literally. Not for COPY ... TO, which writes to the literal path.
 */
export const sqlPath = (path: string): string => sqlString(path.replace(/[[*?]/g, (ch) => `[${ch}]`));

/** `[ 'a.parquet', 'b.parquet' ]` for read_parquet: each an exact path (sqlPath), never a pattern. */
export const sqlList = (paths: readonly string[]): string => `[${paths.map(sqlPath).join(', ')}]`;
