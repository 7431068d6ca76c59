/**
 * The online read path behind `larder get`, `POST /get-online-features` and the library: the
 * features asked for (references or a service), for the entities given as columns of join key
 * values, in Feast's feature-server JSON (CONTRACT s.5):
 *
 *   { metadata: { feature_names: [...join keys, ...features] },
 *     results: [{ values, statuses, event_timestamps }, ...] }   one result per column
 *
 * Join key columns come first, in the order the entities map gives them, their values echoed
 * (typed: int keys as numbers) with status PRESENT. A feature is PRESENT with its value, NOT_FOUND
 * (no value online) or OUTSIDE_MAX_AGE (its row is older than the view's TTL at `now`: fresh while
 * now - ttl <= e, the bound of CONTRACT s.3), the last two with a null value.
 */
import { InputError } from '../core/errors.js';
import { asEpochMs, formatInstant, type EpochMs } from '../core/time.js';
import { parseValueType, type KeyType, type ValueType } from '../core/value-types.js';
import type { Definitions, FeatureView } from '../definitions/types.js';
import { selectFeatures } from '../offline/feature-selection.js';
import type { OnlineValue } from './codec.js';
import { canonicalKeyOrder, entityKeyFromCanonical, normaliseKeyValue, type EntityKey, type JoinKeySpec } from './entity-key.js';
import { latestEventMs } from '../streaming/partial.js';
import { tileLayout, tilesToRead, valuesAt, type TileLayout } from '../streaming/tiles.js';
import { onlineViewSpec, type OnlineStore, type OnlineViewSpec, type StoredValue } from './store.js';

export type FeatureStatus = 'PRESENT' | 'NOT_FOUND' | 'OUTSIDE_MAX_AGE';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface FeastFeatureVector {
  values: JsonValue[];
  statuses: FeatureStatus[];
  event_timestamps: string[];
}

export interface FeastOnlineResponse {
  metadata: { feature_names: string[] };
  results: FeastFeatureVector[];
}

export interface OnlineFeaturesRequest {
  defs: Definitions;
  store: OnlineStore;
  /** `view:feature` references; or give `service`. */
  features?: readonly string[] | undefined;
  service?: string | undefined;
  /** Join key columns: `{ driver_id: [1001, 1002] }`; one entity per position. */
  entities: Readonly<Record<string, readonly unknown[]>>;
  /** Name features `view__feature`. */
  fullNames?: boolean | undefined;
  /** The instant freshness is judged at (default: the clock). */
  now?: EpochMs | undefined;
}

/** The event timestamp Feast gives values it has none for. */
export const NO_TIMESTAMP = '1970-01-01T00:00:00Z';

/** Reads the features of the entities from the online store, in Feast's response shape. */
export async function getOnlineFeatures(request: OnlineFeaturesRequest): Promise<FeastOnlineResponse> {
  return feastResponse(await readOnline(request));
}

/**
 * The same answer as `getOnlineFeatures`, as its JSON text (`JSON.stringify` of it, byte for
 * byte): written straight from the values read, without building the response's arrays first.
 * The HTTP server's hot path; a test keeps the two equal.
 */
export function getOnlineFeaturesJson(request: OnlineFeaturesRequest): Promise<string> {
  return readOnline(request).then(feastResponseJson);
}

/** What one request read: its plan, its key columns (normalised once) and the values per group, entity and view. */
interface OnlineRead {
  plan: ReadPlan;
  columns: KeyColumn[];
  rows: number;
  stored: (StoredValue | null)[][][];
  now: EpochMs;
}

interface KeyColumn {
  name: string;
  /** The type echoed in the answer: the first view's type for the key. */
  type: KeyType;
  /** The canonical text of each value, per key type the views use. */
  texts: Map<KeyType, string[]>;
}

