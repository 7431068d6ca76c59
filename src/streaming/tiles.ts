/**
 * Time tiles of an aggregation view (CONTRACT s.2). Each window w has a tile size s; tile i of
 * size s holds the partials (partial.ts) of the events with i*s <= e < (i+1)*s, one per input
 * column that some window of size s aggregates, back to back. The value at time t of a window w
 * combines tiles floor((t - w) / s) .. floor(t / s): tile-aligned at the tail, and at the head
 * every event up to t, since no event after the read's instant has arrived. (An event stamped in
 * the future counts once reads reach its tile, so up to one tile before its time.)
 *
 * A push costs O(1) per event and tile size (each event updates one tile of each size); a read
 * costs O(w / s) tiles per window. Tiles older than the longest window of their size are never
 * read again; stores drop them (their keys expire, and writers delete fields that fell out).
 *
 * A tile is stored under the field `<s>:<i>` (s in ms) of its entity's tile record for the view;
 * the record's name carries `fingerprint`, so tiles written under another layout of the view
 * (columns or tile sizes changed) are never mixed with these.
 */
import { createHash } from 'node:crypto';
import type { AggregatedFeature, FeatureView } from '../definitions/types.js';
import type { EntityKey } from '../online/entity-key.js';
import { addValue, clearPartial, emptyTile, finalize, mergePartial, PARTIAL_SLOTS } from './partial.js';

/** The tiles of one size: which input columns they hold (in this order), and how far back reads go. */
export interface TileSize {
  tileMs: number;
  columns: readonly string[];
  /** The longest window with this tile size. */
  maxWindowMs: number;
}

/** One feature as the tiles give it. */
export interface TiledFeature {
  feature: AggregatedFeature;
  /** Index into `TileLayout.sizes`. */
  size: number;
  /** Slot offset of its column's partial within a tile of that size. */
  at: number;
}

export interface TileLayout {
  view: string;
  /** Every input column, in the order events carry their values. */
  columns: readonly string[];
  /** Per input column, how a pushed value becomes the double the offline store aggregates. */
  toDouble: readonly ((value: number) => number)[];
  sizes: readonly TileSize[];
  /** In the view's feature order. */
  features: readonly TiledFeature[];
  /** Events older than this behind the clock no longer update online tiles. */
  allowedLatenessMs: number;
  /** How long a tile record lives after its last write: every tile in it is out of every window by then. */
  retentionMs: number;
  /** Of the columns and tile sizes: tiles of another layout are never combined with these. */
  fingerprint: string;
}

const layouts = new WeakMap<FeatureView, TileLayout>();

/** The tile layout of an aggregation view (cached per view object). */
export function tileLayout(view: FeatureView): TileLayout {
  const cached = layouts.get(view);
  if (cached) return cached;
  const features = view.aggregatedFeatures;
  if (!features || features.length === 0) throw new Error(`feature view '${view.name}' has no aggregations`);
  const columns = [...new Set(features.map((f) => f.column))];
  const bySize = new Map<number, { columns: string[]; maxWindowMs: number }>();
  for (const f of features) {
    const size = bySize.get(f.tileMs) ?? { columns: [], maxWindowMs: 0 };
    if (!size.columns.includes(f.column)) size.columns.push(f.column);
    size.maxWindowMs = Math.max(size.maxWindowMs, f.windowMs);
    bySize.set(f.tileMs, size);
  }
  const sizes: TileSize[] = [...bySize.entries()].sort((a, b) => a[0] - b[0]).map(([tileMs, s]) => ({ tileMs, columns: s.columns, maxWindowMs: s.maxWindowMs }));
  const sourceSchema: Readonly<Record<string, string>> | undefined = view.source.type === 'push' ? view.source.schema : undefined;
  const toDouble = columns.map((c) => {
    const type = sourceSchema?.[c];
    // A float32 input is stored as float32 offline, then read as a double: round the same way.
    return type === 'float32' ? Math.fround : (v: number) => v;
  });
  const layout: TileLayout = {
    view: view.name,
    columns,
    toDouble,
    sizes,
    features: features.map((feature) => {
      const size = sizes.findIndex((s) => s.tileMs === feature.tileMs);
      return { feature, size, at: sizes[size]!.columns.indexOf(feature.column) * PARTIAL_SLOTS };
    }),
    allowedLatenessMs: view.allowedLatenessMs,
    retentionMs: Math.max(...sizes.map((s) => s.maxWindowMs + 2 * s.tileMs)) + view.allowedLatenessMs,
    fingerprint: createHash('sha256')
      .update(JSON.stringify([sizes.map((s) => [s.tileMs, s.columns]), toDouble.map((f) => f === Math.fround)]))
      .digest('hex')
      .slice(0, 12),
  };
  layouts.set(view, layout);
  return layout;
}

