/**
 * Faults, on real servers broken on purpose (nothing mocked; the shared Redis and PostgreSQL are
 * never touched: a redis-server of this file's own is killed, frozen and restarted, and the
 * registry reaches PostgreSQL through a TCP proxy of this file's own that is cut and restored):
 *
 * 1. Redis dies under a running server (SIGKILL): reads and /push answer 503 within the command
 *    bound, /health names the online store, the process stays up; a failed push leaves no offline
 *    file; Redis restarted on the same port with its data, reads answer 200 again by themselves.
 *    A push that timed out in the client's queue must not be written when Redis is back (it is
 *    yet: marked `fails`). A frozen Redis (SIGSTOP) fails a push the same way, and pushing it again converges.
 * 2. The PostgreSQL registry of a `larder serve` becomes unreachable (a partition): reads go on
 *    from the definitions loaded last, /health says 503 with the registry and the version served;
 *    once the network is back, /health is 200 and an apply made meanwhile is picked up. Then the
 *    connections are reset while a registry query waits: the process must survive (it does not
 *    yet: marked `fails`).
 * 3. kill -9 in the middle of `larder materialize` (200k rows): the watermark did not move, and a
 *    second run ends with the online store a clean run gives. kill -9 of `larder serve` under a
 *    stream of concurrent pushes: every acknowledged push is offline and online, no Parquet file
 *    is half-written, and pushing the unacknowledged ones again converges in datasets.
 * 4. SIGTERM to `larder serve` while predictions stream: exit 0, every request in flight answered,
 *    and every answered prediction in the serving log (written at close, the flush timer being
 *    longer than the test).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { asEpochMs } from '../src/core/time.js';
import { loadDefinitions } from '../src/definitions/loader.js';
import type { Definitions } from '../src/definitions/types.js';
import { getWatermark } from '../src/materialize/watermarks.js';
import { backfill } from '../src/offline/backfill.js';
import { getHistoricalFeatures } from '../src/offline/dataset.js';
import { openDuckDB, sqlString } from '../src/offline/duckdb.js';
import { openOnlineStore } from '../src/online/open.js';
import { getOnlineFeatures } from '../src/online/online-features.js';
import type { RedisOnlineStore } from '../src/online/redis/store.js';
import { FileRegistry } from '../src/registry/file.js';
import { loadCanonicalRepo } from '../src/registry/operations.js';
import { PostgresRegistry } from '../src/registry/postgres.js';
import { startServer, type RunningServer } from '../src/serving/server.js';
import { LARDER_BIN, runLarder } from './support/cli.js';
import { startRedisServer, type OwnRedis } from './support/redis-server.js';
import { createTestDatabase, deleteRedisPrefix, redisUrl, uniquePrefix } from './support/services.js';
import { TcpProxy } from './support/tcp-proxy.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Math.floor(Date.now() / 1000) * 1000;
const iso = (ms: number): string => new Date(ms).toISOString();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const PUSH_DEFINITIONS = (extra = '') => `import { entity, featureView, pushSource } from 'larder';
export const sensor = entity({ name: 'sensor', joinKeys: ['sensor_id'], valueType: 'int64' });
export const readings = pushSource({ name: 'readings', schema: { sensor_id: 'int64', value: 'float64' }, timestampField: 'event_timestamp' });
export const sensorLatest = featureView({ name: 'sensor_latest', entities: [sensor], source: readings, schema: { value: 'float64' } });
${extra}`;

let root: string;
const cleanups: (() => Promise<unknown> | unknown)[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'larder-faults-'));
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
  if (root) await rm(root, { recursive: true, force: true });
});

/** A temp repo holding `definitions.ts`. */
async function makeRepo(name: string, definitions: string): Promise<{ repo: string; home: string }> {
  const repo = join(root, name);
  await mkdir(join(repo, 'data'), { recursive: true });
  await writeFile(join(repo, 'definitions.ts'), definitions);
  return { repo, home: join(repo, '.larder') };
}

