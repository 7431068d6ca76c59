/**
 * The train/serve skew audit behind `larder verify`: for a sample of each view's entities, the
 * online values at an instant t (read with `now = t`) against the offline point-in-time values at
 * the same t (a dataset with every entity row at t), feature by feature. Counts and integers
 * must be equal; floats equal within 1e-9 relative (the contract's bound for aggregations, which
 * sum in another order online); everything else equal as JSON. A value the online store does not
 * serve (NOT_FOUND, OUTSIDE_MAX_AGE) reads as null, as the dataset gives it.
 *
 * The entities are sampled from the offline store (distinct join keys of the view's files), so the
 * audit asks about entities training data holds; a materialization that is behind, a push that
 * reached only one side, or a transform that differs between the two paths shows as mismatches.
 */
import type * as arrow from 'apache-arrow';
import { InputError } from '../core/errors.js';
import { asEpochMs, formatInstant, type EpochMs } from '../core/time.js';
import { parseValueType, type ValueType } from '../core/value-types.js';
import { joinKeysOf } from '../definitions/loader.js';
import type { Definitions, FeatureView } from '../definitions/types.js';
import { getHistoricalFeatures } from '../offline/dataset.js';
import { openDuckDB, sqlIdent, sqlList } from '../offline/duckdb.js';
import { listPartitions } from '../offline/layout.js';
import { getOnlineFeatures, type JsonValue } from '../online/online-features.js';
import type { OnlineStore } from '../online/store.js';

export interface VerifyOptions {
  defs: Definitions;
  offlineDir: string;
  store: OnlineStore;
  /** Views to audit (default: every online view). */
  views?: readonly string[] | undefined;
  /** Entities sampled per view (default 100). */
  sample?: number | undefined;
  /** The instant compared (default: the clock). */
  at?: EpochMs | undefined;
}

export interface Mismatch {
  entity: Record<string, JsonValue>;
  online: JsonValue;
  offline: JsonValue;
}

export interface FeatureAudit {
  view: string;
  feature: string;
  compared: number;
  mismatches: number;
  /** The first few mismatches. */
  examples: Mismatch[];
}

export interface VerifyReport {
  at: EpochMs;
  views: { view: string; entities: number }[];
  features: FeatureAudit[];
  mismatches: number;
}

const EXAMPLES = 3;
const RELATIVE = 1e-9;

export async function verifyOnline(options: VerifyOptions): Promise<VerifyReport> {
  const at = options.at ?? asEpochMs(Date.now());
  const sample = options.sample ?? 100;
  if (!Number.isInteger(sample) || sample < 1) throw new InputError(`--sample: expected a whole number of entities above 0, got ${sample}`);
  const views = selectedViews(options.defs, options.views);
  const report: VerifyReport = { at, views: [], features: [], mismatches: 0 };
  for (const view of views) {
    const entities = await sampleEntities(options.offlineDir, view, sample);
    const rows = entities[joinKeysOf(view)[0]!]?.length ?? 0;
    report.views.push({ view: view.name, entities: rows });
    const features = Object.keys(view.schema).map((f) => `${view.name}:${f}`);
    if (rows === 0) continue;
    const online = await getOnlineFeatures({ defs: options.defs, store: options.store, features, entities, fullNames: true, now: at });
    const offline = await getHistoricalFeatures({
      defs: options.defs,
      offlineDir: options.offlineDir,
      features,
      fullNames: true,
      entities: { ...entities, event_timestamp: new Array(rows).fill(formatInstant(at)) },
    });
    for (const [feature, type] of Object.entries(view.schema)) {
      const name = `${view.name}__${feature}`;
      const column = online.results[online.metadata.feature_names.indexOf(name)]!;
      const offlineColumn = offline.getChild(name);
      const audit: FeatureAudit = { view: view.name, feature, compared: rows, mismatches: 0, examples: [] };
      for (let i = 0; i < rows; i++) {
        const served = column.statuses[i] === 'PRESENT' ? column.values[i]! : null;
        const expected = offlineJson(type, offlineColumn?.get(i));
        if (sameValue(served, expected)) continue;
        audit.mismatches++;
        if (audit.examples.length < EXAMPLES) {
          const entity = Object.fromEntries(Object.entries(entities).map(([k, v]) => [k, v[i] as JsonValue]));
          audit.examples.push({ entity, online: served, offline: expected });
        }
      }
      report.mismatches += audit.mismatches;
      report.features.push(audit);
    }
  }
  return report;
}

