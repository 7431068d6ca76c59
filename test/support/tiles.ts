/** The tiles a store must hold after some merges, computed apart from any store. */
import { mergeTile } from '../../src/streaming/partial.js';
import type { TileUpdates } from '../../src/streaming/tiles.js';

/** Adds `updates` to `reference`: the first partial of a field as given, each later one merged in (mergeTile). */
export function mergeInto(reference: Map<string, Map<string, Float64Array>>, updates: TileUpdates): void {
  for (const [k, fields] of updates) {
    let tiles = reference.get(k);
    if (!tiles) reference.set(k, (tiles = new Map()));
    for (const [field, tile] of fields) {
      const stored = tiles.get(field);
      if (!stored) tiles.set(field, Float64Array.from(tile));
      else mergeTile(stored, tile);
    }
  }
}