/** Polls `probe` until `ok` (at most `ms`, every 100 ms); the last value otherwise, in the error. */
async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: T | string = 'never answered';
  for (;;) {
    try {
      const v = await probe();
      if (ok(v)) return v;
      last = v;
    } catch (err) {
      last = String(err);
    }
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(last)} after ${ms} ms`);
    await sleep(100);
  }
}

interface Answer {
  status: number;
  json: any;
  ms: number;
}

async function call(url: string, path: string, body?: unknown): Promise<Answer> {
  const began = Date.now();
  const res = await fetch(url + path, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, ms: Date.now() - began };
}

const readBody = (ids: number[], features = ['sensor_latest:value']) => ({ features, entities: { sensor_id: ids } });

/** A push of `value(id)` for each sensor at `at`. */
const pushBody = (ids: number[], at: number, value: (id: number) => number) => ({
  push_source_name: 'readings',
  to: 'online_and_offline',
  df: { sensor_id: ids, value: ids.map(value), event_timestamp: ids.map(() => at) },
});

/** Every file under a folder, relative to it, sorted. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const e of entries) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else out.push(relative(dir, join(d, e.name)));
    }
  };
  await walk(dir);
  return out.sort();
}

/** The point-in-time value of `view:value` for each sensor at its instant, as a training job reads it. */
async function datasetValues(defs: Definitions, offlineDir: string, ids: number[], at: (id: number) => number, view = 'sensor_latest'): Promise<(number | null)[]> {
  const table = await getHistoricalFeatures({ defs, offlineDir, entities: { sensor_id: ids, event_timestamp: ids.map((id) => iso(at(id))) }, features: [`${view}:value`] });
  expect(table.numRows).toBe(ids.length);
  return Array.from(table.getChild('value')!, (v) => (v === null ? null : Number(v)));
}

/** A `larder` child process as users run it, its output collected. */
function spawnLarder(args: string[], env: Record<string, string>): { child: ChildProcess; output: () => string; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  const child = spawn(process.execPath, [LARDER_BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, output: () => output, exited };
}

/** `larder serve --port 0` in its own process; resolves with its URL once it listens. */
async function spawnServe(env: Record<string, string>) {
  const serve = spawnLarder(['serve', '--port', '0'], env);
  const m = await until(
    'larder serve to listen',
    async () => {
      if (serve.child.exitCode !== null) throw new Error(`larder serve exited: ${serve.output()}`);
      return /Larder serving on (http:\/\/127\.0\.0\.1:\d+)/.exec(serve.output());
    },
    (v) => v !== null,
    30_000,
  );
  return { ...serve, url: m![1]! };
}

// Children get process.env plus the variables each test names. This file's process (a fork of its own) and its children take the stores each test names, not the caller's.
for (const name of ['LARDER_REGISTRY', 'LARDER_OFFLINE', 'LARDER_API_KEYS', 'LARDER_PORT', 'LARDER_HOST', 'LARDER_ONLINE', 'LARDER_ONLINE_PREFIX', 'LARDER_REPO', 'LARDER_HOME', 'LARDER_SERVING_LOG', 'LARDER_RELOAD_MS', 'LARDER_PROTECT_READS']) delete process.env[name];

// ---------------------------------------------------------------------------------------------

describe('1. Redis stops while serving', () => {
  let redis: OwnRedis;
  let server: RunningServer;
  let offlineDir: string;
  let defs: Definitions;
  const logged: string[] = [];
  const before = Array.from({ length: 20 }, (_, i) => 1 + i);
  /** What the online store holds, after Redis came back, for a push answered 503 while it was down. */
  let lateWrite: unknown;

  beforeAll(async () => {
    const dir = join(root, 'redis-1');
    await mkdir(dir, { recursive: true });
    redis = await startRedisServer({ dir });
    cleanups.push(() => redis.kill());
    const { repo } = await makeRepo('repo-1', PUSH_DEFINITIONS());
    const config = loadConfig({ LARDER_REPO: repo, LARDER_ONLINE: redis.url });
    offlineDir = config.offlineDir;
    defs = await loadDefinitions(repo);
    await new FileRegistry(join(config.home, 'registry.json')).apply((await loadCanonicalRepo(repo)).repo);
    server = await startServer({ config, port: 0, reloadIntervalMs: 500, log: (l) => logged.push(l) });
    cleanups.push(() => server.close());
  });

  it('reads and pushes answer 503 in bounded time while Redis is dead, and 200 again once it is back, without a restart', async () => {
    const pushed = await call(server.url, '/push', pushBody(before, NOW - HOUR, (id) => id / 10));
    expect(pushed.status).toBe(200);
    const ok = await call(server.url, '/get-online-features', readBody(before));
    expect(ok.status).toBe(200);
    expect(ok.json.results[1].values).toEqual(before.map((id) => id / 10));
    const filesBefore = await filesUnder(offlineDir);
    expect(filesBefore.filter((f) => f.endsWith('.parquet'))).toHaveLength(1);

    await redis.kill('SIGKILL');
    const killedAt = Date.now();

    // Each read: 503 naming the online store, within the command bound (2 s) plus slack.
    for (let i = 0; i < 3; i++) {
      const read = await call(server.url, '/get-online-features', readBody(before));
      expect(read.status).toBe(503);
      expect(read.ms).toBeLessThan(3000);
      expect(read.json).toMatchObject({ error: expect.stringContaining(`online store ${redis.url}`), detail: { store: 'online' } });
    }
    const [health, metrics] = await Promise.all([call(server.url, '/health'), call(server.url, '/metrics')]);
    expect(health.status).toBe(503);
    expect(health.ms).toBeLessThan(3000);
    expect(health.json).toMatchObject({ status: 'unavailable', online: 'unavailable', registry: 'ok', error: expect.stringContaining(`online store ${redis.url}`) });
    expect(metrics.status).toBe(200);
    expect(metrics.json).toMatch(/larder_store_errors_total\{store="online"\} [1-9]/);

    // A push while Redis is dead: 503, and nothing of it offline (staged files dropped).
    const failed = await call(server.url, '/push', pushBody([101, 102, 103], NOW - HOUR, () => 9));
    expect(failed.status).toBe(503);
    expect(failed.ms).toBeLessThan(3000);
    expect(failed.json.detail).toEqual({ store: 'online' });
    expect(await filesUnder(offlineDir)).toEqual(filesBefore);
    expect(await datasetValues(defs, offlineDir, [101, 102, 103], () => NOW)).toEqual([null, null, null]);
    expect(Date.now() - killedAt).toBeLessThan(15_000);

    // A push that waits in the client's queue while it reconnects, and times out there: answered
    // 503 (nothing offline), it must not be written when Redis comes back. Sent just after a
    // failed reconnect attempt flushed the queue, once attempts are 1.6 s apart, it outlives its
    // 2 s bound in the queue (the next flush is 3.3 s later); Redis is back before then.
    const client = (server.context.store as RedisOnlineStore).connection.client as unknown as NodeJS.EventEmitter & { retryAttempts: number };
    await new Promise<void>((resolve, reject) => {
      const bound = setTimeout(() => reject(new Error(`reconnect attempts stayed at ${client.retryAttempts}`)), 20_000);
      const onAttempt = (): void => {
        if (client.retryAttempts < 16 || client.retryAttempts % 2 !== 0) return;
        clearTimeout(bound);
        client.off('reconnecting', onAttempt);
        resolve();
      };
      client.on('reconnecting', onAttempt);
    });
    const timedOut = await call(server.url, '/push', pushBody([111, 112], NOW - HOUR, () => 5));
    // Same port, same data (the append-only file): reads recover by themselves.
    await redis.start();
    expect(timedOut.status).toBe(503);
    expect(timedOut.json.detail).toEqual({ store: 'online' });
    expect(await filesUnder(offlineDir)).toEqual(filesBefore);
    const restartedAt = Date.now();
    const back = await until('reads after the restart', () => call(server.url, '/get-online-features', readBody(before)), (r) => r.status === 200, 10_000);
    expect(Date.now() - restartedAt).toBeLessThan(10_000);
    expect(back.json.results[1].values).toEqual(before.map((id) => id / 10));
    expect((await call(server.url, '/health')).status).toBe(200);
    // The failed push is in neither store; pushed again it lands in both.
    expect((await call(server.url, '/get-online-features', readBody([101]))).json.results[1].statuses).toEqual(['NOT_FOUND']);
    // (What the client queued is sent on reconnecting, before any later command.)
    lateWrite = (await call(server.url, '/get-online-features', readBody([111, 112]))).json.results[1];
    expect((await call(server.url, '/push', pushBody([101, 102, 103], NOW - HOUR, () => 9))).status).toBe(200);
    expect((await call(server.url, '/get-online-features', readBody([101, 102, 103]))).json.results[1].values).toEqual([9, 9, 9]);
    expect(await datasetValues(defs, offlineDir, [101, 102, 103], () => NOW)).toEqual([9, 9, 9]);
  }, 40_000);

  // ioredis rejects a command on `commandTimeout` but kept it in its offline queue and sent it on
  // reconnect, so a push answered 503 was written online after all (and never offline); the
  // connection now stops queueing once connected (src/online/redis/connection.ts).
  it('a push answered 503 while Redis was down is not written online when Redis comes back', () => {
    expect(lateWrite).toMatchObject({ statuses: ['NOT_FOUND', 'NOT_FOUND'], values: [null, null] });
  });

  it('a frozen Redis (SIGSTOP) fails a push in bounded time with no offline file, and pushing it again converges', async () => {
    const ids = [201, 202];
    const filesBefore = await filesUnder(offlineDir);
    redis.freeze();
    let failed: Answer;
    try {
      failed = await call(server.url, '/push', pushBody(ids, NOW - HOUR, () => 7));
    } finally {
      redis.thaw();
    }
    expect(failed.status).toBe(503);
    expect(failed.ms).toBeLessThan(3000);
    expect(await filesUnder(offlineDir)).toEqual(filesBefore);
    expect(await datasetValues(defs, offlineDir, ids, () => NOW)).toEqual([null, null]);
    // A timed-out write may still have reached Redis (it was sent): what the 503 cannot say. The
    // producer pushes again; both stores then agree.
    await until('Redis after SIGCONT', () => call(server.url, '/get-online-features', readBody(ids)), (r) => r.status === 200, 5000);
    const again = await call(server.url, '/push', pushBody(ids, NOW - HOUR, () => 7));
    expect(again.status).toBe(200);
    expect((await call(server.url, '/get-online-features', readBody(ids))).json.results[1].values).toEqual([7, 7]);
    expect(await datasetValues(defs, offlineDir, ids, () => NOW)).toEqual([7, 7]);
  }, 30_000);
});

// ---------------------------------------------------------------------------------------------

describe('2. the PostgreSQL registry unreachable', () => {
  let proxy: TcpProxy;
  let serve: Awaited<ReturnType<typeof spawnServe>>;
  let direct: PostgresRegistry;
  let repo: string;
  let applyEnv: Record<string, string>;
  let v1: string;
  const ids = [1, 2, 3];

  beforeAll(async () => {
    const db = await createTestDatabase('faults');
    cleanups.push(() => db.drop());
    const real = new URL(db.url);
    proxy = await TcpProxy.start({ host: real.hostname, port: Number(real.port || 5432) });
    cleanups.push(() => proxy.close());
    const proxied = new URL(db.url);
    proxied.hostname = '127.0.0.1';
    proxied.port = String(proxy.port);
    let home: string;
    ({ repo, home } = await makeRepo('repo-2', PUSH_DEFINITIONS()));
    direct = new PostgresRegistry(db.url);
    cleanups.push(() => direct.close());
    v1 = (await direct.apply((await loadCanonicalRepo(repo)).repo)).version.version;
    const prefix = uniquePrefix('faults-registry');
    cleanups.push(() => deleteRedisPrefix(prefix));
    // `larder apply` from elsewhere goes straight to PostgreSQL; the server through the proxy.
    applyEnv = { LARDER_REPO: repo, LARDER_HOME: home, LARDER_REGISTRY: db.url };
    serve = await spawnServe({ LARDER_REPO: repo, LARDER_HOME: home, LARDER_REGISTRY: proxied.toString(), LARDER_ONLINE: redisUrl(), LARDER_ONLINE_PREFIX: prefix, LARDER_RELOAD_MS: '200' });
    expect((await call(serve.url, '/push', pushBody(ids, NOW - HOUR, (id) => id * 2))).status).toBe(200);
  });

  const health = () => call(serve.url, '/health');
  const read = (features?: string[]) => call(serve.url, '/get-online-features', readBody(ids, features));

  it('serves the last loaded definitions through a partition, says so in /health, and picks up an apply made meanwhile', async () => {
    expect(await health()).toMatchObject({ status: 200, json: { status: 'ok', registry: 'ok', version: v1 } });
    expect(proxy.open).toBeGreaterThan(0);

    proxy.cut('blackhole');
    let v2: string;
    try {
      // Reads go on, from the definitions loaded last, in their usual time.
      for (let i = 0; i < 5; i++) {
        const r = await read();
        expect(r.status).toBe(200);
        expect(r.json.results[1].values).toEqual([2, 4, 6]);
        expect(r.ms).toBeLessThan(1000);
        await sleep(100);
      }
      const down = await health();
      expect(down.status).toBe(503);
      expect(down.ms).toBeLessThan(3000);
      expect(down.json).toMatchObject({ status: 'unavailable', online: 'ok', registry: 'unavailable', version: v1, definitions: { version: v1 }, error: expect.stringMatching(/^registry postgres:/) });

      // An apply made meanwhile (from elsewhere, straight to PostgreSQL) adds a view.
      await writeFile(join(repo, 'definitions.ts'), PUSH_DEFINITIONS(`export const sensorCopy = featureView({ name: 'sensor_copy', entities: [sensor], source: readings, schema: { value: 'float64' } });`));
      const applied = await runLarder(['apply'], { cwd: repo, env: applyEnv });
      expect(applied.code).toBe(0);
      v2 = (await direct.current())!.version;
      expect(v2).not.toBe(v1);
      const still = await read(['sensor_copy:value']);
      expect(still.status).toBe(400); // not loaded: the server cannot know of v2 yet
      expect((await read()).status).toBe(200);
      expect((await health()).json).toMatchObject({ registry: 'unavailable', version: v1 });
      expect(await call(serve.url, '/metrics')).toMatchObject({ status: 200, json: expect.stringMatching(/larder_store_errors_total\{store="registry"\} [1-9]/) });
    } finally {
      proxy.restore();
    }
    const healed = Date.now();
    const up = await until('/health after the partition healed', health, (h) => h.status === 200 && h.json.version === v2!, 15_000);
    expect(Date.now() - healed).toBeLessThan(15_000);
    expect(up.json).toMatchObject({ status: 'ok', registry: 'ok', definitions: { inSync: true } });
    const copy = await call(serve.url, '/get-online-features', { ...readBody(ids, ['sensor_copy:value', 'sensor_latest:value']), full_feature_names: true });
    expect(copy.status).toBe(200);
    expect(copy.json.results[1].statuses).toEqual(['NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND']);
    expect(copy.json.results[2].values).toEqual([2, 4, 6]);
    expect(serve.child.exitCode).toBeNull();
    expect(serve.output()).toMatch(/registry postgres:.*serving the definitions loaded last/);
  }, 45_000);

  // A pooled client's connection reset while a registry query waited used to crash the process
  // (an 'error' event with no listener); every pooled client now has one (src/registry/postgres.ts).
  it('survives PostgreSQL resetting its connections while a registry query waits, and recovers', async () => {
    proxy.cut('blackhole');
    try {
      // A reload check is now waiting on a pooled connection.
      expect((await health()).status).toBe(503);
      proxy.cut('reset');
      await sleep(500);
      expect(serve.child.exitCode).toBeNull();
      const down = await health();
      expect(down.json).toMatchObject({ registry: 'unavailable', online: 'ok', error: expect.stringMatching(/^registry postgres:/) });
      expect((await read()).status).toBe(200);
      // A push writes no registry: it goes on too.
      expect((await call(serve.url, '/push', pushBody([4], NOW - HOUR, () => 8))).status).toBe(200);
    } finally {
      proxy.restore();
    }
    await until('/health after PostgreSQL came back', health, (h) => h.status === 200, 10_000);
    expect(serve.child.exitCode).toBeNull();
  }, 30_000);
});

// ---------------------------------------------------------------------------------------------

describe('3. kill -9 during materialize and during a push stream', () => {
  const ROWS = 200_000;
  const ENTITIES = 160_000;
  const T0 = NOW - 3 * DAY;
  /** Row i: sensor i % ENTITIES at T0 + i s, value i; the latest of a sensor is its last row. */
  const latestRow = (sensor: number) => (sensor < ROWS - ENTITIES ? sensor + ENTITIES : sensor);

  it('a materialize killed midway leaves the watermark alone; the next run ends where a clean run ends', async () => {
    const dir = join(root, 'redis-3');
    await mkdir(dir, { recursive: true });
    const redis = await startRedisServer({ dir });
    cleanups.push(() => redis.kill());
    const { repo, home } = await makeRepo(
      'repo-3',
      `import { entity, featureView, fileSource } from 'larder';
