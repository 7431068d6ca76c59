/**
 * The online store: the latest values of each entity, one record per entity holding one binary
 * value per feature view (codec.ts). One interface, two backends with the same semantics:
 * redis/ (standalone or Cluster) and embedded/ (LMDB, the default).
 *
 * Semantics both backends keep:
 * - A write keeps, per (entity, view), the row with the greatest (event time, created time),
 *   decided atomically in the store. On an equal pair the stored row stays: a re-run of the same
 *   materialization changes nothing, and a correction must carry a greater created time.
 * - Stale and gone are two things. A value is *stale* when its row is older than its view's TTL
 *   at the read's `now` (now - ttl > event time): the read path (online-features.ts) decides that
 *   from the event time a read returns, and answers OUTSIDE_MAX_AGE with a null value and the
 *   row's event time, for as long as the record holds the value. A record is *gone* once its
 *   expiry, judged by the store's clock, has passed: the greatest `event time + ttl` over the
 *   views written to it, never earlier than it already would; a view with ttl 0 makes the record
 *   persistent for good. A gone record reads as absent (NOT_FOUND) whether Redis has deleted it
 *   yet or not (the embedded store replaces it at the next write to the entity), and a write to
 *   it starts afresh. So a value is stale but present when another view keeps its record alive
 *   (a longer or no TTL), when the read's `now` is ahead of the store's clock, or after its
 *   view's TTL was shortened; a record whose views are all past their TTL is gone. Materializing
 *   old data shows both: a row already past its TTL by the clock lands in a new record that
 *   expires at once (NOT_FOUND), or in a live one where it reads OUTSIDE_MAX_AGE.
 * - A value written under another schema of its view reads as absent.
 */
import type { DurationMs, EpochMs } from '../core/time.js';
import type { ValueType } from '../core/value-types.js';
import type { FeatureView } from '../definitions/types.js';
import { ViewCodec, type OnlineValue } from './codec.js';
import type { EntityKey, JoinKeySpec } from './entity-key.js';

/** What a store needs to know of a feature view. */
export interface OnlineViewSpec {
  name: string;
  joinKeys: readonly JoinKeySpec[];
  /** Every feature of the view, in schema order: the order of `OnlineRow.values`. */
  features: readonly { name: string; type: ValueType }[];
  /** 0: no limit. */
  ttlMs: DurationMs;
  /** Encodes and decodes the values; shared by the stores. */
  codec: ViewCodec;
}

/** One row to write: an entity's values of one view. */
export interface OnlineRow {
  key: EntityKey;
  eventMs: EpochMs;
  createdMs: EpochMs | null;
  /** In the view's schema order. */
  values: readonly unknown[];
}

export interface StoredValue {
  eventMs: EpochMs;
  createdMs: EpochMs | null;
  /** In the view's schema order. */
  values: OnlineValue[];
}

export interface WriteResult {
  /** Rows that replaced what was stored (or were stored afresh). */
  written: number;
  /** Rows that lost against a newer (or equal) stored row. */
  stale: number;
}

export interface OnlineStore {
  /** `redis://host:6379/0`, `redis-cluster://...` or `embedded:<path>`, without password. */
  readonly url: string;
  write(view: OnlineViewSpec, rows: readonly OnlineRow[]): Promise<WriteResult>;
  /** Per entity, per view: the stored value or null. Costs one round trip whatever the number of entities. */
  read(keys: readonly EntityKey[], views: readonly OnlineViewSpec[]): Promise<(StoredValue | null)[][]>;
  /** Rejects with OnlineStoreUnavailableError when the store does not answer. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The store did not answer or failed (connection refused, timeout): not the user's input, so the
 * server maps it to 503. The message names the store, never a password.
 */
export class OnlineStoreUnavailableError extends Error {
  override name = 'OnlineStoreUnavailableError';
}

/** What the online side reads of a view (any typed view fits, whatever its schema's type). */
export type OnlineViewSource = Pick<FeatureView, 'name' | 'entities' | 'schema' | 'ttlMs'>;

/** The join keys of a view with their types, in entity order. */
export const joinKeySpecs = (view: Pick<FeatureView, 'entities'>): JoinKeySpec[] =>
  view.entities.flatMap((e) => e.joinKeys.map((name) => ({ name, type: e.keyTypes[name]! })));

const specs = new WeakMap<OnlineViewSource, OnlineViewSpec>();

/** The spec of a view (cached per view object, so its codec is built once). */
export function onlineViewSpec(view: OnlineViewSource): OnlineViewSpec {
  let spec = specs.get(view);
  if (!spec) {
    const features = Object.entries(view.schema).map(([name, type]) => ({ name, type }));
    spec = { name: view.name, joinKeys: joinKeySpecs(view), features, ttlMs: view.ttlMs, codec: new ViewCodec(features) };
    specs.set(view, spec);
  }
  return spec;
}
