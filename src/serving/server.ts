/**
 * `larder serve`'s server: a node:http front that answers `POST /get-online-features` and
 * `POST /predict/{model}` itself and hands every other request to the express app. Express costs most of a small request (a trivial
 * handler under autocannon, 50 connections, here: express answered about a third of what bare
 * node:http did), and the online read and the prediction are the endpoints that must be fast;
 * both paths run the same route function (API key check included) and error mapping.
 *
 * `startServer` opens what it is not given (online store, registry), loads the definitions, and
 * listens; `close()` stops accepting, lets requests in flight finish (closing idle keep-alive
 * connections), then closes what it opened.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEFAULT_LIMITS, type LarderConfig, type RequestLimits } from '../config.js';
import { InputError } from '../core/errors.js';
import { openOnlineStore } from '../online/open.js';
import type { OnlineStore } from '../online/store.js';
import { openRegistry } from '../registry/open.js';
import type { Registry } from '../registry/registry.js';
import { createApp, type AppExtension } from './app.js';
import { apiAuth } from './auth.js';
import { DEFAULT_MAX_BODY_BYTES } from './body.js';
import { serve, type ServingContext } from './context.js';
import type { Logger } from './errors.js';
import { Limiter } from './limiter.js';
import { ServerMetrics } from './metrics.js';
import { PushFileWriter } from './push-offline.js';
import { TileIngest } from '../streaming/ingest.js';
import { onlineFeaturesRoute } from './routes/online.js';
import { DefinitionsState } from './state.js';
import { openReviewQueue } from '../inference/review-queue.js';
import { ServedModels } from '../inference/served-models.js';
import { ServingLog } from '../inference/serving-log.js';
import { PREDICT_PREFIX, predictRoute } from './routes/predict.js';

export interface ServerOptions {
  config: LarderConfig;
  /** Default `config.port`; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1 (as `feast serve`); 0.0.0.0 to be reached from other hosts or containers. */
  host?: string;
  /** An open online store to use (the caller closes it); default: opened from `config.online`. */
  store?: OnlineStore;
  /** Key prefix of the store opened from `config.online` (default `larder:`). */
  onlinePrefix?: string;
  /** An open registry to use (the caller closes it); default: opened from `config.registry`. */
  registry?: Registry;
  /** How often the registry is read for a new version (default 5000 ms). */
  reloadIntervalMs?: number;
  /** Bound on a store's answer to /health, /registry and the reload check (default 2000 ms). */
  storeTimeoutMs?: number;
  /** How long pushed events of aggregation views wait to be written with others (default `config.pushFlushMs`). */
  pushFlushMs?: number;
  /** Request bodies past this are refused with 413 (default 10 MiB). */
  maxBodyBytes?: number;
  /** API keys for write endpoints (default `config.apiKeys`). */
  apiKeys?: readonly string[];
  /** Reads need a key too; /health and /metrics stay open (default `config.protectReads`, false). Needs keys. */
  protectReads?: boolean;
  /** Rows and features per request (default: `config`'s, else `DEFAULT_LIMITS`). */
  limits?: Partial<RequestLimits>;
  /** Datasets computed at once; more wait their turn (default 2). */
  maxConcurrentDatasets?: number;
  /** Where the server reports (default: stderr). Never given keys or request bodies. */
  log?: Logger;
  /** Keep a serving log of predictions (default `config.servingLog`, on). */
  servingLog?: boolean;
  /** How often the serving log writes what it holds (default `config.servingLogFlushMs`, 10 s). */
  servingLogFlushMs?: number;
  /** Routes of other modules, added before the 404 answer. */
  extend?: AppExtension;
}

export interface RunningServer {
  /** `http://<host>:<port>`, 127.0.0.1 for a server on every interface. */
  url: string;
  port: number;
  context: ServingContext;
  /** Stops accepting, finishes requests in flight, closes what startServer opened. */
  close(): Promise<void>;
}

const HOT_PATH = '/get-online-features';
const stderrLog: Logger = (line) => process.stderr.write(`${line}\n`);