async function readOnline(request: OnlineFeaturesRequest): Promise<OnlineRead> {
  const plan = readPlan(request);
  const { columns, rows } = checkEntities(request.entities, plan.keys);
  const now = request.now ?? asEpochMs(Date.now());
  const byName = new Map(columns.map((c) => [c.name, c]));

  // Each group of views sharing join keys is one read; all are issued in the same tick, so a
  // pipelining store sends them together.
  const reads = plan.groups.map((group) => {
    const keys = new Array<EntityKey>(rows);
    const columnTexts = group.ordered.map((k) => byName.get(k.name)!.texts.get(k.type)!);
    const texts = new Array<string>(group.ordered.length);
    for (let i = 0; i < rows; i++) {
      for (let k = 0; k < texts.length; k++) texts[k] = columnTexts[k]![i]!;
      keys[i] = entityKeyFromCanonical(group.ordered, texts);
    }
    if (group.tiled.length === 0) return request.store.read(keys, group.views);
    // Aggregation views: their tiles, combined into the values at `now` (streaming/tiles.ts).
    const values = group.views.length ? request.store.read(keys, group.views) : Promise.resolve(keys.map(() => []));
    const tiled = group.tiled.map((layout) =>
      request.store.readTiles(layout, keys, tilesToRead(layout, now)).then((perKey) => perKey.map((tiles) => tiledValue(layout, tiles, now))),
    );
    return Promise.all([values, ...tiled]).then(([rowsOfValues, ...rowsOfTiles]) => rowsOfValues.map((row, i) => [...row, ...rowsOfTiles.map((t) => t[i]!)]));
  });
  const stored = reads.length === 1 ? [await reads[0]!] : await Promise.all(reads);
  return { plan, columns, rows, stored, now };
}

/**
 * An aggregation view's values for one entity at `now`, as a stored value: always there (count 0
 * and nulls over windows without events); its event time the latest event the tiles hold, or none.
 */
function tiledValue(layout: TileLayout, tiles: ReadonlyMap<string, Float64Array>, now: EpochMs): StoredValue {
  let latest = -Infinity;
  for (const tile of tiles.values()) latest = Math.max(latest, latestEventMs(tile));
  return { eventMs: latest as EpochMs, createdMs: null, values: valuesAt(layout, tiles, now) };
}

/** A feature's status and whether its value is served, for one stored value (undefined: none stored). */
const statusOf = (value: StoredValue | null | undefined, ttlMs: number, now: EpochMs): FeatureStatus =>
  !value ? 'NOT_FOUND' : ttlMs === 0 || value.eventMs >= now - ttlMs ? 'PRESENT' : 'OUTSIDE_MAX_AGE';

/** A key column's values as the answer echoes them: numbers for integer keys (exact up to 2^53). */
const echoedKeys = (c: KeyColumn): (string | number)[] => {
  const texts = c.texts.get(c.type)!;
  return c.type === 'string' ? texts : texts.map(Number);
};

function feastResponse(read: OnlineRead): FeastOnlineResponse {
  const { plan, columns, rows, stored, now } = read;
  const results: FeastFeatureVector[] = columns.map((c) => ({
    values: echoedKeys(c),
    statuses: new Array<FeatureStatus>(rows).fill('PRESENT'),
    event_timestamps: new Array<string>(rows).fill(NO_TIMESTAMP),
  }));
  const iso = isoTimes(read);
  for (const out of plan.outputs) {
    const perEntity = stored[out.group]!;
    const times = iso[out.group]![out.view]!;
    const vector: FeastFeatureVector = { values: new Array(rows), statuses: new Array(rows), event_timestamps: new Array(rows) };
    for (let i = 0; i < rows; i++) {
      const value = perEntity[i]![out.view];
      const status = statusOf(value, out.ttlMs, now);
      vector.statuses[i] = status;
      vector.values[i] = status === 'PRESENT' ? out.toJson(value!.values[out.index] ?? null) : null;
      vector.event_timestamps[i] = times[i]!;
    }
    results.push(vector);
  }
  return { metadata: { feature_names: [...columns.map((c) => c.name), ...plan.outputNames] }, results };
}

