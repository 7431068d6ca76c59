/**
 * `POST /push` (CONTRACT s.5): rows of a push source into the feature views it feeds, online,
 * offline or both. The service function behind the route (and anything else that pushes).
 *
 * Everything is checked and computed before anything is written: the columns (push-input.ts),
 * each view's join keys, its row transform (the same function backfill runs, given the same row
 * shape) and the feature values it yields. Then, in an order that keeps a failure invisible:
 * offline files are staged (written, flushed, hidden), the online store is written, and the
 * files are renamed into place; an online failure drops the staged files. A 2xx means durable.
 *
 * Within one push, rows of one entity at one event time collapse to the last (as backfill keeps
 * the later source row). Created time is the row's created timestamp field when given, else the
 * time of the push, so a later push at the same event time wins, online and in datasets alike.
 *
 * Aggregation views keep every pushed event. Online, the events fold into the view's time tiles
 * (streaming/tiles.ts), merged atomically in the store; an event more than the view's
 * `allowedLateness` behind the clock no longer updates tiles: it is counted (`late` in the
 * answer, `larder_late_events_total` in /metrics) and still goes to the offline store, whatever
 * the target, so a backfill or dataset sees it. Offline, the rows take the view's layout
 * (features null, raw input columns after them) so datasets aggregate them. Input values of a
 * float32 source column are rounded to float32 on the way in, online and offline alike.
 */
import type { DuckDBValue } from '@duckdb/node-api';
import { DefinitionError, InputError, errorMessage } from '../core/errors.js';
import { asEpochMs, DAY_MS, parseInstant, utcDate } from '../core/time.js';
import { parseValueType, type KeyType, type ValueType } from '../core/value-types.js';
import type { Definitions, FeatureView, PushSource, SourceRow } from '../definitions/types.js';
import { valueConverter } from '../offline/backfill.js';
import { canonicalKeyOrder, entityKeyFromCanonical, normaliseKeyValue, type EntityKey } from '../online/entity-key.js';
import { joinKeySpecs, onlineViewSpec, type OnlineRow, type OnlineStore } from '../online/store.js';
import type { TileIngest } from '../streaming/ingest.js';
import { foldColumns, tileLayout, type TileEventColumns } from '../streaming/tiles.js';
import { notFound } from './errors.js';
import { readPushColumns, type PushColumns } from './push-input.js';
import { fileStamp, type OfflineColumns, type OfflineRow, type PushFileWriter, type StagedFile } from './push-offline.js';
import type { PushTarget } from './schemas.js';

export interface PushRequest {
  pushSource: string;
  /** Columns of equal length: `{ weld_id: [...], amplitude: [...], event_timestamp: [...] }`. */
  df: Readonly<Record<string, readonly unknown[]>>;
  to: PushTarget;
}

export interface PushContext {
  defs: Definitions;
  store: OnlineStore;
  files: PushFileWriter;
  /** The push's created time (default: the clock, never the same twice in this process). */
  now?: () => number;
  /** The clock lateness is judged by (default Date.now). */
  clock?: () => number;
  /** Group commit for aggregation views written online (the server's); without it they are written at once. */
  ingest?: TileIngest;
}

export interface PushResult {
  status: 'ok';
  /** Rows received. */
  rows: number;
  /** Views that took the rows somewhere. */
  views: string[];
  online: string[];
  offline: string[];
  /** Views fed by the source that the target leaves out, and why. */
  skipped: { view: string; reason: string }[];
  /** Per aggregation view written online: events too late to update its tiles (written offline). */
  late: { view: string; rows: number }[];
}

