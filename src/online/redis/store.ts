/**
 * The Redis online store. An entity's record is the hash `<prefix>{<entity key>}`: the whole
 * entity key is the hash tag, so one entity is one slot of a Cluster and one key to read. Its
 * fields are view names, each holding the view's binary value (codec.ts). Writes go through
 * commands/write-n.lua (compare and write atomically, expiry kept); reads are one HMGET per
 * entity, pipelined: N entities cost one round trip (one per Cluster node involved). The record's
 * expiry (store.ts) is the key's Redis expiry, so Redis deletes a gone record by itself; a record
 * a view without TTL was written to expires in the year 9999 (NEVER_EXPIRES_MS).
 *
 * The tiles of an aggregation view (streaming/tiles.ts) live beside it, one hash per entity and
 * view, `<prefix>{<entity key>}:tiles:<view>:<layout fingerprint>` (same hash tag, same slot),
 * one field per tile. Merges go through commands/mergeTiles-n.lua (read, merge and write each
 * record atomically, delete tiles out of every window, expiry `retentionMs` after the last
 * write); reads are one HMGET per entity, pipelined like the values'.
 */
import { endianness } from 'node:os';
import type { Result } from 'ioredis';
import { PARTIAL_SLOTS, tileFromBytes } from '../../streaming/partial.js';
import type { TileLayout, TileUpdates } from '../../streaming/tiles.js';
import { checkTileField, OnlineStoreUnavailableError, TILE_SWEEP_MS, tileCutoffs, type OnlineRow, type OnlineStore, type OnlineViewSpec, type StoredValue, type WriteResult } from '../store.js';
import { ByteWriter, HEADER_BYTES } from '../codec.js';
import type { EntityKey } from '../entity-key.js';
import type { RedisConnection } from './connection.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** commands/mergeTiles-n.lua, numkeys given first. */
    larderMergeTiles(numKeys: number, ...keysThenArgs: (string | Buffer | number)[]): Result<number, Context>;
    /** commands/mergeTiles-n.lua with one key: a Cluster routes the call by it. */
    larderMergeTiles1(key: string, ...args: (string | Buffer | number)[]): Result<number, Context>;
  }
}

/** Entities per script call on a standalone server: big enough to amortise the call, small enough not to stall other clients. */
const KEYS_PER_CALL = 500;

/**
 * Tile fields per mergeTiles script call on a standalone server (about a millisecond of Redis
 * time), and per key in one call: a key with more is sent as several entries (Lua's unpack, which
 * spreads a key's fields into HMGET and HSET, takes a few thousand values at most).
 */
const TILES_PER_CALL = 4000;
const TILES_PER_ENTRY = 1000;

/** A tile's doubles are copied as they lie in memory when that is little-endian (as the script reads them). */
const LITTLE_ENDIAN = endianness() === 'LE';

/**
 * The expiry of a record a view without TTL was written to: 9999-12-31T23:59:59.999Z, in
 * practice never. Every record has an expiry (see commands/write-n.lua), which lets the write
 * script set a new record's expiry in one command; `PEXPIRETIME` shows this value.
 */
export const NEVER_EXPIRES_MS = 253_402_300_799_999;

export class RedisOnlineStore implements OnlineStore {
  readonly url: string;

  constructor(
    /** The clients; public for tests that look at the wire. */
    readonly connection: RedisConnection,
    /** Prepended to every key; tests give each test its own. */
    readonly prefix: string,
  ) {
    if (/[{}]/.test(prefix)) throw new Error(`Redis key prefix '${prefix}' may not contain '{' or '}' (they delimit the hash tag)`);
    this.url = connection.url;
  }

  /** The Redis key of an entity's record. */
  keyOf(key: EntityKey): string {
    return `${this.prefix}{${key}}`;
  }

  /** The Redis key of an entity's tile record for an aggregation view: the entity's hash tag, so the same slot as its values. */
  tileKeyOf(layout: TileLayout, key: EntityKey): string {
    return `${this.prefix}{${key}}:tiles:${layout.view}:${layout.fingerprint}`;
  }

