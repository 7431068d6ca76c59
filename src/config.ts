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
  return { repoDir, home, registry, offlineDir, online, port, apiKeys, pushFlushMs, servingLog, servingLogFlushMs };
}

/** The file path of a `file:` registry URL, relative paths against the working directory. */
export const fileRegistryPath = (registry: string): string => {
  const p = registry.slice('file:'.length);
  return isAbsolute(p) ? p : resolve(p);
};