/** Checks and writes a push; see the module comment. */
export async function push(ctx: PushContext, request: PushRequest): Promise<PushResult> {
  const source = pushSourceOf(ctx.defs, request.pushSource);
  const fed = [...ctx.defs.views.values()].filter((v) => v.source.name === source.name);
  if (fed.length === 0) throw new InputError(`push_source_name: push source '${source.name}' feeds no feature view; nothing would store the rows`);
  const plan = targets(source, fed, request.to);
  const input = readPushColumns(source, request.df);
  const createdNow = ctx.now ? ctx.now() : monotonicNow(input.rows);

  const written = fed.filter((v) => plan.online.includes(v) || plan.offline.includes(v));
  const clock = (ctx.clock ?? Date.now)();
  // Value views as rows (one per entity and event time); aggregation views as columns of events.
  const rowViews = written.filter((v) => !v.aggregatedFeatures).map((view) => ({ view, rows: prepareView(view, source, input, createdNow, plan.offline.includes(view)) }));
  const eventViews = written.filter((v) => v.aggregatedFeatures).map((view) => {
    // Written online: events before this are late, and go offline whatever the target.
    const lateBefore = plan.online.includes(view) ? clock - tileLayout(view).allowedLatenessMs : -Infinity;
    return { view, batch: prepareEvents(view, source, input, createdNow, plan.offline.includes(view), lateBefore) };
  });
  const late: PushResult['late'] = eventViews.filter(({ view }) => plan.online.includes(view)).map(({ view, batch }) => ({ view: view.name, rows: batch.lateRows }));
  // One view after another: should the store fail midway, the views before stay written (the
  // 503 says the push failed; pushing it again is harmless for value views, whose rows win or
  // tie; an aggregation view would count the events of a retried push twice).
  const staged: StagedFile[] = [];
  try {
    const stamp = fileStamp(createdNow);
    for (const { view, rows } of rowViews) {
      const offlineRows: OfflineRow[] = [];
      for (const r of rows) if (r.offline) offlineRows.push(r.offline);
      if (offlineRows.length) staged.push(...(await ctx.files.stage(view, offlineRows, stamp)));
    }
    for (const { view, batch } of eventViews) {
      // With group commit, the flush writes them (with the other pushes').
      const viaIngest = ctx.ingest && plan.online.includes(view);
      if (!viaIngest && batch.offline) staged.push(...(await ctx.files.stage(view, batch.offline, stamp)));
    }
    for (const { view, rows } of rowViews) {
      if (plan.online.includes(view)) await ctx.store.write(onlineViewSpec(view), rows.map((r) => r.online));
    }
    const ingested: Promise<void>[] = [];
    for (const { view, batch } of eventViews) {
      if (!plan.online.includes(view)) continue;
      if (ctx.ingest) ingested.push(ctx.ingest.add(view, batch.events, batch.offline));
      else if (batch.events.keys.length > batch.lateRows) {
        const layout = tileLayout(view);
        await ctx.store.mergeTiles(layout, foldColumns(layout, batch.events, new Map()), clock);
      }
    }
    await Promise.all(ingested);
  } catch (err) {
    await ctx.files.abort(staged);
    throw err;
  }
  await ctx.files.commit(staged);
  const names = (views: FeatureView[]) => views.map((v) => v.name);
  return {
    status: 'ok',
    rows: input.rows,
    views: names(written),
    online: names(plan.online),
    offline: names(plan.offline),
    skipped: plan.skipped,
    late,
  };
}

function pushSourceOf(defs: Definitions, name: string): PushSource {
  const source = defs.sources.get(name);
  const pushSources = [...defs.sources.values()].filter((s) => s.type === 'push').map((s) => s.name).sort();
  if (!source || source.type !== 'push') {
    throw notFound(`push_source_name: no push source '${name}' (defined: ${pushSources.join(', ') || 'none'})`, { field: 'push_source_name', pushSources });
  }
  return source;
}

interface Targets {
  online: FeatureView[];
  offline: FeatureView[];
  skipped: { view: string; reason: string }[];
}

function targets(source: PushSource, fed: FeatureView[], to: PushTarget): Targets {
  const wantsOnline = to !== 'offline';
  const wantsOffline = to !== 'online';
  const out: Targets = { online: [], offline: wantsOffline ? [...fed] : [], skipped: [] };
  if (!wantsOnline) return out;
  for (const view of fed) {
    if (!view.online) out.skipped.push({ view: view.name, reason: 'online: false' });
    else out.online.push(view);
  }
  if (out.online.length === 0) {
    throw new InputError(`to: push source '${source.name}' feeds no online feature view (${fed.map((v) => v.name).join(', ')} are online: false); push with "to": "offline"`);
  }
  return out;
}

interface PreparedRow {
  online: OnlineRow;
  /** The row for the offline store, when it goes there. */
  offline?: OfflineRow;
}

let lastNow = 0;
/**
 * The clock in ms with µs, strictly increasing in this process, reserving `rows` µs: row i of
 * the push is created at the result + i µs, so no two pushed rows share a created time and the
 * later row wins every tie (a window's `last`, offline as online).
 */
function monotonicNow(rows = 1): number {
  const now = Math.round((performance.timeOrigin + performance.now()) * 1000) / 1000;
  const start = now > lastNow ? now : lastNow + 0.001;
  lastNow = Math.round((start + (Math.max(1, rows) - 1) * 0.001) * 1000) / 1000;
  return start;
}

