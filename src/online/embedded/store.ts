/**
 * The embedded online store (the default, no server): an LMDB environment in the
 * `embedded:<path>` folder, memory-mapped and persistent. Another process (`larder serve`) reads
 * it while `larder materialize` writes: LMDB readers see the last committed transaction and never
 * a half-written one.
 *
 * Same shape as the Redis store: one record per entity, `[expires at | null, { view: value }]`
 * in MessagePack, keyed by `<prefix><entity key>`. A write batch is one write transaction, in
 * which each row is compared with the stored one (LMDB serialises write transactions across
 * processes, so the compare and the write are atomic). Expiry follows store.ts: an expired
 * record reads as absent and a write replaces it; nothing sweeps it sooner.
 *
 * The tiles of an aggregation view (streaming/tiles.ts) are a record of their own per entity and
 * view, `[expires at, { tile field: tile bytes, swept: cutoffs }]` under `<prefix>\x01tiles\x01<view>\x01<layout
 * fingerprint>\x01<entity key>`, merged in one write transaction per batch; each write drops the
 * tiles that fell out of every window (the whole record is rewritten anyway), with the same
 * `swept` marks as the Redis store (redis/tile-merge.ts) so both stores keep the same tiles.
 *
 * Other state kept beside the records (the review queue) lives in named databases of the same
 * environment (`namedDatabase`), so it never shows among the entity records.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { mergeTile, tileBytes, tileFromBytes } from '../../streaming/partial.js';
import type { TileLayout, TileUpdates } from '../../streaming/tiles.js';
import { decodeHeader, isNewer, packRecord, unpackRecord } from '../codec.js';
import type { EntityKey } from '../entity-key.js';
import {
  OnlineStoreUnavailableError,
  parseTileField,
  tileCutoffs,
  tilesToWrite,
  type OnlineRow,
  type OnlineStore,
  type OnlineViewSpec,
  type StoredValue,
  type WriteResult,
} from '../store.js';

/** The stored record of an entity: when it expires (null: never) and each view's value. */
type EntityRecord = [expiresAt: number | null, views: Record<string, Uint8Array>];

/** The field of a tile record holding, per tile size, the cutoff below which it holds no tile. */
const SWEPT = 'swept';

export class EmbeddedOnlineStore implements OnlineStore {
  readonly url: string;
  private readonly db: RootDatabase<Buffer, string>;

  constructor(
    readonly dir: string,
    readonly prefix = '',
  ) {
    this.url = `embedded:${dir}`;
    try {
      mkdirSync(dir, { recursive: true });
      this.db = open<Buffer, string>({ path: join(dir, 'online.mdb'), encoding: 'binary', compression: false });
    } catch (err) {
      throw new OnlineStoreUnavailableError(`online store ${this.url}: ${(err as Error).message}`);
    }
  }

  private readonly named = new Map<string, Database<string, string>>();

  /**
   * A named database in the same LMDB environment, string keys to string values, opened once per
   * name: state kept beside the entity records (inference/review-queue.ts) without touching
   * them. Its keys do not carry the store's prefix; the caller adds it.
   */
  namedDatabase(name: string): Database<string, string> {
    let db = this.named.get(name);
    if (!db) this.named.set(name, (db = this.db.openDB<string, string>(name, { encoding: 'string', compression: false })));
    return db;
  }

  /** The record of a key, or null when there is none or it has expired at `now`. */
  private load(key: string, now: number): EntityRecord | null {
    const bytes = this.db.get(key);
    if (!bytes) return null;
    const record = unpackRecord(bytes);
    return record[0] !== null && record[0] < now ? null : record;
  }

  async write(view: OnlineViewSpec, rows: readonly OnlineRow[]): Promise<WriteResult> {
    if (rows.length === 0) return { written: 0, stale: 0 };
    const payloads = rows.map((r) => view.codec.encode(r.eventMs, r.createdMs, r.values));
    const written = await this.db.transaction(() => {
      const now = Date.now();
      let n = 0;
      rows.forEach((row, i) => {
        const key = this.prefix + row.key;
        const record = this.load(key, now);
        const stored = record?.[1][view.name];
        if (stored) {
          const header = decodeHeader(stored);
          if (header.fingerprint === view.codec.fingerprint && !isNewer(row, header)) return;
        }
        let expiresAt: number | null;
        if (view.ttlMs === 0 || (record && record[0] === null)) expiresAt = null;
        else expiresAt = Math.max(record?.[0] ?? -Infinity, Math.ceil(row.eventMs + view.ttlMs));
        const views = record ? { ...record[1], [view.name]: payloads[i]! } : { [view.name]: payloads[i]! };
        void this.db.put(key, packRecord(expiresAt, views));
        n++;
      });
      return n;
    });
    return { written, stale: rows.length - written };
  }