/** How long requests in flight get to finish on close before their connections are cut. */
const CLOSE_GRACE_MS = 10_000;

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const { config } = options;
  const log = options.log ?? stderrLog;
  // Before anything is opened: a server that would leave reads open against its config does not start.
  const auth = apiAuth(options.apiKeys ?? config.apiKeys, { protectReads: options.protectReads ?? config.protectReads ?? false });
  const limits: RequestLimits = {
    maxEntities: options.limits?.maxEntities ?? config.maxEntities ?? DEFAULT_LIMITS.maxEntities,
    maxFeatures: options.limits?.maxFeatures ?? config.maxFeatures ?? DEFAULT_LIMITS.maxFeatures,
    maxDatasetRows: options.limits?.maxDatasetRows ?? config.maxDatasetRows ?? DEFAULT_LIMITS.maxDatasetRows,
    maxPushRows: options.limits?.maxPushRows ?? config.maxPushRows ?? DEFAULT_LIMITS.maxPushRows,
  };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) throw new InputError(`limits.${name}: expected a whole number, at least 1, got ${value}`);
  }
  const cleanups: (() => Promise<void> | void)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch((err: unknown) => log(`larder serve: closing: ${(err as Error).message}`));
  };
  try {
    const store = options.store ?? (await openOnlineStore(config.online, { ...(options.onlinePrefix !== undefined && { prefix: options.onlinePrefix }) }));
    if (!options.store) cleanups.push(() => store.close());
    const registry = options.registry ?? (await openRegistry(config.registry));
    if (!options.registry) cleanups.push(() => registry.close());
    const metrics = new ServerMetrics();
    const storeTimeoutMs = options.storeTimeoutMs ?? 2000;
    const state = await DefinitionsState.open({
      repoDir: config.repoDir,
      registry,
      pollMs: options.reloadIntervalMs ?? 5000,
      timeoutMs: storeTimeoutMs,
      log,
      onRegistryError: () => metrics.storeError('registry'),
    });
    cleanups.push(() => state.close());
    const files = new PushFileWriter(config.offlineDir);
    cleanups.push(() => files.close());
    const ingest = new TileIngest({ store, files, flushMs: options.pushFlushMs ?? config.pushFlushMs });
    // Registered after the files and store: closed (flushed) before them.
    cleanups.push(() => ingest.close());
    const models = new ServedModels(registry, { pollMs: options.reloadIntervalMs ?? 5000, log, timeoutMs: storeTimeoutMs });
    cleanups.push(() => models.close());
    const servingLog = (options.servingLog ?? config.servingLog ?? true) ? new ServingLog({ offlineDir: config.offlineDir, flushMs: options.servingLogFlushMs ?? config.servingLogFlushMs ?? 10_000, log }) : null;
    // Registered after the store: closed (flushed) before it.
    if (servingLog) cleanups.push(() => servingLog.close());
    const context: ServingContext = {
      state,
      store,
      registry,
      offlineDir: config.offlineDir,
      files,
      ingest,
      metrics,
      auth,
      maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES,
      limits,
      storeTimeoutMs,
      datasets: new Limiter(options.maxConcurrentDatasets ?? 2),
      models,
      servingLog,
      reviewQueue: openReviewQueue(store),
      log,
    };
    const app = createApp(context, options.extend);
    const online = serve(context, '/get-online-features', onlineFeaturesRoute(context));
    const predict = serve(context, '/predict', predictRoute(context));
    let shuttingDown = false;
    const server = createServer((req, res) => {
      // Once stopping, answers close their connection: a client's next request opens a new one
      // (refused, clearly) instead of being cut on a reused socket.
      if (shuttingDown) res.shouldKeepAlive = false;
      const url = req.url!;
      if (req.method === 'POST' && url.startsWith(HOT_PATH) && (url.length === HOT_PATH.length || url[HOT_PATH.length] === '?')) online(req, res);
      else if (req.method === 'POST' && url.startsWith(PREDICT_PREFIX)) predict(req, res);
      else app(req, res);
    });
    await listen(server, options.port ?? config.port, options.host ?? '127.0.0.1');
    const address = server.address() as AddressInfo;
    const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.family === 'IPv6' ? `[${address.address}]` : address.address;
    let closing: Promise<void> | undefined;
    return {
      url: `http://${host}:${address.port}`,
      port: address.port,
      context,
      close() {
        shuttingDown = true;
        closing ??= stop(server).then(cleanup);
        return closing;
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException): void => {
      if (err.code === 'EADDRINUSE') reject(new InputError(`port: ${port} is in use on ${host} (choose another with --port or LARDER_PORT)`));
      else if (err.code === 'EACCES') reject(new InputError(`port: not allowed to listen on ${host}:${port} (ports below 1024 need privileges)`));
      else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') reject(new InputError(`host: cannot listen on '${host}' (${err.code})`));
      else reject(err);
    };
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve();
    });
  });
}

/** Stops accepting; idle keep-alive connections close at once, busy ones after their answer. */
function stop(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    const sweep = setInterval(() => server.closeIdleConnections(), 50);
    const cut = setTimeout(() => server.closeAllConnections(), CLOSE_GRACE_MS);
    server.once('close', () => {
      clearInterval(sweep);
      clearTimeout(cut);
    });
    server.closeIdleConnections();
  });
}
