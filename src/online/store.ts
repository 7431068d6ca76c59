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
import { PARTIAL_SLOTS } from '../streaming/partial.js';
import type { TileLayout, TileUpdates } from '../streaming/tiles.js';
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
  /**
   * Merges a batch of tile partials into the stored tiles of an aggregation view: per entity, every
   * field's partials are merged into the stored tile with the rule of `mergePartial` (the batch is the
   * newer side), atomically per entity record, so concurrent writers never lose an event. The record
   * expires between `layout.retentionMs` and that plus TILE_SWEEP_MS after its last write. Fields
   * of a tile size below the writer's cutoff (`tileCutoffs`) are deleted when a writer passes by
   * after the cutoffs moved, so a live record does not grow without bound.
   *
   * A field absent from the record is stored as the batch's partial (bytes as given). A field of
   * the batch already older than that bound is not written (it would be deleted at once); nor is
   * one older than the bound of the latest `nowMs` any writer gave for the record (the record
   * remembers it, so a writer whose clock is behind never brings a deleted tile back). An entity
   * none of whose fields is written keeps its expiry. Rejects, writing nothing, on a field that
   * is not `<tileMs>:<index>` of one of the layout's sizes or a tile of the wrong length.
   */
  mergeTiles(layout: TileLayout, updates: TileUpdates, nowMs: number): Promise<void>;
  /** Per key, the stored tiles among `fields` (absent ones left out). One round trip whatever the number of keys. */
  readTiles(layout: TileLayout, keys: readonly EntityKey[], fields: readonly string[]): Promise<Map<string, Float64Array>[]>;
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

/**
 * How often, at most, a tile record's old tiles are deleted and its expiry pushed back. Between
 * sweeps a write only merges tiles: deleting a 1 s tile and refreshing the expiry on every write
 * cost the store more than the merge (a weld's record is written several times a second).
 */
export const TILE_SWEEP_MS = 30_000;

/**
 * Per tile size of `layout` (in layout order), the oldest tile index a writer at `nowMs` keeps:
 * fields of that size with a smaller index are deleted (OnlineStore.mergeTiles). It moves in steps
 * of TILE_SWEEP_MS (of one tile for tiles longer than that), so a record is swept at most once per
 * step; a tile is deleted up to one step after it fell out of every window.
 */
export const tileCutoffs = (layout: TileLayout, nowMs: number): number[] =>
  layout.sizes.map((s) => {
    const step = Math.max(1, Math.floor(TILE_SWEEP_MS / s.tileMs));
    const cutoff = Math.floor((nowMs - s.maxWindowMs - layout.allowedLatenessMs) / s.tileMs) - 1;
    return Math.floor(cutoff / step) * step;
  });

const tileSizesByPrefix = new WeakMap<TileLayout, Map<string, number>>();

/**
 * The size (index into `layout.sizes`) and tile index of a tile field `<tileMs>:<index>`, or
 * undefined when the field is not one of the layout's.
 */
export function parseTileField(layout: TileLayout, field: string): [size: number, index: number] | undefined {
  let sizes = tileSizesByPrefix.get(layout);
  if (!sizes) tileSizesByPrefix.set(layout, (sizes = new Map(layout.sizes.map((s, i) => [String(s.tileMs), i]))));
  const colon = field.indexOf(':');
  const size = colon > 0 ? sizes.get(field.slice(0, colon)) : undefined;
  if (size === undefined) return undefined;
  const text = field.slice(colon + 1);
  const index = Number(text);
  // Only the spelling tileField gives: `${index}` of a safe integer.
  if (!Number.isSafeInteger(index) || String(index) !== text) return undefined;
  return [size, index];
}

/** A batch tile to write: its field, where it sits, and its partials. */
export interface TileToWrite {
  name: string;
  size: number;
  index: number;
  tile: Float64Array;
}

/**
 * The tiles of a batch each store writes, per entity: every field checked first (a bad one
 * throws, so nothing is written), those below `cutoffs` left out, entities left with none
 * dropped. A batch's entities share their field names, so each name is checked once.
 */
export function tilesToWrite(layout: TileLayout, updates: TileUpdates, cutoffs: readonly number[]): { key: EntityKey; tiles: TileToWrite[] }[] {
  const checked = new Map<string, [size: number, index: number]>();
  const out: { key: EntityKey; tiles: TileToWrite[] }[] = [];
  for (const [key, fields] of updates) {
    const tiles: TileToWrite[] = [];
    for (const [name, tile] of fields) {
      let field = checked.get(name);
      if (!field || tile.length !== layout.sizes[field[0]]!.columns.length * PARTIAL_SLOTS) checked.set(name, (field = checkTileField(layout, name, tile)));
      const [size, index] = field;
      if (index >= cutoffs[size]!) tiles.push({ name, size, index, tile });
    }
    if (tiles.length) out.push({ key, tiles });
  }
  return out;
}

/** parseTileField, checking the tile's length too; throws on a field or tile that is not the layout's. */
export function checkTileField(layout: TileLayout, field: string, tile: Float64Array): [size: number, index: number] {
  const parsed = parseTileField(layout, field);
  if (!parsed) throw new Error(`tiles of view '${layout.view}': '${field}' is not a tile field <tileMs>:<index> of its tile sizes (${layout.sizes.map((s) => s.tileMs).join(', ')} ms)`);
  const expected = layout.sizes[parsed[0]]!.columns.length * PARTIAL_SLOTS;
  if (tile.length !== expected) throw new Error(`tiles of view '${layout.view}': tile '${field}' has ${tile.length} values, expected ${expected}`);
  return parsed;
}
