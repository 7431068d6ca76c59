/**
 * The review queue (CONTRACT s.9): predictions whose confidence is below their model's threshold
 * wait here, per model, oldest first, until a reviewer labels them (labels.ts). It lives in the
 * online store, so it needs no server of its own:
 *
 * - Redis: one stream per model, `<prefix>review:{<model>}` (one key, so one slot of a Cluster).
 *   An item is one entry with one field, `item`, its JSON; its id is the stream id. XADD trims
 *   with `MAXLEN ~ maxLength`: past the bound the oldest items are dropped, whole stream nodes at a
 *   time (so the length may exceed the bound by up to one node, 100 entries by default), and a
 *   flood of uncertain predictions cannot fill the server's memory. At ~500 bytes an item, the
 *   default of 1,000,000 is ~0.5 GB per model at most.
 * - Embedded (LMDB): the named database `review-queue` of the store's environment. Items are
 *   JSON under `<prefix>i/<model>/<id>`, with ids `<ms, 15 digits>-<sequence, 6 digits>` so the key
 *   order is the enqueue order; `<prefix>m/<model>` holds the queue's length and last id, so ids
 *   never repeat, even after the newest item was removed or the clock went back, and the bound is
 *   kept exactly (the oldest go).
 *
 * An enqueue of N items is one round trip: one MULTI per model on Redis, one write transaction on
 * LMDB; the items of one model get increasing ids in the order given.
 */
import type { Database } from 'lmdb';
import { InputError } from '../core/errors.js';
import { isIdentifier } from '../core/refs.js';
import { EmbeddedOnlineStore } from '../online/embedded/store.js';
import { RedisOnlineStore } from '../online/redis/store.js';
import type { OnlineStore } from '../online/store.js';

export interface ReviewItem {
  /** Assigned by the queue; unique within the model's queue (two models' queues may use the same id). */
  id: string;
  model: string;
  version: string;
  requestId: string;
  /** Epoch ms of the prediction. */
  at: number;
  /** Join keys, or null when predicted from raw inputs. */
  entity: Record<string, string | number> | null;
  /** The raw input row (e.g. `{ text: '...' }`) when there was one. */
  inputs: Record<string, unknown> | null;
  prediction: number;
  probability: number;
}

export type NewReviewItem = Omit<ReviewItem, 'id'>;

export interface ReviewQueue {
  /** The ids given, in the order of `items`. */
  enqueue(items: readonly NewReviewItem[]): Promise<string[]>;
  /** Oldest first, up to limit. */
  pending(model: string, limit: number): Promise<ReviewItem[]>;
  /** The item, or null when it is not there (an id that is no id of this queue's is not there). */
  get(model: string, id: string): Promise<ReviewItem | null>;
  /** Removes it; false when it was not there. */
  remove(model: string, id: string): Promise<boolean>;
  size(model: string): Promise<number>;
}

export interface ReviewQueueOptions {
  /** Items kept per model; past it the oldest are dropped (default 1,000,000). */
  maxLength?: number;
}

export const DEFAULT_MAX_REVIEW_ITEMS = 1_000_000;

/** The queue of the store's backend. */
export function openReviewQueue(store: OnlineStore, options: ReviewQueueOptions = {}): ReviewQueue {
  const maxLength = options.maxLength ?? DEFAULT_MAX_REVIEW_ITEMS;
  if (!Number.isSafeInteger(maxLength) || maxLength < 1) throw new InputError(`review queue: maxLength must be a positive integer, got ${maxLength}`);
  if (store instanceof RedisOnlineStore) return new RedisReviewQueue(store, maxLength);
  if (store instanceof EmbeddedOnlineStore) return new EmbeddedReviewQueue(store, maxLength);
  throw new Error(`review queue: the online store ${store.url} is neither the Redis nor the embedded store; no review queue for it`);
}

function checkModel(model: string, field = 'model'): void {
  if (typeof model !== 'string' || !isIdentifier(model)) throw new InputError(`${field}: '${String(model)}' is not a model name (letters, digits and _)`, { field });
}

function checkLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new InputError(`limit: expected a positive integer, got ${limit}`, { field: 'limit' });
}

/** An item as stored: everything but its id, checked so JSON keeps it as given (NaN would become null). */
function encodeItem(item: NewReviewItem, i: number): string {
  checkModel(item.model, `items[${i}].model`);
  for (const field of ['at', 'prediction', 'probability'] as const) {
    if (typeof item[field] !== 'number' || !Number.isFinite(item[field])) throw new InputError(`items[${i}].${field}: expected a finite number, got ${String(item[field])}`);
  }
  const { model, version, requestId, at, entity, inputs, prediction, probability } = item;
  return JSON.stringify({ model, version, requestId, at, entity: entity ?? null, inputs: inputs ?? null, prediction, probability });
}

const decodeItem = (id: string, json: string): ReviewItem => ({ id, ...(JSON.parse(json) as NewReviewItem) });

/** Indexes of `items` per model, in order. */
function byModel(items: readonly NewReviewItem[]): Map<string, number[]> {
  const groups = new Map<string, number[]>();
  items.forEach((item, i) => {
    const group = groups.get(item.model);
    if (group) group.push(i);
    else groups.set(item.model, [i]);
  });
  return groups;
}

const STREAM_ID = /^\d{1,20}-\d{1,20}$/;
const FIELD = 'item';

class RedisReviewQueue implements ReviewQueue {
  constructor(
    private readonly store: RedisOnlineStore,
    private readonly maxLength: number,
  ) {}

  private keyOf(model: string): string {
    return `${this.store.prefix}review:{${model}}`;
  }

  async enqueue(items: readonly NewReviewItem[]): Promise<string[]> {
    const encoded = items.map(encodeItem);
    const ids = new Array<string>(items.length);
    const client = this.store.connection.client;
    // One MULTI per model (a stream is one slot, so a Cluster takes it): its items all or none.
    const calls = [...byModel(items)].map(async ([model, indexes]) => {
      const multi = client.multi();
      for (const i of indexes) multi.xadd(this.keyOf(model), 'MAXLEN', '~', this.maxLength, '*', FIELD, encoded[i]!);
      const replies = await this.store.guard(multi.exec(), 'review queue enqueue');
      if (!replies) throw new Error(`review queue of '${model}': the enqueue transaction was aborted`);
      replies.forEach(([err, id], j) => {
        if (err) throw err;
        ids[indexes[j]!] = id as string;
      });
    });
    await Promise.all(calls);
    return ids;
  }

  async pending(model: string, limit: number): Promise<ReviewItem[]> {
    checkModel(model);
    checkLimit(limit);
    const entries = await this.store.guard(this.store.connection.client.xrange(this.keyOf(model), '-', '+', 'COUNT', limit), 'review queue pending');
    return entries.map(([id, fields]) => decodeItem(id, fieldValue(fields)));
  }

  async get(model: string, id: string): Promise<ReviewItem | null> {
    checkModel(model);
    if (!STREAM_ID.test(id)) return null;
    const entries = await this.store.guard(this.store.connection.client.xrange(this.keyOf(model), id, id), 'review queue get');
    const entry = entries[0];
    return entry ? decodeItem(entry[0], fieldValue(entry[1])) : null;
  }

  async remove(model: string, id: string): Promise<boolean> {
    checkModel(model);
    if (!STREAM_ID.test(id)) return false;
    return (await this.store.guard(this.store.connection.client.xdel(this.keyOf(model), id), 'review queue remove')) > 0;
  }

  async size(model: string): Promise<number> {
    checkModel(model);
    return this.store.guard(this.store.connection.client.xlen(this.keyOf(model)), 'review queue size');
  }
}

function fieldValue(fields: readonly string[]): string {
  const at = fields.indexOf(FIELD);
  if (at < 0 || at % 2 !== 0) throw new Error(`review queue: an entry without its '${FIELD}' field`);
  return fields[at + 1]!;
}

