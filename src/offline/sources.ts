/**
 * Reading batch sources (CONTRACT s.2): Parquet and CSV files through DuckDB, PostgreSQL tables and
 * queries through `pg` with a server-side cursor. Both end as a DuckDB relation of the source rows
 * whose event time is in [start, end), with timestamp columns as TIMESTAMPTZ (UTC when the source
 * gives no zone), so everything downstream is one SQL dialect.
 */
import { access } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { DuckDBDataChunk, VARCHAR, type DuckDBAppender, type DuckDBConnection } from '@duckdb/node-api';
import { DefinitionError, InputError, errorMessage } from '../core/errors.js';
import { formatInstant, type EpochMs } from '../core/time.js';
import type { BatchSource, FileSource, PostgresSource } from '../definitions/types.js';
import { openDuckDB, sqlIdent, sqlPath, sqlString } from './duckdb.js';

/** A source column and its DuckDB type (`VARCHAR`, `BIGINT`, `TIMESTAMP WITH TIME ZONE`, ...). */
export interface SourceColumn {
  name: string;
  type: string;
}

const TIMESTAMPTZ = 'TIMESTAMP WITH TIME ZONE';

const label = (source: BatchSource): string => `${source.type === 'file' ? 'fileSource' : 'postgresSource'} '${source.name}'`;

/**
 * The columns a batch source offers, without reading its rows. Plan-time validation uses it: a
 * feature missing from its source is a definition error before any backfill runs.
 */
export async function describeSourceColumns(source: BatchSource, repoDir: string, connection?: DuckDBConnection): Promise<SourceColumn[]> {
  if (source.type === 'postgres') return describePostgres(source);
  if (connection) return describeFile(connection, source, repoDir);
  const db = await openDuckDB({ threads: 1 });
  try {
    return await describeFile(db.connection, source, repoDir);
  } finally {
    db.close();
  }
}

export interface SourceRangeOptions {
  repoDir: string;
  start: EpochMs;
  end: EpochMs;
  /** Rows fetched from PostgreSQL per round trip (default 10,000). */
  batchSize?: number;
  /** Called with the number of rows read so far, for PostgreSQL sources as they stream. */
  onRows?: (rows: number) => void;
}

/** Source rows in a DuckDB relation, to be released when done. */
export interface SourceRows {
  /** A view or table name holding the rows with event time in [start, end), plus the rows whose event time is null. */
  relation: string;
  /** Its columns; the timestamp and created timestamp fields (and every other timestamp) are TIMESTAMPTZ. */
  columns: SourceColumn[];
  /** Drops the temporary relation. */
  release(): Promise<void>;
}

/**
 * Opens the rows of a batch source whose event time is in [start, end) as a DuckDB relation on
 * `connection`. File sources become a view whose time filter DuckDB pushes into the scan;
 * PostgreSQL rows are streamed in batches into a temporary DuckDB table, never held in JS at once.
 * Rows with a null event time are kept (the caller counts and drops them).
 */
export async function readSourceRange(connection: DuckDBConnection, source: BatchSource, options: SourceRangeOptions): Promise<SourceRows> {
  await connection.run(`SET TimeZone = 'UTC'`);
  const name = `__src_${source.name}_${randomBytes(4).toString('hex')}`;
  if (source.type === 'file') {
    const columns = await describeFile(connection, source, options.repoDir);
    const ts = requireTimestamp(source, columns, source.timestampField, 'timestampField');
    if (source.createdTimestampField) requireTimestamp(source, columns, source.createdTimestampField, 'createdTimestampField');
    const predicate = `(${rangePredicate(source.timestampField, ts.type, options.start, options.end)}) OR ${sqlIdent(source.timestampField)} IS NULL`;
    const times = new Set([source.timestampField, source.createdTimestampField].filter((f): f is string => f !== undefined));
    const normalised = columns.map((c) => (normalisesToTz(c.type) || times.has(c.name) ? { ...c, to: TIMESTAMPTZ } : { ...c, to: c.type }));
    const projection = normalised.map((c) => (c.to === c.type ? sqlIdent(c.name) : `${asTimestampTz(c.name, c.type)} AS ${sqlIdent(c.name)}`));
    await connection.run(`CREATE VIEW ${sqlIdent(name)} AS SELECT ${projection.join(', ')} FROM ${fileScan(source, options.repoDir)} WHERE ${predicate}`);
    return { relation: sqlIdent(name), columns: normalised.map((c) => ({ name: c.name, type: c.to })), release: () => drop(connection, 'VIEW', name) };
  }
  const columns = await streamPostgres(connection, source, name, options);
  return { relation: sqlIdent(name), columns, release: () => drop(connection, 'TABLE', name) };
}

