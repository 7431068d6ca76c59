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

/**
 * Names become folder names (`<offline>/<view>/`), Parquet and SQL columns and Redis fields: past
 * a few hundred characters a folder name no filesystem takes (a 300-character view name failed
 * backfill with ENAMETOOLONG, exit 70). 128 is far from that and from any name a person writes.
 */
export const MAX_NAME_LENGTH = 128;

const identifier = z
  .string()
  .refine(isIdentifier, { message: 'must be an identifier (letters, digits, _; not starting with a digit)', abort: true })
  .refine((v) => v.length <= MAX_NAME_LENGTH, { message: `must be at most ${MAX_NAME_LENGTH} characters` })
  // Names become keys of plain objects (schemas, key types, rows): `__proto__` there sets the
  // prototype instead, so a feature of that name vanished from its schema and a join key lost its type.
  .refine((v) => v !== '__proto__', { message: "'__proto__' is reserved" });

const NUMERIC_TYPES: readonly string[] = ['int32', 'int64', 'float32', 'float64'];

/**
 * A frozen copy of a record of names (a schema, key types) without a prototype: looked up by a
 * name a request or a file gives (`schema[feature]`, `key in schema`), `constructor`, `toString`
 * or `__proto__` would otherwise find Object.prototype's members. A request for the feature
 * `driver_stats:__proto__` read Object.prototype as its value type and answered 500.
 */
const nameRecord = <T extends object>(record: T): T => Object.freeze(Object.assign(Object.create(null) as T, record));

/** Columns every offline row has besides the join keys and features (CONTRACT s.7). */
const LAYOUT_COLUMNS = ['event_timestamp', 'created_timestamp'];
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
    ctx.addIssue({ code: 'custom', message: `unknown value type ${shown(v)} (expected int32, int64, float32, float64, bool, string, timestamp, bytes, float32[], float64[] or sparse(n) with n up to 2^31)` });
  }
});
const schemaOf = z.record(identifier, valueType).refine((s) => Object.keys(s).length > 0, { message: 'must declare at least one feature' });
const tags = z.record(z.string(), z.string()).optional();

/**
 * A string for a one-line error: quoted, control characters (a newline, NUL) escaped, and so are
 * the invisible ones that reorder a line as shown (RTL overrides); cut past 60 characters, so a
 * 10,000-character name gives an error of one short line.
 */
