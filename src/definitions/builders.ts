/**
 * The definitions API: `entity`, `fileSource`, `postgresSource`, `pushSource`, `featureView`,
 * `featureService`. Each validates its input once (zod) and returns a plain tagged value; the
 * types of `select()`, the SDK rows and the registry JSON all derive from that value.
 */
import { z } from 'zod';
import { DefinitionError } from '../core/errors.js';
import { parseDuration, asDurationMs, type DurationMs } from '../core/time.js';
import { KEY_TYPES, isValueType, type KeyType, type ValueType } from '../core/value-types.js';
import { isIdentifier } from '../core/refs.js';
import {
  AGGREGATION_FUNCTIONS,
  type AggregatedFeature,
  type AggregationFunction,
  type AggregationSpec,
  type BatchSource,
  type Entity,
  type FeatureService,
  type FeatureView,
  type FeatureViewProjection,
  type FileSource,
  type PostgresSource,
  type PushSource,
  type RowTransform,
  type Schema,
  type Source,
} from './types.js';

const identifier = z.string().refine(isIdentifier, { message: 'must be an identifier (letters, digits, _; not starting with a digit)' });
const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    return parseDuration(v);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});
const valueType = z.string().superRefine((v, ctx) => {
  if (!isValueType(v)) {
    ctx.addIssue({ code: 'custom', message: `unknown value type '${v}' (expected int32, int64, float32, float64, bool, string, timestamp, bytes, float32[], float64[] or sparse(n))` });
  }
});
const schemaOf = z.record(identifier, valueType).refine((s) => Object.keys(s).length > 0, { message: 'must declare at least one feature' });
const tags = z.record(z.string(), z.string()).optional();

/** Runs a zod schema and turns its first issue into one line naming the object and the field. */
function parse<T>(what: string, name: unknown, schema: z.ZodType<T>, input: unknown): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.length ? `${issue.path.join('.')}: ` : '';
  const label = typeof name === 'string' && name ? `${what} '${name}'` : what;
  throw new DefinitionError(`${label}: ${path}${issue.message}`);
}

const isKind = (v: unknown, kind: string): boolean => typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === kind;

// ---------------------------------------------------------------------------------------------
// entity

export interface EntityInput<N extends string, K extends string> {
  name: N;
  joinKeys: readonly K[];
  /** Type of every join key (default 'string'); `keyTypes` sets them one by one. */
  valueType?: KeyType;
  keyTypes?: Partial<Record<K, KeyType>>;
  description?: string;
  tags?: Record<string, string>;
}

const entitySchema = z.object({
  name: identifier,
  joinKeys: z.array(identifier).min(1, 'needs at least one join key'),
  valueType: z.enum(KEY_TYPES).optional(),
  keyTypes: z.record(identifier, z.enum(KEY_TYPES)).optional(),
  description: z.string().optional(),
  tags,
});

export function entity<const N extends string, const K extends string>(input: EntityInput<N, K>): Entity<N, K> {
  const e = parse('entity', input?.name, entitySchema, input);
  const keyTypes = {} as Record<K, KeyType>;
  for (const key of e.joinKeys) keyTypes[key as K] = (e.keyTypes?.[key] ?? e.valueType ?? 'string') as KeyType;
  for (const key of Object.keys(e.keyTypes ?? {})) {
    if (!e.joinKeys.includes(key)) throw new DefinitionError(`entity '${e.name}': keyTypes.${key}: not one of its join keys`);
  }
  return Object.freeze({
    kind: 'entity' as const,
    name: e.name as N,
    joinKeys: Object.freeze([...e.joinKeys]) as readonly K[],
    keyTypes: Object.freeze(keyTypes),
    ...(e.description !== undefined && { description: e.description }),
    ...(e.tags !== undefined && { tags: e.tags }),
  });
}

// ---------------------------------------------------------------------------------------------
// sources

const sourceBase = {
  name: identifier,
  timestampField: identifier,
  createdTimestampField: identifier.optional(),
  description: z.string().optional(),
};

export interface FileSourceInput<N extends string> {
  name: N;
  path: string;
  timestampField: string;
  createdTimestampField?: string;
  description?: string;
}