export const sensor = entity({ name: 'sensor', joinKeys: ['sensor_id'], valueType: 'int64' });
export const bigStats = featureView({
  name: 'big_stats', entities: [sensor],
  source: fileSource({ name: 'big', path: 'data/big.parquet', timestampField: 'event_timestamp' }),
  schema: { value: 'float64' },
});
`,
    );
    const db = await openDuckDB();
    try {
      await db.connection.run(
        `COPY (SELECT (i % ${ENTITIES})::BIGINT AS sensor_id, make_timestamptz((${T0}::BIGINT + i * 1000) * 1000) AS event_timestamp, i::DOUBLE AS value FROM range(${ROWS}) r(i))
         TO ${sqlString(join(repo, 'data', 'big.parquet'))} (FORMAT parquet)`,
      );
    } finally {
      db.close();
    }
    const config = loadConfig({ LARDER_REPO: repo, LARDER_HOME: home });
    const defs = await loadDefinitions(repo);
    const registry = new FileRegistry(join(home, 'registry.json'));
    await registry.apply((await loadCanonicalRepo(repo)).repo);
    await backfill({ defs, offlineDir: config.offlineDir, start: asEpochMs(T0 - DAY), end: asEpochMs(NOW + HOUR) });

    const env = { LARDER_REPO: repo, LARDER_HOME: home, LARDER_ONLINE: redis.url };
    const args = ['materialize', '--end', iso(NOW)];
    const admin = await redis.client();
    cleanups.push(() => admin.disconnect());
    const killed = spawnLarder(args, env);
    // Killed once its first batches are in Redis, well before the last.
    await until('materialize to start writing', async () => {
      if (killed.child.exitCode !== null) throw new Error(`materialize finished before it could be killed: ${killed.output()}`);
      return admin.dbsize();
    }, (n) => n > 0, 30_000);
    killed.child.kill('SIGKILL');
    expect(await killed.exited).toEqual({ code: null, signal: 'SIGKILL' });
    const partial = await admin.dbsize();
    expect(partial).toBeGreaterThan(0);
    expect(partial).toBeLessThan(ENTITIES);
    expect(await getWatermark(registry, 'big_stats')).toBeUndefined();

    // From the (unmoved) watermark: the whole window again.
    const rerun = await runLarder(args, { cwd: repo, env });
    expect(rerun.stderr).toBe('');
    expect(rerun.code).toBe(0);
    expect(rerun.stdout).toMatch(/materialize big_stats: 160,000 entities in \(beginning, /);
    expect(await getWatermark(registry, 'big_stats')).toBe(NOW);
    expect(await admin.dbsize()).toBe(ENTITIES);

    // Every entity online at its latest row: what a clean run loads.
    const store = await openOnlineStore(redis.url);
    try {
      for (let from = 0; from < ENTITIES; from += 20_000) {
        const ids = Array.from({ length: 20_000 }, (_, i) => from + i);
        const got = await getOnlineFeatures({ defs, store, features: ['big_stats:value'], entities: { sensor_id: ids } });
        const want = ids.map(latestRow);
        expect(got.results[1]!.statuses.every((s) => s === 'PRESENT')).toBe(true);
        expect(got.results[1]!.values).toEqual(want);
        expect(got.results[1]!.event_timestamps).toEqual(want.map((i) => iso(T0 + i * 1000)));
      }
    } finally {
      await store.close();
    }
  }, 60_000);

  it('a server killed under concurrent pushes: acknowledged pushes are durable, no half file, and pushing the rest again converges', async () => {
    const PUSHES = 300;
    const PER_PUSH = 20;
    const WORKERS = 6;
    const { repo, home } = await makeRepo('repo-3b', PUSH_DEFINITIONS());
    const prefix = uniquePrefix('faults-push');
    cleanups.push(() => deleteRedisPrefix(prefix));
    const config = loadConfig({ LARDER_REPO: repo, LARDER_HOME: home });
    const defs = await loadDefinitions(repo);
    await new FileRegistry(join(home, 'registry.json')).apply((await loadCanonicalRepo(repo)).repo);
    const serve = await spawnServe({ LARDER_REPO: repo, LARDER_HOME: home, LARDER_ONLINE: redisUrl(), LARDER_ONLINE_PREFIX: prefix, LARDER_SERVING_LOG: 'off' });

    // Push k: sensors k*PER_PUSH.., each once, at its own instant, value sensor * 1.5.
    const sensorsOf = (k: number) => Array.from({ length: PER_PUSH }, (_, i) => k * PER_PUSH + i);
    const at = (sensor: number) => NOW - 2 * HOUR + Math.floor(sensor / PER_PUSH) * 1000;
    const value = (sensor: number) => sensor * 1.5;
    const body = (k: number) => pushBody(sensorsOf(k), at(k * PER_PUSH), value);
    const status = new Array<number | 'no answer' | 'not sent'>(PUSHES).fill('not sent');
    let next = 0;
    let acked = 0;
    const began = Date.now();
    const worker = async (): Promise<void> => {
      while (next < PUSHES && Date.now() - began < 30_000) {
        const k = next++;
        try {
          const r = await fetch(`${serve.url}/push`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body(k)) });
          await r.arrayBuffer();
          status[k] = r.status;
          if (r.status === 200) acked++;
        } catch {
          status[k] = 'no answer';
          return;
        }
      }
    };
    const workers = Promise.all(Array.from({ length: WORKERS }, worker));
    await until('pushes to be acknowledged', async () => acked, (n) => n >= 60, 30_000);
    serve.child.kill('SIGKILL');
    await workers;
    expect(await serve.exited).toEqual({ code: null, signal: 'SIGKILL' });
    const ackedPushes = status.flatMap((s, k) => (s === 200 ? [k] : []));
    const others = status.flatMap((s, k) => (s === 200 ? [] : [k]));
    expect(status.filter((s) => typeof s === 'number' && s !== 200)).toEqual([]);
    expect(ackedPushes.length).toBeGreaterThanOrEqual(60);
    expect(others.length).toBeGreaterThan(0);

    // No half-written Parquet file: every visible file reads whole; what a kill leaves are hidden temps.
    const viewDir = join(config.offlineDir, 'sensor_latest');
    const files = await filesUnder(viewDir);
    const visible = files.filter((f) => !f.split('/').pop()!.startsWith('.'));
    const hidden = files.filter((f) => f.split('/').pop()!.startsWith('.'));
    expect(visible.every((f) => /^date=\d{4}-\d{2}-\d{2}\/push-[\w-]+\.parquet$/.test(f))).toBe(true);
    expect(hidden.every((f) => /\/\.push-[\w-]+\.parquet\.tmp$/.test(f))).toBe(true);
    const staged: number[] = [];
    const duck = await openDuckDB();
    try {
      for (const f of visible) {
        const rows = await duck.connection.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM read_parquet(${sqlString(join(viewDir, f))})`);
        expect(Number(rows.getRowObjects()[0]!.n)).toBe(PER_PUSH);
      }
      // A temp file written whole but not renamed: its push was not acknowledged.
      for (const f of hidden) {
        const rows = await duck.connection.runAndReadAll(`SELECT sensor_id::INTEGER AS s FROM read_parquet(${sqlString(join(viewDir, f))})`).catch(() => null);
        for (const r of rows?.getRowObjects() ?? []) staged.push(Number(r.s));
      }
    } finally {
      duck.close();
    }
    for (const s of staged) expect(status[Math.floor(s / PER_PUSH)]).not.toBe(200);
    // ...and datasets do not read it.
    if (staged.length) expect(await datasetValues(defs, config.offlineDir, staged, at)).toEqual(staged.map(() => null));

    // Every acknowledged push: offline (datasets see it) and online.
    const ackedSensors = ackedPushes.flatMap(sensorsOf);
    expect(await datasetValues(defs, config.offlineDir, ackedSensors, at)).toEqual(ackedSensors.map(value));
    const store = await openOnlineStore(redisUrl(), { prefix });
    try {
      const online = await getOnlineFeatures({ defs, store, features: ['sensor_latest:value'], entities: { sensor_id: ackedSensors } });
      expect(online.results[1]!.values).toEqual(ackedSensors.map(value));

      // The producer pushes what was not acknowledged again, to a new server on the same stores.
      const again = await startServer({ config: { ...config, online: redisUrl() }, port: 0, onlinePrefix: prefix, servingLog: false, log: () => {} });
      try {
        for (let i = 0; i < others.length; i += WORKERS) {
          const answers = await Promise.all(others.slice(i, i + WORKERS).map((k) => call(again.url, '/push', body(k))));
          expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
        }
      } finally {
        await again.close();
      }
      const all = Array.from({ length: PUSHES * PER_PUSH }, (_, s) => s);
      expect(await datasetValues(defs, config.offlineDir, all, at)).toEqual(all.map(value));
      const latest = await getOnlineFeatures({ defs, store, features: ['sensor_latest:value'], entities: { sensor_id: all } });
      expect(latest.results[1]!.values).toEqual(all.map(value));
    } finally {
      await store.close();
    }

    // In the files: every (sensor, instant) once, but for pushes the kill caught after their file
    // was in place and before their answer, which now have two rows, equal but for created time.
    const db = await openDuckDB();
    try {
      const rows = (
        await db.connection.runAndReadAll(
          `SELECT sensor_id::INTEGER AS sensor, count(*)::INTEGER AS n, count(DISTINCT value)::INTEGER AS values_, count(DISTINCT created_timestamp)::INTEGER AS created
           FROM read_parquet(${sqlString(join(viewDir, '*', '*.parquet'))}, hive_partitioning = false) GROUP BY ALL`,
        )
      ).getRowObjects() as { sensor: number; n: number; values_: number; created: number }[];
      expect(rows).toHaveLength(PUSHES * PER_PUSH);
      expect(rows.every((r) => r.values_ === 1 && r.created === r.n)).toBe(true);
      const twice = rows.filter((r) => r.n > 1).map((r) => Math.floor(r.sensor / PER_PUSH));
      expect(rows.every((r) => r.n <= 2)).toBe(true);
      expect(new Set(twice).size).toBeLessThanOrEqual(WORKERS);
      for (const k of twice) expect(status[k]).toBe('no answer');
    } finally {
      db.close();
    }
  }, 60_000);
});

