/** Configuration: environment first, flags override (CONTRACT s.1). */
import { isAbsolute, join, resolve } from 'node:path';
import { InputError } from './core/errors.js';

export interface LarderConfig {
  /** Folder of the feature definitions. */
  repoDir: string;
  /** Local state folder. */
  home: string;
  /** `file:<path>` or a postgres:// URL. */
  registry: string;
  /** Root folder of the Parquet offline store. */
  offlineDir: string;
  /** `embedded:<path>`, `redis://...` or `redis-cluster://h1:p1,h2:p2`. */
  online: string;
  port: number;
  apiKeys: string[];
  /** How long pushed events of aggregation views wait to be written together (LARDER_PUSH_FLUSH_MS, default 200). */
  pushFlushMs: number;
  /** Whether `/predict` keeps a serving log in the offline store (LARDER_SERVING_LOG=on|off, default on). */
  servingLog?: boolean;
  /** How often the serving log writes what it holds (LARDER_SERVING_LOG_FLUSH_MS, default 10000): one file per model version and date each time. */
  servingLogFlushMs?: number;
  /**
   * Whether reads need an API key too (LARDER_PROTECT_READS=true|false|1|0, default false):
   * /get-online-features, /get-historical-features, /predict, GET /review-queue and /registry.
   * /health and /metrics stay open for probes. Needs LARDER_API_KEYS. Optional so a config
   * built by hand may leave it out (false).
   */
  protectReads?: boolean;
  /** Entity rows per /get-online-features request (LARDER_MAX_ENTITIES, default 1,000). */
  maxEntities?: number;
  /** Feature references per /get-online-features or /get-historical-features request (LARDER_MAX_FEATURES, default 1,000). */
  maxFeatures?: number;
  /** Entity rows per /get-historical-features request, JSON or Arrow (LARDER_MAX_DATASET_ROWS, default 1,000,000). */
  maxDatasetRows?: number;
  /** Rows per /push (LARDER_MAX_PUSH_ROWS, default 100,000). */
  maxPushRows?: number;
}

/** Request limits of `larder serve`; past one a request is answered 400 naming it, nothing read or written. */
export interface RequestLimits {
  /** Entity rows per /get-online-features request. */
  maxEntities: number;
  /** Feature references per online or historical request. */
  maxFeatures: number;
  /** Entity rows per /get-historical-features request. */
  maxDatasetRows: number;
  /** Rows per /push. */
  maxPushRows: number;
}

export const DEFAULT_LIMITS: Readonly<RequestLimits> = { maxEntities: 1000, maxFeatures: 1000, maxDatasetRows: 1_000_000, maxPushRows: 100_000 };

/** The environment variable of each limit, named in the 400 a request past it gets. */
export const LIMIT_VARIABLES: Readonly<Record<keyof RequestLimits, string>> = {
  maxEntities: 'LARDER_MAX_ENTITIES',
  maxFeatures: 'LARDER_MAX_FEATURES',
  maxDatasetRows: 'LARDER_MAX_DATASET_ROWS',
  maxPushRows: 'LARDER_MAX_PUSH_ROWS',
};

/** Largest value a limit takes: past it a request would fail on memory long before the limit. */
const LIMIT_MAX = 1_000_000_000;

function parseLimit(env: NodeJS.ProcessEnv, name: keyof RequestLimits): number {
  const variable = LIMIT_VARIABLES[name];
  const text = env[variable];
  if (text === undefined) return DEFAULT_LIMITS[name];
  const value = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < 1 || value > LIMIT_MAX) throw new InputError(`${variable}: expected a whole number from 1 to ${LIMIT_MAX}, got '${text}'`);
  return value;
}

function parseBoolean(env: NodeJS.ProcessEnv, variable: string, fallback: boolean): boolean {
  const text = env[variable];
  if (text === undefined) return fallback;
  const v = text.trim().toLowerCase();
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new InputError(`${variable}: expected true, false, 1 or 0, got '${text}'`);
}

export interface ConfigOverrides {
  repo?: string;
  port?: number | string;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, flags: ConfigOverrides = {}): LarderConfig {
  const repoDir = resolve(flags.repo ?? env.LARDER_REPO ?? 'feature-definitions');
  const home = resolve(env.LARDER_HOME ?? join(repoDir, '.larder'));
  const registry = env.LARDER_REGISTRY ?? `file:${join(home, 'registry.json')}`;
  if (!/^(file:|postgres(ql)?:\/\/)/.test(registry)) {
    throw new InputError(`LARDER_REGISTRY: expected file:<path> or postgres://..., got '${registry}'`);
  }
  const offlineDir = resolve(env.LARDER_OFFLINE ?? join(home, 'offline'));
  const online = env.LARDER_ONLINE ?? `embedded:${join(home, 'online')}`;
  if (!/^(embedded:|redis:\/\/|rediss:\/\/|redis-cluster:\/\/)/.test(online)) {
    throw new InputError(`LARDER_ONLINE: expected embedded:<path>, redis://host:port/db or redis-cluster://h1:p1,h2:p2, got '${online}'`);
  }
  const portText = String(flags.port ?? env.LARDER_PORT ?? '6566');
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InputError(`port: expected 0-65535, got '${portText}'`);
  const apiKeys = (env.LARDER_API_KEYS ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  const flushText = env.LARDER_PUSH_FLUSH_MS ?? '200';
  const pushFlushMs = Number(flushText);
  if (!Number.isInteger(pushFlushMs) || pushFlushMs < 0 || pushFlushMs > 10_000) throw new InputError(`LARDER_PUSH_FLUSH_MS: expected 0-10000 (ms), got '${flushText}'`);
  const logText = (env.LARDER_SERVING_LOG ?? 'on').toLowerCase();
  if (!['on', 'off', 'true', 'false', '1', '0'].includes(logText)) throw new InputError(`LARDER_SERVING_LOG: expected on or off, got '${env.LARDER_SERVING_LOG}'`);
  const servingLog = ['on', 'true', '1'].includes(logText);
  const logFlushText = env.LARDER_SERVING_LOG_FLUSH_MS ?? '10000';
  const servingLogFlushMs = Number(logFlushText);
  if (!Number.isInteger(servingLogFlushMs) || servingLogFlushMs < 100 || servingLogFlushMs > 3_600_000) {
    throw new InputError(`LARDER_SERVING_LOG_FLUSH_MS: expected 100-3600000 (ms), got '${logFlushText}'`);
  }
  const protectReads = parseBoolean(env, 'LARDER_PROTECT_READS', false);
  return {
    repoDir,
    home,
    registry,
    offlineDir,
    online,
    port,
    apiKeys,
    pushFlushMs,
    servingLog,
    servingLogFlushMs,
    protectReads,
    maxEntities: parseLimit(env, 'maxEntities'),
    maxFeatures: parseLimit(env, 'maxFeatures'),
    maxDatasetRows: parseLimit(env, 'maxDatasetRows'),
    maxPushRows: parseLimit(env, 'maxPushRows'),
  };
}

/** The file path of a `file:` registry URL, relative paths against the working directory. */
export const fileRegistryPath = (registry: string): string => {
  const p = registry.slice('file:'.length);
  return isAbsolute(p) ? p : resolve(p);
};
