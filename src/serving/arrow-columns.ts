/**
 * Arrow IPC bodies and answers: an Arrow stream in (push rows, entity rows), an Arrow table out
 * as JSON columns (`/get-historical-features` with `Accept: application/json`).
 */
import * as arrow from 'apache-arrow';
import { InputError } from '../core/errors.js';
import { formatInstant } from '../core/time.js';
import { parseValueType, type ValueType } from '../core/value-types.js';
import type { JsonValue } from '../online/online-features.js';

/** An IPC stream (or file) body as a table; 400 when it is not one. */
export function readArrowBody(body: Buffer): arrow.Table {
  if (body.length === 0) throw new InputError('body: empty; expected an Arrow IPC stream');
  let table: arrow.Table;
  try {
    table = arrow.tableFromIPC(body);
  } catch (err) {
    throw new InputError(`body: not an Arrow IPC stream (${(err as Error).message.split('\n')[0]})`);
  }
  // Bytes that hold no IPC message read as a table without columns rather than failing.
  if (table.schema.fields.length === 0) throw new InputError('body: not an Arrow IPC stream (no schema message in it)');
  return table;
}

const safe = (v: bigint): number | bigint => (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);

/** An Arrow value as a plain JS value: lists as arrays, structs as objects, timestamps as epoch ms, int64 as numbers when exact. */
function plain(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === 'bigint') return safe(value);
  if (value instanceof arrow.Vector) return Array.from(value as Iterable<unknown>, plain);
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    const entries = (value as { toJSON(): Record<string, unknown> }).toJSON();
    return Object.fromEntries(Object.entries(entries).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

/** The columns of a table as plain JS arrays (push rows from an Arrow body). */
export function arrowColumns(table: arrow.Table): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  table.schema.fields.forEach((field, i) => {
    if (field.name in out) throw new InputError(`body: column '${field.name}' appears twice in the Arrow stream`);
    const vector = table.getChildAt(i)!;
    const values = new Array<unknown>(vector.length);
    for (let r = 0; r < vector.length; r++) values[r] = plain(vector.get(r));
    out[field.name] = values;
  });
  return out;
}

/**
 * A table as JSON columns `{ col: [...] }`: int64 as numbers (decimal strings beyond 2^53),
 * timestamps as ISO-8601, binary as base64, lists as arrays, sparse vectors as
 * `{ size, indices, values }` (`sparseSizes` gives the size by column name).
 */
export function jsonColumns(table: arrow.Table, types: ReadonlyMap<string, ValueType>): Record<string, JsonValue[]> {
  const out: Record<string, JsonValue[]> = {};
  table.schema.fields.forEach((field, i) => {
    const vector = table.getChildAt(i)!;
    const convert = jsonConverter(field.type as arrow.DataType, types.get(field.name));
    const values = new Array<JsonValue>(vector.length);
    for (let r = 0; r < vector.length; r++) {
      const v = vector.get(r);
      values[r] = v === null || v === undefined ? null : convert(v);
    }
    out[field.name] = values;
  });
  return out;
}

function jsonConverter(type: arrow.DataType, declared: ValueType | undefined): (value: unknown) => JsonValue {
  if (arrow.DataType.isTimestamp(type) || arrow.DataType.isDate(type)) return (v) => formatInstant(Number(v));
  if (arrow.DataType.isBinary(type) || arrow.DataType.isLargeBinary(type)) return (v) => Buffer.from(v as Uint8Array).toString('base64');
  if (arrow.DataType.isFloat(type)) return (v) => (Number.isFinite(v) ? (v as number) : null);
  const sparse = declared ? parseValueType(declared) : undefined;
  if (sparse?.kind === 'sparse') {
    return (v) => {
      const s = plain(v) as { indices: number[] | null; values: number[] | null };
      return { size: sparse.size, indices: s.indices ?? [], values: s.values ?? [] };
    };
  }
  return (v) => toJson(plain(v));
}

function toJson(v: unknown): JsonValue {
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return Number.isFinite(v) ? v : null;
  if (Array.isArray(v)) return v.map(toJson);
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJson(x)]));
  return v as JsonValue;
}
