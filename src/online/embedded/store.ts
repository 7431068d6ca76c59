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
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { decodeHeader, isNewer, packRecord, unpackRecord } from '../codec.js';
import type { EntityKey } from '../entity-key.js';
import { OnlineStoreUnavailableError, type OnlineRow, type OnlineStore, type OnlineViewSpec, type StoredValue, type WriteResult } from '../store.js';

/** The stored record of an entity: when it expires (null: never) and each view's value. */
type EntityRecord = [expiresAt: number | null, views: Record<string, Uint8Array>];

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