let lastDay = NaN;
let lastDate = '';
/** utcDate, remembering the last day: a push's rows mostly share one. */
function dateOf(ms: number): string {
  const day = Math.floor(ms / DAY_MS);
  if (day !== lastDay) {
    lastDay = day;
    lastDate = utcDate(ms);
  }
  return lastDate;
}

/** Row i's created time in a push created at `base` (µs steps, see monotonicNow). */
const rowCreated = (base: number, i: number): number => (i === 0 ? base : Math.round((base + i * 0.001) * 1000) / 1000);


/** The rows of a value view: keys, times and feature values, online, and offline when `toOffline`. */
function prepareView(view: FeatureView, source: PushSource, input: PushColumns, createdNow: number, toOffline: boolean): PreparedRow[] {
  const keys = joinKeySpecs(view);
  const layoutKeyColumns = keys.map((k) => input.columns.get(k.name));
  const { keyOf, createdOf } = entityKeys(view, source, input, createdNow);
  const features = featureComputer(view, source, input);

  // Latest row per (entity, event time): greatest created time, then the later row.
  const latest = new Map<string, number>();
  for (let i = 0; i < input.rows; i++) {
    const id = `${keyOf[i]}\u0000${input.eventMs[i]}`;
    const seen = latest.get(id);
    if (seen === undefined || createdOf[i]! >= createdOf[seen]!) latest.set(id, i);
  }
  const out: PreparedRow[] = [];
  for (const i of [...latest.values()].sort((a, b) => a - b)) {
    const eventMs = asEpochMs(input.eventMs[i]!);
    const createdMs = asEpochMs(createdOf[i]!);
    const values = features(i);
    const row: PreparedRow = { online: { key: keyOf[i]!, eventMs, createdMs, values: values.online } };
    if (toOffline) {
      row.offline = { date: dateOf(eventMs), values: [...keys.map((k, j) => keyDuckValue(k.type, layoutKeyColumns[j]![i])), eventMs, createdMs, ...values.offline] };
    }
    out.push(row);
  }
  return out;
}

/** Every row's entity key and created time (row i of a push: its created field, or the push's time + i µs). */
function entityKeys(view: FeatureView, source: PushSource, input: PushColumns, createdNow: number): { keyOf: EntityKey[]; createdOf: Float64Array } {
  const ordered = canonicalKeyOrder(joinKeySpecs(view));
  const keyColumns = ordered.map((k) => input.columns.get(k.name));
  for (const [i, k] of ordered.entries()) {
    if (!keyColumns[i]) throw new DefinitionError(`featureView '${view.name}': join key '${k.name}' is not a column of push source '${source.name}'`);
  }
  const keyText = new Array<string>(ordered.length);
  const keyOf = new Array<EntityKey>(input.rows);
  const createdOf = new Float64Array(input.rows);
  for (let i = 0; i < input.rows; i++) {
    for (let k = 0; k < ordered.length; k++) {
      try {
        keyText[k] = normaliseKeyValue(ordered[k]!.type, keyColumns[k]![i]);
      } catch (err) {
        throw new InputError(`df.${ordered[k]!.name}[${i}]: ${(err as Error).message} (a join key of feature view '${view.name}')`);
      }
    }
    keyOf[i] = entityKeyFromCanonical(ordered, keyText);
    createdOf[i] = input.createdMs?.[i] ?? rowCreated(createdNow, i);
  }
  return { keyOf, createdOf };
}

/** A push's events for an aggregation view, as columns; offline columns for the rows that go offline. */
interface EventBatch {
  events: TileEventColumns;
  lateRows: number;
  offline: OfflineColumns | null;
}

/**
 * Every row of the push as an event of an aggregation view: its input values (a float32 source
 * column rounded to float32, as the offline store keeps it), late when before `lateBefore`, and
 * offline when `toOffline` or late.
 */