  write(view: OnlineViewSpec, rows: readonly OnlineRow[]): Promise<WriteResult> {
    const total = rows.length;
    if (total === 0) return Promise.resolve({ written: 0, stale: 0 });
    let calls: Promise<number>[];
    try {
      calls = this.sendWrites(view, rows);
    } catch (err) {
      return Promise.reject(err);
    }
    // Nothing here holds on to `rows`: a bulk load's rows are garbage once encoded.
    return this.guard(Promise.all(calls), 'write').then((counts) => {
      let written = 0;
      for (const c of counts) written += c;
      return { written, stale: total - written };
    });
  }

  /** Encodes the rows and issues the write script calls (commands/write-n.lua documents the arguments). */
  private sendWrites(view: OnlineViewSpec, rows: readonly OnlineRow[]): Promise<number>[] {
    const client = this.connection.client;
    const calls: Promise<number>[] = [];
    // The rows' script argument for the whole batch, in one buffer; each call sends its slice (a
    // view that stays valid when `out` grows into a new buffer).
    const out = new ByteWriter(rows.length * (HEADER_BYTES + 24 + 12 * view.features.length));
    const encodeRow = (row: OnlineRow): void => {
      const at = out.pos;
      out.u32(0);
      view.codec.encodeInto(out, row.eventMs, row.createdMs, row.values);
      out.buf.writeUInt32BE(out.pos - at - 4, at);
      writeDigits(out, view.ttlMs > 0 ? Math.ceil(row.eventMs + view.ttlMs) : NEVER_EXPIRES_MS);
    };
    if (this.connection.cluster) {
      // Entities live in different slots: one call per entity, which the client pipelines per node.
      for (const row of rows) {
        const from = out.pos;
        encodeRow(row);
        calls.push(client.larderWrite1(this.keyOf(row.key), view.name, out.buf.subarray(from, out.pos)));
      }
      return calls;
    }
    for (let start = 0; start < rows.length; start += KEYS_PER_CALL) {
      const n = Math.min(rows.length, start + KEYS_PER_CALL) - start;
      const args = new Array<string | Buffer>(n + 2);
      const from = out.pos;
      for (let i = 0; i < n; i++) {
        const row = rows[start + i]!;
        args[i] = this.keyOf(row.key);
        encodeRow(row);
      }
      args[n] = view.name;
      args[n + 1] = out.buf.subarray(from, out.pos);
      calls.push(client.larderWrite(n, ...args));
    }
    return calls;
  }

  mergeTiles(layout: TileLayout, updates: TileUpdates, nowMs: number): Promise<void> {
    let calls: Promise<number>[];
    try {
      calls = this.sendTileMerges(layout, updates, nowMs);
    } catch (err) {
      return Promise.reject(err);
    }
    if (calls.length === 0) return Promise.resolve();
    return this.guard(Promise.all(calls), 'mergeTiles').then(() => undefined);
  }

