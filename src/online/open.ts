/** Opens the online store a LARDER_ONLINE URL names: `embedded:<path>`, `redis://...`, `rediss://...` or `redis-cluster://...`. */
import { resolve } from 'node:path';
import { InputError } from '../core/errors.js';
import { EmbeddedOnlineStore } from './embedded/store.js';
import { RedisConnection, redactRedisUrl } from './redis/connection.js';
import { RedisOnlineStore } from './redis/store.js';
import type { OnlineStore } from './store.js';

export interface OpenOnlineOptions {
  /** Prepended to every key (default LARDER_ONLINE_PREFIX, else `larder:`); lets several deployments or tests share a Redis. */
  prefix?: string;
  /** Bound on one Redis command (default 2000 ms); bulk loads raise it. */
  commandTimeoutMs?: number;
}

export const DEFAULT_PREFIX = 'larder:';

export async function openOnlineStore(url: string, options: OpenOnlineOptions = {}): Promise<OnlineStore> {
  // LARDER_ONLINE_PREFIX: every command (serve, materialize, get, verify) reads and writes the same keys.
  const prefix = options.prefix ?? process.env.LARDER_ONLINE_PREFIX ?? DEFAULT_PREFIX;
  if (url.startsWith('embedded:')) {
    const path = url.slice('embedded:'.length);
    if (!path) throw new InputError(`LARDER_ONLINE: 'embedded:' needs a folder, like embedded:.larder/online`);
    return new EmbeddedOnlineStore(resolve(path), prefix);
  }
  if (/^(redis|rediss|redis-cluster):\/\//.test(url)) {
    if (/[{}]/.test(prefix)) throw new InputError(`online key prefix '${prefix}' may not contain '{' or '}'`);
    return new RedisOnlineStore(new RedisConnection(url, { ...(options.commandTimeoutMs !== undefined && { commandTimeoutMs: options.commandTimeoutMs }) }), prefix);
  }
  throw new InputError(`LARDER_ONLINE: expected embedded:<path>, redis://host:port/db or redis-cluster://h1:p1,h2:p2, got '${redactRedisUrl(url)}'`);
}
