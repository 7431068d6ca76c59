/**
 * The definition objects. Each is a plain value tagged by `kind` (no classes), so a definition
 * loaded through another module instance still registers, and the registry JSON derives from it.
 */
import type { KeyType, ValueType } from '../core/value-types.js';
import type { DurationMs } from '../core/time.js';

export type Schema = Readonly<Record<string, ValueType>>;

export interface Entity<N extends string = string, K extends string = string> {
  readonly kind: 'entity';
  readonly name: N;
  readonly joinKeys: readonly K[];
  /** The type of each join key. */
  readonly keyTypes: Readonly<Record<K, KeyType>>;
  readonly description?: string;
  readonly tags?: Readonly<Record<string, string>>;
}

interface SourceBase<N extends string> {
  readonly kind: 'source';
  readonly name: N;
  readonly timestampField: string;
  readonly createdTimestampField?: string;
  readonly description?: string;
}

export interface FileSource<N extends string = string> extends SourceBase<N> {
  readonly type: 'file';
  /** Relative to the repo folder, or absolute. */
  readonly path: string;
  readonly format: 'parquet' | 'csv';
}

export interface PostgresSource<N extends string = string> extends SourceBase<N> {
  readonly type: 'postgres';
  readonly table?: string;
  readonly query?: string;
  /** A postgres:// URL; defaults to DATABASE_URL at read time. */
  readonly connection?: string;
}

export type BatchSource = FileSource | PostgresSource;

export interface PushSource<N extends string = string, S extends Schema = Schema> extends SourceBase<N> {
  readonly type: 'push';
  readonly schema: S;
  readonly batchSource?: BatchSource;
}

export type Source = BatchSource | PushSource;

export const AGGREGATION_FUNCTIONS = ['count', 'sum', 'mean', 'min', 'max', 'stddev', 'last'] as const;
export type AggregationFunction = (typeof AGGREGATION_FUNCTIONS)[number];

export interface AggregationSpec {
  readonly column: string;
  readonly functions: readonly AggregationFunction[];
  readonly windows: readonly string[];
  /** Tile size; default window/60, at least 1 s. */
  readonly tile?: string;
  /** Feature name, when the spec has one function and one window (default `<column>_<function>_<window>`). */
  readonly name?: string;
}

/** One feature an aggregation produces, resolved. */
export interface AggregatedFeature {
  readonly name: string;
  readonly column: string;
  readonly fn: AggregationFunction;
  readonly window: string;
  readonly windowMs: DurationMs;
  readonly tileMs: DurationMs;
}

export type SourceRow = Record<string, unknown>;
export type RowTransform = (row: SourceRow) => Record<string, unknown>;

export interface FeatureView<N extends string = string, S extends Schema = Schema> {
  readonly kind: 'featureView';
  readonly name: N;
  readonly entities: readonly Entity[];
  readonly source: Source;
  /** 0 means no limit. */
  readonly ttlMs: DurationMs;
  readonly schema: S;
  readonly online: boolean;
  readonly transform?: RowTransform;
  readonly aggregations?: readonly AggregationSpec[];
  /** Resolved aggregated features, in schema order (aggregation views only). */
  readonly aggregatedFeatures?: readonly AggregatedFeature[];
  readonly allowedLatenessMs: DurationMs;
  readonly description?: string;
  readonly tags?: Readonly<Record<string, string>>;
  /** A projection of some features, for feature services. Only declared names type-check. */
  select<K extends keyof S & string>(...features: K[]): FeatureViewProjection<N, Pick<S, K>>;
}

export interface FeatureViewProjection<N extends string = string, S extends Schema = Schema> {
  readonly kind: 'projection';
  readonly view: FeatureView<N, Schema>;
  readonly features: readonly (keyof S & string)[];
  /** Phantom: the projected schema, for type inference. */
  readonly __schema?: S;
}

export interface FeatureService<N extends string = string, P extends readonly FeatureViewProjection[] = readonly FeatureViewProjection[]> {
  readonly kind: 'featureService';
  readonly name: N;
  readonly projections: P;
  readonly description?: string;
  readonly tags?: Readonly<Record<string, string>>;
}

export type Definition = Entity | Source | FeatureView | FeatureService;

/** Everything a repo defines, by kind and name. */
export interface Definitions {
  readonly entities: ReadonlyMap<string, Entity>;
  readonly sources: ReadonlyMap<string, Source>;
  readonly views: ReadonlyMap<string, FeatureView>;
  readonly services: ReadonlyMap<string, FeatureService>;
  /** The folder definitions were loaded from; file sources resolve against it. */
  readonly repoDir: string;
}
