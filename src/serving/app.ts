/**
 * The express app: every route but the hot one, which server.ts answers before express (it
 * is registered here too, so the app alone serves everything). Handlers stay thin: parse,
 * call a service function, answer; errors.ts maps what they throw.
 */
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import { serve, type Handler, type ServingContext } from './context.js';
import { HttpError, sendError } from './errors.js';
import { withRegistryTimeout } from './timeout.js';
import type { RouteLabel } from './metrics.js';
import { healthRoute } from './routes/health.js';
import { historicalRoute } from './routes/historical.js';
import { metricsRoute } from './routes/metrics.js';
import { onlineFeaturesRoute } from './routes/online.js';
import { pushRoute } from './routes/push.js';
import { registryRoute } from './routes/registry.js';
import { predictRoute } from './routes/predict.js';
import { reviewLabelRoute, reviewQueueListRoute } from './routes/review-queue.js';

/** Adds routes of other modules (`/predict/:model`) before the 404 answer. */
export type AppExtension = (app: Express, ctx: ServingContext) => void;

/** A label becomes training data: a write, so it needs a key when LARDER_API_KEYS is set. */
const withWriteAuth =
  (ctx: ServingContext, handler: Handler): Handler =>
  (req, res) => {
    ctx.auth.check(req);
    return handler(req, res);
  };

/**
 * A read of a handler that does not check keys itself: a key only with LARDER_PROTECT_READS.
 * (The online, historical, predict and registry routes check in their handlers, which server.ts's
 * hot paths share; /health and /metrics stay open for probes.)
 */
const withReadAuth =
  (ctx: ServingContext, handler: Handler): Handler =>
  (req, res) => {
    ctx.auth.checkRead(req);
    return handler(req, res);
  };

export function createApp(ctx: ServingContext, extend?: AppExtension): Express {
  const app = express();
  app.disable('x-powered-by');
  // Answers are computed per request; an ETag would only cost a hash of every body.
  app.set('etag', false);

  const routes: { path: string; label: RouteLabel; method: 'get' | 'post'; handler: ReturnType<typeof serve> }[] = [
    { path: '/get-online-features', label: '/get-online-features', method: 'post', handler: serve(ctx, '/get-online-features', onlineFeaturesRoute(ctx)) },
    { path: '/push', label: '/push', method: 'post', handler: serve(ctx, '/push', pushRoute(ctx)) },
    { path: '/get-historical-features', label: '/get-historical-features', method: 'post', handler: serve(ctx, '/get-historical-features', historicalRoute(ctx)) },
    { path: '/health', label: '/health', method: 'get', handler: serve(ctx, '/health', healthRoute(ctx)) },
    { path: '/metrics', label: '/metrics', method: 'get', handler: serve(ctx, '/metrics', metricsRoute(ctx)) },
    { path: '/registry', label: '/registry', method: 'get', handler: serve(ctx, '/registry', registryRoute(ctx)) },
    { path: '/predict/:model', label: '/predict', method: 'post', handler: serve(ctx, '/predict', predictRoute(ctx)) },
    {
      path: '/review-queue/:model',
      label: '/review-queue',
      method: 'get',
      handler: serve(ctx, '/review-queue', withReadAuth(ctx, reviewQueueListRoute({ queue: ctx.reviewQueue, knownModel: async (m) => (await withRegistryTimeout(ctx.registry, ctx.registry.latestModel(m), ctx.storeTimeoutMs)) !== null }))),
    },
    {
      path: '/review-queue/:model/:id/label',
      label: '/review-queue',
      method: 'post',
      handler: serve(ctx, '/review-queue', withWriteAuth(ctx, reviewLabelRoute({ queue: ctx.reviewQueue, offlineDir: ctx.offlineDir, maxBodyBytes: ctx.maxBodyBytes }))),
    },
  ];
  for (const r of routes) app[r.method](r.path, (req, res) => r.handler(req, res));
  extend?.(app, ctx);
  for (const r of routes) {
    const allow = r.method === 'get' ? 'GET, HEAD' : 'POST';
    app.all(
      r.path,
      serve(ctx, r.label, async () => {
        throw new HttpError(405, `method: ${r.path} takes ${allow}`, { field: 'method', allow }, { allow });
      }),
    );
  }
  app.use(
    serve(ctx, 'unmatched', async (req) => {
      throw new HttpError(404, `no route ${req.method} ${(req.url ?? '').split('?')[0]} (routes: ${routes.map((r) => `${r.method.toUpperCase()} ${r.path}`).join(', ')})`);
    }),
  );
  // What express itself throws (a malformed URL...).
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    sendError(res, err instanceof Error && 'status' in err && typeof err.status === 'number' && err.status < 500 ? new HttpError(err.status, err.message) : err, ctx.log, `${req.method} ${req.path}`);
  });
  return app;
}
