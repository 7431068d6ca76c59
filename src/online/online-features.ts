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
import { canonicalKeyOrder, entityKeyFromCanonical, keyValueForJson, keyValueProblem, normaliseKeyValue, type EntityKey, type JoinKeySpec } from './entity-key.js';
import { onlineViewSpec, type OnlineStore, type OnlineViewSpec } from './store.js';

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
  const plan = readPlan(request);
  const { columns, rows } = checkEntities(request.entities, plan.keys);
  const now = request.now ?? asEpochMs(Date.now());

  // Each group of views sharing join keys is one read; all are issued in the same tick, so a
  // pipelining store sends them together.
  const stored = await Promise.all(
    plan.groups.map((group) => {
      const keys = new Array<EntityKey>(rows);
      const texts = new Array<string>(group.ordered.length);
      for (let i = 0; i < rows; i++) {
        for (let k = 0; k < texts.length; k++) texts[k] = normaliseKeyValue(group.ordered[k]!.type, request.entities[group.ordered[k]!.name]![i]);
        keys[i] = entityKeyFromCanonical(group.ordered, texts);
      }
      return request.store.read(keys, group.views);
    }),
  );

  const results: FeastFeatureVector[] = columns.map((c) => ({
    values: request.entities[c.name]!.map((v) => keyValueForJson(c.type, v)),
    statuses: new Array<FeatureStatus>(rows).fill('PRESENT'),
    event_timestamps: new Array<string>(rows).fill(NO_TIMESTAMP),
  }));
  // One ISO string per (view, entity), shared by the view's features.
  const isoCache = plan.groups.map((g) => g.views.map(() => new Array<string | undefined>(rows)));
  for (const out of plan.outputs) {
    const perEntity = stored[out.group]!;
    const iso = isoCache[out.group]![out.view]!;
    const vector: FeastFeatureVector = { values: new Array(rows), statuses: new Array(rows), event_timestamps: new Array(rows) };
    for (let i = 0; i < rows; i++) {
      const value = perEntity[i]![out.view];
      if (!value) {
        vector.values[i] = null;
        vector.statuses[i] = 'NOT_FOUND';
        vector.event_timestamps[i] = NO_TIMESTAMP;
        continue;
      }
      const fresh = out.ttlMs === 0 || value.eventMs >= now - out.ttlMs;
      vector.values[i] = fresh ? out.toJson(value.values[out.index] ?? null) : null;
      vector.statuses[i] = fresh ? 'PRESENT' : 'OUTSIDE_MAX_AGE';
      vector.event_timestamps[i] = iso[i] ??= formatInstant(value.eventMs);
    }
    results.push(vector);
  }
  return { metadata: { feature_names: [...columns.map((c) => c.name), ...plan.outputNames] }, results };
}

/** What a request shape (features or service, full names) resolves to; the same for every call. */
interface ReadPlan {
  /** Join keys the views need, with each view's type for them. */
  keys: Map<string, { type: KeyType; view: string }[]>;
  groups: { ordered: JoinKeySpec[]; views: OnlineViewSpec[] }[];
  /** Feature columns in request order: where each one's value is. */
  outputs: { group: number; view: number; index: number; ttlMs: number; toJson: (v: OnlineValue) => JsonValue }[];
  outputNames: string[];
}

const plans = new WeakMap<Definitions, Map<string, ReadPlan>>();
const MAX_PLANS = 1000;

/** Resolves (and caches per definitions) the features asked for; user mistakes are InputErrors. */
function readPlan(request: OnlineFeaturesRequest): ReadPlan {
  const id = JSON.stringify([request.features ?? null, request.service ?? null, request.fullNames ?? false]);
  let cache = plans.get(request.defs);
  const cached = cache?.get(id);
  if (cached) return cached;

  const selection = selectFeatures(request.defs, request);
  for (const { view } of selection.views) checkServable(view);
  const keys = new Map<string, { type: KeyType; view: string }[]>();
  const groups: ReadPlan['groups'] = [];
  const where = new Map<string, { group: number; view: number }>();
  for (const { view } of selection.views) {
    const spec = onlineViewSpec(view);
    for (const k of spec.joinKeys) {
      if (!keys.has(k.name)) keys.set(k.name, []);
      keys.get(k.name)!.push({ type: k.type, view: view.name });
    }
    const ordered = canonicalKeyOrder(spec.joinKeys);
    const groupId = ordered.map((k) => `${k.name}:${k.type}`).join(',');
    let g = groups.findIndex((x) => x.ordered.map((k) => `${k.name}:${k.type}`).join(',') === groupId);
    if (g < 0) g = groups.push({ ordered, views: [] }) - 1;
    where.set(view.name, { group: g, view: groups[g]!.views.push(spec) - 1 });
  }
  const outputs = selection.features.map((f) => {
    const at = where.get(f.view)!;
    const spec = groups[at.group]!.views[at.view]!;
    return { ...at, index: spec.features.findIndex((x) => x.name === f.feature), ttlMs: spec.ttlMs, toJson: jsonConverter(f.type) };
  });
  const plan: ReadPlan = { keys, groups, outputs, outputNames: selection.features.map((f) => f.output) };
  if (!cache) plans.set(request.defs, (cache = new Map()));
  if (cache.size >= MAX_PLANS) cache.clear();
  cache.set(id, plan);
  return plan;
}

/** Aggregation views are served from streaming tiles (a later issue); views marked offline are not served. */
function checkServable(view: FeatureView): void {
  if (view.aggregatedFeatures) {
    throw new InputError(`features: feature view '${view.name}' is an aggregation view; its online values come from streaming tiles, which are not served yet`);
  }
  if (!view.online) throw new InputError(`features: feature view '${view.name}' is not online (online: false)`);
}

/**
 * Checks the entities map against the join keys the views need (Feast asks for all of them):
 * nothing else, every key present, equal lengths, values of the key's type. Returns the key
 * columns in the order given, with their type.
 */
function checkEntities(entities: unknown, needed: ReadPlan['keys']): { columns: { name: string; type: KeyType }[]; rows: number } {
  if (typeof entities !== 'object' || entities === null || Array.isArray(entities)) {
    throw new InputError('entities: expected join key columns, like {"driver_id": [1001, 1002]}');
  }
  const given = entities as Record<string, unknown>;
  for (const name of Object.keys(given)) {
    if (!needed.has(name)) throw new InputError(`entities.${name}: not a join key of the requested features (they need ${[...needed.keys()].join(', ')})`);
  }
  for (const [name, uses] of needed) {
    if (!(name in given)) throw new InputError(`entities.${name}: missing; feature view '${uses[0]!.view}' needs join key '${name}'`);
  }
  let rows: number | undefined;
  let first = '';
  const columns: { name: string; type: KeyType }[] = [];
  for (const [name, values] of Object.entries(given)) {
    const uses = needed.get(name)!;
    if (!Array.isArray(values)) throw new InputError(`entities.${name}: expected an array of values`);
    if (rows === undefined) {
      rows = values.length;
      first = name;
    } else if (values.length !== rows) {
      throw new InputError(`entities.${name}: ${values.length} values, but entities.${first} has ${rows}`);
    }
    const types = [...new Set(uses.map((u) => u.type))];
    for (const type of types) {
      for (let i = 0; i < values.length; i++) {
        const problem = keyValueProblem(type, values[i]);
        if (problem) throw new InputError(`entities.${name}[${i}]: ${problem}`);
      }
    }
    columns.push({ name, type: types[0]! });
  }
  return { columns, rows: rows ?? 0 };
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
