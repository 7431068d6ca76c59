/**
 * Windowed aggregations (CONTRACT s.2) as one DuckDB SELECT, shared by backfill (the points are
 * the events themselves: aggregationAtEventsSql) and datasets (the points are the entity rows:
 * aggregationSelectSql).
 *
 * For a window w with tile s, the value at t aggregates the entity's events e (epoch ms) with
 *     floor((t - w) / s) * s  <=  e  <=  t
 * The shape: the events and the points go into one stream, sorted per entity by time, and each
 * aggregate is a window function whose RANGE frame starts at that row's own tile-aligned tail
 * (DuckDB takes a per-row frame offset) and ends at its peers (so events at e = t count). Points
 * carry null inputs, so they never count themselves; events carry a null `__row`, and QUALIFY
 * keeps the point rows only.
 *
 * Cost: one sort of (events + points) per distinct (window, tile) pair, and per row and aggregate
 * one segment-tree probe, O(log n): about O((E + P) log(E + P)) per window, whatever the window
 * length or the density of events. No range join, so nothing explodes with long windows. Event
 * rows are evaluated too and then dropped, so callers should pass only the events points can
 * reach (datasets prune by key and time first), and points that are events should not be
 * passed twice (aggregationAtEventsSql).
 * Accuracy: sums and means use DuckDB's compensated `fsum`/`favg`, stddev its Welford/Chan
 * combine, so the result does not depend on the order of summation beyond rounding.
 */
import type { AggregatedFeature } from '../definitions/types.js';
import { sqlIdent } from './duckdb.js';

export interface AggregationSqlInput {
  /** SQL relation of query points: the join key columns, `__t` TIMESTAMPTZ (the instant), `__row` BIGINT (a unique row id). */
  points: string;
  /** SQL relation of raw events: the join key columns, `event_timestamp` TIMESTAMPTZ, `created_timestamp` TIMESTAMPTZ (nullable), and the input columns. */
  events: string;
  joinKeys: readonly string[];
  features: readonly AggregatedFeature[];
}

/** The smallest BIGINT but one: a created timestamp that loses every tie. */
const NO_CREATED = '-9223372036854775807';

/** `x` rounded down to a multiple of `s` (DuckDB's `%` keeps the dividend's sign, so shift it). */
const floorTo = (x: string, s: number): string => `((${x}) - ((((${x}) % ${s}) + ${s}) % ${s}))`;

/** The aggregate of one feature over its window, as a window-function call. */
function aggregateSql(f: AggregatedFeature, window: string): string {
  const col = sqlIdent(f.column);
  switch (f.fn) {
    case 'count':
      return `count(${col}) OVER ${window}`;
    case 'sum':
      return `fsum(${col}) OVER ${window}`;
    case 'mean':
      return `favg(${col}) OVER ${window}`;
    case 'min':
      return `min(${col}) OVER ${window}`;
    case 'max':
      return `max(${col}) OVER ${window}`;
    case 'stddev':
      return `stddev_samp(${col}) OVER ${window}`;
    case 'last':
      // Greatest event time, then greatest created timestamp; null values never win.
      return `arg_max(${col}, (__ms, __created)) FILTER (WHERE ${col} IS NOT NULL) OVER ${window}`;
  }
}

/** A SELECT returning exactly one row per point: `__row`, then one column per feature named feature.name (count BIGINT, others DOUBLE). */
export function aggregationSelectSql(input: AggregationSqlInput): string {
  const { keys, columns } = prepare(input.joinKeys, input.features);
  const eventInputs = columns.map((c) => `CAST(${sqlIdent(c)} AS DOUBLE) AS ${sqlIdent(c)}`);
  const pointInputs = columns.map((c) => `CAST(NULL AS DOUBLE) AS ${sqlIdent(c)}`);
  return `WITH
__agg_events AS (
  SELECT ${keys.join(', ')}, epoch_ms(event_timestamp) AS __ms,
         coalesce(epoch_us(created_timestamp), ${NO_CREATED}) AS __created,
         ${eventInputs.join(', ')}, CAST(NULL AS BIGINT) AS __row
  FROM (${input.events}) AS __e
  WHERE event_timestamp IS NOT NULL AND ${keys.map((k) => `${k} IS NOT NULL`).join(' AND ')}
),
__agg_points AS (
  SELECT ${keys.join(', ')}, epoch_ms(__t) AS __ms, CAST(NULL AS BIGINT) AS __created,
         ${pointInputs.join(', ')}, __row
  FROM (${input.points}) AS __p
),
__agg_stream AS (
  SELECT * FROM __agg_events
  UNION ALL BY NAME
  SELECT * FROM __agg_points
)
${windowSelect(keys, input.features)}`;
}