  /**
   * Encodes the batch and issues the mergeTiles script calls (commands/mergeTiles-n.lua
   * documents the arguments). Every field is checked before any call goes out.
   */
  private sendTileMerges(layout: TileLayout, updates: TileUpdates, nowMs: number): Promise<number>[] {
    const cutoffs = tileCutoffs(layout, nowMs);
    // The entries to send: per key, the fields still inside the cutoffs, at most TILES_PER_ENTRY.
    const entries: { key: string; fields: { name: string; size: number; index: number; tile: Float64Array }[] }[] = [];
    let total = 0;
    // A flush's entities share their tiles' names: each is parsed once.
    const parsed = new Map<string, [size: number, index: number]>();
    for (const [entityKey, fields] of updates) {
      let entry: (typeof entries)[number] | undefined;
      for (const [name, tile] of fields) {
        let field = parsed.get(name);
        if (!field || tile.length !== layout.sizes[field[0]]!.columns.length * PARTIAL_SLOTS) parsed.set(name, (field = checkTileField(layout, name, tile)));
        const [size, index] = field;
        if (index < cutoffs[size]!) continue;
        if (!entry || entry.fields.length === TILES_PER_ENTRY) entries.push((entry = { key: this.tileKeyOf(layout, entityKey), fields: [] }));
        entry.fields.push({ name, size, index, tile });
        total++;
      }
    }
    if (entries.length === 0) return [];

    // Refreshed when the record is swept (at most once per TILE_SWEEP_MS): long enough to outlive the next sweep.
    const ttl = String(Math.max(1, Math.ceil(layout.retentionMs + TILE_SWEEP_MS)));
    const header = new ByteWriter(64);
    header.u8(layout.sizes.length);
    layout.sizes.forEach((s, i) => {
      const prefix = String(s.tileMs);
      header.ensure(1 + prefix.length + 12);
      const buf = header.buf;
      let at = header.pos;
      buf[at++] = prefix.length;
      at += buf.write(prefix, at, 'latin1');
      buf.writeDoubleLE(cutoffs[i]!, at);
      buf.writeUInt32LE(s.columns.length * PARTIAL_SLOTS * 8, at + 8);
      header.pos = at + 12;
    });
    const sizesArg = header.bytes();

    // The batch argument of every call, in one buffer; each call sends its slice (a view that
    // stays valid when `out` grows into a new buffer).
    const out = new ByteWriter(64 + total * (24 + 8 * PARTIAL_SLOTS * Math.max(...layout.sizes.map((s) => s.columns.length))));
    const encodeEntry = (entry: (typeof entries)[number]): void => {
      out.ensure(2);
      out.buf.writeUInt16LE(entry.fields.length, out.pos);
      out.pos += 2;
      for (const { name, size, index, tile } of entry.fields) {
        const bytes = tile.length * 8;
        out.ensure(10 + name.length + bytes);
        const buf = out.buf;
        let at = out.pos;
        buf[at] = size + 1;
        buf.writeDoubleLE(index, at + 1);
        buf[at + 9] = name.length;
        at += 10;
        at += buf.write(name, at, 'latin1');
        if (LITTLE_ENDIAN) buf.set(new Uint8Array(tile.buffer, tile.byteOffset, bytes), at);
        else for (let k = 0; k < tile.length; k++) buf.writeDoubleLE(tile[k]!, at + 8 * k);
        out.pos = at + bytes;
      }
    };

    const client = this.connection.client;
    const calls: Promise<number>[] = [];
    if (this.connection.cluster) {
      // Entities live in different slots: one call per entry, which the client pipelines per node.
      for (const entry of entries) {
        const from = out.pos;
        encodeEntry(entry);
        calls.push(client.larderMergeTiles1(entry.key, ttl, sizesArg, out.buf.subarray(from, out.pos)));
      }
      return calls;
    }
    for (let start = 0; start < entries.length; ) {
      const keys: string[] = [];
      const from = out.pos;
      let tiles = 0;
      while (start < entries.length && keys.length < KEYS_PER_CALL && (tiles === 0 || tiles + entries[start]!.fields.length <= TILES_PER_CALL)) {
        const entry = entries[start++]!;
        keys.push(entry.key);
        tiles += entry.fields.length;
        encodeEntry(entry);
      }
      calls.push(client.larderMergeTiles(keys.length, ...keys, ttl, sizesArg, out.buf.subarray(from, out.pos)));
    }
    return calls;
  }

  async readTiles(layout: TileLayout, keys: readonly EntityKey[], fields: readonly string[]): Promise<Map<string, Float64Array>[]> {
    if (keys.length === 0 || fields.length === 0) return keys.map(() => new Map());
    const client = this.connection.client;
    let replies: (Buffer | null)[][];
    if (keys.length === 1) {
      replies = [await this.guard(client.hmgetBuffer(this.tileKeyOf(layout, keys[0]!), ...fields), 'readTiles')];
    } else if (this.connection.cluster) {
      // Issued in one tick: auto-pipelining sends them together, one pipeline per node.
      replies = await this.guard(Promise.all(keys.map((k) => client.hmgetBuffer(this.tileKeyOf(layout, k), ...fields))), 'readTiles');
    } else {
      const pipeline = client.pipeline();
      for (const k of keys) pipeline.hmgetBuffer(this.tileKeyOf(layout, k), ...fields);
      const results = (await this.guard(pipeline.exec(), 'readTiles'))!;
      replies = results.map(([err, reply]) => {
        if (err) throw new OnlineStoreUnavailableError(`online store ${this.url}: readTiles: ${err.message}`);
        return reply as (Buffer | null)[];
      });
    }
    return replies.map((reply) => {
      const tiles = new Map<string, Float64Array>();
      for (let j = 0; j < fields.length; j++) {
        const bytes = reply[j];
        if (bytes) tiles.set(fields[j]!, tileFromBytes(bytes));
      }
      return tiles;
    });
  }

