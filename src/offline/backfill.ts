/**
 * `larder backfill` (CONTRACT s.4, s.7): feature rows with event time in [start, end) from each
 * view's batch source into the Parquet offline store, replacing what the range held before.
 *
 * Per view, the rows are built in DuckDB in one of three ways: a SQL projection (plain views), the
 * view's row transform run in JS chunk by chunk (transform views), or the windowed aggregations
 * evaluated at each event's own time (aggregation views). Rows without event time or join key are
 * dropped and counted; plain and transform views keep one row per (keys, event time), the one with
 * the greatest created timestamp. partition-writer.ts then swaps the partitions in atomically.
 */
import { rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DuckDBDataChunk,
  DuckDBTimestampTZValue,
  JSDuckDBValueConverter,
  blobValue,
  listValue,
  structValue,
  timestampTZValue,
  type DuckDBConnection,
  type DuckDBValue,
} from '@duckdb/node-api';
import { DefinitionError, InputError, errorMessage } from '../core/errors.js';
import { formatInstant, parseInstant, type EpochMs } from '../core/time.js';
import { duckdbType, parseValueType, type ValueType } from '../core/value-types.js';
import { joinKeysOf } from '../definitions/loader.js';
import type { BatchSource, Definitions, FeatureView, SourceRow } from '../definitions/types.js';
import { aggregationAtEventsSql } from './aggregation-sql.js';
import { viewsNamed } from '../definitions/select-views.js';
import { openDuckDB, sqlIdent, sqlString } from './duckdb.js';
import { CREATED_TIMESTAMP, EVENT_TIMESTAMP, viewDir } from './layout.js';
import { replaceRange, type LayoutColumn } from './partition-writer.js';
import { readSourceRange, type SourceColumn, type SourceRows } from './sources.js';

export interface BackfillOptions {
  defs: Definitions;
  offlineDir: string;
  start: EpochMs;
  end: EpochMs;
  /** Views to backfill; default every view that has a batch source. */
  views?: readonly string[];
  /** Called as source rows are processed: the view and the number of its source rows so far. */
  onProgress?: (view: string, rows: number) => void;
  /** Called as each view finishes (or is skipped). */
  onViewDone?: (result: ViewBackfill) => void;
  /** Rows per PostgreSQL fetch (default 10,000). */
  batchSize?: number;
}

export interface ViewBackfill {
  name: string;
  /** Rows written with event time in [start, end). */
  rows: number;
  /** Partitions holding rows of the view in the range after the backfill. */
  partitions: number;
  /** Source rows without event time or with a null join key. */
  droppedRows: number;
  seconds: number;
  /** Why nothing was done (a push source without batchSource), when not asked for by name. */
  skipped?: string;
}

export interface BackfillResult {
  views: ViewBackfill[];
}

const TIMESTAMPTZ = 'TIMESTAMPTZ';

/** The batch source backfill reads for a view: its own, or its push source's `batchSource`. */
export const backfillSourceOf = (view: FeatureView): BatchSource | undefined => (view.source.type === 'push' ? view.source.batchSource : view.source);

/** Input columns an aggregation view stores beside its features (datasets aggregate them at their own times). */
export const aggregationInputs = (view: FeatureView): string[] => [...new Set((view.aggregatedFeatures ?? []).map((f) => f.column))];

/** The columns of a view's offline files, in order (CONTRACT s.7). */
export function offlineColumns(view: FeatureView): LayoutColumn[] {
  const keys = view.entities.flatMap((e) => e.joinKeys.map((k) => ({ name: k, type: duckdbType(e.keyTypes[k]!) })));
  const features = Object.entries(view.schema).map(([name, type]) => ({ name, type: duckdbType(type) }));
  const inputs = aggregationInputs(view).map((name) => ({ name, type: 'DOUBLE' }));
  return [...keys, { name: EVENT_TIMESTAMP, type: TIMESTAMPTZ }, { name: CREATED_TIMESTAMP, type: TIMESTAMPTZ }, ...features, ...inputs];
}

