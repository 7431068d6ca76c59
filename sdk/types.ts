/**
 * The SDK's types: the wire shapes of the HTTP API (CONTRACT s.5) and the row types inferred from
 * definition objects. Everything here is `import type`, so the SDK carries no runtime code from
 * `src/`; the definitions stay the single source of truth for feature names and value types.
 * Only light type modules are imported (definitions, value types, the canonical registry JSON):
 * the Feast response shape is declared here rather than taken from the server's online read
 * path, whose imports reach the store codecs (test/sdk-types.test.ts checks the two agree).
 */
import type { Table } from 'apache-arrow';
import type { FeatureService, FeatureView, FeatureViewProjection } from '../src/definitions/types.js';
import type { TsValue, ValueType } from '../src/core/value-types.js';
import type { CanonicalRepo } from '../src/registry/canonical.js';

export type { SparseVector, TsValue, ValueType } from '../src/core/value-types.js';
export type { CanonicalRepo } from '../src/registry/canonical.js';

// ---------------------------------------------------------------------------------------------
// The wire: Feast's online response

export type FeatureStatus = 'PRESENT' | 'NOT_FOUND' | 'OUTSIDE_MAX_AGE';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** One column of the answer: a value, status and event timestamp per entity. */
export interface FeastFeatureVector {
  values: JsonValue[];
  statuses: FeatureStatus[];
  event_timestamps: string[];
}

/** `POST /get-online-features`: join key columns first, then the features, in `feature_names` order. */
export interface FeastOnlineResponse {
  metadata: { feature_names: string[] };
  results: FeastFeatureVector[];
}

// ---------------------------------------------------------------------------------------------
// What a request names

/** A projection of any view: `driverStats.select('conv_rate')`. */
export type AnyProjection = FeatureViewProjection<string, any>;
/** A whole view: all its features. */
export type AnyView = FeatureView<string, any>;
/** A service definition: `featureService({...})`. */
export type AnyService = FeatureService<string, readonly FeatureViewProjection<string, any>[]>;

/** A feature reference `view:feature`, a projection, or a whole view. */
export type FeatureInput = string | AnyProjection | AnyView;
/** A service name, or the service definition. */
export type ServiceInput = string | AnyService;

/** Entities as columns (`{ driver_id: [1001, 1002] }`) or as rows (`[{ driver_id: 1001 }, ...]`). */
export type EntitiesInput = Readonly<Record<string, readonly unknown[]>> | readonly Readonly<Record<string, unknown>>[];

/** Per-call options every method takes. */
export interface CallOptions {
  /** This call's timeout in milliseconds (default: the client's `timeoutMs`). */
  timeoutMs?: number;
  /** Cancels the call. */
  signal?: AbortSignal;
}

/** Exactly one of `features` and `service`. */
export type Selection<Fs, Svc> = { features: Fs; service?: undefined } | { service: Svc; features?: undefined };

export type OnlineFeaturesRequest<Fs extends readonly FeatureInput[], Svc extends ServiceInput, E extends EntitiesInput, F extends boolean> = Selection<Fs, Svc> &
  CallOptions & {
    entities: E;
    /** Name feature columns `view__feature` (Feast's `full_feature_names`). */
    fullNames?: F;
  };

/** Entity rows as columns, as objects, or as an Arrow table (sent as an Arrow IPC stream). */
export type HistoricalEntities = EntitiesInput | Table;

export type HistoricalFeaturesRequest = Selection<readonly FeatureInput[], ServiceInput> &
  CallOptions & {
    /** Entity rows: join keys, the event timestamp, and any further columns (carried through). */
    entities: HistoricalEntities;
    fullNames?: boolean;
    /** The entity column holding each row's point in time (default `event_timestamp`). */
    timestampColumn?: string;
  };

// ---------------------------------------------------------------------------------------------
// Inferred rows

type Simplify<T> = { [K in keyof T]: T[K] } & {};

/** One feature column a projection or view contributes: its output name and TS value. */
type FieldsOf<N extends string, S, F extends boolean> = {
  [K in keyof S & string]: {
    key: F extends true ? `${N}__${K}` : K;
    value: S[K] extends ValueType ? TsValue<S[K]> : unknown;
  };
}[keyof S & string];

type FieldsOfInput<I, F extends boolean> = I extends { readonly kind: 'projection'; readonly view: { readonly name: infer N extends string } }
  ? FieldsOf<N, NonNullable<I extends { readonly __schema?: infer S } ? S : never>, F>
  : I extends { readonly kind: 'featureView'; readonly name: infer N extends string; readonly schema: infer S }
    ? FieldsOf<N, S, F>
    : never;

/** Feature columns of typed inputs; a feature whose status is not PRESENT is null. */
type FeatureColumns<I, F extends boolean> = { [D in FieldsOfInput<I, F> as D['key']]: D['value'] | null };

