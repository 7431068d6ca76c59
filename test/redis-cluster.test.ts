/**
 * The Redis store on a real 3-node Redis Cluster, started by this file on free loopback ports:
 * an entity is one slot, so 100 entities spread over every node are written and read back in one
 * call each, the read costing one write on each node's socket (one round trip per node, in
 * parallel); the late-row rule and expiry hold there too.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { asEpochMs } from '../src/core/time.js';
import { entity, featureView, fileSource } from '../src/definitions/builders.js';
import type { Definitions, FeatureView } from '../src/definitions/types.js';
import { encodeEntityKey } from '../src/online/entity-key.js';
import { openOnlineStore } from '../src/online/open.js';
import { getOnlineFeatures } from '../src/online/online-features.js';
import { NEVER_EXPIRES_MS, RedisOnlineStore } from '../src/online/redis/store.js';
import { onlineViewSpec, TILE_SWEEP_MS, type OnlineRow } from '../src/online/store.js';
import { tileLayout, tileUpdates, type TileEvent } from '../src/streaming/tiles.js';
import { uniquePrefix } from './support/services.js';
import { mergeInto } from './support/tiles.js';

const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
const source = fileSource({ name: 'src', path: 'data/none.parquet', timestampField: 'event_timestamp' });
const stats = featureView({ name: 'driver_stats', entities: [driver], source, ttl: '1h', schema: { conv_rate: 'float64', trips: 'int64', name: 'string' } });
const profile = featureView({ name: 'driver_profile', entities: [driver], source, schema: { rating: 'float32' } });
const defs: Definitions = {
  entities: new Map([['driver', driver]]),
  sources: new Map([['src', source]]),
  views: new Map(([stats, profile] as unknown as FeatureView[]).map((v) => [v.name, v])),
  services: new Map(),
  repoDir: '/nonexistent',
};

const signal = featureView({
  name: 'driver_signal',
  entities: [driver],
  source,
  aggregations: [
    { column: 'amplitude', functions: ['mean', 'stddev', 'min', 'max', 'count', 'last'], windows: ['1m', '10m'] },
    { column: 'speed', functions: ['sum'], windows: ['1m'] },
  ],
});

const key = (id: number) => encodeEntityKey([{ name: 'driver_id', type: 'int64' }], { driver_id: id });
const row = (id: number, eventMs: number, values: unknown[]): OnlineRow => ({ key: key(id), eventMs: asEpochMs(eventMs), createdMs: null, values });

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

let dir: string;
let ports: number[] = [];
const servers: ChildProcess[] = [];
let url: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'larder-cluster-'));
  ports = [];
  while (ports.length < 3) {
    const p = await freePort();
    if (!ports.includes(p)) ports.push(p);
  }
  for (const port of ports) {
    const child = spawn(
      'redis-server',
      ['--cluster-enabled', 'yes', '--port', String(port), '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--bind', '127.0.0.1', '--dir', dir],
      { stdio: 'ignore' },
    );
    servers.push(child);
  }
  for (const port of ports) {
    await waitFor(`redis-server on ${port}`, async () => {
      const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
      r.on('error', () => {});
      try {
        await r.connect();
        return (await r.ping()) === 'PONG';
      } finally {
        r.disconnect();
      }
    });
  }
  const created = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
  for (const port of ports) {
    await waitFor(`cluster_state:ok on ${port}`, async () => {
      const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
      r.on('error', () => {});
      try {
        await r.connect();
        return String(await r.cluster('INFO')).includes('cluster_state:ok');
      } finally {
        r.disconnect();
      }
    });
  }
  url = `redis-cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`;
}, 60_000);

afterAll(async () => {
  for (const s of servers) s.kill('SIGKILL');
  await Promise.all(servers.map((s) => (s.exitCode !== null || s.signalCode !== null ? undefined : new Promise((r) => s.once('exit', r)))));
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('online store on a 3-node Redis Cluster', () => {
  let store: RedisOnlineStore;
  beforeEach(async () => {
    store = (await openOnlineStore(url, { prefix: uniquePrefix('cluster') })) as RedisOnlineStore;
  });
  afterEach(async () => {
    await store.close();
  });

  it('writes and reads 100 entities spread over all nodes in one call each', async () => {
    const now = Date.now();
    const spec = onlineViewSpec(stats);
    const ids = Array.from({ length: 100 }, (_, i) => 1000 + i);
    expect(await store.write(spec, ids.map((id) => row(id, now, [id / 1000, id, `d${id}`])))).toEqual({ written: 100, stale: 0 });

    const cluster = store.connection.client as Cluster;
    // Entities land on every node: one slot per entity, slots spread over the cluster.
    const perNode = await Promise.all(cluster.nodes('master').map((n) => n.dbsize()));
    expect(perNode.filter((n) => n > 0)).toHaveLength(3);
    expect(perNode.reduce((a, b) => a + b, 0)).toBe(100);

    // Count socket writes per node during one read of all 100.
    const restore: (() => void)[] = [];
    let writes = 0;
    for (const node of cluster.nodes('master')) {
      const socket = node.stream;
      const write = socket.write.bind(socket);
      socket.write = ((...args: Parameters<typeof socket.write>) => {
        writes++;
        return write(...args);
      }) as typeof socket.write;
      restore.push(() => (socket.write = write));
    }
    let read;
    try {
      read = await store.read(ids.map(key), [spec, onlineViewSpec(profile)]);
    } finally {
      for (const r of restore) r();
    }
    expect(writes).toBeLessThanOrEqual(3);
    expect(read.map(([s, p]) => [s?.values, p])).toEqual(ids.map((id) => [[id / 1000, id, `d${id}`], null]));

    const response = await getOnlineFeatures({ defs, store, features: ['driver_stats:trips', 'driver_profile:rating'], entities: { driver_id: ids } });
    expect(response.results[1]!.values).toEqual(ids);
    expect(new Set(response.results[2]!.statuses)).toEqual(new Set(['NOT_FOUND']));
  });

  it('keeps the newest row and the record expiry', async () => {
    const now = Date.now();
    const spec = onlineViewSpec(stats);
    expect(await store.write(spec, [row(1, now, [0.1, 1, 'a']), row(2, now, [0.2, 2, 'b'])])).toEqual({ written: 2, stale: 0 });
    expect(await store.write(spec, [row(1, now - 1, [9, 9, 'late']), row(2, now + 1, [0.3, 3, 'c'])])).toEqual({ written: 1, stale: 1 });
    const read = await store.read([key(1), key(2)], [spec]);
    expect(read.map(([v]) => v?.values[2])).toEqual(['a', 'c']);
    const cluster = store.connection.client as Cluster;
    const pttl = await cluster.pttl(store.keyOf(key(1)));
    expect(pttl).toBeGreaterThan(3_600_000 - 60_000);
    await store.write(onlineViewSpec(profile), [row(1, now, [4.5])]);
    expect(Number(await cluster.call('PEXPIRETIME', store.keyOf(key(1))))).toBe(NEVER_EXPIRES_MS);
  });

  it('merges the tiles of 100 entities over all nodes as mergePartial does, loses no event under two writers, and reads them in one round trip per node', async () => {
    const layout = tileLayout(signal as unknown as FeatureView);
    const T = 1_750_000_000_000;
    const ids = Array.from({ length: 100 }, (_, i) => 2000 + i);
    const other = (await openOnlineStore(url, { prefix: store.prefix })) as RedisOnlineStore;
    const hex = (tile: Float64Array) => Buffer.from(tile.buffer, tile.byteOffset, tile.byteLength).toString('hex');
    const reference = new Map<string, Map<string, Float64Array>>();
    const events = (batch: number): TileEvent[] =>
      ids.flatMap((id) =>
        [0, 1, 2].map((e) => ({
          key: key(id),
          eventMs: T - ((id * 7 + e * 13 + batch * 29) % 120) * 1000 - e * 10,
          createdMs: T + batch,
          values: [Math.sin(id + e * 3 + batch * 5) * 100, e === 2 ? null : id / 7],
        })),
      );
    const cluster = store.connection.client as Cluster;
    try {
      // Batches one after another, from either writer: the very doubles of mergePartial.
      for (let batch = 0; batch < 4; batch++) {
        const updates = tileUpdates(layout, events(batch));
        mergeInto(reference, updates);
        await (batch % 2 ? other : store).mergeTiles(layout, updates, T);
      }
      const fields = [...new Set([...reference.values()].flatMap((m) => [...m.keys()]))];
      const restore: (() => void)[] = [];
      let writes = 0;
      for (const node of cluster.nodes('master')) {
        const socket = node.stream;
        const write = socket.write.bind(socket);
        socket.write = ((...args: Parameters<typeof socket.write>) => {
          writes++;
          return write(...args);
        }) as typeof socket.write;
        restore.push(() => (socket.write = write));
      }
      let read: Map<string, Float64Array>[];
      try {
        read = await store.readTiles(layout, ids.map(key), fields);
      } finally {
        for (const r of restore) r();
      }
      expect(writes).toBeLessThanOrEqual(3);
      const asHex = (tiles: ReadonlyMap<string, Float64Array>) => Object.fromEntries([...tiles].map(([f, t]) => [f, hex(t)]).sort(([a], [b]) => (a! < b! ? -1 : 1)));
      expect(read.map(asHex)).toEqual(ids.map((id) => asHex(reference.get(key(id))!)));

      // The tile records are spread over every node, each with the retention as its expiry.
      const perNode = await Promise.all(cluster.nodes('master').map((n) => n.keys(`${store.prefix}*:tiles:*`)));
      expect(perNode.filter((keys) => keys.length > 0)).toHaveLength(3);
      expect(perNode.flat()).toHaveLength(100);
      const pttl = await cluster.pttl(store.tileKeyOf(layout, key(ids[0]!)));
      expect(pttl).toBeGreaterThan(layout.retentionMs + TILE_SWEEP_MS - 5000);
      expect(pttl).toBeLessThanOrEqual(layout.retentionMs + TILE_SWEEP_MS);

      // 20 more batches from both writers at once: every event counted once.
      const counted = async () => {
        const tiles = await store.readTiles(layout, ids.map(key), fields);
        let n = 0;
        for (const m of tiles) for (const [field, tile] of m) if (field.startsWith('1000:')) n += tile[0]!;
        return n;
      };
      const before = await counted();
      await Promise.all(Array.from({ length: 20 }, (_, b) => (b % 2 ? other : store).mergeTiles(layout, tileUpdates(layout, events(b % 4)), T)));
      expect((await counted()) - before).toBe(20 * ids.length * 3);
    } finally {
      await other.close();
    }
  });
});
