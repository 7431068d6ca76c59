/**
 * The Redis online store. An entity's record is the hash `<prefix>{<entity key>}`: the whole
 * entity key is the hash tag, so one entity is one slot of a Cluster and one key to read. Its
 * fields are view names, each holding the view's binary value (codec.ts). Writes go through
 * commands/write-n.lua (compare and write atomically, expiry kept); reads are one HMGET per
 * entity, pipelined: N entities cost one round trip (one per Cluster node involved).
 */
import { OnlineStoreUnavailableError, type OnlineRow, type OnlineStore, type OnlineViewSpec, type StoredValue, type WriteResult } from '../store.js';
import { ByteWriter } from '../codec.js';
import type { EntityKey } from '../entity-key.js';
import type { RedisConnection } from './connection.js';

/** Entities per script call on a standalone server: big enough to amortise the call, small enough not to stall other clients. */
const KEYS_PER_CALL = 500;

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

  async write(view: OnlineViewSpec, rows: readonly OnlineRow[]): Promise<WriteResult> {
    if (rows.length === 0) return { written: 0, stale: 0 };
    const client = this.connection.client;
    const ttl = String(view.ttlMs);
    const calls: Promise<number>[] = [];
    // Cluster: entities live in different slots, so one call per entity (pipelined per node).
    const perCall = this.connection.cluster ? 1 : KEYS_PER_CALL;
    for (let start = 0; start < rows.length; start += perCall) {
      const end = Math.min(rows.length, start + perCall);
      const n = end - start;
      const args = new Array<string | Buffer>(n + 3);
      const values = new ByteWriter(n * 64);
      for (let i = 0; i < n; i++) {
        const row = rows[start + i]!;
        args[i] = this.keyOf(row.key);
        const at = values.pos;
        values.u32(0);
        view.codec.encodeInto(values, row.eventMs, row.createdMs, row.values);
        values.buf.writeUInt32BE(values.pos - at - 4, at);
      }
      args[n] = view.name;
      args[n + 1] = ttl;
      args[n + 2] = values.bytes();
      calls.push(this.connection.cluster ? client.larderWrite1(args[0] as string, ...args.slice(1)) : client.larderWrite(n, ...args));
    }
    const counts = await this.guard(Promise.all(calls), 'write');
    let written = 0;
    for (const c of counts) written += c;
    return { written, stale: rows.length - written };
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
   * Bounds an operation (a Cluster queues commands while it has no slot map, beyond the
   * per-command timeout) and turns connection failures into OnlineStoreUnavailableError. A reply
   * error (a bug in a script, a wrong type at a key) stays what it is.
   */
  private async guard<T>(work: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const bound = this.connection.commandTimeoutMs + 500;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new OnlineStoreUnavailableError(`online store ${this.url}: ${what} did not finish within ${bound} ms`)), bound);
    });
    try {
      return await Promise.race([work, timeout]);
    } catch (err) {
      if (err instanceof OnlineStoreUnavailableError || (err as Error).name === 'ReplyError') throw err;
      const why = (err as Error).name === 'MaxRetriesPerRequestError' ? 'does not answer (connection failed)' : (err as Error).message;
      throw new OnlineStoreUnavailableError(`online store ${this.url}: ${why}`);
    } finally {
      clearTimeout(timer);
      // A timed-out operation may still reject later; nobody awaits it then.
      work.catch(() => {});
    }
  }
}