export interface AggregationAtEventsInput {
  /** SQL relation of raw events as for aggregationSelectSql, plus `__row` BIGINT (a unique row id). */
  events: string;
  /** SQL predicate over the events: those where it holds are the points, each at its own event time. */
  pointsWhere: string;
  joinKeys: readonly string[];
  features: readonly AggregatedFeature[];
}

/**
 * The values at the events themselves (what backfill writes): as aggregationSelectSql with the
 * chosen events as points, but the stream holds each event once instead of twice, so it sorts and
 * probes half the rows. One row per chosen event that has its keys and event time.
 */
export function aggregationAtEventsSql(input: AggregationAtEventsInput): string {
  const { keys, columns } = prepare(input.joinKeys, input.features);
  return `WITH
__agg_stream AS (
  SELECT ${keys.join(', ')}, epoch_ms(event_timestamp) AS __ms,
         coalesce(epoch_us(created_timestamp), ${NO_CREATED}) AS __created,
         ${columns.map((c) => `CAST(${sqlIdent(c)} AS DOUBLE) AS ${sqlIdent(c)}`).join(', ')},
         CASE WHEN ${input.pointsWhere} THEN __row END AS __row
  FROM (${input.events}) AS __e
  WHERE event_timestamp IS NOT NULL AND ${keys.map((k) => `${k} IS NOT NULL`).join(' AND ')}
)
${windowSelect(keys, input.features)}`;
}

function prepare(joinKeys: readonly string[], features: readonly AggregatedFeature[]): { keys: string[]; columns: string[] } {
  if (joinKeys.length === 0) throw new Error('aggregation SQL: no join keys');
  if (features.length === 0) throw new Error('aggregation SQL: no features');
  return { keys: joinKeys.map(sqlIdent), columns: [...new Set(features.map((f) => f.column))] };
}

/** The aggregates over `__agg_stream`, kept at the rows with a `__row` (the points). */
function windowSelect(keys: readonly string[], features: readonly AggregatedFeature[]): string {
  // One named window per distinct (window, tile): features sharing it share a sort.
  const frames = new Map<string, { name: string; windowMs: number; tileMs: number }>();
  for (const f of features) {
    const id = `${f.windowMs}/${f.tileMs}`;
    if (!frames.has(id)) frames.set(id, { name: `__w${frames.size}`, windowMs: f.windowMs, tileMs: f.tileMs });
  }
  const windowDefs = [...frames.values()].map(({ name, windowMs, tileMs }) => {
    // The frame reaches back from __ms to the tail floor((t - w) / s) * s, inclusive.
    const tail = floorTo(`__ms - ${windowMs}`, tileMs);
    return `  ${name} AS (PARTITION BY ${keys.join(', ')} ORDER BY __ms RANGE BETWEEN coalesce(__ms - ${tail}, 0) PRECEDING AND CURRENT ROW)`;
  });
  const outputs = features.map((f) => {
    const value = aggregateSql(f, frames.get(`${f.windowMs}/${f.tileMs}`)!.name);
    return `  ${f.fn === 'count' ? value : `CAST(${value} AS DOUBLE)`} AS ${sqlIdent(f.name)}`;
  });
  return `SELECT
  __row,
${outputs.join(',\n')}
FROM __agg_stream
WINDOW
${windowDefs.join(',\n')}
QUALIFY __row IS NOT NULL`;
}