function selectedViews(defs: Definitions, names: readonly string[] | undefined): FeatureView[] {
  if (!names) return [...defs.views.values()].filter((v) => v.online);
  return names.map((name) => {
    const view = defs.views.get(name);
    if (!view) throw new InputError(`--views: no feature view '${name}' (defined: ${[...defs.views.keys()].join(', ')})`);
    if (!view.online) throw new InputError(`--views: feature view '${name}' is not online (online: false); there is nothing to compare`);
    return view;
  });
}

/** Up to `n` distinct entities of the view's offline files, the same ones each run over the same files. */
async function sampleEntities(offlineDir: string, view: FeatureView, n: number): Promise<Record<string, unknown[]>> {
  const files = (await listPartitions(offlineDir, view.name)).flatMap((p) => p.files);
  const keys = joinKeysOf(view);
  const columns: Record<string, unknown[]> = Object.fromEntries(keys.map((k) => [k, []]));
  if (files.length === 0) return columns;
  const { instance, close } = await openDuckDB({ memoryLimit: '512MB' });
  try {
    const connection = await instance.connect();
    const list = keys.map(sqlIdent).join(', ');
    const reader = await connection.runAndReadAll(
      `SELECT ${list} FROM (SELECT DISTINCT ${list} FROM read_parquet(${sqlList(files)}) WHERE ${keys.map((k) => `${sqlIdent(k)} IS NOT NULL`).join(' AND ')})
       ORDER BY hash(${list}) LIMIT ${n}`,
    );
    for (const row of reader.getRowObjectsJS()) for (const k of keys) columns[k]!.push(jsKey(row[k]));
    connection.closeSync();
  } finally {
    close();
  }
  return columns;
}

/** An offline (Arrow) value in the online answer's JSON form. */
export function offlineJson(type: ValueType, value: unknown): JsonValue {
  if (value === null || value === undefined) return null;
  const parsed = parseValueType(type);
  if (parsed.kind === 'dense') return Array.from((value as arrow.Vector).toArray() as ArrayLike<number>);
  if (parsed.kind === 'sparse') {
    const s = value as { indices: arrow.Vector; values: arrow.Vector };
    return { size: parsed.size, indices: Array.from(s.indices.toArray() as ArrayLike<number>), values: Array.from(s.values.toArray() as ArrayLike<number>) };
  }
  if (parsed.type === 'timestamp') return formatInstant(Number(value));
  if (parsed.type === 'bytes') return Buffer.from(value as Uint8Array).toString('base64');
  if (typeof value === 'bigint') return Number(value);
  return value as JsonValue;
}

/** Equal as the audit counts it: numbers within 1e-9 relative, the rest deeply equal. */
export function sameValue(a: JsonValue, b: JsonValue): boolean {
  if (typeof a === 'number' && typeof b === 'number') {
    if (a === b) return true;
    return Math.abs(a - b) <= RELATIVE * Math.max(Math.abs(a), Math.abs(b));
  }
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameValue(x, b[i]!));
  if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => sameValue(a[k]!, b[k]!));
  }
  return a === b;
}

/** A key value as the read paths take it: an int64 within 2^53 as a number, beyond as its digits. */
const jsKey = (v: unknown): unknown => (typeof v === 'bigint' ? (v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : String(v)) : v);
