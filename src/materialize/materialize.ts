/**
 * `larder materialize` (CONTRACT s.4): the latest offline value of each entity into the online
 * store, per online feature view, for event times e in the window (start, end]:
 *
 *     start < e <= end        (no lower bound on a first run)
 *
 * so that right after `materialize --end T` the online value of an entity is its point-in-time
 * value at t = T (CONTRACT s.3 takes rows with e <= t, a row exactly at T included), and a run
 * from the watermark neither reloads a row exactly at the previous end nor skips one after it.
 *
 * - start is `--start`, else the view's watermark (watermarks.ts), else none. Rows with
 *   e < end - ttl are not loaded: at `end` and after they are outside the view's max age, so
 *   reads would not serve them (they answer OUTSIDE_MAX_AGE or NOT_FOUND alike, with a null
 *   value); a row at exactly end - ttl is still fresh at `end` (t - d <= e) and is loaded.
 * - DuckDB reads the view's Parquet partitions that can hold the window and keeps, per entity, the
 *   row with the greatest (event time, created time).
 * - Rows stream out in chunks into `store.write` batches, several in flight. The store keeps a row
 *   only when it is newer than the stored one, so a late run of an older window never wins.
 * - Then the watermark moves to `end` (never back).
 *
 * Aggregation views are served from streaming tiles, which pushes fill, and are skipped with a note.
 */
import { viewsNamed } from '../definitions/select-views.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DuckDBBlobValue, DuckDBConnection, DuckDBListValue, DuckDBStructValue, DuckDBValue } from '@duckdb/node-api';
import { InputError } from '../core/errors.js';
import { asEpochMs, formatInstant, type EpochMs } from '../core/time.js';
import { duckdbType, parseValueType, type ValueType } from '../core/value-types.js';
import type { Definitions, FeatureView } from '../definitions/types.js';
import { openDuckDB, sqlIdent, sqlList } from '../offline/duckdb.js';
import { CREATED_TIMESTAMP, EVENT_TIMESTAMP, filesBetween } from '../offline/layout.js';
import { canonicalKeyOrder, entityKeyFromCanonical } from '../online/entity-key.js';
import { onlineViewSpec, type OnlineRow, type OnlineStore, type OnlineViewSpec } from '../online/store.js';
import type { Registry } from '../registry/registry.js';
import { advanceWatermark, getWatermark } from './watermarks.js';

export interface MaterializeOptions {
  defs: Definitions;
  offlineDir: string;
  store: OnlineStore;
  registry: Registry;
  /** Inclusive end of the window (rows with event time <= end); the new watermark. */
  end: EpochMs;
  /** Exclusive start (rows with event time > start); default each view's watermark, else no bound. */
  start?: EpochMs | undefined;
  /** Views to materialize; default every online view. */
  views?: readonly string[] | undefined;
  /** Rows the store has taken so far for a view, of `total` (undefined until counted). */
  onProgress?: (view: string, rows: number, total: number | undefined) => void;
  /** Called as each view finishes or is skipped. */
  onViewDone?: (result: ViewMaterialization) => void;
  /** Rows per `store.write` (default 10,000). */
  batchSize?: number;
  /** Batches in flight (default 4). */
  inFlight?: number;
}

export interface ViewMaterialization {
  name: string;
  /** The window loaded, (start, end]; start null: no lower bound. */
  start: EpochMs | null;
  end: EpochMs;
  /** Latest rows per entity found in the window. */
  rows: number;
  /** Rows the store took. */
  written: number;
  /** Rows that lost against a newer (or equal) online value. */
  stale: number;
  seconds: number;
  /** Why nothing was done (an aggregation or offline-only view). */
  skipped?: string;
}

export interface MaterializeResult {
  views: ViewMaterialization[];
}

const AGGREGATION_NOTE = 'aggregation view: its online values come from streaming tiles, not materialization';
const OFFLINE_NOTE = 'online: false';