  /** The LMDB key of an entity's tile record for an aggregation view. */
  private tileKeyOf(layout: TileLayout, key: EntityKey): string {
    return `${this.prefix}\u0001tiles\u0001${layout.view}\u0001${layout.fingerprint}\u0001${key}`;
  }

  async mergeTiles(layout: TileLayout, updates: TileUpdates, nowMs: number): Promise<void> {
    const cutoffs = tileCutoffs(layout, nowMs);
    // Checked and filtered before the transaction: a bad field writes nothing.
    const work = tilesToWrite(layout, updates, cutoffs).map((e) => ({ key: this.tileKeyOf(layout, e.key), tiles: e.tiles }));
    if (work.length === 0) return;
    await this.db.transaction(() => {
      const now = Date.now();
      for (const { key, tiles: batch } of work) {
        const record = this.load(key, now);
        // As on Redis (redis/tile-merge.ts): `swept` holds the greatest
        // cutoff per size any write applied, and a tile below it is neither kept nor written.
        const swept = record?.[1][SWEPT];
        const keep = cutoffs.slice();
        let moved = !swept;
        if (swept) {
          const marks = tileFromBytes(swept);
          for (let j = 0; j < keep.length; j++) {
            if (marks[j]! >= keep[j]!) keep[j] = marks[j]!;
            else moved = true;
          }
        }
        const tiles: Record<string, Uint8Array> = {};
        if (record) {
          for (const [name, bytes] of Object.entries(record[1])) {
            const parsed = parseTileField(layout, name);
            if (parsed && parsed[1] >= keep[parsed[0]]!) tiles[name] = bytes;
          }
        }
        let written = 0;
        for (const { name, size, index, tile } of batch) {
          if (index < keep[size]!) continue;
          written++;
          const stored = tiles[name];
          if (stored) {
            const merged = tileFromBytes(stored);
            mergeTile(merged, tile);
            tiles[name] = tileBytes(merged);
          } else tiles[name] = tileBytes(tile);
        }
        // A write that only dropped old tiles keeps the record's expiry; none at all leaves it be.
        if (written === 0 && !(swept && moved)) continue;
        tiles[SWEPT] = tileBytes(Float64Array.from(keep));
        void this.db.put(key, packRecord(written ? Math.ceil(now + layout.retentionMs) : record![0], tiles));
      }
    });
  }

  async readTiles(layout: TileLayout, keys: readonly EntityKey[], fields: readonly string[]): Promise<Map<string, Float64Array>[]> {
    const now = Date.now();
    return keys.map((k) => {
      const tiles = new Map<string, Float64Array>();
      const record = fields.length ? this.load(this.tileKeyOf(layout, k), now) : null;
      if (record) {
        for (const field of fields) {
          const bytes = Object.hasOwn(record[1], field) ? record[1][field] : undefined;
          if (bytes) tiles.set(field, tileFromBytes(bytes));
        }
      }
      return tiles;
    });
  }

  async read(keys: readonly EntityKey[], views: readonly OnlineViewSpec[]): Promise<(StoredValue | null)[][]> {
    const now = Date.now();
    return keys.map((k) => {
      const record = this.load(this.prefix + k, now);
      return views.map((view) => {
        const payload = record?.[1][view.name];
        if (!payload) return null;
        const decoded = view.codec.decode(payload);
        return decoded && { eventMs: decoded.header.eventMs, createdMs: decoded.header.createdMs, values: decoded.values };
      });
    });
  }

  async ping(): Promise<void> {
    try {
      this.db.get(`${this.prefix}\u0000ping`);
    } catch (err) {
      throw new OnlineStoreUnavailableError(`online store ${this.url}: ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