const fileSourceSchema = z.object({
  ...sourceBase,
  path: z
    .string()
    .min(1)
    .refine((p) => /\.(parquet|csv)$/i.test(p), { message: 'must end in .parquet or .csv' }),
});

export function fileSource<const N extends string>(input: FileSourceInput<N>): FileSource<N> {
  const s = parse('fileSource', input?.name, fileSourceSchema, input);
  return Object.freeze({
    kind: 'source' as const,
    type: 'file' as const,
    ...s,
    name: s.name as N,
    format: /\.csv$/i.test(s.path) ? ('csv' as const) : ('parquet' as const),
  });
}

export interface PostgresSourceInput<N extends string> {
  name: N;
  /** A table (optionally schema-qualified) or a query; exactly one. */
  table?: string;
  query?: string;
  /** postgres:// URL; defaults to DATABASE_URL when read. */
  connection?: string;
  timestampField: string;
  createdTimestampField?: string;
  description?: string;
}

const postgresSourceSchema = z
  .object({
    ...sourceBase,
    table: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/, 'must be a table name, optionally schema-qualified')
      .optional(),
    query: z.string().min(1).optional(),
    connection: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional(),
  })
  .refine((s) => (s.table === undefined) !== (s.query === undefined), { message: 'give exactly one of table or query' });

export function postgresSource<const N extends string>(input: PostgresSourceInput<N>): PostgresSource<N> {
  const s = parse('postgresSource', input?.name, postgresSourceSchema, input);
  return Object.freeze({ kind: 'source' as const, type: 'postgres' as const, ...s, name: s.name as N });
}

export interface PushSourceInput<N extends string, S extends Schema> {
  name: N;
  schema: S;
  timestampField: string;
  createdTimestampField?: string;
  batchSource?: BatchSource;
  description?: string;
}

const pushSourceSchema = z.object({
  ...sourceBase,
  schema: schemaOf,
  batchSource: z.custom<BatchSource>((v) => isKind(v, 'source') && (v as Source).type !== 'push', 'must be a fileSource or postgresSource').optional(),
});

export function pushSource<const N extends string, const S extends Schema>(input: PushSourceInput<N, S>): PushSource<N, S> {
  const s = parse('pushSource', input?.name, pushSourceSchema, input);
  return Object.freeze({ kind: 'source' as const, type: 'push' as const, ...s, name: s.name as N, schema: Object.freeze({ ...s.schema }) as S });
}

// ---------------------------------------------------------------------------------------------
// feature views

export interface AggregationInput {
  readonly column: string;
  readonly functions: readonly AggregationFunction[];
  readonly windows: readonly string[];
  readonly tile?: string;
  readonly name?: string;
}

/** Feature names an aggregation spec produces, at the type level. */
type AggNames<A> = A extends { readonly name: infer Nm extends string }
  ? Nm
  : A extends { readonly column: infer C extends string; readonly functions: readonly (infer F extends string)[]; readonly windows: readonly (infer W extends string)[] }
    ? `${C}_${F}_${W}`
    : never;

export type AggregationSchema<As extends readonly AggregationInput[]> = {
  readonly [K in AggNames<As[number]>]: K extends `${string}_count_${string}` ? 'int64' : 'float64';
};

interface FeatureViewInputBase<N extends string> {
  name: N;
  /** Entity definitions, or entity names resolved when the repo is loaded. */
  entities: readonly (Entity | string)[];
  source: Source;
  online?: boolean;
  description?: string;
  tags?: Record<string, string>;
}

export interface PlainFeatureViewInput<N extends string, S extends Schema> extends FeatureViewInputBase<N> {
  schema: S;
  /** '90s' '30m' '2h' '7d', or seconds; omitted or 0 = no limit. */
  ttl?: string | number;
  /** Row-level transform from a source row to feature values; the same code runs in backfill, push and predict. */
  transform?: (row: Record<string, any>) => Partial<Record<keyof S, unknown>>;
  aggregations?: undefined;
}

export interface AggregationFeatureViewInput<N extends string, As extends readonly AggregationInput[]> extends FeatureViewInputBase<N> {
  aggregations: As;
  /** Events up to this late still update online values (default '5m'). */
  allowedLateness?: string | number;
  schema?: undefined;
  ttl?: undefined;
  transform?: undefined;
}