/** Join key names of an entities argument; nothing when they are not literal. */
export type JoinKeysOf<E> = E extends readonly (infer R)[] ? keyof R & string : keyof E & string;
type KeyColumns<E> = string extends JoinKeysOf<E> ? {} : { [K in JoinKeysOf<E>]: string | number };

/**
 * The row of definition inputs `I` (projections, views, or a service's projections) for the
 * entities `E`: join keys as given, then each feature as `TsValue<type> | null`. `fullNames`
 * must be the literal `true` or `false` (or omitted) to be typed.
 */
export type TypedRow<I, E, F extends boolean> = [F] extends [true] | [false] ? Simplify<KeyColumns<E> & FeatureColumns<I, [F] extends [true] ? true : false>> : Record<string, unknown>;

/** Whether every element of `I` is a string (nothing to infer from). */
type AllStrings<I> = [I] extends [string] ? true : false;

/** The row type of a request: typed from definitions; `Record<string, unknown>` for names given as strings. */
export type OnlineRow<Fs, Svc, E, F extends boolean> = [Svc] extends [never]
  ? Fs extends readonly (infer I)[]
    ? [I] extends [never]
      ? Record<string, unknown>
      : AllStrings<I> extends true
        ? Record<string, unknown>
        : [Extract<I, string>] extends [never]
          ? TypedRow<I, E, F>
          : TypedRow<Exclude<I, string>, E, F> & Record<string, unknown>
    : Record<string, unknown>
  : Svc extends { readonly kind: 'featureService'; readonly projections: readonly (infer P)[] }
    ? TypedRow<P, E, F>
    : Record<string, unknown>;

/** A row with each column's status and event timestamp, from `getOnlineFeaturesWithStatus`. */
export interface OnlineRowWithStatus<Row> {
  values: Row;
  statuses: { [K in keyof Row]: FeatureStatus };
  /** ISO-8601; Feast's `1970-01-01T00:00:00Z` for join keys and values not found. */
  eventTimestamps: { [K in keyof Row]: string };
}

// ---------------------------------------------------------------------------------------------
// Push, predict, health, registry

export type PushTarget = 'online' | 'offline' | 'online_and_offline';

export interface PushOptions extends CallOptions {
  /** Where the rows go (default `online`, as Feast). */
  to?: PushTarget;
  /** Rows per request (default 1,000); batches are sent in order, each awaited. The timeout is per batch. */
  batchSize?: number;
}

export interface PushResult {
  /** Rows the server accepted. */
  rows: number;
  /** Requests sent. */
  batches: number;
}

/** `{ entities: {...} }`, `{ inputs: {...} }` (raw inputs the views' transforms turn into features), or bare entity columns or rows. */
export type PredictInput =
  | { entities: EntitiesInput; inputs?: undefined }
  | { inputs: Readonly<Record<string, readonly unknown[]>> | readonly Readonly<Record<string, unknown>>[]; entities?: undefined }
  | EntitiesInput;

export interface Prediction {
  prediction: JsonValue;
  probability?: number;
  /** True when the model is unsure (below its confidence threshold) or a feature was missing: the prediction waits in the review queue. */
  needs_review?: boolean;
  features?: Record<string, JsonValue>;
  /** Features that had no value online; present only when some. */
  missing_features?: string[];
  [field: string]: unknown;
}

export interface PredictResponse<M extends string = string> {
  model: M;
  version: string;
  /** The id the serving log and the review queue know this request by. */
  request_id?: string;
  /** One per input row, in order. */
  predictions: Prediction[];
}

export interface HealthResult {
  /** True when the server answered 200 (every store answers). */
  ok: boolean;
  status: number;
  /** The server's body, as it sent it: `{ status, online, registry, version, definitions, error?, detail? }`. */
  body: HealthBody;
}

export interface HealthBody {
  status?: 'ok' | 'unavailable';
  online?: 'ok' | 'unavailable';
  registry?: 'ok' | 'unavailable';
  /** The definitions version served. */
  version?: string;
  /** Why the server is unavailable. */
  error?: string;
  detail?: unknown;
  [field: string]: unknown;
}

/** `GET /registry`: the applied version (`unapplied`, hash and time null, before any apply) and its canonical definitions. */
export interface RegistryResponse {
  version: string;
  hash: string | null;
  appliedAt: string | null;
  repo: CanonicalRepo;
}

/** A prediction waiting for a reviewer (`GET /review-queue/{model}`): the server's own type. */
export type { ReviewItem } from '../src/inference/review-queue.js';
import type { ReviewItem } from '../src/inference/review-queue.js';

export interface ReviewQueueResponse {
  model: string;
  /** Items waiting in all. */
  pending: number;
  /** The oldest ones, up to the limit asked. */
  items: ReviewItem[];
}
