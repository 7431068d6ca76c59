/** Feature and key value types (CONTRACT s.2), and their mapping to DuckDB/Parquet. */
export const SCALAR_TYPES = ['int32', 'int64', 'float32', 'float64', 'bool', 'string', 'timestamp', 'bytes'] as const;
export type ScalarType = (typeof SCALAR_TYPES)[number];
export type DenseVectorType = 'float32[]' | 'float64[]';
export type SparseType = `sparse(${number})`;
export type ValueType = ScalarType | DenseVectorType | SparseType;

/** Types a join key may take. */
export const KEY_TYPES = ['int32', 'int64', 'string'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

/** A sparse n-wide vector: indices ascending, one value per index. */
export interface SparseVector {
  size: number;
  indices: number[];
  values: number[];
}

/**
 * The widest sparse vector: its indices are int32 (CONTRACT s.2), so at most 2^31 of them.
 * `sparse(1e400)` used to be taken as a vector of width Infinity, and `sparse(1e20)` as one whose
 * indices no int32 holds.
 */
export const MAX_SPARSE_SIZE = 2 ** 31;

/** `sparse(62000)`: the type of an n-wide sparse vector feature. */
export function sparse<N extends number>(size: N): `sparse(${N})` {
  if (!Number.isInteger(size) || size <= 0 || size > MAX_SPARSE_SIZE) throw new Error(`sparse(n): n must be a positive integer up to 2^31, got ${String(size)}`);
  return `sparse(${size})`;
}

export type ParsedType =
  | { kind: 'scalar'; type: ScalarType }
  | { kind: 'dense'; element: 'float32' | 'float64' }
  | { kind: 'sparse'; size: number };

export function parseValueType(type: string): ParsedType {
  if ((SCALAR_TYPES as readonly string[]).includes(type)) return { kind: 'scalar', type: type as ScalarType };
  if (type === 'float32[]' || type === 'float64[]') return { kind: 'dense', element: type.slice(0, -2) as 'float32' | 'float64' };
  // Written as sparse() writes it: no leading zeros ('sparse(007)' would be a different type text
  // for the same type in the registry), and a width int32 indices can address.
  const m = typeof type === 'string' ? /^sparse\(([1-9]\d{0,9})\)$/.exec(type) : null;
  if (m && Number(m[1]) <= MAX_SPARSE_SIZE) return { kind: 'sparse', size: Number(m[1]) };
  const shown = typeof type === 'string' ? `'${type.length > 40 ? `${type.slice(0, 40)}...` : type}'` : String(type);
  throw new Error(`unknown value type ${shown} (expected one of ${SCALAR_TYPES.join(', ')}, float32[], float64[], sparse(n) with n from 1 to 2^31)`);
}

export const isValueType = (type: unknown): type is ValueType => {
  if (typeof type !== 'string') return false;
  try {
    parseValueType(type);
    return true;
  } catch {
    return false;
  }
};

const SCALAR_SQL: Record<ScalarType, string> = {
  int32: 'INTEGER',
  int64: 'BIGINT',
  float32: 'FLOAT',
  float64: 'DOUBLE',
  bool: 'BOOLEAN',
  string: 'VARCHAR',
  timestamp: 'TIMESTAMPTZ',
  bytes: 'BLOB',
};

/** The DuckDB column type that stores a value type (and so its Parquet type). */
export function duckdbType(type: ValueType): string {
  const parsed = parseValueType(type);
  switch (parsed.kind) {
    case 'scalar':
      return SCALAR_SQL[parsed.type];
    case 'dense':
      return parsed.element === 'float32' ? 'FLOAT[]' : 'DOUBLE[]';
    case 'sparse':
      return 'STRUCT(indices INTEGER[], "values" FLOAT[])';
  }
}

/** The TypeScript value of a feature of type T, as the SDK and library return it. */
export type TsValue<T extends ValueType> = T extends 'int32' | 'int64' | 'float32' | 'float64'
  ? number
  : T extends 'bool'
    ? boolean
    : T extends 'string'
      ? string
      : T extends 'timestamp'
        ? string
        : T extends 'bytes'
          ? Uint8Array
          : T extends `sparse(${number})`
            ? SparseVector
            : number[];