  async read(keys: readonly EntityKey[], views: readonly OnlineViewSpec[]): Promise<(StoredValue | null)[][]> {
    if (keys.length === 0 || views.length === 0) return keys.map(() => views.map(() => null));
    const client = this.connection.client;
    const fields = views.map((v) => v.name);
    let replies: (Buffer | null)[][];
    if (keys.length === 1) {
      replies = [await this.guard(client.hmgetBuffer(this.keyOf(keys[0]!), ...fields), 'read')];
    } else if (this.connection.cluster) {
      // Issued in one tick: auto-pipelining sends them together, one pipeline per node.
      replies = await this.guard(Promise.all(keys.map((k) => client.hmgetBuffer(this.keyOf(k), ...fields))), 'read');
    } else {
      const pipeline = client.pipeline();
      for (const k of keys) pipeline.hmgetBuffer(this.keyOf(k), ...fields);
      const results = (await this.guard(pipeline.exec(), 'read'))!;
      replies = results.map(([err, reply]) => {
        if (err) throw new OnlineStoreUnavailableError(`online store ${this.url}: read: ${err.message}`);
        return reply as (Buffer | null)[];
      });
    }
    return replies.map((reply) =>
      views.map((view, j) => {
        const payload = reply[j];
        if (!payload) return null;
        const decoded = view.codec.decode(payload);
        return decoded && { eventMs: decoded.header.eventMs, createdMs: decoded.header.createdMs, values: decoded.values };
      }),
    );
  }

  async ping(): Promise<void> {
    await this.guard(this.connection.client.ping(), 'ping');
  }

  async close(): Promise<void> {
    await this.connection.close();
  }

  /**
   * Bounds an operation and turns connection failures into OnlineStoreUnavailableError. A reply
   * error (a bug in a script, a wrong type at a key) stays what it is. A standalone client bounds
   * every command itself (ioredis's commandTimeout starts when the command is issued, queued or
   * not); a Cluster queues commands while it has no slot map, beyond that timeout, so its
   * operations get a timer of their own.
   */
  private guard<T>(work: Promise<T>, what: string): Promise<T> {
    if (!this.connection.cluster) return work.catch((err: unknown) => this.unavailable(err));
    return this.bounded(work, what);
  }

  private unavailable(err: unknown): never {
    if (err instanceof OnlineStoreUnavailableError || (err as Error).name === 'ReplyError') throw err;
    const message = (err as Error).message;
    const why = (err as Error).name === 'MaxRetriesPerRequestError' ? 'does not answer (connection failed)' : message === 'Command timed out' ? `did not answer within ${this.connection.commandTimeoutMs} ms` : message;
    throw new OnlineStoreUnavailableError(`online store ${this.url}: ${why}`);
  }

  private async bounded<T>(work: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const bound = this.connection.commandTimeoutMs + 500;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new OnlineStoreUnavailableError(`online store ${this.url}: ${what} did not finish within ${bound} ms`)), bound);
    });
    try {
      return await Promise.race([work, timeout]);
    } catch (err) {
      return this.unavailable(err);
    } finally {
      clearTimeout(timer);
      // A timed-out operation may still reject later; nobody awaits it then.
      work.catch(() => {});
    }
  }
}

/**
 * One byte, the number of characters, then the decimal text of an integer (an expiry in epoch
 * ms). By hand: String() of a 13-digit double costs about as much as encoding the whole row.
 */
function writeDigits(out: ByteWriter, value: number): void {
  if (!Number.isSafeInteger(value)) throw new Error(`online store: expiry ${value} is not an integer number of ms`);
  let n = Math.abs(value);
  let count = 1;
  for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) count++;
  const length = count + (value < 0 ? 1 : 0);
  out.ensure(1 + length);
  const buf = out.buf;
  buf[out.pos] = length;
  if (value < 0) buf[out.pos + 1] = 0x2d; // '-'
  for (let i = out.pos + length; count > 0; count--, i--) {
    buf[i] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  out.pos += 1 + length;
}