async function drop(connection: DuckDBConnection, kind: 'VIEW' | 'TABLE', name: string): Promise<void> {
  await connection.run(`DROP ${kind} IF EXISTS ${sqlIdent(name)}`);
}

// ---------------------------------------------------------------------------------------------
// timestamps

const isTimestampType = (type: string): boolean => /^(TIMESTAMP|DATE)/.test(type) || type === 'VARCHAR';

function requireTimestamp(source: BatchSource, columns: SourceColumn[], field: string, what: string): SourceColumn {
  const column = columns.find((c) => c.name === field);
  if (!column) throw new DefinitionError(`${label(source)}: ${what} '${field}' is not a column of the source (has ${columns.map((c) => c.name).join(', ')})`);
  if (!isTimestampType(column.type)) throw new DefinitionError(`${label(source)}: ${what} '${field}' has type ${column.type}; expected a timestamp`);
  return column;
}

/** The column as TIMESTAMPTZ. With the session zone UTC, a value without zone is read as UTC. */
const asTimestampTz = (name: string, type: string): string => (type === TIMESTAMPTZ ? sqlIdent(name) : `CAST(${sqlIdent(name)} AS TIMESTAMPTZ)`);

const tzLiteral = (ms: EpochMs): string => `TIMESTAMPTZ ${sqlString(formatInstant(ms))}`;

/** `[start, end)` on a timestamp column, written so that DuckDB can prune Parquet row groups by their statistics. */
export function rangePredicate(name: string, type: string, start: EpochMs, end: EpochMs): string {
  const col = sqlIdent(name);
  if (type === TIMESTAMPTZ) return `${col} >= ${tzLiteral(start)} AND ${col} < ${tzLiteral(end)}`;
  if (type === 'TIMESTAMP') {
    // The same instants as UTC wall-clock times, compared in the column's own type.
    const wall = (ms: EpochMs): string => `TIMESTAMP ${sqlString(formatInstant(ms).replace('T', ' ').replace('Z', ''))}`;
    return `${col} >= ${wall(start)} AND ${col} < ${wall(end)}`;
  }
  const norm = asTimestampTz(name, type);
  return `${norm} >= ${tzLiteral(start)} AND ${norm} < ${tzLiteral(end)}`;
}

/** Timestamp-like columns (TIMESTAMP, TIMESTAMP_MS, DATE...) become TIMESTAMPTZ, as do timestamp fields held as text. */
const normalisesToTz = (type: string): boolean => /^(TIMESTAMP|DATE)/.test(type) && type !== TIMESTAMPTZ;

// ---------------------------------------------------------------------------------------------
// files

export function resolveSourcePath(source: FileSource, repoDir: string): string {
  return isAbsolute(source.path) ? source.path : resolve(repoDir, source.path);
}

function fileScan(source: FileSource, repoDir: string): string {
  // Exactly the file at the path: a `*`, `?` or `[` in it is not a glob (sqlPath).
  const path = sqlPath(resolveSourcePath(source, repoDir));
  return source.format === 'csv' ? `read_csv(${path}, header = true)` : `read_parquet(${path})`;
}

