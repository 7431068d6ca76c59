/** What every route works with, built once by server.ts; and the wrapper that times and answers a route. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { OnlineStoreUnavailableError, type OnlineStore } from '../online/store.js';
import { RegistryUnavailableError, type Registry } from '../registry/registry.js';
import type { WriteAuth } from './auth.js';
import { OfflineWriteError, sendError, type Logger } from './errors.js';
import type { Limiter } from './limiter.js';
import type { RouteLabel, ServerMetrics } from './metrics.js';
import type { PushFileWriter } from './push-offline.js';
import type { TileIngest } from '../streaming/ingest.js';
import type { DefinitionsState } from './state.js';
import type { ReviewQueue } from '../inference/review-queue.js';
import type { ServedModels } from '../inference/served-models.js';
import type { ServingLog } from '../inference/serving-log.js';

export interface ServingContext {
  state: DefinitionsState;
  store: OnlineStore;
  registry: Registry;
  offlineDir: string;
  files: PushFileWriter;
  /** Group commit of pushed events of aggregation views. */
  ingest: TileIngest;
  metrics: ServerMetrics;
  auth: WriteAuth;
  /** Request bodies past this are refused with 413. */
  maxBodyBytes: number;
  /** Bound on a store's answer to /health and /registry. */
  storeTimeoutMs: number;
  /** Datasets running at once. */
  datasets: Limiter;
  /** The registered models `/predict` serves, reloaded when a new version is registered. */
  models: ServedModels;
  /** Every prediction, appended without waiting; null when the log is off (LARDER_SERVING_LOG=off). */
  servingLog: ServingLog | null;
  /** Predictions flagged for human review. */
  reviewQueue: ReviewQueue;
  log: Logger;
}

/** A route: reads the request, answers it; throws to answer an error. */
export type Handler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

const METHODS = new Set(['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']);

/** Runs a route: maps what it throws to an error answer, counts store failures, observes its latency. */
export function serve(ctx: ServingContext, route: RouteLabel, handler: Handler): (req: IncomingMessage, res: ServerResponse) => void {
  const run = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const start = performance.now();
    try {
      await handler(req, res);
    } catch (err) {
      if (err instanceof OnlineStoreUnavailableError) ctx.metrics.storeError('online');
      else if (err instanceof RegistryUnavailableError) ctx.metrics.storeError('registry');
      else if (err instanceof OfflineWriteError) ctx.metrics.storeError('offline');
      sendError(res, err, ctx.log, `${req.method} ${route}`);
    }
    const method = METHODS.has(req.method!) ? req.method! : 'OTHER';
    ctx.metrics.observe(route, method, res.statusCode, (performance.now() - start) / 1000);
  };
  // Nothing above should throw; should it, the process stays up and says so.
  const failed = (err: unknown): void => ctx.log(`${route}: answering failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return (req, res) => {
    run(req, res).catch(failed);
  };
}

/** The query parameters of a request, last one of a name winning. */
export function queryOf(req: IncomingMessage): Record<string, string> {
  const url = req.url ?? '';
  const at = url.indexOf('?');
  return at < 0 ? {} : Object.fromEntries(new URLSearchParams(url.slice(at + 1)));
}
