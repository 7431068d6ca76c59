/**
 * Entity keys: the canonical text of an entity's join key values, the same whichever way a
 * value arrives (`1001`, `'1001'` and `1001n` for an int64 key are one entity). It names the
 * online record of the entity: `driver_id=1001`, or with several keys sorted by name
 * `customer_id=7&driver_id=1001`. Key names are part of it so two entities whose ids happen to
 * be equal never share a record (nor its expiry). Characters that structure the text
 * (`%`, `&`, `=`) and Redis hash-tag braces (`{`, `}`) are percent-encoded in string values.
 */
import type { KeyType } from '../core/value-types.js';

/** An encoded entity key (see above); made by `encodeEntityKey` or `entityKeyFromCanonical`. */
export type EntityKey = string & { readonly __brand: 'EntityKey' };

export interface JoinKeySpec {
  name: string;
  type: KeyType;
}

const INT_RANGE: Record<'int32' | 'int64', [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
};

const INTEGER_TEXT = /^[+-]?\d+$/;

/** Why `value` is not a key of `type`, or undefined when it is one. The text is `expected int64, got "abc"`. */
export function keyValueProblem(type: KeyType, value: unknown): string | undefined {
  try {
    normaliseKeyValue(type, value);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

const shown = (value: unknown): string => {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value === undefined) return 'undefined';
  if (typeof value === 'object' && value !== null) return Array.isArray(value) ? 'an array' : 'an object';
  return String(value);
};

const notAKey = (type: KeyType, value: unknown): never => {
  throw new Error(`expected ${type}, got ${shown(value)}`);
};

/**
 * The canonical text of one key value: decimal digits for integer keys (no sign on zero, no
 * leading zeros), the string itself for string keys. Throws `expected <type>, got <value>`.
 */
export function normaliseKeyValue(type: KeyType, value: unknown): string {
  if (type === 'string') return typeof value === 'string' ? value : notAKey(type, value);
  // The common case, a JSON number: its decimal text is already canonical (String(-0) is '0').
  if (typeof value === 'number' && Number.isSafeInteger(value)) {
    if (type === 'int32' && (value < -2_147_483_648 || value > 2_147_483_647)) notAKey(type, value);
    return String(value);
  }
  let n: bigint;
  if (typeof value === 'bigint') n = value;
  else if (typeof value === 'number') {
    // Beyond 2^53 a JSON number has lost digits already: such ids must come as strings.
    if (!Number.isSafeInteger(value)) notAKey(type, value);
    n = BigInt(value);
  } else if (typeof value === 'string' && INTEGER_TEXT.test(value.trim())) n = BigInt(value.trim());
  else return notAKey(type, value);
  const [lo, hi] = INT_RANGE[type];
  if (n < lo || n > hi) notAKey(type, value);
  return n.toString();
}

/** The key value as JSON answers echo it: a number for integer keys (exact up to 2^53), else the string. */
export function keyValueForJson(type: KeyType, value: unknown): string | number {
  const text = normaliseKeyValue(type, value);
  return type === 'string' ? text : Number(text);
}

const escapeText = (text: string): string => text.replace(/[%{}&=]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);

/** Join keys in the order their values appear in an entity key: by name. */
export const canonicalKeyOrder = (keys: readonly JoinKeySpec[]): JoinKeySpec[] => [...keys].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

/** Encodes values already normalised (`normaliseKeyValue`, or typed columns printed with String()), given in `canonicalKeyOrder(keys)` order. */
export function entityKeyFromCanonical(ordered: readonly JoinKeySpec[], texts: readonly string[]): EntityKey {
  let out = '';
  for (let i = 0; i < ordered.length; i++) {
    if (i > 0) out += '&';
    const t = texts[i]!;
    out += `${ordered[i]!.name}=${ordered[i]!.type === 'string' ? escapeText(t) : t}`;
  }
  return out as EntityKey;
}

/** The entity key of one entity: `values` holds each join key's value by name. Throws like `normaliseKeyValue`, prefixed by the key name. */
export function encodeEntityKey(keys: readonly JoinKeySpec[], values: Readonly<Record<string, unknown>>): EntityKey {
  const ordered = canonicalKeyOrder(keys);
  return entityKeyFromCanonical(
    ordered,
    ordered.map((k) => {
      try {
        return normaliseKeyValue(k.type, values[k.name]);
      } catch (err) {
        throw new Error(`${k.name}: ${(err as Error).message}`);
      }
    }),
  );
}