const aggregationSchema = z.object({
  column: identifier,
  functions: z.array(z.enum(AGGREGATION_FUNCTIONS)).min(1, 'needs at least one function'),
  windows: z.array(z.string()).min(1, 'needs at least one window'),
  tile: z.string().optional(),
  name: identifier.optional(),
});

const featureViewSchema = z.object({
  name: identifier,
  // An entity object, or its name (resolved when the repo is loaded).
  entities: z
    .array(z.custom<Entity | string>((v) => isKind(v, 'entity') || (typeof v === 'string' && isIdentifier(v)), 'must be an entity() definition or its name'))
    .min(1, 'needs at least one entity'),
  source: z.custom<Source>((v) => isKind(v, 'source'), 'must be a source definition (fileSource, postgresSource or pushSource)'),
  ttl: duration.optional(),
  schema: schemaOf.optional(),
  online: z.boolean().optional(),
  transform: z.custom<RowTransform>((v) => typeof v === 'function', 'must be a function').optional(),
  aggregations: z.array(aggregationSchema).min(1).optional(),
  allowedLateness: duration.optional(),
  description: z.string().optional(),
  tags,
});

const MIN_TILE_MS = 1000;

function resolveAggregations(view: string, specs: readonly AggregationSpec[]): AggregatedFeature[] {
  const out: AggregatedFeature[] = [];
  specs.forEach((spec, i) => {
    const at = `featureView '${view}': aggregations.${i}`;
    if (spec.name !== undefined && (spec.functions.length !== 1 || spec.windows.length !== 1)) {
      throw new DefinitionError(`${at}.name: a name needs exactly one function and one window`);
    }
    for (const window of spec.windows) {
      let windowMs: DurationMs;
      let tileMs: DurationMs;
      try {
        windowMs = parseDuration(window);
      } catch (err) {
        throw new DefinitionError(`${at}.windows: ${(err as Error).message}`);
      }
      if (windowMs <= 0) throw new DefinitionError(`${at}.windows: a window must be longer than 0`);
      try {
        tileMs = spec.tile !== undefined ? parseDuration(spec.tile) : asDurationMs(Math.max(MIN_TILE_MS, Math.floor(windowMs / 60)));
      } catch (err) {
        throw new DefinitionError(`${at}.tile: ${(err as Error).message}`);
      }
      if (tileMs < MIN_TILE_MS) throw new DefinitionError(`${at}.tile: at least 1s`);
      if (tileMs > windowMs) throw new DefinitionError(`${at}.tile: longer than the window ${window}`);
      for (const fn of spec.functions) {
        out.push({ name: spec.name ?? `${spec.column}_${fn}_${window}`, column: spec.column, fn, window, windowMs, tileMs });
      }
    }
  });
  const seen = new Set<string>();
  for (const f of out) {
    if (seen.has(f.name)) throw new DefinitionError(`featureView '${view}': aggregation feature '${f.name}' is declared twice`);
    seen.add(f.name);
  }
  return out;
}

