/**
 * The one owner of Redis clients (BullMQ style): parses the LARDER_ONLINE URL, opens a standalone
 * client (`redis://[user:pass@]host:port[/db]`, `rediss://` for TLS) or a Cluster client
 * (`redis-cluster://[user:pass@]h1:p1,h2:p2,...`), loads the Lua commands once, and closes.
 *
 * Timeouts are bounded so a Redis that is down fails a request in about `commandTimeoutMs`
 * instead of hanging (the server answers 503 then); the client keeps reconnecting in the
 * background. A standalone client writes each command at once (the store batches N entities
 * into one pipeline itself); a Cluster client auto-pipelines, sending the commands issued in one
 * tick as one write per node: N entities cost one round trip per node involved, in parallel.
 * (Auto-pipelining waits for setImmediate before it writes, which costs a single-entity read on a
 * standalone server more than it saves.)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { Cluster, Redis, type ClusterOptions, type RedisOptions, type Result } from 'ioredis';
import { InputError } from '../../core/errors.js';

declare module 'ioredis' {
  interface RedisCommander<Context> {
    /** commands/write-n.lua, numkeys given first. */
    larderWrite(numKeys: number, ...keysThenArgs: (string | Buffer | number)[]): Result<number, Context>;
    /** commands/write-n.lua with one key: a Cluster routes the call by it. */
    larderWrite1(key: string, ...args: (string | Buffer | number)[]): Result<number, Context>;
  }
}

export type RedisClient = Redis | Cluster;

export interface RedisConnectionOptions {
  /** Per-command bound (default 2000 ms); a bulk load may raise it. */
  commandTimeoutMs?: number;
  /** Connect bound (default 2000 ms). */
  connectTimeoutMs?: number;
}

const COMMANDS_DIR = new URL('./commands/', import.meta.url);

interface LuaCommand {
  /** Method name on the client: `larder` + the file's name, `write-n.lua` -> larderWrite. */
  method: string;
  lua: string;
  /** undefined: given per call (the `-n` files). */
  numberOfKeys: number | undefined;
}

let commands: LuaCommand[] | undefined;

/** The Lua scripts, `<name>-<numkeys>.lua`, read once per process. */
function luaCommands(): LuaCommand[] {
  commands ??= readdirSync(COMMANDS_DIR)
    .filter((f) => f.endsWith('.lua'))
    .map((file) => {
      const m = /^([a-zA-Z]+)-(\d+|n)\.lua$/.exec(file);
      if (!m) throw new Error(`Redis command file '${file}' is not named <name>-<numkeys>.lua`);
      return {
        method: `larder${m[1]![0]!.toUpperCase()}${m[1]!.slice(1)}`,
        lua: readFileSync(new URL(file, COMMANDS_DIR), 'utf8'),
        numberOfKeys: m[2] === 'n' ? undefined : Number(m[2]),
      };
    });
  return commands;
}

interface ParsedUrl {
  cluster: boolean;
  nodes: { host: string; port: number }[];
  username?: string;
  password?: string;
  db?: number;
  tls: boolean;
}

const HOST_PORT = /^(\[[^\]]+\]|[^:/]+)(?::(\d+))?$/;

