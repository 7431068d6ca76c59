/**
 * Group commit for pushed events of aggregation views. Pushes hand their events here and wait;
 * every `flushMs` (from the first event waiting) the events of all pushes since the last flush
 * are written together: folded into one partial per (entity, tile) and merged into the online
 * store in one batch, and their offline rows written as one file per view and date. Then every
 * push in the flush is answered: a 2xx still means durable, online and offline.
 *
 * Why: a weld reports every 100 ms, so a push of 1,000 readings updates 3,000 tiles of 1,000
 * welds, and a merge costs the same whether a tile gains one event or ten. Merging what arrived
 * over `flushMs` costs per tile touched, not per event: at 100k events/s over 10k welds, a 200 ms
 * flush merges each weld's tiles once for 2 events. Offline, one file per flush instead of one per
 * push keeps the partitions from filling with small files. A producer keeps pushes in flight
 * while they wait (a push is answered when its flush is written).
 *
 * A flush that fails fails every push in it: their staged files are dropped, and the pushes answer
 * 503. The online merge runs beside the offline write and in batches per store call, so a failure
 * can leave part of it merged (a retried push would count those events twice online, and
 * `larder verify` shows the difference from the offline log).
 * Flushes run one at a time; events arriving meanwhile wait for the next.
 */
import type { FeatureView } from '../definitions/types.js';
import type { OnlineStore } from '../online/store.js';
import { appendColumns, fileStamp, type OfflineColumns, type PushFileWriter, type StagedFile } from '../serving/push-offline.js';
import { foldColumns, tileLayout, type TileEventColumns, type TileUpdates } from './tiles.js';

export interface IngestOptions {
  store: OnlineStore;
  files: PushFileWriter;
  /**
   * How long the first waiting event waits for others (default 200 ms). Longer flushes fold more
   * events into each tile merge (the cost is per tile, not per event); at the pipeline's 100k
   * readings/s, 200 ms kept freshness p99 under 1 s (bench/push-stream.bench.mjs).
   */
  flushMs?: number;
  /** The clock tiles are kept by (default Date.now). */
  clock?: () => number;
}

interface Pending {
  view: FeatureView;
  updates: TileUpdates;
  offline: OfflineColumns;
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class TileIngest {
  /** By view object: after a reload the old and the new definition of a view wait side by side, each merged under its own layout. */
  private pending = new Map<FeatureView, Pending>();
  private waiters: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private closed = false;
  private readonly flushMs: number;

  constructor(private readonly options: IngestOptions) {
    this.flushMs = options.flushMs ?? 200;
  }

  /**
   * Adds a push's events of one aggregation view (online) and its rows for the offline store;
   * resolves once both are written, rejects with the flush's error.
   */
  add(view: FeatureView, events: TileEventColumns, offline: OfflineColumns | null): Promise<void> {
    if (this.closed) return Promise.reject(new Error('push ingest: closed'));
    if (events.keys.length === 0 && !offline?.dates.length) return Promise.resolve();
    let pending = this.pending.get(view);
    if (!pending) this.pending.set(view, (pending = { view, updates: new Map(), offline: { dates: [], columns: [] } }));
    foldColumns(tileLayout(view), events, pending.updates);
    if (offline) appendColumns(pending.offline, offline);
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.flushSoon(this.flushMs);
    });
  }

  /** Writes what waits, then refuses new events. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    if (this.waiters.length) await this.flush();
  }

  private flushSoon(delayMs: number): void {
    if (this.timer || this.flushing) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    const waiters = this.waiters;
    this.pending = new Map();
    this.waiters = [];
    const run = this.write(batch).then(
      () => waiters.forEach((w) => w.resolve()),
      (err: unknown) => waiters.forEach((w) => w.reject(err)),
    );
    this.flushing = run;
    await run;
    this.flushing = undefined;
    // Events that arrived during the flush have waited long enough.
    if (this.waiters.length) this.flushSoon(0);
  }

  private async write(batch: Map<FeatureView, Pending>): Promise<void> {
    const { store, files } = this.options;
    const now = (this.options.clock ?? Date.now)();
    const staged: StagedFile[] = [];
    const stamp = fileStamp(now);
    // The offline files are written (DuckDB's thread) while the tiles merge (Redis round trips):
    // a flush takes the longer of the two, not their sum, and a push waits for up to two flushes.
    const [offline, online] = await Promise.allSettled([
      (async () => {
        for (const p of batch.values()) if (p.offline.dates.length) staged.push(...(await files.stage(p.view, p.offline, stamp)));
      })(),
      (async () => {
        for (const p of batch.values()) if (p.updates.size) await store.mergeTiles(tileLayout(p.view), p.updates, now);
      })(),
    ]);
    if (offline.status === 'rejected' || online.status === 'rejected') {
      await files.abort(staged);
      throw online.status === 'rejected' ? online.reason : (offline as PromiseRejectedResult).reason;
    }
    await files.commit(staged);
  }
}
