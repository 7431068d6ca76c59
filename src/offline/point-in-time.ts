/**
 * The point-in-time join (CONTRACT s.3) as one DuckDB query, built from a plan by a pure
 * function so `larder dataset --explain` prints exactly what runs.
 *
 * For each entity row (keys, t) and view with TTL d, the values come from the one feature row of
 * the same keys with t - d <= e <= t (no lower bound when d = 0): the greatest e, then the
 * greatest created timestamp. Per plain view that is an ASOF LEFT JOIN (greatest e <= t), whose
 * values are nulled when e < t - d. Backfill writes each (keys, e) once per `data.parquet`, so only
 * partitions where pushes sit beside it are deduplicated (by greatest created timestamp) first.
 * Aggregation views are computed at each row's own t (aggregation-sql.ts) and joined on the row.
 * The output is the entity rows in input order with every input column unchanged, then the
 * features in request order.
 */
import type { KeyType } from '../core/value-types.js';
import type { AggregatedFeature } from '../definitions/types.js';
import { aggregationSelectSql } from './aggregation-sql.js';
import { sqlIdent, sqlList } from './duckdb.js';
import { CREATED_TIMESTAMP, EVENT_TIMESTAMP } from './layout.js';

export interface EntitySide {
  /** Relation holding the entity rows; its `rowid` is the input order. */
  table: string;
  /** Output columns in order: `name` as written, read from `source` in the table. */
  columns: readonly { name: string; source: string }[];
  /** SQL giving each row's instant (TIMESTAMPTZ) from the table's columns. */
  timestamp: string;
}

export interface JoinKey {
  /** The key's name: the column in the view's files. */
  name: string;
  type: KeyType;
  /** The column of the entity rows holding it. */
  source: string;
}

export interface PlainFeature {
  /** Column in the view's files. */
  name: string;
  output: string;
  /** Declared DuckDB type. */
  sqlType: string;
  /** How the files store it: undefined when no file has the column (it is null), else its type there. */
  fileType: string | undefined;
}

export interface PlainViewPlan {
  kind: 'plain';
  view: string;
  ttlMs: number;
  joinKeys: readonly JoinKey[];
  features: readonly PlainFeature[];
  /** Files of partitions holding only `data.parquet`: (keys, e) unique already. */
  uniqueFiles: readonly string[];
  /** Files of partitions where pushes sit beside `data.parquet`: deduplicated first. */
  dedupeFiles: readonly string[];
}

export interface AggregationViewPlan {
  kind: 'aggregation';
  view: string;
  joinKeys: readonly JoinKey[];
  features: readonly { feature: AggregatedFeature; output: string }[];
  files: readonly string[];
  /** Input columns no file has: they read as null. */
  missingColumns: readonly string[];
  /** Only events in [from, to] (epoch ms) can fall in a window of an entity row. */
  fromMs: number;
  toMs: number;
}

export type ViewPlan = PlainViewPlan | AggregationViewPlan;

export interface PointInTimePlan {
  entities: EntitySide;
  views: readonly ViewPlan[];
  /** Output feature columns in request order: which view (index into `views`) and which output name. */
  order: readonly { view: number; output: string }[];
}

const KEY_SQL: Record<KeyType, string> = { int32: 'INTEGER', int64: 'BIGINT', string: 'VARCHAR' };

/** The entity-side column holding a key cast to its entity's type (two views may type one name differently). */
const keyColumn = (k: JoinKey): string => sqlIdent(`__key_${k.type}_${k.source}`);

// The partition folders (`date=...`) are not columns: a feature may well be called `date`.
export const readParquet = (files: readonly string[]): string => `read_parquet(${sqlList(files)}, union_by_name = true, hive_partitioning = false)`;

const timestampLiteral = (ms: number): string => `make_timestamptz(${Math.trunc(ms)}::BIGINT * 1000)`;