function prepareEvents(view: FeatureView, source: PushSource, input: PushColumns, createdNow: number, toOffline: boolean, lateBefore: number): EventBatch {
  const n = input.rows;
  const { keyOf, createdOf } = entityKeys(view, source, input, createdNow);
  const eventMs = Float64Array.from(input.eventMs);
  // The inputs in the layout's order (that of aggregationInputs, so of the offline columns too),
  // each value made the double the offline store aggregates (float32 columns rounded) once, here.
  const layout = tileLayout(view);
  const names = layout.columns;
  const values = names.map(() => new Float64Array(n));
  const present = names.map(() => new Uint8Array(n));
  names.forEach((name, c) => {
    const column = input.columns.get(name);
    const toDouble = layout.toDouble[c]!;
    if (!column) return;
    for (let i = 0; i < n; i++) {
      const v = column[i];
      if (v === null || v === undefined) continue;
      if (typeof v === 'number') values[c]![i] = toDouble(v);
      else if (typeof v === 'bigint') values[c]![i] = toDouble(Number(v));
      else throw new InputError(`df.${name}[${i}]: expected a number (aggregation input of feature view '${view.name}'), got ${typeof v}`);
      present[c]![i] = 1;
    }
  });
  const skip = new Uint8Array(n);
  let lateRows = 0;
  for (let i = 0; i < n; i++) {
    if (eventMs[i]! < lateBefore) {
      skip[i] = 1;
      lateRows++;
    }
  }
  let offline: OfflineColumns | null = null;
  if (toOffline || lateRows > 0) {
    // In pushedColumns(view) order: keys, times, inputs (the null features are left out).
    const keys = joinKeySpecs(view);
    const keyColumns = keys.map((k) => input.columns.get(k.name)!);
    const rows: number[] = [];
    for (let i = 0; i < n; i++) if (toOffline || skip[i]) rows.push(i);
    offline = {
      dates: rows.map((i) => dateOf(eventMs[i]!)),
      columns: [
        ...keys.map((k, j) => rows.map((i) => keyDuckValue(k.type, keyColumns[j]![i]))),
        rows.map((i) => eventMs[i]!),
        rows.map((i) => createdOf[i]!),
        ...names.map((_, c) => rows.map((i) => (present[c]![i] ? values[c]![i]! : null))),
      ],
    };
  }
  return { events: { keys: keyOf, eventMs, createdMs: createdOf, values, present, skip }, lateRows, offline };
}

/** A join key as the layout stores it (BIGINT, INTEGER or VARCHAR); checked by normaliseKeyValue already. */
function keyDuckValue(type: KeyType, value: unknown): DuckDBValue {
  const text = normaliseKeyValue(type, value);
  return type === 'int64' ? BigInt(text) : type === 'int32' ? Number(text) : text;
}

/**
 * Per row, the view's feature values: from its transform (given the row as backfill gives it),
 * else the source column of the same name; each checked against its type (backfill's converter)
 * and turned into the online codec's value.
 */
function featureComputer(view: FeatureView, source: PushSource, input: PushColumns): (i: number) => { online: unknown[]; offline: DuckDBValue[] } {
  const features = Object.entries(view.schema);
  const names = [...input.columns.keys()];
  const columns = names.map((n) => input.columns.get(n)!);
  for (const [name] of features) {
    if (!view.transform && !input.columns.has(name) && !(name in source.schema)) {
      throw new DefinitionError(`featureView '${view.name}': feature '${name}' is not a column of push source '${source.name}'`);
    }
  }
  const checks = features.map(([name, type]) => valueConverter(type, `feature '${name}' (${type})`));
  const online = features.map(([, type]) => onlineValue(type));
  return (i) => {
    const row: SourceRow = {};
    for (let c = 0; c < names.length; c++) row[names[c]!] = columns[c]![i];
    let produced: Record<string, unknown> = row;
    if (view.transform) {
      try {
        produced = view.transform(row) ?? {};
      } catch (err) {
        throw new InputError(`df[${i}]: the transform of feature view '${view.name}' failed on this row: ${errorMessage(err).split('\n')[0]}`);
      }
    }
    const onlineValues = new Array<unknown>(features.length);
    const offlineValues = new Array<DuckDBValue>(features.length);
    for (let f = 0; f < features.length; f++) {
      const name = features[f]![0];
      // Own properties only: a feature named like an Object method must not read the method.
      let value = Object.hasOwn(produced, name) ? produced[name] : undefined;
      if (value === undefined) {
        if (!Object.hasOwn(row, name)) throw new DefinitionError(`featureView '${view.name}': feature '${name}' is neither returned by the transform nor a column of push source '${source.name}'`);
        value = row[name];
      }
      try {
        offlineValues[f] = checks[f]!(value);
      } catch (err) {
        throw new InputError(`df[${i}]: feature view '${view.name}': ${errorMessage(err)}`);
      }
      onlineValues[f] = online[f]!(value);
    }
    return { online: onlineValues, offline: offlineValues };
  };
}

/** A checked feature value as the online codec takes it: timestamps as epoch ms. */
function onlineValue(type: ValueType): (value: unknown) => unknown {
  const parsed = parseValueType(type);
  if (parsed.kind === 'scalar' && parsed.type === 'timestamp') {
    return (v) => (v === null || v === undefined ? null : parseInstant(v as string | number | Date));
  }
  return (v) => (v === undefined ? null : v);
}

