/**
 * Entity rows for a dataset, from wherever they come (CONTRACT s.4, s.5): a .parquet or .csv
 * file, an apache-arrow Table, or JSON columns `{ driver_id: [...], event_timestamp: [...] }`.
 * Each lands in one DuckDB table (of an in-memory database) whose `rowid` is the input order; the join reads it there.
 * Then one scan checks the timestamp and key columns and finds the time range the join needs.
 */
import { access } from 'node:fs/promises';
import { extname } from 'node:path';
import type * as arrow from 'apache-arrow';
import {
  BIGINT,
  BLOB,
  BOOLEAN,
  DATE,
  DOUBLE,
  FLOAT,
  INTEGER,
  TIMESTAMP,
  TIMESTAMPTZ,
  VARCHAR,
  DuckDBBlobValue,
  DuckDBDataChunk,
  DuckDBDateValue,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  type DuckDBConnection,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import { InputError, errorMessage } from '../core/errors.js';
import { asEpochMs, parseInstant, type EpochMs } from '../core/time.js';
import type { KeyType } from '../core/value-types.js';
import { sqlIdent, sqlPath, sqlString } from './duckdb.js';

/** Entity rows: a .parquet/.csv path, an Arrow table, or JSON columns of equal length. */
export type EntityRows = string | arrow.Table | Readonly<Record<string, readonly unknown[]>>;

export interface EntityColumn {
  /** The name in the input and the output. */
  name: string;
  /** The column in the temp table (differs only for a column named like DuckDB's `rowid`). */
  source: string;
  /** DuckDB type, as DESCRIBE prints it. */
  type: string;
}

export interface LoadedEntities {
  /** Table of the rows; its `rowid` is the input order. */
  table: string;
  /** Input columns in input order. */
  columns: EntityColumn[];
  /** SQL that created the table, or a comment saying it came from memory (for --explain). */
  origin: string;
}

export interface LoadOptions {
  /** Columns to read as text from a CSV: join keys of string entities ('0012' stays '0012'). */
  textColumns?: readonly string[];
  /** The timestamp column: JSON values are parsed as instants (ISO-8601 or epoch ms). */
  timestampColumn: string;
}

export const ENTITY_TABLE = '__larder_input';

/**
 * Input columns keep their names in the table, except those that could be taken for a column the
 * dataset SQL adds: `rowid` (DuckDB's row id, the input order) and every name starting with `__`
 * (`__row`, `__t`, `__key_<type>_<column>`; DuckDB compares names without case). Those are stored
 * as `__larder_c<index>` and given back under their own name. Otherwise an input column `__t`
 * would be read as each row's instant and `__row` as its order (and echoed as the row number).
 */
const isReserved = (name: string): boolean => name.toLowerCase() === 'rowid' || name.startsWith('__');
const storedName = (name: string, index: number): string => (isReserved(name) ? `__larder_c${index}` : name);
const CHUNK = 2048;

/** Loads entity rows into a DuckDB table; errors name the input and the column at fault. */
export async function loadEntityRows(connection: DuckDBConnection, rows: EntityRows, options: LoadOptions): Promise<LoadedEntities> {
  await connection.run(`DROP TABLE IF EXISTS ${ENTITY_TABLE}`);
  if (typeof rows === 'string') return loadFile(connection, rows, options);
  if (isArrowTable(rows)) return loadColumns(connection, await arrowColumns(rows), 'an Arrow table');
  if (typeof rows === 'object' && rows !== null && !Array.isArray(rows)) return loadColumns(connection, jsonColumns(rows, options.timestampColumn), 'JSON columns');
  throw new InputError('entities: expected a .parquet or .csv file, an Arrow table, or columns like {"driver_id": [...], "event_timestamp": [...]}');
}

async function loadFile(connection: DuckDBConnection, path: string, options: LoadOptions): Promise<LoadedEntities> {
  const ext = extname(path).toLowerCase();
  if (ext !== '.parquet' && ext !== '.csv') throw new InputError(`entities: '${path}' is not a .parquet or .csv file`);
  try {
    await access(path);
  } catch {
    throw new InputError(`entities: no such file '${path}'`);
  }
  // Exactly the file checked above: a `*`, `?` or `[` in its name is not a glob (sqlPath).
  const reader = (types: readonly string[]): string => {
    if (ext === '.parquet') return `read_parquet(${sqlPath(path)})`;
    const typed = types.length ? `, types = {${types.map((c) => `${sqlString(c)}: 'VARCHAR'`).join(', ')}}` : '';
    return `read_csv(${sqlPath(path)}, header = true${typed})`;
  };
  let described: { name: string; type: string }[];
  try {
    described = await describe(connection, `SELECT * FROM ${reader([])}`);
  } catch (err) {
    throw new InputError(`entities: cannot read '${path}': ${errorMessage(err).split('\n')[0]}`);
  }
  const names = new Set(described.map((c) => c.name));
  const text = (options.textColumns ?? []).filter((c) => names.has(c) && ext === '.csv');
  const renames = described.flatMap((c, i) => (isReserved(c.name) ? [`${sqlIdent(c.name)} AS ${sqlIdent(storedName(c.name, i))}`] : []));
  const star = renames.length ? `* RENAME (${renames.join(', ')})` : '*';
  const origin = `CREATE TABLE ${ENTITY_TABLE} AS SELECT ${star} FROM ${reader(text)}`;
  try {
    await connection.run(origin);
  } catch (err) {
    throw new InputError(`entities: cannot read '${path}': ${errorMessage(err).split('\n')[0]}`);
  }
  const loaded = await describe(connection, `SELECT * FROM ${ENTITY_TABLE}`);
  return {
    table: ENTITY_TABLE,
    columns: loaded.map((c, i) => ({ name: described[i]!.name, source: c.name, type: c.type })),
    origin,
  };
}

async function describe(connection: DuckDBConnection, select: string): Promise<{ name: string; type: string }[]> {
  const rows = (await connection.runAndReadAll(`DESCRIBE ${select}`)).getRowObjects();
  return rows.map((r) => ({ name: String(r.column_name), type: String(r.column_type) }));
}

// ---------------------------------------------------------------------------------------------
// In-memory columns (JSON, Arrow) go through a DuckDB appender, a chunk at a time.

interface MemoryColumn {
  name: string;
  type: DuckDBType;
  values: DuckDBValue[];
}

async function loadColumns(connection: DuckDBConnection, columns: MemoryColumn[], what: string): Promise<LoadedEntities> {
  if (columns.length === 0) throw new InputError('entities: no columns');
  const stored = columns.map((c, i) => ({ ...c, source: storedName(c.name, i) }));
  const lower = new Set<string>();
  for (const c of stored) {
    if (lower.has(c.name.toLowerCase())) throw new InputError(`entities: column '${c.name}' is given twice`);
    lower.add(c.name.toLowerCase());
  }
  await connection.run(`CREATE TABLE ${ENTITY_TABLE} (${stored.map((c) => `${sqlIdent(c.source)} ${c.type.toString()}`).join(', ')})`);
  const appender = await connection.createAppender(ENTITY_TABLE);
  const length = columns[0]!.values.length;
  const types = columns.map((c) => c.type);
  for (let start = 0; start < length; start += CHUNK) {
    const n = Math.min(CHUNK, length - start);
    const chunk = DuckDBDataChunk.create(types, n);
    columns.forEach((c, i) => chunk.setColumnValues(i, c.values.slice(start, start + n)));
    appender.appendDataChunk(chunk);
  }
  appender.closeSync();
  const loaded = await describe(connection, `SELECT * FROM ${ENTITY_TABLE}`);
  return {
    table: ENTITY_TABLE,
    columns: loaded.map((c, i) => ({ name: stored[i]!.name, source: c.name, type: c.type })),
    origin: `-- ${ENTITY_TABLE}: ${length} entity rows appended from ${what}`,
  };
}

const microsOf = (ms: number): bigint => BigInt(Math.round(ms * 1000));

function jsonColumns(input: Readonly<Record<string, readonly unknown[]>>, timestampColumn: string): MemoryColumn[] {
  const entries = Object.entries(input);
  let length: number | undefined;
  for (const [name, values] of entries) {
    if (!Array.isArray(values)) throw new InputError(`entities.${name}: expected an array of values`);
    if (length !== undefined && values.length !== length) {
      throw new InputError(`entities.${name}: has ${values.length} values, but ${entries[0]![0]} has ${length}`);
    }
    length = values.length;
  }
  return entries.map(([name, values]) => (name === timestampColumn ? jsonTimestamps(name, values) : jsonColumn(name, values)));
}

function jsonTimestamps(name: string, values: readonly unknown[]): MemoryColumn {
  const out = values.map((v, i) => {
    if (v === null || v === undefined) return null;
    if (typeof v !== 'string' && typeof v !== 'number' && !(v instanceof Date)) {
      throw new InputError(`entities.${name}[${i}]: expected an ISO-8601 instant or epoch milliseconds, got ${JSON.stringify(v)}`);
    }
    try {
      return new DuckDBTimestampTZValue(microsOf(parseInstant(v)));
    } catch (err) {
      throw new InputError(`entities.${name}[${i}]: ${errorMessage(err)}`);
    }
  });
  return { name, type: TIMESTAMPTZ, values: out };
}

type JsonKind = 'boolean' | 'number' | 'bigint' | 'string' | 'date' | 'json';
const kindOf = (v: unknown): JsonKind =>
  typeof v === 'boolean' ? 'boolean' : typeof v === 'number' ? 'number' : typeof v === 'bigint' ? 'bigint' : typeof v === 'string' ? 'string' : v instanceof Date ? 'date' : 'json';

/** A JSON column keeps its JSON type: integers BIGINT, other numbers DOUBLE, strings VARCHAR. */
function jsonColumn(name: string, values: readonly unknown[]): MemoryColumn {
  let kind: JsonKind | undefined;
  let integral = true;
  values.forEach((v, i) => {
    if (v === null || v === undefined) return;
    const k = kindOf(v);
    const numeric = (x: JsonKind) => x === 'number' || x === 'bigint';
    if (kind !== undefined && k !== kind && !(numeric(k) && numeric(kind))) {
      throw new InputError(`entities.${name}[${i}]: expected a ${kind} like the values before it, got ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)}`);
    }
    if (kind === undefined || k === 'number') kind = k;
    if (k === 'number' && !Number.isSafeInteger(v)) integral = false;
  });
  const nullOr = <T>(f: (v: any) => T) => values.map((v) => (v === null || v === undefined ? null : f(v)));
  switch (kind) {
    case 'boolean':
      return { name, type: BOOLEAN, values: nullOr((v: boolean) => v) };
    case 'number':
    case 'bigint':
      return integral ? { name, type: BIGINT, values: nullOr((v: number | bigint) => BigInt(v)) } : { name, type: DOUBLE, values: nullOr((v: number | bigint) => Number(v)) };
    case 'date':
      return { name, type: TIMESTAMPTZ, values: nullOr((v: Date) => new DuckDBTimestampTZValue(microsOf(v.getTime()))) };
    case 'json':
      return { name, type: VARCHAR, values: nullOr((v: unknown) => JSON.stringify(v)) };
    default:
      return { name, type: VARCHAR, values: nullOr((v: string) => v) };
  }
}

// Duck-typed, and apache-arrow loaded only when a table comes: the CLI never pays for it.
const isArrowTable = (v: unknown): v is arrow.Table =>
  typeof v === 'object' && v !== null && typeof (v as arrow.Table).getChildAt === 'function' && typeof (v as arrow.Table).schema === 'object';

/** Arrow columns keep their types where DuckDB has the same one. */
async function arrowColumns(table: arrow.Table): Promise<MemoryColumn[]> {
  const { DataType, Precision } = await import('apache-arrow');
  return table.schema.fields.map((field, index) => {
    const vector = table.getChildAt(index)!;
    const name = field.name;
    const read = <T>(f: (v: any) => T): (T | null)[] => {
      const out = new Array<T | null>(vector.length);
      for (let i = 0; i < vector.length; i++) {
        const v = vector.get(i);
        out[i] = v === null || v === undefined ? null : f(v);
      }
      return out;
    };
    const t = field.type as arrow.DataType;
    if (DataType.isBool(t)) return { name, type: BOOLEAN, values: read((v: boolean) => v) };
    if (DataType.isInt(t)) {
      return t.bitWidth === 64 || (t.bitWidth === 32 && !t.isSigned)
        ? { name, type: BIGINT, values: read((v: bigint | number) => BigInt(v)) }
        : { name, type: INTEGER, values: read((v: number) => v) };
    }
    if (DataType.isFloat(t)) {
      return t.precision === Precision.DOUBLE ? { name, type: DOUBLE, values: read((v: number) => v) } : { name, type: FLOAT, values: read((v: number) => v) };
    }
    if (DataType.isUtf8(t) || DataType.isLargeUtf8(t)) return { name, type: VARCHAR, values: read((v: string) => v) };
    if (DataType.isDictionary(t) && (DataType.isUtf8(t.dictionary) || DataType.isLargeUtf8(t.dictionary))) {
      return { name, type: VARCHAR, values: read((v: string) => v) };
    }
    if (DataType.isTimestamp(t)) {
      // Arrow JS reads timestamps as (possibly fractional) epoch milliseconds, whatever the unit.
      return t.timezone
        ? { name, type: TIMESTAMPTZ, values: read((v: number) => new DuckDBTimestampTZValue(microsOf(v))) }
        : { name, type: TIMESTAMP, values: read((v: number) => new DuckDBTimestampValue(microsOf(v))) };
    }
    if (DataType.isDate(t)) return { name, type: DATE, values: read((v: number | Date) => new DuckDBDateValue(Math.floor(Number(v) / 86_400_000))) };
    if (DataType.isBinary(t)) return { name, type: BLOB, values: read((v: Uint8Array) => new DuckDBBlobValue(v)) };
    throw new InputError(`entities.${name}: Arrow type ${String(t)} is not supported for entity rows (use numbers, strings, booleans, timestamps, dates or binary)`);
  });
}

// ---------------------------------------------------------------------------------------------
// The checks and the time range, in one scan.

/** The SQL instant of an entity timestamp column of a given DuckDB type: epoch ms for numbers, UTC for zone-less values. */
export function entityTimestampSql(column: EntityColumn): string {
  const c = sqlIdent(column.source);
  const type = column.type.toUpperCase();
  if (type === 'TIMESTAMP WITH TIME ZONE') return c;
  if (/^(TIMESTAMP(_S|_MS|_NS)?|DATE)$/.test(type)) return `CAST(${c} AS TIMESTAMPTZ)`;
  if (type === 'VARCHAR') return `TRY_CAST(${c} AS TIMESTAMPTZ)`;
  // Epoch ms past years 0000-9999 (1e20, garbage bytes read as numbers) become NULL, refused as not an instant.
  const inRange = (ms: string): string => `CASE WHEN ${ms} BETWEEN ${MIN_EPOCH_MS} AND ${MAX_EPOCH_MS} THEN make_timestamptz(CAST(${ms} AS BIGINT) * 1000) END`;
  if (/^(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?)$/.test(type)) return inRange(`TRY_CAST(${c} AS HUGEINT)`);
  if (/^(FLOAT|DOUBLE|DECIMAL.*)$/.test(type)) return inRange(`round(TRY_CAST(${c} AS DOUBLE))`);
  throw new InputError(`entities.${column.name}: a ${column.type} column is not a timestamp (expected timestamps, ISO-8601 strings or epoch milliseconds)`);
}

/** 0000-01-01 and 9999-12-31T23:59:59.999Z, in epoch ms: the instants Larder takes. */
const MIN_EPOCH_MS = -62_167_219_200_000;
const MAX_EPOCH_MS = 253_402_300_799_999;

const KEY_SQL: Record<KeyType, string> = { int32: 'INTEGER', int64: 'BIGINT', string: 'VARCHAR' };
export const keySqlType = (type: KeyType): string => KEY_SQL[type];

export interface EntityKeyCheck {
  column: EntityColumn;
  type: KeyType;
  /** For the error: the view that needs the key. */
  view: string;
}

/**
 * A key value that is not of the key's type. TRY_CAST alone would round a DOUBLE (1.5 -> 2) and
 * take a BOOLEAN as 1: an integer key must come back equal from the integer it casts to.
 */
function notAKey(k: EntityKeyCheck): string {
  const c = sqlIdent(k.column.source);
  const cast = `TRY_CAST(${c} AS ${keySqlType(k.type)})`;
  if (k.type === 'string') return `${cast} IS NULL`;
  const type = k.column.type.toUpperCase();
  if (type === 'BOOLEAN') return 'true';
  if (/^(FLOAT|DOUBLE|DECIMAL.*)$/.test(type)) return `(${cast} IS NULL OR CAST(${cast} AS DOUBLE) <> CAST(${c} AS DOUBLE))`;
  if (type === 'VARCHAR') return `(${cast} IS NULL OR TRY_CAST(${c} AS DOUBLE) IS DISTINCT FROM CAST(${cast} AS DOUBLE))`;
  return `${cast} IS NULL`;
}

export interface EntityRange {
  rows: number;
  /** Earliest and latest entity timestamp; null without rows. */
  min: EpochMs | null;
  max: EpochMs | null;
}

/**
 * Checks that every timestamp is a valid instant and every key casts to its entity's type, and
 * returns the row count and the time range; an error names the column, the row and the value.
 */
export async function checkEntityRows(connection: DuckDBConnection, loaded: LoadedEntities, timestamp: EntityColumn, keys: readonly EntityKeyCheck[]): Promise<EntityRange> {
  const tsSql = entityTimestampSql(timestamp);
  const keyChecks = keys.map(
    (k, i) => `min(rowid) FILTER (WHERE ${sqlIdent(k.column.source)} IS NOT NULL AND ${notAKey(k)}) AS k${i}`,
  );
  const sql = `SELECT count(*) AS n, epoch_ms(min(__t)) AS lo, epoch_ms(max(__t)) AS hi, min(rowid) FILTER (WHERE __t IS NULL) AS bad_t${keyChecks.map((k) => `, ${k}`).join('')}
FROM (SELECT rowid, *, ${tsSql} AS __t FROM ${loaded.table})`;
  const [row] = (await connection.runAndReadAll(sql)).getRowObjects();
  const rawValue = async (column: EntityColumn, at: bigint): Promise<string> => {
    const [r] = (await connection.runAndReadAll(`SELECT CAST(${sqlIdent(column.source)} AS VARCHAR) AS v FROM ${loaded.table} WHERE rowid = ${at}`)).getRowObjects();
    return r?.v === null || r?.v === undefined ? 'null' : `'${String(r.v)}'`;
  };
  if (row!.bad_t !== null) {
    const at = row!.bad_t as bigint;
    const value = await rawValue(timestamp, at);
    const what = value === 'null' ? 'is empty' : `${value} is not an instant (expected ISO-8601 like 2024-01-01T00:00:00Z or epoch milliseconds)`;
    throw new InputError(`entities.${timestamp.name}[${at}]: ${what}`);
  }
  for (const [i, k] of keys.entries()) {
    const at = row![`k${i}`];
    if (at === null || at === undefined) continue;
    throw new InputError(`entities.${k.column.name}[${at}]: ${await rawValue(k.column, at as bigint)} is not a ${k.type} (the key type of '${k.column.name}' in feature view '${k.view}')`);
  }
  const ms = (v: unknown) => (v === null || v === undefined ? null : asEpochMs(Number(v)));
  return { rows: Number(row!.n), min: ms(row!.lo), max: ms(row!.hi) };
}