export const tileField = (tileMs: number, index: number): string => `${tileMs}:${index}`;

/** The first tile a read at `t` needs of a window `windowMs` over tiles of `tileMs`. */
export const firstTile = (t: number, windowMs: number, tileMs: number): number => Math.floor((t - windowMs) / tileMs);

/** Every tile field a read at `t` needs, for each size in layout order. */
export function tilesToRead(layout: TileLayout, t: number): string[] {
  const fields: string[] = [];
  for (const s of layout.sizes) {
    const last = Math.floor(t / s.tileMs);
    for (let i = firstTile(t, s.maxWindowMs, s.tileMs); i <= last; i++) fields.push(tileField(s.tileMs, i));
  }
  return fields;
}

/** One pushed event of an aggregation view: its entity, times and input values in `layout.columns` order. */
export interface TileEvent {
  key: EntityKey;
  eventMs: number;
  createdMs: number;
  values: readonly (number | null)[];
}

/** Per entity, per tile field: the partials of this batch of events, to merge into the stored tiles. */
export type TileUpdates = Map<EntityKey, Map<string, Float64Array>>;

/** Folds events into per-tile partials: one merge per (entity, tile) for the store, however many events. */
export function tileUpdates(layout: TileLayout, events: readonly TileEvent[]): TileUpdates {
  return foldEvents(layout, events, new Map());
}

/** As tileUpdates, adding to `out` (events folded after those already there: later on ties). */
export function foldEvents(layout: TileLayout, events: readonly TileEvent[], out: TileUpdates): TileUpdates {
  const n = events.length;
  const columns: TileEventColumns = {
    keys: events.map((e) => e.key),
    eventMs: Float64Array.from(events, (e) => e.eventMs),
    createdMs: Float64Array.from(events, (e) => e.createdMs),
    values: layout.columns.map(() => new Float64Array(n)),
    present: layout.columns.map(() => new Uint8Array(n)),
  };
  events.forEach((e, i) =>
    layout.columns.forEach((_, c) => {
      const v = e.values[c];
      if (v !== null && v !== undefined) {
        columns.values[c]![i] = layout.toDouble[c]!(v);
        columns.present[c]![i] = 1;
      }
    }),
  );
  return foldColumns(layout, columns, out);
}

/**
 * Pushed events as columns (what the push path builds, with no object per event): entity, times,
 * and per input column in `layout.columns` order its values, already made doubles as the offline
 * store aggregates them (`layout.toDouble`), and which are present (not null).
 */
export interface TileEventColumns {
  keys: readonly EntityKey[];
  eventMs: Float64Array;
  createdMs: Float64Array;
  values: readonly Float64Array[];
  present: readonly Uint8Array[];
  /** Events left out (too late), by position; absent: none. */
  skip?: Uint8Array;
}