function shown(v: string): string {
  const cut = v.length > 60 ? `${v.slice(0, 60)}...` : v;
  // eslint-disable-next-line no-control-regex
  if (!/[\u0000-\u001f\u007f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]/.test(cut)) return `'${cut}'`;
  return JSON.stringify(cut).replace(/[\u200b-\u200f\u2028-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}

/** A path of a field at fault: its keys are the user's too (a schema key holding a newline). */
const pathText = (path: readonly PropertyKey[]): string =>
  path.map((p) => (typeof p === 'number' ? String(p) : typeof p === 'string' && /^[\w$]{1,60}$/.test(p) ? p : typeof p === 'string' ? shown(p) : String(p.description ?? 'symbol'))).join('.');

/**
 * Runs a zod schema and turns its first issue into one line naming the object, the field and,
 * for a string refused (a name that is not an identifier: `"; DROP TABLE x; --`), the value.
 */
function parse<T>(what: string, name: unknown, schema: z.ZodType<T>, input: unknown): T {
  // A record with an own `__proto__` key (JSON.parse or a computed key makes one) is taken by zod
  // without that key, silently: a feature of that name vanished from its schema.
  for (const field of ['schema', 'keyTypes', 'tags']) {
    const record = typeof input === 'object' && input !== null ? (input as Record<string, unknown>)[field] : undefined;
    if (typeof record === 'object' && record !== null && Object.hasOwn(record, '__proto__')) {
      throw new DefinitionError(`${what}${typeof name === 'string' && name ? ` ${shown(name)}` : ''}: ${field}.__proto__: '__proto__' is reserved`);
    }
  }
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.length ? `${pathText(issue.path)}: ` : '';
  const label = typeof name === 'string' && name ? `${what} ${shown(name)}` : what;
  // A bad record key (a feature name in `schema`): the key is the value at fault, the inner issue says why.
  const badKey = issue.code === 'invalid_key';
  const message = badKey ? (issue.issues[0]?.message ?? issue.message) : issue.message;
  const value = badKey ? issue.path[issue.path.length - 1] : issue.path.reduce<unknown>((v, k) => (typeof v === 'object' && v !== null ? (v as Record<PropertyKey, unknown>)[k] : undefined), input);
  const got = typeof value === 'string' && (badKey || issue.code === 'custom' || issue.code === 'invalid_format') && !message.includes(shown(value)) ? `, got ${shown(value)}` : '';
  throw new DefinitionError(`${label}: ${path}${message.split('\n')[0]}${got}`);
}

const isKind = (v: unknown, kind: string): boolean => typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === kind;

/**
 * Whether a value has the shape of what a builder made, so a literal with only the `kind`
 * (`{ kind: 'featureView', name: 'x' }`) is refused here with one line rather than failing
 * inside with a TypeError ("Cannot convert undefined or null to object").
 */
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const looksLikeEntity = (v: unknown): boolean =>
  isKind(v, 'entity') && typeof (v as Entity).name === 'string' && Array.isArray((v as Entity).joinKeys) && (v as Entity).joinKeys.every((k) => typeof k === 'string') && isRecord((v as Entity).keyTypes);
const looksLikeSource = (v: unknown): boolean =>
  isKind(v, 'source') && typeof (v as Source).name === 'string' && ['file', 'postgres', 'push'].includes((v as Source).type) && ((v as Source).type !== 'push' || isRecord((v as PushSource).schema));
const looksLikeView = (v: unknown): boolean => isKind(v, 'featureView') && typeof (v as FeatureView).name === 'string' && isRecord((v as FeatureView).schema);
const looksLikeProjection = (v: unknown): boolean => {
  if (!isKind(v, 'projection')) return false;
  const p = v as FeatureViewProjection;
  return looksLikeView(p.view) && Array.isArray(p.features) && p.features.length > 0 && p.features.every((f) => typeof f === 'string' && Object.hasOwn(p.view.schema, f));
};

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
  const where = `entity '${e.name}'`;
  e.joinKeys.forEach((key, i) => {
    // A key given twice keys rows by one column twice; a key named like the offline layout's own
    // timestamp columns would clash with them in every offline file.
    if (e.joinKeys.indexOf(key) !== i) throw new DefinitionError(`${where}: joinKeys.${i}: '${key}' is given twice`);
    if (LAYOUT_COLUMNS.includes(key)) throw new DefinitionError(`${where}: joinKeys.${i}: '${key}' is a column of every offline row already; name the key otherwise`);
  });
  const keyTypes = {} as Record<K, KeyType>;
  // Own keys only: a join key named `constructor` must not read Object.prototype.constructor.
  const given = (key: string): KeyType | undefined => (e.keyTypes && Object.hasOwn(e.keyTypes, key) ? e.keyTypes[key] : undefined);
  for (const key of e.joinKeys) keyTypes[key as K] = (given(key) ?? e.valueType ?? 'string') as KeyType;
  for (const key of Object.keys(e.keyTypes ?? {})) {
    if (!e.joinKeys.includes(key)) throw new DefinitionError(`${where}: keyTypes.${key}: not one of its join keys`);
  }
  return Object.freeze({
    kind: 'entity' as const,
    name: e.name as N,
    joinKeys: Object.freeze([...e.joinKeys]) as readonly K[],
    keyTypes: nameRecord(keyTypes),
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

/** The created timestamp breaks ties between rows of one event time: it cannot be that time. */
function checkTimestampFields(what: string, s: { name: string; timestampField: string; createdTimestampField?: string | undefined }): void {
  if (s.createdTimestampField !== undefined && s.createdTimestampField === s.timestampField) {
    throw new DefinitionError(`${what} '${s.name}': createdTimestampField: '${s.createdTimestampField}' is the timestampField too; give another column, or none`);
  }
}

export function fileSource<const N extends string>(input: FileSourceInput<N>): FileSource<N> {
  const s = parse('fileSource', input?.name, fileSourceSchema, input);
  checkTimestampFields('fileSource', s);
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
  checkTimestampFields('postgresSource', s);
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
  batchSource: z.custom<BatchSource>((v) => looksLikeSource(v) && (v as Source).type !== 'push', 'must be a fileSource or postgresSource').optional(),
});

export function pushSource<const N extends string, const S extends Schema>(input: PushSourceInput<N, S>): PushSource<N, S> {
  const s = parse('pushSource', input?.name, pushSourceSchema, input);
  checkTimestampFields('pushSource', s);
  // A push's event time (and created time) is read as an instant whatever the schema says; typed
  // otherwise, the push path took a string column for Dates and failed with a TypeError (a 500).
  for (const field of [s.timestampField, s.createdTimestampField]) {
    if (field !== undefined && Object.hasOwn(s.schema, field) && s.schema[field] !== 'timestamp') {
      const which = field === s.timestampField ? 'timestampField' : 'createdTimestampField';
      throw new DefinitionError(`pushSource '${s.name}': schema.${field}: the ${which} must be typed 'timestamp' (or left out of the schema), not '${s.schema[field]}'`);
    }
  }
  return Object.freeze({ kind: 'source' as const, type: 'push' as const, ...s, name: s.name as N, schema: nameRecord({ ...s.schema }) as S });
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
    .array(z.custom<Entity | string>((v) => looksLikeEntity(v) || (typeof v === 'string' && isIdentifier(v)), 'must be an entity() definition or its name'))
    .min(1, 'needs at least one entity'),
  source: z.custom<Source>(looksLikeSource, 'must be a source definition (fileSource, postgresSource or pushSource)'),
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
/**
 * A read combines window/tile tiles per entity and window (streaming/tiles.ts): '30d' over '1s'
 * tiles would be 2.6 million per entity and read. The default tile (window/60) keeps it at 60.
 */
export const MAX_TILES_PER_WINDOW = 10_000;

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
      if (tileMs > windowMs) throw new DefinitionError(`${at}.tile: longer than the window ${shown(window)}`);
      if (windowMs / tileMs > MAX_TILES_PER_WINDOW) {
        throw new DefinitionError(`${at}.tile: a window of ${shown(window)} over tiles of ${shown(spec.tile ?? '')} is ${Math.ceil(windowMs / tileMs)} tiles per read; at most ${MAX_TILES_PER_WINDOW} (give a longer tile)`);
      }
      for (const fn of spec.functions) {
        const name = spec.name ?? `${spec.column}_${fn}_${window}`;
        // The window is part of the name as written: '1.5m' or ' 1m' make names no feature
        // reference (`view:feature`) can name, nor SQL or Parquet take as an identifier.
        if (!isIdentifier(name) || name.length > MAX_NAME_LENGTH) {
          throw new DefinitionError(`${at}.windows: the feature name ${shown(name)} is not an identifier of at most ${MAX_NAME_LENGTH} characters; write the window as whole units ('90s', not '1.5m') or give a name`);
        }
        out.push({ name, column: spec.column, fn, window, windowMs, tileMs });
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
    if (v.source.type === 'push') {
      // Tiles aggregate numbers: a string or bool column was taken and then refused every push.
      const schemaOfSource = v.source.schema;
      v.aggregations.forEach((a, i) => {
        const type = Object.hasOwn(schemaOfSource, a.column) ? schemaOfSource[a.column] : undefined;
        if (type === undefined) throw new DefinitionError(`${where}: aggregations.${i}.column: '${a.column}' is not in push source '${v.source.name}' (has ${Object.keys(schemaOfSource).join(', ')})`);
        if (!NUMERIC_TYPES.includes(type)) throw new DefinitionError(`${where}: aggregations.${i}.column: '${a.column}' is ${type} in push source '${v.source.name}'; aggregations take ${NUMERIC_TYPES.join(', ')}`);
      });
    }
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
  for (const reserved of [...LAYOUT_COLUMNS, ...keys]) {
    // Own keys: `in` also found Object.prototype's, so a join key named `toString` was refused.
    if (Object.hasOwn(schema, reserved)) throw new DefinitionError(`${where}: schema.${reserved}: a feature cannot be named like a join key or timestamp column`);
  }
  const view: FeatureView = {
    kind: 'featureView',
    name: v.name,
    // Names stay names until the loader resolves them against the registered entities.
    entities: Object.freeze([...v.entities]) as readonly Entity[],
    source: v.source,
    ttlMs: v.ttl ?? asDurationMs(0),
    schema: nameRecord({ ...schema }),
    online: v.online ?? true,
    ...(v.transform && { transform: v.transform }),
    ...(v.aggregations && { aggregations: Object.freeze(v.aggregations) }),
    ...(aggregatedFeatures && { aggregatedFeatures: Object.freeze(aggregatedFeatures) }),
    allowedLatenessMs: v.allowedLateness ?? parseDuration('5m'),
    ...(v.description !== undefined && { description: v.description }),
    ...(v.tags !== undefined && { tags: v.tags }),
    select(...features: string[]): any {
      // At least one feature, each once: an empty projection served no column, a repeated one
      // gave a dataset two columns of one name.
      if (features.length === 0) throw new DefinitionError(`${where}: select(): name at least one feature (or give the view itself for all of them)`);
      features.forEach((f, i) => {
        // Own keys only: select('constructor') used to pass as a feature of every view.
        if (typeof f !== 'string' || !Object.hasOwn(schema, f)) throw new DefinitionError(`${where}: select(${typeof f === 'string' ? shown(f) : typeof f}): no such feature (has ${Object.keys(schema).join(', ')})`);
        if (features.indexOf(f) !== i) throw new DefinitionError(`${where}: select(): '${f}' is selected twice`);
      });
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
    .array(z.custom<FeatureView | FeatureViewProjection>((v) => looksLikeView(v) || looksLikeProjection(v), 'must be a feature view or view.select(...)'))
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
