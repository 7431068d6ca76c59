/**
 * The rows of a push, checked whole before anything is written: every column of the push
 * source's schema, its timestamp field (and created timestamp field, optional) and nothing else;
 * columns of equal length; each value of its column's type. A mistake is an InputError naming
 * the value, `df.amplitude[3]: expected float32, got "loud"`.
 *
 * Values come out as backfill hands source rows to transforms: plain JS numbers (bigint beyond
 * 2^53), strings, booleans, `Date` for timestamps, `Uint8Array` for bytes (base64 in JSON),
 * arrays for dense vectors and `{ size, indices, values }` for sparse ones.
 */
import { InputError } from '../core/errors.js';
import { parseInstant } from '../core/time.js';
import { parseValueType, type ValueType } from '../core/value-types.js';
import type { PushSource } from '../definitions/types.js';
import { shown } from './schemas.js';

export interface PushColumns {
  rows: number;
  /** Every column given, its values converted (see above); null where the value is null. */
  columns: ReadonlyMap<string, readonly unknown[]>;
  /** Each row's event time. */
  eventMs: readonly number[];
  /** Each row's created time, when the source has a created timestamp field and it was given (null in places). */
  createdMs: readonly (number | null)[] | undefined;
}

type Parse = (value: unknown) => unknown;

const wrong = (expected: string, value: unknown): never => {
  throw new Error(`expected ${expected}, got ${shown(value)}`);
};

const INTEGER_TEXT = /^[+-]?\d+$/;

function integer(bits: 32 | 64): Parse {
  const expected = `int${bits}`;
  return (v) => {
    let n: bigint;
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v)) return wrong(expected, v);
      if (bits === 32 && (v > 2147483647 || v < -2147483648)) return wrong(expected, v);
      return v;
    }
    if (typeof v === 'bigint') n = v;
    else if (typeof v === 'string' && INTEGER_TEXT.test(v.trim())) n = BigInt(v.trim());
    else return wrong(expected, v);
    const limit = bits === 32 ? 2n ** 31n : 2n ** 63n;
    if (n < -limit || n >= limit) return wrong(expected, v);
    return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
  };
}

const instant: Parse = (v) => {
  if (typeof v !== 'string' && typeof v !== 'number' && !(v instanceof Date)) return wrong('an ISO-8601 instant or epoch milliseconds', v);
  try {
    return new Date(parseInstant(v));
  } catch (err) {
    throw new Error((err as Error).message);
  }
};

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const bytes: Parse = (v) => {
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string' && BASE64.test(v) && v.length % 4 === 0) return new Uint8Array(Buffer.from(v, 'base64'));
  return wrong('bytes as a base64 string', v);
};

function numbers(v: unknown, expected: string): number[] {
  const list = Array.isArray(v) ? v : ArrayBuffer.isView(v) && !(v instanceof DataView) ? Array.from(v as unknown as ArrayLike<number>) : wrong(expected, v);
  for (let i = 0; i < list.length; i++) {
    const x = list[i];
    if (x !== null && typeof x !== 'number') throw new Error(`expected ${expected}, got ${shown(x)} at position ${i}`);
  }
  return list as number[];
}

function sparseVector(size: number): Parse {
  const expected = `a sparse vector {"size": ${size}, "indices": [...], "values": [...]}`;
  return (v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return wrong(expected, v);
    const s = v as { size?: unknown; indices?: unknown; values?: unknown };
    if (s.size !== undefined && s.size !== null && s.size !== size) throw new Error(`expected size ${size}, got ${shown(s.size)}`);
    const indices = numbers(s.indices, 'indices: an array of integers');
    const values = numbers(s.values, 'values: an array of numbers');
    if (indices.length !== values.length) throw new Error(`${indices.length} indices but ${values.length} values`);
    let previous = -1;
    for (let i = 0; i < indices.length; i++) {
      const index = indices[i]!;
      if (!Number.isInteger(index) || index <= previous || index >= size) throw new Error(`indices[${i}]: expected ascending integers below ${size}, got ${shown(index)}`);
      previous = index;
    }
    return { size, indices, values };
  };
}

/** How a pushed value of a type is read; throws the reason (without the field) when it is not one. */
export function pushValueParser(type: ValueType): Parse {
  const parsed = parseValueType(type);
  if (parsed.kind === 'dense') return (v) => numbers(v, `${type}: an array of numbers`);
  if (parsed.kind === 'sparse') return sparseVector(parsed.size);
  switch (parsed.type) {
    case 'int32':
      return integer(32);
    case 'int64':
      return integer(64);
    case 'float32':
    case 'float64':
      return (v) => (typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : wrong(type, v));
    case 'bool':
      return (v) => (typeof v === 'boolean' ? v : wrong('bool', v));
    case 'string':
      return (v) => (typeof v === 'string' ? v : wrong('string', v));
    case 'timestamp':
      return instant;
    case 'bytes':
      return bytes;
  }
}

/** Checks and converts the columns of a push to `source`; every mistake names `df.<column>[<row>]`. */
export function readPushColumns(source: PushSource, df: Readonly<Record<string, readonly unknown[]>>): PushColumns {
  const expected = new Map<string, ValueType>(Object.entries(source.schema));
  if (!expected.has(source.timestampField)) expected.set(source.timestampField, 'timestamp');
  const created = source.createdTimestampField;
  const allowed = new Set([...expected.keys(), ...(created ? [created] : [])]);
  const listed = [...allowed].join(', ');

  for (const name of Object.keys(df)) {
    if (!allowed.has(name)) throw new InputError(`df.${name}: not a column of push source '${source.name}' (it has ${listed})`);
  }
  for (const name of expected.keys()) {
    if (!(name in df)) throw new InputError(`df.${name}: missing; push source '${source.name}' needs every one of ${listed}${created ? ` (${created} may be left out)` : ''}`);
  }
  let rows: number | undefined;
  let first = '';
  for (const [name, values] of Object.entries(df)) {
    if (rows === undefined) {
      rows = values.length;
      first = name;
    } else if (values.length !== rows) {
      throw new InputError(`df.${name}: ${values.length} values, but df.${first} has ${rows}`);
    }
  }
  const n = rows ?? 0;

  const columns = new Map<string, unknown[]>();
  for (const [name, values] of Object.entries(df)) {
    const type = name === created ? 'timestamp' : expected.get(name)!;
    const parse = pushValueParser(type);
    const out = new Array<unknown>(n);
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (v === null || v === undefined) {
        if (name === source.timestampField) throw new InputError(`df.${name}[${i}]: missing; every row needs its event time`);
        out[i] = null;
        continue;
      }
      try {
        out[i] = parse(v);
      } catch (err) {
        throw new InputError(`df.${name}[${i}]: ${(err as Error).message}`);
      }
    }
    columns.set(name, out);
  }
  const eventMs = (columns.get(source.timestampField) as Date[]).map((d) => d.getTime());
  const createdColumn = created ? (columns.get(created) as (Date | null)[] | undefined) : undefined;
  return { rows: n, columns, eventMs, createdMs: createdColumn?.map((d) => (d === null ? null : d.getTime())) };
}
