/**
 * DuckDB results as apache-arrow Tables, keeping the types: BIGINT -> Int64, DOUBLE -> Float64,
 * TIMESTAMPTZ -> Timestamp(µs, UTC), lists -> List, a sparse vector -> Struct<indices:
 * List<Int32>, values: List<Float32>>. Fixed-width columns are copied into typed arrays
 * directly; strings and nested values go through Arrow's builders.
 */
import * as arrow from 'apache-arrow';
import {
  DuckDBTypeId,
  type DuckDBListType,
  type DuckDBArrayType,
  type DuckDBResultReader,
  type DuckDBStructType,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';

/** The Arrow type of a DuckDB type; types Arrow JS lacks (intervals, maps, unions...) become text. */
export function arrowTypeOf(type: DuckDBType, nested = false): arrow.DataType {
  switch (type.typeId) {
    case DuckDBTypeId.BOOLEAN:
      return new arrow.Bool();
    case DuckDBTypeId.TINYINT:
      return new arrow.Int8();
    case DuckDBTypeId.SMALLINT:
      return new arrow.Int16();
    case DuckDBTypeId.INTEGER:
      return new arrow.Int32();
    case DuckDBTypeId.BIGINT:
      return new arrow.Int64();
    case DuckDBTypeId.UTINYINT:
      return new arrow.Uint8();
    case DuckDBTypeId.USMALLINT:
      return new arrow.Uint16();
    case DuckDBTypeId.UINTEGER:
      return new arrow.Uint32();
    case DuckDBTypeId.UBIGINT:
      return new arrow.Uint64();
    case DuckDBTypeId.FLOAT:
      return new arrow.Float32();
    case DuckDBTypeId.DOUBLE:
    case DuckDBTypeId.DECIMAL:
    case DuckDBTypeId.HUGEINT:
    case DuckDBTypeId.UHUGEINT:
      return new arrow.Float64();
    case DuckDBTypeId.DATE:
      return new arrow.DateDay();
    case DuckDBTypeId.TIMESTAMP_TZ:
      // Arrow JS builders take epoch milliseconds; nested timestamps use that unit, top-level ones keep µs.
      return nested ? new arrow.TimestampMillisecond('UTC') : new arrow.TimestampMicrosecond('UTC');
    case DuckDBTypeId.TIMESTAMP:
    case DuckDBTypeId.TIMESTAMP_S:
    case DuckDBTypeId.TIMESTAMP_MS:
    case DuckDBTypeId.TIMESTAMP_NS:
      return nested ? new arrow.TimestampMillisecond() : new arrow.TimestampMicrosecond();
    case DuckDBTypeId.BLOB:
      return new arrow.Binary();
    case DuckDBTypeId.LIST:
    case DuckDBTypeId.ARRAY: {
      const child = arrowTypeOf((type as DuckDBListType | DuckDBArrayType).valueType, true);
      return new arrow.List(new arrow.Field('item', child, true));
    }
    case DuckDBTypeId.STRUCT: {
      const s = type as DuckDBStructType;
      return new arrow.Struct(s.entryNames.map((name, i) => new arrow.Field(name, arrowTypeOf(s.entryTypes[i]!, true), true)));
    }
    default:
      return new arrow.Utf8();
  }
}

/** A DuckDB value as the JS value an Arrow builder of `arrowTypeOf(type, true)` takes. */
function builderValue(value: DuckDBValue, type: DuckDBType): unknown {
  if (value === null) return null;
  switch (type.typeId) {
    case DuckDBTypeId.DECIMAL:
    case DuckDBTypeId.HUGEINT:
    case DuckDBTypeId.UHUGEINT:
      return typeof value === 'object' && 'toDouble' in value ? value.toDouble() : Number(value);
    case DuckDBTypeId.DATE:
      return (value as { days: number }).days * 86_400_000;
    case DuckDBTypeId.TIMESTAMP_TZ:
    case DuckDBTypeId.TIMESTAMP:
      return Number((value as { micros: bigint }).micros / 1000n);
    case DuckDBTypeId.TIMESTAMP_S:
      return Number((value as { seconds: bigint }).seconds) * 1000;
    case DuckDBTypeId.TIMESTAMP_MS:
      return Number((value as { millis: bigint }).millis);
    case DuckDBTypeId.TIMESTAMP_NS:
      return Number((value as { nanos: bigint }).nanos / 1_000_000n);
    case DuckDBTypeId.BLOB:
      return (value as { bytes: Uint8Array }).bytes;
    case DuckDBTypeId.LIST:
    case DuckDBTypeId.ARRAY: {
      const child = (type as DuckDBListType | DuckDBArrayType).valueType;
      return (value as { items: readonly DuckDBValue[] }).items.map((v) => builderValue(v, child));
    }
    case DuckDBTypeId.STRUCT: {
      const s = type as DuckDBStructType;
      const entries = (value as { entries: Readonly<Record<string, DuckDBValue>> }).entries;
      return Object.fromEntries(s.entryNames.map((name, i) => [name, builderValue(entries[name] ?? null, s.entryTypes[i]!)]));
    }
    default:
      return typeof value === 'object' ? String(value) : value;
  }
}

/** Top-level timestamps in µs, whatever DuckDB's unit. */
function microsOf(value: DuckDBValue, type: DuckDBType): bigint {
  switch (type.typeId) {
    case DuckDBTypeId.TIMESTAMP_S:
      return (value as { seconds: bigint }).seconds * 1_000_000n;
    case DuckDBTypeId.TIMESTAMP_MS:
      return (value as { millis: bigint }).millis * 1000n;
    case DuckDBTypeId.TIMESTAMP_NS:
      return (value as { nanos: bigint }).nanos / 1000n;
    default:
      return (value as { micros: bigint }).micros;
  }
}

function nullBitmap(values: readonly DuckDBValue[]): { bitmap: Uint8Array; nullCount: number } {
  const bitmap = new Uint8Array(Math.ceil(values.length / 8));
  let nullCount = 0;
  values.forEach((v, i) => {
    if (v === null) nullCount++;
    else bitmap[i >> 3]! |= 1 << (i & 7);
  });
  return { bitmap, nullCount };
}

const FIXED: Partial<Record<DuckDBTypeId, (n: number) => Float64Array | Float32Array | Int32Array | BigInt64Array>> = {
  [DuckDBTypeId.DOUBLE]: (n) => new Float64Array(n),
  [DuckDBTypeId.FLOAT]: (n) => new Float32Array(n),
  [DuckDBTypeId.INTEGER]: (n) => new Int32Array(n),
  [DuckDBTypeId.BIGINT]: (n) => new BigInt64Array(n),
};

/** One column as an Arrow vector. */
export function arrowVector(values: readonly DuckDBValue[], type: DuckDBType): arrow.Vector {
  const arrowType = arrowTypeOf(type);
  const fixed = FIXED[type.typeId];
  const timestamp = arrow.DataType.isTimestamp(arrowType);
  if (fixed || timestamp) {
    const data = fixed ? fixed(values.length) : new BigInt64Array(values.length);
    values.forEach((v, i) => {
      if (v !== null) data[i] = timestamp ? microsOf(v, type) : (v as never);
    });
    const { bitmap, nullCount } = nullBitmap(values);
    return arrow.makeVector(arrow.makeData({ type: arrowType as arrow.Float64, length: values.length, nullCount, nullBitmap: nullCount ? bitmap : null, data: data as never }));
  }
  const builder = arrow.makeBuilder({ type: arrowType, nullValues: [null, undefined] });
  for (const v of values) builder.append(builderValue(v, type) as never);
  return builder.finish().toVector();
}

/** A whole (read) DuckDB result as an Arrow table; every field is nullable. */
export function toArrowTable(reader: DuckDBResultReader): arrow.Table {
  const names = reader.columnNames();
  const types = reader.columnTypes();
  const columns = reader.getColumns();
  // A result of no rows has no column chunks: each column is then empty.
  const vectors = names.map((_, i) => arrowVector(columns[i] ?? [], types[i]!));
  const fields = names.map((name, i) => new arrow.Field(name, vectors[i]!.type, true));
  const length = reader.currentRowCount;
  const struct = arrow.makeData({ type: new arrow.Struct(fields), length, nullCount: 0, children: vectors.map((v) => v.data[0]!) });
  return new arrow.Table(new arrow.RecordBatch(new arrow.Schema(fields), struct));
}