async function describeFile(connection: DuckDBConnection, source: FileSource, repoDir: string): Promise<SourceColumn[]> {
  const path = resolveSourcePath(source, repoDir);
  try {
    await access(path);
  } catch {
    throw new DefinitionError(`${label(source)}: path '${source.path}' does not exist (looked at ${path})`);
  }
  try {
    const reader = await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${fileScan(source, repoDir)}`);
    return reader.getRowObjectsJS().map((r) => ({ name: String(r.column_name), type: String(r.column_type) }));
  } catch (err) {
    throw new DefinitionError(`${label(source)}: cannot read '${source.path}' as ${source.format}: ${firstLine(err)}`);
  }
}

const firstLine = (err: unknown): string => errorMessage(err).split('\n')[0]!;

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/** How each PostgreSQL type lands in DuckDB: its type there, and the cast from PostgreSQL's text form. */
interface PgMapping {
  type: string;
  /** SQL turning the VARCHAR text form `x` into `type`. */
  cast: (x: string) => string;
}

const plain = (type: string): PgMapping => ({ type, cast: (x) => `CAST(${x} AS ${type})` });
/** PostgreSQL arrays print as `{1,2,NULL}`; DuckDB lists parse `[1,2,NULL]`. */
const pgArray = (type: string): PgMapping => ({ type, cast: (x) => `CAST('[' || trim(${x}, '{}') || ']' AS ${type})` });

const PG_TYPES: Record<number, PgMapping> = {
  16: plain('BOOLEAN'),
  17: { type: 'BLOB', cast: (x) => `unhex(substr(${x}, 3))` },
  20: plain('BIGINT'),
  21: plain('SMALLINT'),
  23: plain('INTEGER'),
  26: plain('BIGINT'),
  700: plain('FLOAT'),
  701: plain('DOUBLE'),
  1700: plain('DOUBLE'),
  1082: plain('DATE'),
  1114: plain('TIMESTAMP'),
  1184: plain(TIMESTAMPTZ),
  1000: pgArray('BOOLEAN[]'),
  1005: pgArray('SMALLINT[]'),
  1007: pgArray('INTEGER[]'),
  1016: pgArray('BIGINT[]'),
  1021: pgArray('FLOAT[]'),
  1022: pgArray('DOUBLE[]'),
  1231: pgArray('DOUBLE[]'),
};
const VARCHAR_MAPPING: PgMapping = { type: 'VARCHAR', cast: (x) => x };
const pgMapping = (oid: number): PgMapping => PG_TYPES[oid] ?? VARCHAR_MAPPING;

/** Every value as PostgreSQL's text; DuckDB casts them (faster than building JS Dates and BigInts). */
const TEXT_TYPES = { getTypeParser: () => (value: string) => value };

/** `SELECT * FROM <table or (query)>`, the relation a PostgreSQL source reads. */
function pgRelation(source: PostgresSource): string {
  if (source.table) return source.table.split('.').map(sqlIdent).join('.');
  return `(${source.query!.replace(/;\s*$/, '')}) AS larder_source`;
}

async function connectPostgres(source: PostgresSource): Promise<pg.Client> {
  const url = source.connection ?? process.env.DATABASE_URL;
  if (!url) throw new InputError(`${label(source)}: no database to read from (give the source a connection or set DATABASE_URL)`);
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  client.on('error', () => {}); // a dropped connection surfaces as the failing query's error
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => {});
    throw new InputError(`${label(source)}: cannot connect to PostgreSQL at ${describeUrl(url)}: ${firstLine(err)}`);
  }
  return client;
}

/** host:port/db, without credentials, for error messages. */
function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 5432}${u.pathname}`;
  } catch {
    return '(unparsable URL)';
  }
}

async function describePostgres(source: PostgresSource): Promise<SourceColumn[]> {
  const client = await connectPostgres(source);
  try {
    // As streamPostgres reads: in a read-only transaction, and with a parameter so pg uses the
    // extended protocol, which runs one statement only. A `query` such as
    // `SELECT ... ) AS x; DROP TABLE t; SELECT * FROM (SELECT 1` is then refused by PostgreSQL
    // ("cannot insert multiple commands into a prepared statement") instead of being run, and a
    // data-modifying one fails on the read-only transaction.
    await client.query('BEGIN READ ONLY');
    const result = await client.query({ text: `SELECT * FROM ${pgRelation(source)} LIMIT $1`, values: [0], types: TEXT_TYPES });
    return result.fields.map((f) => ({ name: f.name, type: pgMapping(f.dataTypeID).type }));
  } catch (err) {
    throw new DefinitionError(`${label(source)}: ${firstLine(err)}`);
  } finally {
    await client.query('ROLLBACK').catch(() => {});
    await client.end().catch(() => {});
  }
}

