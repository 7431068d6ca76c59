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
 * one field per tile. Merges are read, merged here and written back by compare-and-set
 * (tile-merge.ts, commands/casTiles-n.lua); reads are one HMGET per entity, pipelined like the
 * values'.
 */
import type { Result } from 'ioredis';
import { tileFromBytes } from '../../streaming/partial.js';
import type { TileLayout, TileUpdates } from '../../streaming/tiles.js';
import { OnlineStoreUnavailableError, type OnlineRow, type OnlineStore, type OnlineViewSpec, type StoredValue, type WriteResult } from '../store.js';
import { ByteWriter, HEADER_BYTES } from '../codec.js';
import { casMergeTiles, TileCache } from './tile-merge.js';
import type { EntityKey } from '../entity-key.js';
import type { RedisConnection } from './connection.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** commands/casTiles-n.lua, numkeys given first: the positions of the records that changed. */
    larderCasTiles(numKeys: number, ...keysThenArgs: (string | Buffer | number)[]): Result<number[], Context>;
    /** commands/casTiles-n.lua with one key: a Cluster routes the call by it. */
    larderCasTiles1(key: string, ...args: (string | Buffer | number)[]): Result<number[], Context>;
    /** commands/allTiles-n.lua, numkeys given first, names and values as Buffers. */
    larderAllTilesBuffer(numKeys: number, ...keys: string[]): Result<Buffer[][], Context>;
  }
}

/** Entities per script call on a standalone server: big enough to amortise the call, small enough not to stall other clients. */
const KEYS_PER_CALL = 500;

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

  /**
   * Merges run one after another in this process: concurrent ones would make each other's
   * compare-and-set fail (they read the same records), so only other processes' writes conflict.
   */
  mergeTiles(layout: TileLayout, updates: TileUpdates, nowMs: number): Promise<void> {
    if (updates.size === 0) return Promise.resolve();
    const run = this.tileMerges.then(() => this.guard(casMergeTiles(this.connection, this.tileCache, (key) => this.tileKeyOf(layout, key), layout, updates, nowMs), 'mergeTiles'));
    this.tileMerges = run.catch(() => {});
    return run;
  }

  private tileMerges: Promise<void> = Promise.resolve();
  /** What this store's merges know of tile records, so that they need not read them back (tile-merge.ts). */
  private readonly tileCache = new TileCache();

  async readTiles(layout: TileLayout, keys: readonly EntityKey[], fields: readonly string[]): Promise<Map<string, Float64Array>[]> {
    if (keys.length === 0 || fields.length === 0) return keys.map(() => new Map());
    const replies = await this.hmgetEach(keys.map((k) => this.tileKeyOf(layout, k)), fields, 'readTiles');
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
    const fields = views.map((v) => v.name);
    const replies = await this.hmgetEach(keys.map((k) => this.keyOf(k)), fields, 'read');
    return replies.map((reply) =>
      views.map((view, j) => {
        const payload = reply[j];
        if (!payload) return null;
        const decoded = view.codec.decode(payload);
        return decoded && { eventMs: decoded.header.eventMs, createdMs: decoded.header.createdMs, values: decoded.values };
      }),
    );
  }

  /**
   * HMGET of the same fields at each key, as Buffers: one round trip for any number of keys (a
   * pipeline; on a Cluster, commands issued in one tick, which auto-pipelining sends as one
   * pipeline per node).
   */
  private async hmgetEach(keys: readonly string[], fields: readonly string[], what: string): Promise<(Buffer | null)[][]> {
    const client = this.connection.client;
    if (keys.length === 1) return [await this.guard(client.hmgetBuffer(keys[0]!, ...fields), what)];
    if (this.connection.cluster) return this.guard(Promise.all(keys.map((k) => client.hmgetBuffer(k, ...fields))), what);
    const pipeline = client.pipeline();
    for (const k of keys) pipeline.hmgetBuffer(k, ...fields);
    const results = (await this.guard(pipeline.exec(), what))!;
    return results.map(([err, reply]) => {
      if (err) throw new OnlineStoreUnavailableError(`online store ${this.url}: ${what}: ${err.message}`);
      return reply as (Buffer | null)[];
    });
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
   * operations get a timer of their own. Public for what else keeps keys in this Redis
   * (inference/review-queue.ts), so its failures read the same.
   */
  guard<T>(work: Promise<T>, what: string): Promise<T> {
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