export async function materialize(options: MaterializeOptions): Promise<MaterializeResult> {
  const { end } = options;
  if (options.start !== undefined && !(options.start < end)) {
    throw new InputError(`--start (${formatInstant(options.start)}) must be before --end (${formatInstant(end)})`);
  }
  const views = selectViews(options.defs, options.views);
  const spill = await mkdtemp(join(tmpdir(), 'larder-materialize-'));
  const db = await openDuckDB({ tempDirectory: spill });
  try {
    const results: ViewMaterialization[] = [];
    for (const { view, skipped } of views) {
      const began = performance.now();
      let result: ViewMaterialization;
      if (skipped) {
        result = { name: view.name, start: null, end, rows: 0, written: 0, stale: 0, seconds: 0, skipped };
      } else {
        const start = options.start ?? (await getWatermark(options.registry, view.name)) ?? null;
        const counts = start !== null && start >= end ? { rows: 0, written: 0, stale: 0 } : await materializeView(db.connection, options, view, start);
        await advanceWatermark(options.registry, view.name, end);
        result = { name: view.name, start, end, ...counts, seconds: (performance.now() - began) / 1000 };
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

function selectViews(defs: Definitions, names: readonly string[] | undefined): { view: FeatureView; skipped?: string }[] {
  const note = (view: FeatureView): string | undefined => (view.aggregatedFeatures ? AGGREGATION_NOTE : !view.online ? OFFLINE_NOTE : undefined);
  if (!names) {
    return [...defs.views.values()].map((view) => {
      const skipped = note(view);
      return skipped ? { view, skipped } : { view };
    });
  }
  return viewsNamed(defs, names).map((view) => {
    if (!view.online && !view.aggregatedFeatures) throw new InputError(`--views: feature view '${view.name}' is not online (online: false)`);
    const skipped = note(view);
    return skipped ? { view, skipped } : { view };
  });
}

const timestampLiteral = (ms: number): string => `make_timestamptz(${Math.trunc(ms)}::BIGINT * 1000)`;

/** Epoch ms (with the µs as a fraction) of a TIMESTAMPTZ expression, as a DOUBLE. */
const epochMsSql = (expr: string): string => `epoch_us(${expr}) / 1000.0`;

/** Bounds of one view's window: event time e with after < e (when given), since <= e (when given), e <= end. */
export interface WindowBounds {
  /** Exclusive: the run's start (the watermark). */
  after: EpochMs | null;
  /** Inclusive: end - ttl, the oldest row still fresh at end. */
  since: EpochMs | null;
  end: EpochMs;
}

/** The rows of one view's window: from its files, event time within the bounds, keys present. */
function windowSql(spec: OnlineViewSpec, files: readonly string[], bounds: WindowBounds): string {
  const e = sqlIdent(EVENT_TIMESTAMP);
  const where = [
    ...(bounds.after !== null ? [`${e} > ${timestampLiteral(bounds.after)}`] : []),
    ...(bounds.since !== null ? [`${e} >= ${timestampLiteral(bounds.since)}`] : []),
    `${e} <= ${timestampLiteral(bounds.end)}`,
    ...spec.joinKeys.map((k) => `${sqlIdent(k.name)} IS NOT NULL`),
  ];
  return `FROM read_parquet(${sqlList(files)}, union_by_name = true, hive_partitioning = false)\nWHERE ${where.join(' AND ')}`;
}

/** The SQL of one view's window: one row per entity, the latest: join keys (in entity-key order), event and created ms, features. */
export function latestRowsSql(spec: OnlineViewSpec, files: readonly string[], present: ReadonlySet<string>, bounds: WindowBounds): string {
  const keys = spec.joinKeys.map((k) => sqlIdent(k.name));
  const features = spec.features.map((f) => {
    if (!present.has(f.name)) return `NULL AS ${sqlIdent(f.name)}`;
    const typed = `CAST(${sqlIdent(f.name)} AS ${duckdbType(f.type)})`;
    return `${f.type === 'timestamp' ? epochMsSql(typed) : typed} AS ${sqlIdent(f.name)}`;
  });
  const created = present.has(CREATED_TIMESTAMP) ? epochMsSql(sqlIdent(CREATED_TIMESTAMP)) : 'NULL';
  const order = [`${sqlIdent(EVENT_TIMESTAMP)} DESC`, ...(present.has(CREATED_TIMESTAMP) ? [`${sqlIdent(CREATED_TIMESTAMP)} DESC NULLS LAST`] : [])];
  const keyColumns = canonicalKeyOrder(spec.joinKeys).map((k) => `CAST(${sqlIdent(k.name)} AS ${duckdbType(k.type)}) AS ${sqlIdent(k.name)}`);
  return `SELECT ${keyColumns.join(', ')},
       ${epochMsSql(sqlIdent(EVENT_TIMESTAMP))} AS __event_ms,
       ${created} AS __created_ms${features.map((f) => `,\n       ${f}`).join('')}
${windowSql(spec, files, bounds)}
QUALIFY row_number() OVER (PARTITION BY ${keys.join(', ')} ORDER BY ${order.join(', ')}) = 1`;
}

async function materializeView(connection: DuckDBConnection, options: MaterializeOptions, view: FeatureView, start: EpochMs | null): Promise<{ rows: number; written: number; stale: number }> {
  const spec = onlineViewSpec(view);
  const { end } = options;
  const bounds: WindowBounds = { after: start, since: spec.ttlMs > 0 ? asEpochMs(end - spec.ttlMs) : null, end };
  options.onProgress?.(view.name, 0, undefined);
  const lowest = bounds.after === null ? bounds.since : bounds.since === null ? bounds.after : asEpochMs(Math.max(bounds.after, bounds.since));
  const files = await filesBetween(options.offlineDir, view.name, lowest, end);
  if (files.length === 0) return { rows: 0, written: 0, stale: 0 };
  const described = await connection.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${sqlList(files)}, union_by_name = true, hive_partitioning = false)`);
  const present = new Set(described.getRowObjects().map((r) => String(r.column_name)));
  for (const k of spec.joinKeys) {
    if (!present.has(k.name)) throw new InputError(`featureView '${view.name}': the offline files have no join key column '${k.name}'; run larder backfill`);
  }

  // The number of entities, for the progress bar: a scan of the key and time columns only.
  const counted = await connection.runAndReadAll(`SELECT count(*)::DOUBLE AS n FROM (SELECT DISTINCT ${spec.joinKeys.map((k) => sqlIdent(k.name)).join(', ')} ${windowSql(spec, files, bounds)})`);
  const total = Number(counted.getRowObjects()[0]!.n);
  options.onProgress?.(view.name, 0, total);
  const result = await connection.stream(latestRowsSql(spec, files, present, bounds));
  const convert = spec.features.map((f) => duckdbToOnline(f.type));
  const batchSize = options.batchSize ?? 10_000;
  const maxInFlight = options.inFlight ?? 4;
  const pending: Promise<void>[] = [];
  let failure: unknown;
  let rows = 0;
  let handed = 0;
  let written = 0;
  let stale = 0;
  let batch: OnlineRow[] = [];

  const flush = async (): Promise<void> => {
    // Only the count is kept: the rows are garbage once the store has encoded them.
    const count = batch.length;
    const p = options.store.write(spec, batch).then(
      (r) => {
        written += r.written;
        stale += r.stale;
        handed += count;
        options.onProgress?.(view.name, handed, total);
      },
      (err) => {
        failure ??= err;
      },
    );
    batch = [];
    pending.push(p);
    if (pending.length >= maxInFlight) await pending.shift();
  };

  // Entity keys are built here from the typed key columns: DuckDB hands strings over one native
  // call each, which costs more than the rest of a row.
  const ordered = canonicalKeyOrder(spec.joinKeys);
  const nKeys = ordered.length;
  const texts = new Array<string>(nKeys);
  for (;;) {
    const chunk = await result.fetchChunk();
    if (!chunk || chunk.rowCount === 0) break;
    const n = chunk.rowCount;
    const vectors = Array.from({ length: chunk.columnCount }, (_, i) => chunk.getColumnVector(i));
    const events = vectors[nKeys]!;
    const created = vectors[nKeys + 1]!;
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < nKeys; k++) texts[k] = String(vectors[k]!.getItem(i));
      const values = new Array<unknown>(convert.length);
      for (let f = 0; f < convert.length; f++) values[f] = convert[f]!(vectors[nKeys + 2 + f]!.getItem(i));
      batch.push({ key: entityKeyFromCanonical(ordered, texts), eventMs: events.getItem(i) as EpochMs, createdMs: created.getItem(i) as EpochMs | null, values });
    }
    rows += n;
    if (batch.length >= batchSize) await flush();
    if (failure) break;
  }
  if (batch.length > 0 && !failure) await flush();
  await Promise.all(pending);
  if (failure) throw failure;
  return { rows, written, stale };
}

/** A DuckDB value of a feature column (as latestRowsSql selects it) as the value the codec takes. */
function duckdbToOnline(type: ValueType): (value: DuckDBValue) => unknown {
  const parsed = parseValueType(type);
  if (parsed.kind === 'dense') return (v) => (v === null ? null : (v as DuckDBListValue).items);
  if (parsed.kind === 'sparse') {
    return (v) => {
      if (v === null) return null;
      const { indices, values } = (v as DuckDBStructValue).entries;
      return { indices: indices === null ? [] : (indices as DuckDBListValue).items, values: values === null ? [] : (values as DuckDBListValue).items };
    };
  }
  if (parsed.type === 'bytes') return (v) => (v === null ? null : (v as DuckDBBlobValue).bytes);
  return (v) => v;
}