export async function backfill(options: BackfillOptions): Promise<BackfillResult> {
  const { defs, start, end } = options;
  if (!(start < end)) throw new InputError(`backfill: start (${formatInstant(start)}) must be before end (${formatInstant(end)})`);
  const views = selectViews(defs, options.views);
  // DuckDB creates its spill folder only when it needs one, so a killed run leaves nothing behind.
  const spill = join(tmpdir(), `larder-spill-${process.pid}-${randomBytes(4).toString('hex')}`);
  const db = await openDuckDB({ tempDirectory: spill });
  try {
    const results: ViewBackfill[] = [];
    for (const { view, skipped } of views) {
      let result: ViewBackfill;
      if (skipped) {
        result = { name: view.name, rows: 0, partitions: 0, droppedRows: 0, seconds: 0, skipped };
      } else {
        const began = performance.now();
        const done = await backfillView({ ...options, connection: db.connection, second: () => db.instance.connect() }, view);
        result = { name: view.name, ...done, seconds: (performance.now() - began) / 1000 };
      }
      results.push(result);
      options.onViewDone?.(result);
    }
    return { views: results };
  } finally {
    db.close();
    await rm(spill, { recursive: true, force: true });
  }
}

/** The views asked for, in definition order; a push view without batch source is an error when named, skipped otherwise. */
function selectViews(defs: Definitions, names: readonly string[] | undefined): { view: FeatureView; skipped?: string }[] {
  const noSource = (view: FeatureView): string => `push source '${view.source.name}' has no batchSource to backfill from`;
  if (!names) {
    return [...defs.views.values()].map((view) => (backfillSourceOf(view) ? { view } : { view, skipped: noSource(view) }));
  }
  return viewsNamed(defs, names).map((view) => {
    if (!backfillSourceOf(view)) throw new InputError(`featureView '${view.name}': ${noSource(view)}`);
    return { view };
  });
}

interface Context extends BackfillOptions {
  connection: DuckDBConnection;
  /** Another connection to the same database, for appending while the first one streams. */
  second: () => Promise<DuckDBConnection>;
}

let tableCounter = 0;
const tempName = (view: string, what: string): string => `__${what}_${view}_${++tableCounter}`;

async function backfillView(ctx: Context, view: FeatureView): Promise<Omit<ViewBackfill, 'name' | 'seconds'>> {
  const source = backfillSourceOf(view)!;
  const history = Math.max(0, ...(view.aggregatedFeatures ?? []).map((f) => f.windowMs + f.tileMs));
  ctx.onProgress?.(view.name, 0);
  const tables: string[] = [];
  let src: SourceRows | undefined;
  try {
    src = await readSourceRange(ctx.connection, source, {
      repoDir: ctx.defs.repoDir,
      start: (ctx.start - history) as EpochMs,
      end: ctx.end,
      ...(ctx.batchSize !== undefined && { batchSize: ctx.batchSize }),
      onRows: (rows) => ctx.onProgress?.(view.name, rows),
    });
    checkSourceColumns(view, source, src.columns);
    const built = view.aggregatedFeatures
      ? await buildAggregated(ctx, view, src, tables)
      : await keepLatest(ctx, view, view.transform ? await buildTransformed(ctx, view, src, tables) : await buildProjected(ctx, view, src, tables));
    const { written } = await replaceRange({
      connection: ctx.connection,
      viewDir: viewDir(ctx.offlineDir, view.name),
      rows: built.table,
      columns: offlineColumns(view),
      sortKeys: joinKeysOf(view),
      start: ctx.start,
      end: ctx.end,
    });
    return { rows: built.rows, partitions: written, droppedRows: built.dropped };
  } catch (err) {
    if (err instanceof DefinitionError || err instanceof InputError) throw err;
    throw new InputError(`featureView '${view.name}': ${errorMessage(err).split('\n')[0]}`);
  } finally {
    for (const t of tables) await ctx.connection.run(`DROP TABLE IF EXISTS ${sqlIdent(t)}`);
    await src?.release();
  }
}

