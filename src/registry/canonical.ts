/**
 * The canonical form of a definitions repo: plain JSON, every object by name, keys sorted, so the
 * same definitions always give the same bytes and so the same version hash. This is what the
 * registry stores, diffs and serves (`GET /registry`).
 */
import { createHash } from 'node:crypto';
import type { KeyType, ValueType } from '../core/value-types.js';
import type { AggregationFunction, Definitions, Entity, FeatureService, FeatureView, Source } from '../definitions/types.js';

export interface CanonicalEntity {
  name: string;
  joinKeys: string[];
  keyTypes: Record<string, KeyType>;
  description?: string;
  tags?: Record<string, string>;
}

interface CanonicalSourceBase {
  name: string;
  timestampField: string;
  createdTimestampField?: string;
  description?: string;
}

export interface CanonicalFileSource extends CanonicalSourceBase {
  type: 'file';
  /** As written in the definition (relative to the repo folder, or absolute). */
  path: string;
  format: 'parquet' | 'csv';
}

export interface CanonicalPostgresSource extends CanonicalSourceBase {
  type: 'postgres';
  table?: string;
  query?: string;
  /** Without its password: the registry is served over HTTP. */
  connection?: string;
}

export interface CanonicalPushSource extends CanonicalSourceBase {
  type: 'push';
  schema: Record<string, ValueType>;
  /** Name of the batch source backfill reads; that source is listed with the others. */
  batchSource?: string;
}

export type CanonicalSource = CanonicalFileSource | CanonicalPostgresSource | CanonicalPushSource;

export interface CanonicalAggregation {
  name: string;
  column: string;
  function: AggregationFunction;
  window: string;
  windowMs: number;
  tileMs: number;
}

export interface CanonicalView {
  name: string;
  /** Entity names, in declaration order (it fixes the join key order). */
  entities: string[];
  /** Join keys of all its entities, in order, and their types: what a row of the view is keyed by. */
  joinKeys: string[];
  keyTypes: Record<string, KeyType>;
  source: string;
  ttlMs: number;
  schema: Record<string, ValueType>;
  online: boolean;
  aggregations?: CanonicalAggregation[];
  allowedLatenessMs: number;
  /** A hash of the transform's source text, so an edited transform shows as a change. */
  transform?: { sha256: string };
  description?: string;
  tags?: Record<string, string>;
}

export interface CanonicalService {
  name: string;
  /** Per view, the selected feature names in selection order. */
  features: Record<string, string[]>;
  description?: string;
  tags?: Record<string, string>;
}

export interface CanonicalRepo {
  entities: CanonicalEntity[];
  sources: CanonicalSource[];
  featureViews: CanonicalView[];
  featureServices: CanonicalService[];
}

export const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** Removes the password from a connection URL; anything unparseable is kept as written. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (!u.password) return url;
    u.password = '';
    return u.toString();
  } catch {
    return url;
  }
}

const optional = <K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> =>
  (value === undefined ? {} : { [key]: value }) as Partial<Record<K, V>>;

const describe = (o: { description?: string; tags?: Readonly<Record<string, string>> }) => ({
  ...optional('description', o.description),
  ...optional('tags', o.tags && { ...o.tags }),
});

const byName = <T extends { name: string }>(items: Iterable<T>): T[] => [...items].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

function entityOf(e: Entity): CanonicalEntity {
  return { name: e.name, joinKeys: [...e.joinKeys], keyTypes: { ...e.keyTypes }, ...describe(e) };
}

function sourceOf(s: Source): CanonicalSource {
  const base = {
    name: s.name,
    timestampField: s.timestampField,
    ...optional('createdTimestampField', s.createdTimestampField),
    ...optional('description', s.description),
  };
  switch (s.type) {
    case 'file':
      return { ...base, type: 'file', path: s.path, format: s.format };
    case 'postgres':
      return {
        ...base,
        type: 'postgres',
        ...optional('table', s.table),
        ...optional('query', s.query),
        ...optional('connection', s.connection && redactUrl(s.connection)),
      };
    case 'push':
      return { ...base, type: 'push', schema: { ...s.schema }, ...optional('batchSource', s.batchSource?.name) };
  }
}

function viewOf(v: FeatureView): CanonicalView {
  const keyTypes: Record<string, KeyType> = {};
  for (const e of v.entities) for (const k of e.joinKeys) keyTypes[k] = e.keyTypes[k]!;
  return {
    name: v.name,
    entities: v.entities.map((e) => e.name),
    joinKeys: v.entities.flatMap((e) => [...e.joinKeys]),
    keyTypes,
    source: v.source.name,
    ttlMs: v.ttlMs,
    schema: { ...v.schema },
    online: v.online,
    ...optional(
      'aggregations',
      v.aggregatedFeatures &&
        byName(v.aggregatedFeatures.map((f) => ({ name: f.name, column: f.column, function: f.fn, window: f.window, windowMs: f.windowMs, tileMs: f.tileMs }))),
    ),
    allowedLatenessMs: v.allowedLatenessMs,
    ...optional('transform', v.transform && { sha256: sha256(v.transform.toString()) }),
    ...describe(v),
  };
}

function serviceOf(s: FeatureService): CanonicalService {
  const features: Record<string, string[]> = {};
  for (const p of s.projections) features[p.view.name] = [...p.features];
  return { name: s.name, features, ...describe(s) };
}

/** The canonical JSON value of every definition in the repo. */
export function toCanonical(defs: Definitions): CanonicalRepo {
  return sortKeys({
    entities: byName(defs.entities.values()).map(entityOf),
    sources: byName(defs.sources.values()).map(sourceOf),
    featureViews: byName(defs.views.values()).map(viewOf),
    featureServices: byName(defs.services.values()).map(serviceOf),
  });
}

/** A deep copy with object keys in code-point order; arrays keep their order. */
export function sortKeys<T>(value: T): T {
  if (Array.isArray(value)) return value.map(sortKeys) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out as T;
  }
  return value;
}

/** The stable serialisation the version hash is taken of. */
export const canonicalJson = (repo: CanonicalRepo): string => JSON.stringify(sortKeys(repo));

/** Full sha256 hex of the canonical JSON. */
export const hashOf = (repo: CanonicalRepo): string => sha256(canonicalJson(repo));

/** The version users see: a prefix of the hash, long enough never to collide within one registry. */
export const shortVersion = (hash: string): string => hash.slice(0, 12);

export const versionOf = (repo: CanonicalRepo): string => shortVersion(hashOf(repo));

/** How many objects the repo defines, for messages. */
export const objectCount = (repo: CanonicalRepo): number =>
  repo.entities.length + repo.sources.length + repo.featureViews.length + repo.featureServices.length;