/** The feature rows a plain view joins from, deduplicated where pushes may repeat (keys, e). */
function plainViewRelation(v: PlainViewPlan): string {
  const keys = v.joinKeys.map((k) => sqlIdent(k.name));
  const stored = v.features.filter((f) => f.fileType !== undefined).map((f) => sqlIdent(f.name));
  const columns = [...keys, EVENT_TIMESTAMP, ...stored].join(', ');
  const parts: string[] = [];
  if (v.uniqueFiles.length) parts.push(`  SELECT ${columns} FROM ${readParquet(v.uniqueFiles)}`);
  if (v.dedupeFiles.length) {
    parts.push(
      `  SELECT ${columns} FROM ${readParquet(v.dedupeFiles)}\n` +
        `  QUALIFY row_number() OVER (PARTITION BY ${[...keys, EVENT_TIMESTAMP].join(', ')} ORDER BY ${CREATED_TIMESTAMP} DESC NULLS LAST) = 1`,
    );
  }
  return parts.length === 2 ? `  (${parts[0]!.trim()})\n  UNION ALL BY NAME\n  (${parts[1]!.trim()})` : parts[0]!;
}

/** What one view adds to the query: a CTE, a join, and its feature columns (in the view's order). */
interface ViewSql {
  cte?: string;
  join?: string;
  features: string[];
}

const as = (expr: string, output: string): string => `${expr} AS ${sqlIdent(output)}`;

function plainViewSql(v: PlainViewPlan, i: number): ViewSql {
  if (v.uniqueFiles.length + v.dedupeFiles.length === 0) return { features: v.features.map((f) => as(`CAST(NULL AS ${f.sqlType})`, f.output)) };
  const alias = `v${i}`;
  const name = sqlIdent(`__view${i}`);
  const ttl = v.ttlMs > 0 ? `TTL ${duration(v.ttlMs)}: rows with t - ${duration(v.ttlMs)} <= e <= t` : 'no TTL: rows with e <= t';
  const on = [...v.joinKeys.map((k) => `${alias}.${sqlIdent(k.name)} = e.${keyColumn(k)}`), `e.__t >= ${alias}.${EVENT_TIMESTAMP}`];
  const features = v.features.map((f) => {
    if (f.fileType === undefined) return as(`CAST(NULL AS ${f.sqlType})`, f.output);
    const value = f.fileType === f.sqlType ? `${alias}.${sqlIdent(f.name)}` : `CAST(${alias}.${sqlIdent(f.name)} AS ${f.sqlType})`;
    // The ASOF match is the greatest e <= t; past the TTL it counts as no match.
    const kept = v.ttlMs > 0 ? `CASE WHEN ${alias}.${EVENT_TIMESTAMP} >= e.__t - INTERVAL (${v.ttlMs}) MILLISECOND THEN ${value} END` : value;
    return as(kept, f.output);
  });
  return {
    cte: `-- ${v.view} (${ttl})\n${name} AS (\n${plainViewRelation(v)}\n)`,
    join: `ASOF LEFT JOIN ${name} AS ${alias}\n  ON ${on.join(' AND ')}`,
    features,
  };
}