function checkSourceColumns(view: FeatureView, source: BatchSource, columns: SourceColumn[]): void {
  const names = new Set(columns.map((c) => c.name));
  const missing = (what: string, column: string): never => {
    throw new DefinitionError(`featureView '${view.name}': ${what} '${column}' is not a column of source '${source.name}' (has ${[...names].join(', ')})`);
  };
  for (const key of joinKeysOf(view)) if (!names.has(key)) missing('join key', key);
  if (view.aggregatedFeatures) {
    for (const column of aggregationInputs(view)) {
      if (!names.has(column)) missing('aggregation column', column);
      if (column in view.schema || joinKeysOf(view).includes(column)) {
        throw new DefinitionError(`featureView '${view.name}': aggregation column '${column}' is named like a feature or join key; the offline files store both`);
      }
    }
  } else if (!view.transform) {
    for (const feature of Object.keys(view.schema)) if (!names.has(feature)) missing('feature', feature);
  }
}

/** The layout's leading columns from a source relation: join keys cast to their types, event and created time. */
function keyAndTimeSql(view: FeatureView, source: BatchSource, alias: (name: string, index: number) => string = (name) => name): string[] {
  const keys = view.entities.flatMap((e) => e.joinKeys.map((k) => ({ sql: `CAST(${sqlIdent(k)} AS ${duckdbType(e.keyTypes[k]!)})`, name: k })));
  const created = source.createdTimestampField ? `CAST(${sqlIdent(source.createdTimestampField)} AS TIMESTAMPTZ)` : 'CAST(NULL AS TIMESTAMPTZ)';
  return [...keys, { sql: `CAST(${sqlIdent(source.timestampField)} AS TIMESTAMPTZ)`, name: EVENT_TIMESTAMP }, { sql: created, name: CREATED_TIMESTAMP }].map(
    (c, i) => `${c.sql} AS ${sqlIdent(alias(c.name, i))}`,
  );
}

/** A feature read straight from its source column, cast to its type. */
function featureSql(name: string, type: ValueType, sourceType: string | undefined): string {
  const col = sqlIdent(name);
  if (parseValueType(type).kind === 'sparse' && sourceType?.startsWith('STRUCT')) {
    // A stored sparse vector may carry its size too; the layout keeps indices and values.
    return `struct_pack(indices := CAST(${col}.indices AS INTEGER[]), "values" := CAST(${col}."values" AS FLOAT[])) AS ${col}`;
  }
  return `CAST(${col} AS ${duckdbType(type)}) AS ${col}`;
}

interface Candidates {
  /** Table of the layout columns plus `__seq` (source order), rows with null keys or time included. */
  table: string;
}

interface Built {
  /** Table holding the rows to write: the layout columns (and maybe others, not written). */
  table: string;
  rows: number;
  dropped: number;
}

/** Plain view: one SQL projection of the source. */
async function buildProjected(ctx: Context, view: FeatureView, src: SourceRows, tables: string[]): Promise<Candidates> {
  const source = backfillSourceOf(view)!;
  const types = new Map(src.columns.map((c) => [c.name, c.type]));
  const features = Object.entries(view.schema).map(([name, type]) => featureSql(name, type, types.get(name)));
  const table = tempName(view.name, 'rows');
  tables.push(table);
  await ctx.connection.run(
    `CREATE TABLE ${sqlIdent(table)} AS SELECT ${[...keyAndTimeSql(view, source), ...features].join(', ')}, row_number() OVER () AS __seq FROM ${src.relation}`,
  );
  ctx.onProgress?.(view.name, await count(ctx.connection, `SELECT count(*) FROM ${sqlIdent(table)}`));
  return { table };
}

/**
 * Drops rows without event time or key, then keeps the latest created row per (keys, event time),
 * the later in source order on a tie. In place, and the window runs only when a duplicate exists
 * (a hash aggregate over the keys finds out): most sources have none, and sorting the feature
 * payload through a window costs more than the check.
 */