const QUOTED_STATUS: Record<FeatureStatus, string> = { PRESENT: '"PRESENT"', NOT_FOUND: '"NOT_FOUND"', OUTSIDE_MAX_AGE: '"OUTSIDE_MAX_AGE"' };

function feastResponseJson(read: OnlineRead): string {
  const { plan, columns, rows, stored, now } = read;
  let out = responseHead(plan, columns);
  const present = new Array<string>(rows).fill('"PRESENT"').join(',');
  const none = new Array<string>(rows).fill(`"${NO_TIMESTAMP}"`).join(',');
  columns.forEach((c, j) => {
    out += `${j ? ',' : ''}{"values":${JSON.stringify(echoedKeys(c))},"statuses":[${present}],"event_timestamps":[${none}]}`;
  });
  // One quoted ISO string per (view, entity), shared by the view's features.
  const iso = isoTimes(read).map((g) => g.map((times) => times.map((t) => `"${t}"`)));
  for (const o of plan.outputs) {
    const perEntity = stored[o.group]!;
    const times = iso[o.group]![o.view]!;
    let values = '';
    let statuses = '';
    for (let i = 0; i < rows; i++) {
      const value = perEntity[i]![o.view];
      const status = statusOf(value, o.ttlMs, now);
      const sep = i ? ',' : '';
      values += sep + (status === 'PRESENT' ? o.toJsonText(value!.values[o.index] ?? null) : 'null');
      statuses += sep + QUOTED_STATUS[status];
    }
    out += `,{"values":[${values}],"statuses":[${statuses}],"event_timestamps":[${times.join(',')}]}`;
  }
  return `${out}]}`;
}

/** The answer's text up to its first result, kept per order of the key columns (a request's entities give it). */
function responseHead(plan: ReadPlan, columns: readonly KeyColumn[]): string {
  const order = columns.length === 1 ? columns[0]!.name : columns.map((c) => c.name).join('\0');
  let head = plan.heads.get(order);
  if (head === undefined) {
    head = `{"metadata":{"feature_names":${JSON.stringify([...columns.map((c) => c.name), ...plan.outputNames])}},"results":[`;
    if (plan.heads.size < MAX_HEADS) plan.heads.set(order, head);
  }
  return head;
}

/** The event time of each (group, view, entity) as ISO-8601, or Feast's epoch for none stored. */
function isoTimes({ plan, rows, stored }: OnlineRead): string[][][] {
  return plan.groups.map((g, gi) =>
    Array.from({ length: g.views.length + g.tiled.length }, (_, v) => {
      const times = new Array<string>(rows);
      for (let i = 0; i < rows; i++) {
        const value = stored[gi]![i]![v];
        times[i] = value && Number.isFinite(value.eventMs) ? formatInstant(value.eventMs) : NO_TIMESTAMP;
      }
      return times;
    }),
  );
}

/** What a request shape (features or service, full names) resolves to; the same for every call. */
interface ReadPlan {
  /** The request shape it answers. */
  features: readonly string[] | undefined;
  service: string | undefined;
  fullNames: boolean;
  /** Join keys the views need, with each view's type for them. */
  keys: Map<string, { type: KeyType; view: string }[]>;
  /** Per set of join keys: the views read as values, then the aggregation views read as tiles (view indexes after the values'). */
  groups: { ordered: JoinKeySpec[]; views: OnlineViewSpec[]; tiled: TileLayout[] }[];
  /** Feature columns in request order: where each one's value is. */
  outputs: { group: number; view: number; index: number; ttlMs: number; toJson: (v: OnlineValue) => JsonValue; toJsonText: (v: OnlineValue) => string }[];
  outputNames: string[];
  /** `responseHead` by key column order. */
  heads: Map<string, string>;
}

const MAX_HEADS = 16;
const plans = new WeakMap<Definitions, Map<string, ReadPlan[]>>();
const MAX_PLANS = 1000;

