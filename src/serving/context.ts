/** What every route works with, built once by server.ts; and the wrapper that times and answers a route. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { OnlineStoreUnavailableError, type OnlineStore } from '../online/store.js';
import { RegistryUnavailableError, type Registry } from '../registry/registry.js';
import { LIMIT_VARIABLES, type RequestLimits } from '../config.js';
import type { ApiAuth } from './auth.js';
import { HttpError, OfflineWriteError, sendError, type Logger } from './errors.js';
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
  /** API keys: `check` for writes, `checkRead` for reads (a no-op unless LARDER_PROTECT_READS). */
  auth: ApiAuth;
  /** Request bodies past this are refused with 413. */
  maxBodyBytes: number;
  /** Rows and features per request; past one a request is refused with 400 (`checkLimit`). */
  limits: RequestLimits;
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

/** The number of rows of equal-length columns: the longest column's (unequal ones are refused later, naming the column). */
export function rowsOf(columns: Readonly<Record<string, readonly unknown[]>>): number {
  let rows = 0;
  for (const k in columns) rows = Math.max(rows, columns[k]!.length);
  return rows;
}

/**
 * 400 when `count` is past the limit, naming the field, the limit and its variable:
 * `entities: 5000 rows, at most 1000 per request (LARDER_MAX_ENTITIES)`. Called before anything
 * is read or written.
 */
export function checkLimit(ctx: Pick<ServingContext, 'limits'>, limit: keyof RequestLimits, field: string, count: number, unit: string, per = 'request'): void {
  const max = ctx.limits[limit];
  if (count <= max) return;
  throw new HttpError(400, `${field}: ${count} ${unit}, at most ${max} per ${per} (${LIMIT_VARIABLES[limit]})`, { field, limit: max });
}