async function keepLatest(ctx: Context, view: FeatureView, candidates: Candidates): Promise<Built> {
  const table = sqlIdent(candidates.table);
  const keys = [...joinKeysOf(view).map(sqlIdent), sqlIdent(EVENT_TIMESTAMP)];
  const valid = keys.map((c) => `${c} IS NOT NULL`).join(' AND ');
  const dropped = await count(ctx.connection, `SELECT count(*) FILTER (WHERE NOT (${valid})) FROM ${table}`);
  if (dropped > 0) await ctx.connection.run(`DELETE FROM ${table} WHERE NOT (${valid})`);
  const duplicated = await count(ctx.connection, `SELECT count(*) FROM (SELECT 1 FROM ${table} GROUP BY ${keys.join(', ')} HAVING count(*) > 1)`);
  if (duplicated > 0) {
    await ctx.connection.run(
      `DELETE FROM ${table} WHERE __seq IN (
         SELECT __seq FROM ${table}
         QUALIFY row_number() OVER (PARTITION BY ${keys.join(', ')} ORDER BY ${sqlIdent(CREATED_TIMESTAMP)} DESC NULLS LAST, __seq DESC) > 1)`,
    );
  }
  return { table: candidates.table, rows: await count(ctx.connection, `SELECT count(*) FROM ${table}`), dropped };
}

async function count(connection: DuckDBConnection, sql: string): Promise<number> {
  const reader = await connection.runAndReadAll(`SELECT (${sql})::DOUBLE AS n`);
  return Number(reader.getRowObjectsJS()[0]!.n);
}

/** Aggregation view: every event in range, its features at its own time, and the raw inputs. */
async function buildAggregated(ctx: Context, view: FeatureView, src: SourceRows, tables: string[]): Promise<Built> {
  const source = backfillSourceOf(view)!;
  const keys = joinKeysOf(view).map(sqlIdent);
  const inputs = aggregationInputs(view);
  const events = tempName(view.name, 'events');
  tables.push(events);
  await ctx.connection.run(
    `CREATE TABLE ${sqlIdent(events)} AS SELECT ${keyAndTimeSql(view, source).join(', ')}, ${inputs
      .map((c) => `CAST(${sqlIdent(c)} AS DOUBLE) AS ${sqlIdent(c)}`)
      .join(', ')}, row_number() OVER () AS __row FROM ${src.relation}`,
  );
  const ts = sqlIdent(EVENT_TIMESTAMP);
  const lit = (ms: EpochMs): string => `TIMESTAMPTZ ${sqlString(formatInstant(ms))}`;
  const inRange = `${ts} >= ${lit(ctx.start)} AND ${ts} < ${lit(ctx.end)}`;
  const keysPresent = keys.map((k) => `${k} IS NOT NULL`).join(' AND ');
  const counts = await ctx.connection.runAndReadAll(
    `SELECT count(*) FILTER (WHERE ${ts} IS NULL OR (${inRange} AND NOT (${keysPresent})))::DOUBLE AS dropped,
            count(*)::DOUBLE AS read FROM ${sqlIdent(events)}`,
  );
  const { dropped, read } = counts.getRowObjectsJS()[0]!;
  ctx.onProgress?.(view.name, Number(read));
  // The events in range are the points, each at its own time; history before start only feeds windows.
  const aggregates = aggregationAtEventsSql({
    events: `SELECT * FROM ${sqlIdent(events)}`,
    pointsWhere: `${inRange} AND ${keysPresent}`,
    joinKeys: joinKeysOf(view),
    features: view.aggregatedFeatures!,
  });
  const table = tempName(view.name, 'aggregated');
  tables.push(table);
  const e = (c: string): string => `__e.${sqlIdent(c)}`;
  const columns = [
    ...joinKeysOf(view).map(e),
    e(EVENT_TIMESTAMP),
    e(CREATED_TIMESTAMP),
    ...view.aggregatedFeatures!.map((f) => `__a.${sqlIdent(f.name)}`),
    ...inputs.map(e),
  ];
  await ctx.connection.run(`CREATE TABLE ${sqlIdent(table)} AS SELECT ${columns.join(', ')} FROM ${sqlIdent(events)} AS __e JOIN (${aggregates}) AS __a ON __e.__row = __a.__row`);
  return { table, rows: await count(ctx.connection, `SELECT count(*) FROM ${sqlIdent(table)}`), dropped: Number(dropped) };
}

// ---------------------------------------------------------------------------------------------
// transform views

/**
 * Streams the source through `view.transform`, one DuckDB vector (2048 rows) at a time, appending
 * the results to a table: memory stays bounded by one chunk in JS. Join keys and timestamps pass
 * through as DuckDB values, untouched; the transform sees plain JS values (numbers, strings, Date).
 */