/** Length and last id of an embedded queue. */
interface QueueMeta {
  size: number;
  lastMs: number;
  lastSeq: number;
}

const MAX_SEQ = 999_999;
const EMBEDDED_ID = /^\d{15}-\d{6}$/;
const embeddedId = (ms: number, seq: number): string => `${String(ms).padStart(15, '0')}-${String(seq).padStart(6, '0')}`;

class EmbeddedReviewQueue implements ReviewQueue {
  private readonly db: Database<string, string>;

  constructor(
    private readonly store: EmbeddedOnlineStore,
    private readonly maxLength: number,
  ) {
    this.db = store.namedDatabase('review-queue');
  }

  private itemKey(model: string, id: string): string {
    return `${this.store.prefix}i/${model}/${id}`;
  }

  /** The key range of a model's items: `/` sorts right below `0`, and model names hold neither. */
  private range(model: string): { start: string; end: string } {
    return { start: `${this.store.prefix}i/${model}/`, end: `${this.store.prefix}i/${model}0` };
  }

  private metaKey(model: string): string {
    return `${this.store.prefix}m/${model}`;
  }

  private meta(model: string): QueueMeta {
    const json = this.db.get(this.metaKey(model));
    return json ? (JSON.parse(json) as QueueMeta) : { size: 0, lastMs: 0, lastSeq: -1 };
  }

  async enqueue(items: readonly NewReviewItem[]): Promise<string[]> {
    const encoded = items.map(encodeItem);
    if (items.length === 0) return [];
    const ids = new Array<string>(items.length);
    // One write transaction; LMDB serialises them across processes, so the meta read here is
    // the latest and ids stay unique and increasing.
    await this.db.transaction(() => {
      for (const [model, indexes] of byModel(items)) {
        const meta = this.meta(model);
        for (const i of indexes) {
          const now = Date.now();
          if (now > meta.lastMs) [meta.lastMs, meta.lastSeq] = [now, 0];
          else if (meta.lastSeq < MAX_SEQ) meta.lastSeq++;
          else [meta.lastMs, meta.lastSeq] = [meta.lastMs + 1, 0]; // a million in one ms: borrow the next one
          const id = embeddedId(meta.lastMs, meta.lastSeq);
          void this.db.put(this.itemKey(model, id), encoded[i]!);
          ids[i] = id;
        }
        meta.size += indexes.length;
        if (meta.size > this.maxLength) {
          const oldest = [...this.db.getKeys({ ...this.range(model), limit: meta.size - this.maxLength })];
          for (const key of oldest) void this.db.remove(key);
          meta.size -= oldest.length;
        }
        void this.db.put(this.metaKey(model), JSON.stringify(meta));
      }
    });
    return ids;
  }

  async pending(model: string, limit: number): Promise<ReviewItem[]> {
    checkModel(model);
    checkLimit(limit);
    const prefixLength = this.range(model).start.length;
    return this.db.getRange({ ...this.range(model), limit }).map(({ key, value }) => decodeItem(key.slice(prefixLength), value)).asArray;
  }

  async get(model: string, id: string): Promise<ReviewItem | null> {
    checkModel(model);
    if (!EMBEDDED_ID.test(id)) return null;
    const json = this.db.get(this.itemKey(model, id));
    return json === undefined ? null : decodeItem(id, json);
  }

  async remove(model: string, id: string): Promise<boolean> {
    checkModel(model);
    if (!EMBEDDED_ID.test(id)) return false;
    return this.db.transaction(() => {
      const key = this.itemKey(model, id);
      if (this.db.get(key) === undefined) return false;
      void this.db.remove(key);
      const meta = this.meta(model);
      meta.size = Math.max(0, meta.size - 1);
      void this.db.put(this.metaKey(model), JSON.stringify(meta));
      return true;
    });
  }

  async size(model: string): Promise<number> {
    checkModel(model);
    return this.meta(model).size;
  }
}