/**
 * Streams the source rows in range into a DuckDB table: a cursor in a read-only transaction,
 * FETCH `batchSize` rows at a time as text, appended as one data chunk per DuckDB vector, then cast
 * to their types inside DuckDB. JS holds one batch at a time.
 */
async function streamPostgres(connection: DuckDBConnection, source: PostgresSource, name: string, options: SourceRangeOptions): Promise<SourceColumn[]> {
  const batchSize = options.batchSize ?? 10_000;
  const client = await connectPostgres(source);
  const rawName = `${name}_raw`;
  const raw = sqlIdent(rawName);
  let appender: DuckDBAppender | undefined;
  try {
    await client.query('BEGIN READ ONLY');
    await client.query(`SET LOCAL TIME ZONE 'UTC'`);
    const ts = sqlIdent(source.timestampField);
    try {
      await client.query(
        `DECLARE larder_cursor NO SCROLL CURSOR FOR SELECT * FROM ${pgRelation(source)} WHERE (${ts} >= $1::timestamptz AND ${ts} < $2::timestamptz) OR ${ts} IS NULL`,
        [formatInstant(options.start), formatInstant(options.end)],
      );
    } catch (err) {
      throw new DefinitionError(`${label(source)}: ${firstLine(err)}`);
    }
    let fields: { name: string; mapping: PgMapping }[] | undefined;
    let rowCount = 0;
    for (;;) {
      let batch: pg.QueryArrayResult;
      try {
        batch = await client.query({ text: `FETCH ${batchSize} FROM larder_cursor`, rowMode: 'array', types: TEXT_TYPES });
      } catch (err) {
        // The query failing as it runs (in the read-only transaction: a function that writes) is
        // the source's fault, named like a failure to declare it; a lost connection stays as it is.
        if (err instanceof pg.DatabaseError) throw new DefinitionError(`${label(source)}: ${firstLine(err)}`);
        throw err;
      }
      if (!fields) {
        fields = batch.fields.map((f) => ({ name: f.name, mapping: pgMapping(f.dataTypeID) }));
        const columns = fields.map((f) => ({ name: f.name, type: f.mapping.type }));
        requireTimestamp(source, columns, source.timestampField, 'timestampField');
        if (source.createdTimestampField) requireTimestamp(source, columns, source.createdTimestampField, 'createdTimestampField');
        await connection.run(`CREATE TABLE ${raw} (${fields.map((f) => `${sqlIdent(f.name)} VARCHAR`).join(', ')})`);
        appender = await connection.createAppender(rawName);
      }
      if (batch.rows.length === 0) break;
      appendTextRows(appender!, fields.length, batch.rows as (string | null)[][]);
      rowCount += batch.rows.length;
      options.onRows?.(rowCount);
    }
    await client.query('COMMIT');
    appender!.closeSync();
    appender = undefined;
    const typed = fields!.map((f) => {
      const mapping = normalisesToTz(f.mapping.type) ? { type: TIMESTAMPTZ, cast: (x: string) => `CAST(${f.mapping.cast(x)} AS TIMESTAMPTZ)` } : f.mapping;
      return { name: f.name, type: mapping.type, sql: `${mapping.cast(sqlIdent(f.name))} AS ${sqlIdent(f.name)}` };
    });
    await connection.run(`CREATE TABLE ${sqlIdent(name)} AS SELECT ${typed.map((t) => t.sql).join(', ')} FROM ${raw}`);
    return typed.map(({ name: n, type }) => ({ name: n, type }));
  } finally {
    appender?.closeSync();
    await connection.run(`DROP TABLE IF EXISTS ${raw}`);
    await client.end().catch(() => {});
  }
}

const VECTOR_SIZE = 2048;

/** One data chunk per DuckDB vector: far fewer native calls than appending value by value. */
function appendTextRows(appender: DuckDBAppender, width: number, rows: (string | null)[][]): void {
  const types = Array.from({ length: width }, () => VARCHAR);
  for (let offset = 0; offset < rows.length; offset += VECTOR_SIZE) {
    const slice = rows.slice(offset, offset + VECTOR_SIZE);
    const chunk = DuckDBDataChunk.create(types, slice.length);
    chunk.setRows(slice);
    appender.appendDataChunk(chunk);
  }
}