// ---------------------------------------------------------------------------------------------

describe('4. SIGTERM while predictions stream, with the serving log', () => {
  it('exits 0, answers what was in flight, and every answered prediction is in the serving log', async () => {
    const dir = join(root, 'predict');
    const repo = join(dir, 'repo');
    await cp(fileURLToPath(new URL('../feature-definitions', import.meta.url)), repo, { recursive: true, filter: (src) => !/[\\/](\.larder|data)$/.test(src) });
    const env = { LARDER_REPO: repo, LARDER_HOME: join(dir, 'home') };
    for (const args of [['sample-data', '--reviews', '400', '--readings', '2000'], ['apply'], ['backfill', '--start', '2023-12-31T00:00:00Z', '--end', '2024-03-05T00:00:00Z'], ['train', 'review_sentiment']]) {
      const r = await runLarder(args, { cwd: dir, env });
      if (r.code !== 0) throw new Error(`larder ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
    }
    // The flush timer is longer than the test: what reaches the log is written by close.
    const serve = await spawnServe({ ...env, LARDER_SERVING_LOG_FLUSH_MS: '600000' });
    // Requests heavy enough (1,000 reviews each) to be in flight when the signal comes.
    const texts = Array.from({ length: 1000 }, (_, i) =>
      `produto ${i % 2 ? 'ótimo, chegou rápido e bem embalado, recomendo' : 'péssimo, veio quebrado e a loja não responde'} número ${i}, ${'muito '.repeat(i % 7)}bom para o preço`,
    );

    interface Sent {
      began: number;
      ended?: number;
      status?: number;
      requestId?: string;
      rows?: number;
      error?: string;
    }
    const sent: Sent[] = [];
    let termAt = Infinity;
    let stop = false;
    const worker = async (): Promise<void> => {
      for (let i = 0; i < 500 && !stop; i++) {
        const s: Sent = { began: performance.now() };
        sent.push(s);
        try {
          const res = await fetch(`${serve.url}/predict/review_sentiment`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: { text: texts } }) });
          const json = (await res.json()) as { request_id: string; predictions: unknown[] };
          Object.assign(s, { status: res.status, requestId: json.request_id, rows: json.predictions?.length });
        } catch (err) {
          s.error = String((err as Error).cause ?? err);
          stop = true;
        } finally {
          s.ended = performance.now();
        }
      }
    };
    const workers = Promise.all(Array.from({ length: 4 }, worker));
    await until('predictions to be answered', async () => sent.filter((s) => s.status === 200).length, (n) => n >= 12, 20_000);
    termAt = performance.now();
    serve.child.kill('SIGTERM');
    const exit = await serve.exited;
    stop = true;
    await workers;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(serve.output()).toMatch(/Larder stopping \(SIGTERM\)/);

    // In flight: sent before the signal (10 ms: surely read by the server) and not answered by then.
    const inFlight = sent.filter((s) => s.began < termAt - 10 && (s.ended ?? Infinity) > termAt);
    expect(inFlight.length).toBeGreaterThan(0);
    for (const s of inFlight) expect(s).toMatchObject({ status: 200, rows: texts.length });
    expect(sent.filter((s) => s.status !== undefined && s.status !== 200)).toEqual([]);

    const answered = sent.filter((s) => s.status === 200);
    const db = await openDuckDB();
    try {
      const logged = (
        await db.connection.runAndReadAll(
          `SELECT request_id, count(*)::INTEGER AS n FROM read_parquet(${sqlString(join(dir, 'home', 'offline', '_serving_log', 'review_sentiment', '**', '*.parquet'))}) GROUP BY request_id`,
        )
      ).getRowObjects() as { request_id: string; n: number }[];
      const byId = new Map(logged.map((r) => [r.request_id, r.n]));
      for (const s of answered) expect([s.requestId, byId.get(s.requestId!)]).toEqual([s.requestId, texts.length]);
      expect(byId.size).toBe(answered.length);
    } finally {
      db.close();
    }
  }, 60_000);
});