export function featureView<const N extends string, const S extends Schema>(input: PlainFeatureViewInput<N, S>): FeatureView<N, S>;
export function featureView<const N extends string, const As extends readonly AggregationInput[]>(
  input: AggregationFeatureViewInput<N, As>,
): FeatureView<N, AggregationSchema<As>>;
export function featureView(input: PlainFeatureViewInput<string, Schema> | AggregationFeatureViewInput<string, readonly AggregationInput[]>): FeatureView<string, any> {
  const v = parse('featureView', input?.name, featureViewSchema, input);
  const where = `featureView '${v.name}'`;
  let schema: Schema;
  let aggregatedFeatures: AggregatedFeature[] | undefined;
  if (v.aggregations) {
    if (v.schema) throw new DefinitionError(`${where}: give either schema or aggregations, not both`);
    if (v.transform) throw new DefinitionError(`${where}: transform: an aggregation view aggregates source columns; transform them in the source`);
    if (v.ttl !== undefined && v.ttl !== 0) throw new DefinitionError(`${where}: ttl: aggregation views have no TTL (their windows bound them)`);
    aggregatedFeatures = resolveAggregations(v.name, v.aggregations);
    schema = Object.fromEntries(aggregatedFeatures.map((f) => [f.name, f.fn === 'count' ? 'int64' : 'float64'] as const));
  } else {
    if (!v.schema) throw new DefinitionError(`${where}: schema: declare the features (or aggregations)`);
    schema = v.schema as Schema;
  }
  const keys = new Set<string>();
  for (const e of v.entities) {
    if (typeof e === 'string') continue; // checked by the loader once names are resolved
    for (const k of e.joinKeys) {
      if (keys.has(k)) throw new DefinitionError(`${where}: entities: join key '${k}' appears in two entities`);
      keys.add(k);
    }
  }
  for (const reserved of ['event_timestamp', 'created_timestamp', ...keys]) {
    if (reserved in schema) throw new DefinitionError(`${where}: schema.${reserved}: a feature cannot be named like a join key or timestamp column`);
  }
  const view: FeatureView = {
    kind: 'featureView',
    name: v.name,
    // Names stay names until the loader resolves them against the registered entities.
    entities: Object.freeze([...v.entities]) as readonly Entity[],
    source: v.source,
    ttlMs: v.ttl ?? asDurationMs(0),
    schema: Object.freeze({ ...schema }),
    online: v.online ?? true,
    ...(v.transform && { transform: v.transform }),
    ...(v.aggregations && { aggregations: Object.freeze(v.aggregations) }),
    ...(aggregatedFeatures && { aggregatedFeatures: Object.freeze(aggregatedFeatures) }),
    allowedLatenessMs: v.allowedLateness ?? parseDuration('5m'),
    ...(v.description !== undefined && { description: v.description }),
    ...(v.tags !== undefined && { tags: v.tags }),
    select(...features: string[]): any {
      for (const f of features) {
        if (!(f in schema)) throw new DefinitionError(`${where}: select('${f}'): no such feature (has ${Object.keys(schema).join(', ')})`);
      }
      return Object.freeze({ kind: 'projection' as const, view, features: Object.freeze([...features]) }) as FeatureViewProjection<string, any>;
    },
  };
  return Object.freeze(view);
}

// ---------------------------------------------------------------------------------------------
// feature services

type ProjectionOf<T> = T extends FeatureView<infer N, infer S> ? FeatureViewProjection<N, S> : T;

export interface FeatureServiceInput<N extends string, Fs extends readonly (FeatureView<string, any> | FeatureViewProjection<string, any>)[]> {
  name: N;
  features: Fs;
  description?: string;
  tags?: Record<string, string>;
}

const featureServiceSchema = z.object({
  name: identifier,
  features: z
    .array(z.custom<FeatureView | FeatureViewProjection>((v) => isKind(v, 'featureView') || isKind(v, 'projection'), 'must be a feature view or view.select(...)'))
    .min(1, 'needs at least one feature view'),
  description: z.string().optional(),
  tags,
});

export function featureService<const N extends string, const Fs extends readonly (FeatureView<string, any> | FeatureViewProjection<string, any>)[]>(
  input: FeatureServiceInput<N, Fs>,
): FeatureService<N, { [I in keyof Fs]: ProjectionOf<Fs[I]> }> {
  const s = parse('featureService', input?.name, featureServiceSchema, input);
  const projections = s.features.map((f) =>
    f.kind === 'projection' ? f : Object.freeze({ kind: 'projection' as const, view: f, features: Object.freeze(Object.keys(f.schema)) }),
  );
  const views = new Set<string>();
  for (const p of projections) {
    if (views.has(p.view.name)) throw new DefinitionError(`featureService '${s.name}': features: view '${p.view.name}' appears twice; select all its features at once`);
    views.add(p.view.name);
  }
  return Object.freeze({
    kind: 'featureService' as const,
    name: s.name as N,
    projections: Object.freeze(projections) as unknown as { [I in keyof Fs]: ProjectionOf<Fs[I]> },
    ...(s.description !== undefined && { description: s.description }),
    ...(s.tags !== undefined && { tags: s.tags }),
  });
}

export type { ValueType };