/** As foldEvents, for events as columns. */
export function foldColumns(layout: TileLayout, events: TileEventColumns, out: TileUpdates): TileUpdates {
  const columnIndex = layout.sizes.map((s) => s.columns.map((c) => layout.columns.indexOf(c)));
  const tiles = new TileArena();
  // Events of one push mostly share their tiles' indexes: their field names are made once.
  const lastIndex = layout.sizes.map(() => NaN);
  const lastField = layout.sizes.map(() => '');
  const { keys, eventMs, createdMs, values, present, skip } = events;
  for (let e = 0; e < keys.length; e++) {
    if (skip && skip[e]) continue;
    const key = keys[e]!;
    let fields = out.get(key);
    if (!fields) out.set(key, (fields = new Map()));
    for (let si = 0; si < layout.sizes.length; si++) {
      const s = layout.sizes[si]!;
      const index = Math.floor(eventMs[e]! / s.tileMs);
      if (index !== lastIndex[si]) {
        lastIndex[si] = index;
        lastField[si] = tileField(s.tileMs, index);
      }
      const field = lastField[si]!;
      let tile = fields.get(field);
      if (!tile) fields.set(field, (tile = tiles.take(s.columns.length)));
      const indexes = columnIndex[si]!;
      for (let c = 0; c < indexes.length; c++) {
        const column = indexes[c]!;
        const value = present[column]![e] ? values[column]![e]! : null;
        addValue(tile, c * PARTIAL_SLOTS, value, eventMs[e]!, createdMs[e]!);
      }
    }
  }
  return out;
}

/** Empty tiles cut from larger blocks: one allocation per few hundred tiles instead of one each. */
class TileArena {
  private block = new Float64Array(0);
  private used = 0;

  take(columns: number): Float64Array {
    const length = columns * PARTIAL_SLOTS;
    if (this.used + length > this.block.length) {
      this.block = new Float64Array(Math.max(length, 16_384));
      this.used = 0;
    }
    const tile = this.block.subarray(this.used, this.used + length);
    this.used += length;
    for (let c = 0; c < columns; c++) clearPartial(tile, c * PARTIAL_SLOTS);
    return tile;
  }
}

/**
 * The features of one entity at `t` from its stored tiles (field -> tile; absent tiles are
 * empty), in layout feature order: numbers, count 0 and nulls for windows without events.
 *
 * Features over the same column, window and tile size share one combined partial: the tiles of
 * a window are merged once, whatever the number of functions asked of it.
 */
export function valuesAt(layout: TileLayout, tiles: ReadonlyMap<string, Float64Array>, t: number): (number | null)[] {
  const { groups, ofFeature } = windowGroups(layout);
  const sizeTiles = layout.sizes.map((s) => {
    const first = firstTile(t, s.maxWindowMs, s.tileMs);
    const last = Math.floor(t / s.tileMs);
    const found: (Float64Array | undefined)[] = new Array(last - first + 1);
    for (let i = first; i <= last; i++) found[i - first] = tiles.get(tileField(s.tileMs, i));
    return { first, last, found };
  });
  const combined = groups.map((g) => {
    const s = layout.sizes[g.size]!;
    const { first, last, found } = sizeTiles[g.size]!;
    const partial = emptyTile(1);
    for (let i = firstTile(t, g.windowMs, s.tileMs); i <= last; i++) {
      const tile = found[i - first];
      if (tile) mergePartial(partial, 0, tile, g.at);
    }
    return partial;
  });
  return layout.features.map(({ feature }, f) => finalize(feature.fn, combined[ofFeature[f]!]!, 0));
}

interface WindowGroup {
  size: number;
  windowMs: number;
  /** Slot offset of the column's partial within a tile of that size. */
  at: number;
}

const groupsOf = new WeakMap<TileLayout, { groups: WindowGroup[]; ofFeature: number[] }>();

/** The distinct (tile size, window, column) of a layout's features, and each feature's group. */
function windowGroups(layout: TileLayout): { groups: WindowGroup[]; ofFeature: number[] } {
  let cached = groupsOf.get(layout);
  if (cached) return cached;
  const groups: WindowGroup[] = [];
  const ofFeature = layout.features.map(({ feature, size, at }) => {
    let g = groups.findIndex((x) => x.size === size && x.windowMs === feature.windowMs && x.at === at);
    if (g < 0) g = groups.push({ size, windowMs: feature.windowMs, at }) - 1;
    return g;
  });
  cached = { groups, ofFeature };
  groupsOf.set(layout, cached);
  return cached;
}