async function buildTransformed(ctx: Context, view: FeatureView, src: SourceRows, tables: string[]): Promise<Candidates> {
  const source = backfillSourceOf(view)!;
  const transform = view.transform!;
  const layout = offlineColumns(view);
  const features = Object.entries(view.schema);
  const sourceNames = src.columns.map((c) => c.name);
  const inSource = new Set(sourceNames);
  const toNumber = src.columns.map((c) => /^(BIGINT|UBIGINT|HUGEINT|UHUGEINT)$/.test(c.type));
  const converters = features.map(([name, type]) => valueConverter(type, `featureView '${view.name}': feature '${name}' (${type})`));

  // Leading columns (keys, event and created time) come from DuckDB as they are; a key already of
  // its type in the source (VARCHAR, INTEGER) is taken from the source column, not decoded twice.
  const sourceType = new Map(src.columns.map((c) => [c.name, c.type]));
  const leadSql = keyAndTimeSql(view, source, (_, i) => `__lead_${i}`);
  const leadFrom = layout.slice(0, leadSql.length).map((c, i) =>
    i < leadSql.length - 2 && sourceType.get(c.name) === c.type && (c.type === 'VARCHAR' || c.type === 'INTEGER')
      ? { source: sourceNames.indexOf(c.name) }
      : { sql: leadSql[i]! },
  );
  const streamed = leadFrom.flatMap((l) => ('sql' in l ? [l.sql] : []));

  const table = tempName(view.name, 'rows');
  tables.push(table);
  await ctx.connection.run(`CREATE TABLE ${sqlIdent(table)} (${[...layout.map((c) => `${sqlIdent(c.name)} ${c.type}`), '__seq DOUBLE'].join(', ')})`);
  const appendConnection = await ctx.second();
  const appender = await appendConnection.createAppender(table);
  try {
    const types = Array.from({ length: appender.columnCount }, (_, i) => appender.columnType(i));
    const result = await ctx.connection.stream(`SELECT ${[...streamed, '*'].join(', ')} FROM ${src.relation}`);
    const makeRow = rowFactory(sourceNames);
    let seq = 0;
    // DuckDB decodes the next chunk on its own thread while JS transforms this one.
    let next = result.fetchChunk();
    for (;;) {
      const chunk = await next;
      if (!chunk || chunk.rowCount === 0) break;
      next = result.fetchChunk();
      const n = chunk.rowCount;
      const values = sourceNames.map((_, j) => {
        const column = chunk.convertColumnValues(streamed.length + j, JSDuckDBValueConverter) as unknown[];
        if (toNumber[j]) for (let r = 0; r < n; r++) column[r] = safeNumber(column[r]);
        return column;
      });
      let rawIndex = 0;
      const out = leadFrom.map((l) => ('sql' in l ? chunk.getColumnValues(rawIndex++) : (values[l.source] as DuckDBValue[])));
      const featureColumns: DuckDBValue[][] = features.map(() => new Array<DuckDBValue>(n));
      const seqColumn = new Array<DuckDBValue>(n);
      for (let r = 0; r < n; r++) {
        const row = makeRow(values, r);
        let produced: Record<string, unknown>;
        try {
          produced = transform(row) ?? {};
        } catch (err) {
          throw new DefinitionError(`featureView '${view.name}': transform failed on source row ${seq + r + 1}: ${errorMessage(err).split('\n')[0]}`);
        }
        for (let f = 0; f < features.length; f++) {
          const name = features[f]![0];
          let value = produced[name];
          if (value === undefined) {
            if (!inSource.has(name)) throw new DefinitionError(`featureView '${view.name}': feature '${name}' is neither returned by the transform nor a column of source '${source.name}'`);
            value = row[name];
          }
          featureColumns[f]![r] = converters[f]!(value);
        }
        seqColumn[r] = seq + r;
      }
      seq += n;
      const outChunk = DuckDBDataChunk.create(types, n);
      outChunk.setColumns([...out, ...featureColumns, seqColumn]);
      appender.appendDataChunk(outChunk);
      ctx.onProgress?.(view.name, seq);
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
    appendConnection.closeSync();
  }
  return { table };
}

/**
 * Builds source rows as object literals of one fixed shape (a generated function), so V8 keeps
 * them fast; column names are embedded as JSON string literals, never as code.
 */
function rowFactory(names: readonly string[]): (columns: unknown[][], r: number) => SourceRow {
  const body = `return { ${names.map((name, j) => `${JSON.stringify(name)}: c[${j}][r]`).join(', ')} };`;
  return new Function('c', 'r', body) as (columns: unknown[][], r: number) => SourceRow;
}

const safeNumber = (v: unknown): unknown => (typeof v === 'bigint' && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v);

const asArray = (v: ArrayLike<number>): number[] => (Array.isArray(v) ? v : Array.from(v));

/** JS value → DuckDB value of a feature type; a wrong value is a definition error naming the feature. */
export function valueConverter(type: ValueType, where: string): (value: unknown) => DuckDBValue {
  const wrong = (value: unknown, expected: string): never => {
    const shown = typeof value === 'string' ? `'${value.slice(0, 40)}'` : typeof value === 'object' ? (Array.isArray(value) ? 'an array' : 'an object') : String(value);
    throw new DefinitionError(`${where}: expected ${expected}, got ${shown}`);
  };
  const parsed = parseValueType(type);
  if (parsed.kind === 'sparse') {
    const size = parsed.size;
    return (value) => {
      if (value === null || value === undefined) return null;
      const v = value as { size?: unknown; indices?: ArrayLike<number>; values?: ArrayLike<number> };
      if (typeof v !== 'object' || !v.indices || !v.values || v.indices.length !== v.values.length) return wrong(value, `a sparse vector {size, indices, values}`);
      if (v.size !== undefined && v.size !== size) return wrong(`size ${String(v.size)}`, `size ${size}`);
      let previous = -1;
      for (let i = 0; i < v.indices.length; i++) {
        const index = v.indices[i]!;
        if (!Number.isInteger(index) || index <= previous || index >= size) return wrong(`index ${index} at position ${i}`, `ascending integer indices below ${size}`);
        previous = index;
      }
      return structValue({ indices: listValue(asArray(v.indices)), values: listValue(asArray(v.values)) });
    };
  }
  if (parsed.kind === 'dense') {
    return (value) => {
      if (value === null || value === undefined) return null;
      if (!Array.isArray(value) && !ArrayBuffer.isView(value)) return wrong(value, 'an array of numbers');
      return listValue(asArray(value as ArrayLike<number>));
    };
  }
  switch (parsed.type) {
    case 'int32':
    case 'int64': {
      const big = parsed.type === 'int64';
      return (value) => {
        if (value === null || value === undefined) return null;
        if (typeof value === 'bigint') return big ? value : Number(value);
        if (typeof value !== 'number' || !Number.isInteger(value)) return wrong(value, 'an integer');
        if (!big && (value > 2147483647 || value < -2147483648)) return wrong(value, 'a 32-bit integer');
        return big ? BigInt(value) : value;
      };
    }
    case 'float32':
    case 'float64':
      return (value) => {
        if (value === null || value === undefined) return null;
        if (typeof value === 'number') return value;
        if (typeof value === 'bigint') return Number(value);
        return wrong(value, 'a number');
      };
    case 'bool':
      return (value) => (value === null || value === undefined ? null : typeof value === 'boolean' ? value : wrong(value, 'a boolean'));
    case 'string':
      return (value) => (value === null || value === undefined ? null : typeof value === 'string' ? value : wrong(value, 'a string'));
    case 'bytes':
      return (value) => (value === null || value === undefined ? null : value instanceof Uint8Array ? blobValue(value) : wrong(value, 'bytes (Uint8Array)'));
    case 'timestamp':
      return (value) => {
        if (value === null || value === undefined) return null;
        if (value instanceof DuckDBTimestampTZValue) return value;
        let ms: number;
        try {
          ms = parseInstant(value as string | number | Date);
        } catch {
          return wrong(value, 'a timestamp (Date, epoch milliseconds or ISO-8601 string)');
        }
        return timestampTZValue(BigInt(Math.round(ms)) * 1000n);
      };
  }
}