/** Parses a redis://, rediss:// or redis-cluster:// URL; a bad one is an InputError naming LARDER_ONLINE. */
export function parseRedisUrl(url: string): ParsedUrl {
  const m = /^(redis|rediss|redis-cluster):\/\/(?:([^@/]*)@)?([^/?#]*)(?:\/(\d*))?\/?$/.exec(url);
  const bad = (why: string): never => {
    throw new InputError(`LARDER_ONLINE: ${why} in '${redactRedisUrl(url)}' (expected redis://host:port/db or redis-cluster://h1:p1,h2:p2)`);
  };
  if (!m) return bad('not a Redis URL');
  const [, scheme, auth, hosts, db] = m;
  const cluster = scheme === 'redis-cluster';
  const nodes = hosts!
    .split(',')
    .filter(Boolean)
    .map((h) => {
      const hp = HOST_PORT.exec(h.trim());
      if (!hp) return bad(`bad host '${h}'`);
      return { host: hp[1]!.replace(/^\[|\]$/g, ''), port: hp[2] ? Number(hp[2]) : 6379 };
    });
  if (nodes.length === 0) bad('no host');
  if (!cluster && nodes.length > 1) bad('several hosts (use redis-cluster://)');
  const parsed: ParsedUrl = { cluster, nodes, tls: scheme === 'rediss' };
  if (auth) {
    const [user, ...rest] = auth.split(':');
    if (rest.length) {
      if (user) parsed.username = decodeURIComponent(user);
      parsed.password = decodeURIComponent(rest.join(':'));
    } else parsed.password = decodeURIComponent(user!);
  }
  if (db) {
    if (cluster) bad('a database number (a Cluster has only database 0)');
    parsed.db = Number(db);
  }
  return parsed;
}

/** The URL with its password replaced, for messages. */
export const redactRedisUrl = (url: string): string =>
  url.replace(/\/\/([^@/]*)@/, (_, auth: string) => `//${auth.includes(':') ? `${auth.slice(0, auth.indexOf(':'))}:***` : '***'}@`);

export class RedisConnection {
  readonly client: RedisClient;
  readonly cluster: boolean;
  /** The URL without password. */
  readonly url: string;
  readonly commandTimeoutMs: number;

  constructor(url: string, options: RedisConnectionOptions = {}) {
    const parsed = parseRedisUrl(url);
    this.url = redactRedisUrl(url);
    this.cluster = parsed.cluster;
    this.commandTimeoutMs = options.commandTimeoutMs ?? 2000;
    const base: RedisOptions = {
      connectTimeout: options.connectTimeoutMs ?? 2000,
      commandTimeout: this.commandTimeoutMs,
      // One retry after a reconnect, then the command fails: callers see an error, not a hang.
      maxRetriesPerRequest: 1,
      ...(parsed.username !== undefined && { username: parsed.username }),
      ...(parsed.password !== undefined && { password: parsed.password }),
      ...(parsed.tls && { tls: {} }),
    };
    if (parsed.cluster) {
      const clusterOptions: ClusterOptions = {
        enableAutoPipelining: true,
        redisOptions: base,
        clusterRetryStrategy: (times) => Math.min(100 * times, 2000),
        slotsRefreshTimeout: options.connectTimeoutMs ?? 2000,
        maxRedirections: 4,
      };
      this.client = new Cluster(parsed.nodes, clusterOptions);
    } else {
      this.client = new Redis({
        ...base,
        host: parsed.nodes[0]!.host,
        port: parsed.nodes[0]!.port,
        ...(parsed.db !== undefined && { db: parsed.db }),
        retryStrategy: (times) => Math.min(100 * times, 2000),
      });
    }
    // Errors surface on the commands; without a listener ioredis would print each reconnect failure.
    this.client.on('error', () => {});
    // Once connected, a command issued while Redis is away fails at once instead of waiting in
    // ioredis's offline queue: a queued command that timed out (the caller got a 503) would still
    // be sent on reconnect, and a push answered 503 would land online after all.
    this.client.once('ready', () => {
      this.client.options.enableOfflineQueue = false;
    });
    for (const c of luaCommands()) {
      if (c.numberOfKeys !== undefined) {
        this.client.defineCommand(c.method, { lua: c.lua, numberOfKeys: c.numberOfKeys });
      } else {
        // ioredis routes (and auto-pipelines) a call by its first key, which it finds only when
        // numkeys is fixed: `<method>1` is the one-key form a Cluster call uses.
        this.client.defineCommand(c.method, { lua: c.lua });
        this.client.defineCommand(`${c.method}1`, { lua: c.lua, numberOfKeys: 1 });
      }
    }
  }

  async close(): Promise<void> {
    try {
      await Promise.race([this.client.quit(), new Promise((_, reject) => setTimeout(() => reject(new Error('quit timed out')), 1000).unref())]);
    } catch {
      this.client.disconnect();
    }
  }
}