/**
 * The cache key of a request shape: cheap to hash (a request's features are many long names),
 * so several shapes may share one; `sameShape` tells them apart.
 */
function planKey(request: OnlineFeaturesRequest): string {
  const f = request.features;
  const n = f?.length ?? 0;
  return `${n}\0${n ? f![0] : ''}\0${n ? f![n - 1] : ''}\0${request.service ?? ''}\0${request.fullNames === true ? 1 : 0}`;
}

function sameShape(plan: ReadPlan, request: OnlineFeaturesRequest): boolean {
  if (plan.service !== request.service || plan.fullNames !== (request.fullNames === true)) return false;
  const a = plan.features;
  const b = request.features;
  if (a === undefined || b === undefined) return a === b || (a?.length ?? 0) + (b?.length ?? 0) === 0;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Resolves (and caches per definitions) the features asked for; user mistakes are InputErrors. */
function readPlan(request: OnlineFeaturesRequest): ReadPlan {
  const key = planKey(request);
  let cache = plans.get(request.defs);
  const candidates = cache?.get(key);
  if (candidates) for (const plan of candidates) if (sameShape(plan, request)) return plan;

  const selection = selectFeatures(request.defs, request);
  for (const { view } of selection.views) checkServable(view);
  const keys = new Map<string, { type: KeyType; view: string }[]>();
  const groups: ReadPlan['groups'] = [];
  const where = new Map<string, { group: number; view: number; tiled: boolean }>();
  for (const { view } of selection.views) {
    const spec = onlineViewSpec(view);
    for (const k of spec.joinKeys) {
      if (!keys.has(k.name)) keys.set(k.name, []);
      keys.get(k.name)!.push({ type: k.type, view: view.name });
    }
    const ordered = canonicalKeyOrder(spec.joinKeys);
    const groupId = ordered.map((k) => `${k.name}:${k.type}`).join(',');
    let g = groups.findIndex((x) => x.ordered.map((k) => `${k.name}:${k.type}`).join(',') === groupId);
    if (g < 0) g = groups.push({ ordered, views: [], tiled: [] }) - 1;
    const group = groups[g]!;
    if (view.aggregatedFeatures) where.set(view.name, { group: g, view: group.tiled.push(tileLayout(view)) - 1, tiled: true });
    else where.set(view.name, { group: g, view: group.views.push(spec) - 1, tiled: false });
  }
  const outputs = selection.features.map((f) => {
    const at = where.get(f.view)!;
    const group = groups[at.group]!;
    const convert = { toJson: jsonConverter(f.type), toJsonText: jsonTextConverter(f.type) };
    if (at.tiled) {
      const layout = group.tiled[at.view]!;
      return { group: at.group, view: group.views.length + at.view, index: layout.features.findIndex((x) => x.feature.name === f.feature), ttlMs: 0, ...convert };
    }
    const spec = group.views[at.view]!;
    return { group: at.group, view: at.view, index: spec.features.findIndex((x) => x.name === f.feature), ttlMs: spec.ttlMs, ...convert };
  });
  const plan: ReadPlan = {
    features: request.features && [...request.features],
    service: request.service,
    fullNames: request.fullNames === true,
    keys,
    groups,
    outputs,
    outputNames: selection.features.map((f) => f.output),
    heads: new Map(),
  };
  if (!cache) plans.set(request.defs, (cache = new Map()));
  if (cache.size >= MAX_PLANS) cache.clear();
  if (candidates) candidates.push(plan);
  else cache.set(key, [plan]);
  return plan;
}

/** Views marked offline are not served. */
function checkServable(view: FeatureView): void {
  if (!view.online) throw new InputError(`features: feature view '${view.name}' is not online (online: false)`);
}

/**
 * Checks the entities map against the join keys the views need (Feast asks for all of them):
 * nothing else, every key present, equal lengths, values of the key's type. Returns the key
 * columns in the order given, each value normalised once per key type.
 */
function checkEntities(entities: unknown, needed: ReadPlan['keys']): { columns: KeyColumn[]; rows: number } {
  if (typeof entities !== 'object' || entities === null || Array.isArray(entities)) {
    throw new InputError('entities: expected join key columns, like {"driver_id": [1001, 1002]}');
  }
  const given = entities as Record<string, unknown>;
  for (const name in given) {
    if (!needed.has(name)) throw new InputError(`entities.${name}: not a join key of the requested features (they need ${[...needed.keys()].join(', ')})`);
  }
  for (const [name, uses] of needed) {
    if (!(name in given)) throw new InputError(`entities.${name}: missing; feature view '${uses[0]!.view}' needs join key '${name}'`);
  }
  let rows: number | undefined;
  let first = '';
  const columns: KeyColumn[] = [];
  for (const name in given) {
    const values = given[name];
    const uses = needed.get(name)!;
    if (!Array.isArray(values)) throw new InputError(`entities.${name}: expected an array of values`);
    if (rows === undefined) {
      rows = values.length;
      first = name;
    } else if (values.length !== rows) {
      throw new InputError(`entities.${name}: ${values.length} values, but entities.${first} has ${rows}`);
    }
    const texts = new Map<KeyType, string[]>();
    for (const { type } of uses) {
      if (texts.has(type)) continue;
      const column = new Array<string>(values.length);
      for (let i = 0; i < values.length; i++) {
        try {
          column[i] = normaliseKeyValue(type, values[i]);
        } catch (err) {
          throw new InputError(`entities.${name}[${i}]: ${(err as Error).message}`);
        }
      }
      texts.set(type, column);
    }
    columns.push({ name, type: uses[0]!.type, texts });
  }
  return { columns, rows: rows ?? 0 };
}

/**
 * An online value as JSON text: `JSON.stringify` of `jsonConverter(type)`'s answer. Numbers, most
 * values, go to JSON.stringify as they are (it formats a double faster than String() does here,
 * and writes NaN and infinities as null, as the object path's stringify does).
 */
function jsonTextConverter(type: ValueType): (value: OnlineValue) => string {
  const parsed = parseValueType(type);
  if (parsed.kind === 'scalar' && (parsed.type === 'float64' || parsed.type === 'float32' || parsed.type === 'bool' || parsed.type === 'string')) {
    return (value) => JSON.stringify(value);
  }
  const toJson = jsonConverter(type);
  return (value) => JSON.stringify(toJson(value));
}

/** An online value as JSON: int64 as numbers, timestamps ISO-8601, bytes base64, sparse `{size, indices, values}`. */
export function jsonConverter(type: ValueType): (value: OnlineValue) => JsonValue {
  const parsed = parseValueType(type);
  if (parsed.kind === 'scalar') {
    switch (parsed.type) {
      case 'timestamp':
        return (v) => (v === null ? null : formatInstant(v as number));
      case 'bytes':
        return (v) => (v === null ? null : Buffer.from(v as Uint8Array).toString('base64'));
      case 'int64':
      case 'int32':
        return (v) => (v === null ? null : Number(v));
      default:
        return (v) => v as JsonValue;
    }
  }
  return (v) => v as unknown as JsonValue;
}

/** The response as one object per entity, `{ driver_id: 1001, conv_rate: 0.5 }` (the SDK's rows; `larder get --flat`). */
export function flattenOnlineResponse(response: FeastOnlineResponse): Record<string, JsonValue>[] {
  const names = response.metadata.feature_names;
  const rows = response.results[0]?.values.length ?? 0;
  const out: Record<string, JsonValue>[] = [];
  for (let i = 0; i < rows; i++) {
    const row: Record<string, JsonValue> = {};
    names.forEach((name, j) => (row[name] = response.results[j]!.values[i]!));
    out.push(row);
  }
  return out;
}