function aggregationViewSql(v: AggregationViewPlan, i: number): ViewSql {
  if (v.files.length === 0) {
    // No event anywhere: count is 0, every other function null.
    return { features: v.features.map((f) => as(f.feature.fn === 'count' ? 'CAST(0 AS BIGINT)' : 'CAST(NULL AS DOUBLE)', f.output)) };
  }
  const alias = `v${i}`;
  const name = sqlIdent(`__view${i}`);
  const inputs = [...new Set(v.features.map((f) => f.feature.column))];
  const columns = [
    ...v.joinKeys.map((k) => `ev.${sqlIdent(k.name)}`),
    `ev.${EVENT_TIMESTAMP}`,
    `ev.${CREATED_TIMESTAMP}`,
    ...inputs.map((c) => (v.missingColumns.includes(c) ? as('CAST(NULL AS DOUBLE)', c) : `ev.${sqlIdent(c)}`)),
  ];
  // Only events some entity row of the same key can reach. With buckets as long as the longest
  // reach (window + tile), a row at t reaches into its own bucket and the one before; events join
  // the (key, bucket) pairs the rows cover: an equi-join, O(events + rows), never a range join.
  const reach = Math.max(...v.features.map((f) => f.feature.windowMs + f.feature.tileMs));
  const bucket = (ts: string) => `floor(epoch_ms(${ts}) / ${reach})`;
  const cover = `SELECT DISTINCT ${v.joinKeys.map(keyColumn).join(', ')}, unnest([${bucket('__t')} - 1, ${bucket('__t')}]) AS bucket FROM __entities`;
  const events = [
    `SELECT ${columns.join(', ')}`,
    `  FROM ${readParquet(v.files)} AS ev`,
    `  SEMI JOIN (${cover}) AS cover`,
    `    ON ${[...v.joinKeys.map((k) => `cover.${keyColumn(k)} = ev.${sqlIdent(k.name)}`), `cover.bucket = ${bucket(`ev.${EVENT_TIMESTAMP}`)}`].join(' AND ')}`,
    `  WHERE ev.${EVENT_TIMESTAMP} BETWEEN ${timestampLiteral(v.fromMs)} AND ${timestampLiteral(v.toMs)}`,
  ].join('\n');
  const points = `SELECT ${v.joinKeys.map((k) => as(keyColumn(k), k.name)).join(', ')}, __t, __row FROM __entities`;
  const select = aggregationSelectSql({ points, events, joinKeys: v.joinKeys.map((k) => k.name), features: v.features.map((f) => f.feature) });
  return {
    cte: `-- ${v.view}: windowed aggregations at each entity row's time\n${name} AS (\n${indent(select)}\n)`,
    join: `LEFT JOIN ${name} AS ${alias} ON ${alias}.__row = e.__row`,
    features: v.features.map((f) => as(`${alias}.${sqlIdent(f.feature.name)}`, f.output)),
  };
}

/** The whole join as one SELECT, ordered as the entity rows. */
export function pointInTimeSql(plan: PointInTimePlan): string {
  const { entities, views } = plan;
  // Each key cast once to its entity's type, for the joins only; the output keeps the input column.
  const keyCasts = new Map<string, string>();
  for (const k of views.flatMap((v) => v.joinKeys)) keyCasts.set(keyColumn(k), as(`TRY_CAST(${sqlIdent(k.source)} AS ${KEY_SQL[k.type]})`, `__key_${k.type}_${k.source}`));
  const entityCte = [
    '__entities AS (',
    `  SELECT rowid AS __row, ${entities.timestamp} AS __t,`,
    ...[...keyCasts.values()].map((c) => `         ${c},`),
    `         ${entities.columns.map((c) => sqlIdent(c.source)).join(', ')}`,
    `  FROM ${entities.table}`,
    ')',
  ].join('\n');

  const parts = views.map((v, i) => (v.kind === 'plain' ? plainViewSql(v, i) : aggregationViewSql(v, i)));
  const featureOf = new Map<string, string>();
  views.forEach((v, i) => v.features.forEach((f, j) => featureOf.set(`${i}/${f.output}`, parts[i]!.features[j]!)));
  const outputs = [
    ...entities.columns.map((c) => (c.name === c.source ? `e.${sqlIdent(c.source)}` : as(`e.${sqlIdent(c.source)}`, c.name))),
    ...plan.order.map((o) => featureOf.get(`${o.view}/${o.output}`)!),
  ];
  const ctes = [entityCte, ...parts.flatMap((p) => (p.cte ? [p.cte] : []))];
  const joins = parts.flatMap((p) => (p.join ? [p.join] : []));
  return [
    '-- Larder point-in-time join: one row per entity row, in input order',
    'WITH',
    ctes.join(',\n'),
    'SELECT',
    `  ${outputs.join(',\n  ')}`,
    'FROM __entities AS e',
    ...joins,
    'ORDER BY e.__row',
  ].join('\n');
}

/** 7200000 -> '2h', for the comments of the printed SQL. */
function duration(ms: number): string {
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

const indent = (sql: string): string =>
  sql
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
