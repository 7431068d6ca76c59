/**
 * Streaming-aggregation tiles in both online stores (OnlineStore.mergeTiles / readTiles): a
 * merge in the store gives the very doubles of mergePartial in TypeScript, concurrent writers
 * lose no event, tiles out of every window are deleted as writers pass by, records expire after
 * the retention, and reads are one round trip. Real Redis, real LMDB.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { entity, featureView, pushSource } from '../src/definitions/builders.js';
import type { FeatureView } from '../src/definitions/types.js';
import { encodeEntityKey, type EntityKey } from '../src/online/entity-key.js';
import { openOnlineStore } from '../src/online/open.js';
import { RedisOnlineStore } from '../src/online/redis/store.js';
import { TILE_SWEEP_MS, tileCutoffs, type OnlineStore } from '../src/online/store.js';
import { mergeTile, PARTIAL_SLOTS } from '../src/streaming/partial.js';
import { tileLayout, tilesToRead, tileUpdates, valuesAt, type TileEvent, type TileUpdates } from '../src/streaming/tiles.js';
import { redisUrl, uniquePrefix } from './support/services.js';
import { mergeInto } from './support/tiles.js';

const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
const signals = pushSource({ name: 'signals', schema: { amplitude: 'float64', speed: 'float32' }, timestampField: 'event_timestamp' });
// Two tile sizes: 1 s tiles hold two columns (amplitude, speed), 10 s tiles one (amplitude).
const signalView = featureView({
  name: 'driver_signal',
  entities: [driver],
  source: signals,
  aggregations: [
    { column: 'amplitude', functions: ['mean', 'stddev', 'min', 'max', 'count', 'last'], windows: ['1m', '10m'] },
    { column: 'speed', functions: ['sum'], windows: ['1m'] },
  ],
});
// A long lateness: thousands of live 1 s tiles per entity, more than one script call takes per key.
const longView = featureView({
  name: 'driver_long',
  entities: [driver],
  source: signals,
  aggregations: [{ column: 'amplitude', functions: ['sum', 'count'], windows: ['1m'] }],
  allowedLateness: '2h',
});
// Typed views widen to FeatureView through unknown (their select() is generic).
const layout = tileLayout(signalView as unknown as FeatureView);
const longLayout = tileLayout(longView as unknown as FeatureView);

/** A fixed clock for the tiles (the stores' expiry runs on their own clocks). */
const T = 1_750_000_000_000;

const key = (id: number): EntityKey => encodeEntityKey([{ name: 'driver_id', type: 'int64' }], { driver_id: id });

/** A seeded generator (mulberry32): the same events on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}


const hex = (tile: Float64Array): string => Buffer.from(tile.buffer, tile.byteOffset, tile.byteLength).toString('hex');
const asHex = (tiles: ReadonlyMap<string, Float64Array>): Record<string, string> => Object.fromEntries([...tiles].map(([f, t]) => [f, hex(t)]).sort(([a], [b]) => (a! < b! ? -1 : 1)));
const fieldsOf = (reference: Map<EntityKey, Map<string, Float64Array>>): string[] => [...new Set([...reference.values()].flatMap((m) => [...m.keys()]))];

/** The fields of a tile size whose index is below `index`. */
const olderThan = (fields: Iterable<string>, tileMs: number, index: number): string[] =>
  [...fields].filter((f) => f.startsWith(`${tileMs}:`) && Number(f.slice(f.indexOf(':') + 1)) < index);

async function deletePrefix(client: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await client.unlink(...keys);
  } while (cursor !== '0');
}

interface Backend {
  name: string;
  /** Opens one more store on the same data (another connection or environment handle). */
  open(): Promise<OnlineStore>;
  cleanup(): Promise<void>;
}

const backends: { name: string; make(): Promise<Backend> }[] = [
  {
    name: 'redis',
    async make() {
      const prefix = uniquePrefix('tiles');
      return {
        name: 'redis',
        open: () => openOnlineStore(redisUrl(), { prefix }),
        async cleanup() {
          const admin = new Redis(redisUrl());
          await deletePrefix(admin, prefix);
          admin.disconnect();
        },
      };
    },
  },
  {
    name: 'embedded',
    async make() {
      const dir = await mkdtemp(join(tmpdir(), 'larder-tiles-'));
      return {
        name: 'embedded',
        open: () => openOnlineStore(`embedded:${dir}`, { prefix: 'p:' }),
        cleanup: () => rm(dir, { recursive: true, force: true }),
      };
    },
  },
];

describe.each(backends)('tile store: $name', ({ make }) => {
  let backend: Backend;
  let store: OnlineStore;
  const opened: OnlineStore[] = [];
  const open = async (): Promise<OnlineStore> => {
    const s = await backend.open();
    opened.push(s);
    return s;
  };

  beforeEach(async () => {
    backend = await make();
    store = await open();
  });
  afterEach(async () => {
    vi.useRealTimers();
    for (const s of opened.splice(0)) await s.close();
    await backend.cleanup();
  });

  it('merges batches into the very doubles mergePartial gives, and reads them back', async () => {
    const next = random(1);
    const reference = new Map<EntityKey, Map<string, Float64Array>>();
    const ids = Array.from({ length: 20 }, (_, i) => i + 1);
    for (let batch = 0; batch < 6; batch++) {
      // Event times on a 100 ms grid and created times from a few values: equal (event, created)
      // pairs across batches, where the batch's last value must win.
      const events: TileEvent[] = Array.from({ length: 300 }, () => {
        const eventMs = T - Math.floor(next() * 2700) * 100;
        return {
          key: key(ids[Math.floor(next() * (batch === 5 ? 3 : ids.length))]!),
          eventMs,
          createdMs: eventMs + Math.floor(next() * 3),
          values: [next() < 0.1 ? null : (next() - 0.3) * 1e3 * next(), next() < 0.2 ? null : next() * 50],
        };
      });
      const updates = tileUpdates(layout, events);
      mergeInto(reference, updates);
      await store.mergeTiles(layout, updates, T);
    }

    const fields = [...fieldsOf(reference), `1000:${T / 1000 + 7}`, `10000:${T / 10_000 - 80}`];
    const keys = [...ids.map(key), key(999)];
    const read = await store.readTiles(layout, keys, fields);
    expect(read.map(asHex)).toEqual(keys.map((k) => asHex(reference.get(k) ?? new Map())));
    // The feature values a read computes from them too.
    const fresh = await store.readTiles(layout, keys, tilesToRead(layout, T));
    expect(fresh.map((tiles) => valuesAt(layout, tiles, T))).toEqual(keys.map((k) => valuesAt(layout, reference.get(k) ?? new Map(), T)));
  });

  it('merges an entity with more tiles than one script call takes', async () => {
    const next = random(2);
    const reference = new Map<EntityKey, Map<string, Float64Array>>();
    const cutoff = tileCutoffs(longLayout, T)[0]!;
    for (let batch = 0; batch < 2; batch++) {
      const events: TileEvent[] = [];
      // Entity 1: one event in each of 2500 seconds; 30 others: a few events each.
      for (let s = 0; s < 2500; s++) events.push({ key: key(1), eventMs: T - s * 1000 + batch * 7, createdMs: T, values: [next() * 100] });
      for (let id = 2; id <= 31; id++) for (let e = 0; e < 5; e++) events.push({ key: key(id), eventMs: T - Math.floor(next() * 3_600_000), createdMs: T, values: [next()] });
      const updates = tileUpdates(longLayout, events);
      mergeInto(reference, updates);
      await store.mergeTiles(longLayout, updates, T);
    }
    expect(reference.get(key(1))!.size).toBe(2500);
    expect(Math.min(...fieldsOf(reference).map((f) => Number(f.split(':')[1])))).toBeGreaterThanOrEqual(cutoff);
    const keys = Array.from({ length: 31 }, (_, i) => key(i + 1));
    const read = await store.readTiles(longLayout, keys, fieldsOf(reference));
    expect(read.map(asHex)).toEqual(keys.map((k) => asHex(reference.get(k)!)));
  });

  it('loses no event under two concurrent writers merging overlapping batches', async () => {
    const other = await open();
    const next = random(3);
    // Integer values and distinct (event, created) pairs: counts, sums, min, max and last do not
    // depend on the order the merges happen in; mean and m2 do, in their last bits.
    const events: TileEvent[] = Array.from({ length: 1500 }, (_, i) => ({
      key: key(1 + (i % 3)),
      eventMs: T - Math.floor(next() * 40_000),
      createdMs: T + i,
      values: [i % 17 === 0 ? null : 1 + Math.floor(next() * 1000), Math.floor(next() * 10)],
    }));
    const batches: TileEvent[][] = [];
    for (let i = 0; i < events.length; i += 10) batches.push(events.slice(i, i + 10));
    await Promise.all(batches.map((batch, i) => (i % 2 ? other : store).mergeTiles(layout, tileUpdates(layout, batch), T)));

    const reference = new Map<EntityKey, Map<string, Float64Array>>();
    mergeInto(reference, tileUpdates(layout, events));
    const keys = [1, 2, 3].map(key);
    const read = await store.readTiles(layout, keys, fieldsOf(reference));
    const amplitudes = events.filter((e) => e.values[0] !== null).length;
    // Every event counted once in each tile size (amplitude is the first column of both).
    for (const { tileMs } of layout.sizes) {
      let count = 0;
      for (const tiles of read) for (const [field, tile] of tiles) if (field.startsWith(`${tileMs}:`)) count += tile[0]!;
      expect(count, `events counted in ${tileMs} ms tiles`).toBe(amplitudes);
    }
    keys.forEach((k, i) => {
      const expected = reference.get(k)!;
      expect([...read[i]!.keys()].sort()).toEqual([...expected.keys()].sort());
      for (const [field, want] of expected) {
        const got = read[i]!.get(field)!;
        for (let at = 0; at < want.length; at += PARTIAL_SLOTS) {
          const exact = [0, 1, 4, 5, 6, 7, 8].map((s) => got[at + s]);
          expect(exact, `${field} column ${at / PARTIAL_SLOTS}`).toEqual([0, 1, 4, 5, 6, 7, 8].map((s) => want[at + s]));
          for (const s of [2, 3]) expect(Math.abs(got[at + s]! - want[at + s]!)).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(want[at + s]!)));
        }
      }
    });
  });

  it('deletes the tiles that fell out of every window as later writes pass by, and never brings them back', async () => {
    const [small, large] = layout.sizes;
    const amplitudeAt = (ms: number, id = 1): TileEvent => ({ key: key(id), eventMs: ms, createdMs: ms, values: [ms % 1000, 1] });
    // One event per second over the last 5 minutes: 301 one-second tiles, 31 ten-second ones.
    const first = tileUpdates(layout, Array.from({ length: 301 }, (_, s) => amplitudeAt(T - s * 1000)));
    await store.mergeTiles(layout, first, T);
    const written = [...first.get(key(1))!.keys()];
    expect(written).toHaveLength(332);
    const present = async (): Promise<string[]> => [...(await store.readTiles(layout, [key(1)], written))[0]!.keys()].sort();
    expect(await present()).toEqual([...written].sort());

    // Later writes, each after the one before: 100 s on (over 64 one-second tiles expired: the
    // Redis script looks at the fields), 30 s (it names the expired tiles), 1 s, then 569 s and
    // 50 s, where ten-second tiles expire too.
    const expected = new Set(written);
    const times = [100, 130, 131, 700, 750].map((s) => T + s * 1000);
    for (const now of times) {
      const update = tileUpdates(layout, [amplitudeAt(now)]);
      await store.mergeTiles(layout, update, now);
      const [cutSmall, cutLarge] = tileCutoffs(layout, now);
      for (const f of [...olderThan(expected, small!.tileMs, cutSmall!), ...olderThan(expected, large!.tileMs, cutLarge!)]) expected.delete(f);
      for (const f of update.get(key(1))!.keys()) expected.add(f);
      const fields = [...new Set([...written, ...expected])];
      const now_ = [...(await store.readTiles(layout, [key(1)], fields))[0]!.keys()].sort();
      expect(now_, `after a write at T + ${(now - T) / 1000} s`).toEqual([...expected].sort());
      expect(olderThan(now_, small!.tileMs, cutSmall!)).toEqual([]);
      expect(olderThan(now_, large!.tileMs, cutLarge!)).toEqual([]);
    }
    expect(olderThan(written, large!.tileMs, tileCutoffs(layout, times.at(-1)!)[1]!).length).toBeGreaterThan(0);

    // A writer whose clock is behind (T) gives tiles still inside its own cutoffs but below the
    // later writers': they are not written, so deleted tiles do not come back.
    const behind = tileUpdates(layout, [amplitudeAt(T - 250_000)]).get(key(1))!;
    for (const [field] of behind) {
      const index = Number(field.split(':')[1]);
      const size = layout.sizes.findIndex((s) => field.startsWith(`${s.tileMs}:`));
      expect(index).toBeGreaterThanOrEqual(tileCutoffs(layout, T)[size]!);
      expect(index).toBeLessThan(tileCutoffs(layout, times.at(-1)!)[size]!);
    }
    await store.mergeTiles(layout, new Map([[key(1), behind]]), T);
    expect((await store.readTiles(layout, [key(1)], [...behind.keys()]))[0]!.size).toBe(0);
    // A batch wholly below the writer's own cutoffs writes nothing, not even a record.
    const old = tileUpdates(layout, [amplitudeAt(T - 1_000_000, 2)]);
    await store.mergeTiles(layout, old, T);
    expect((await store.readTiles(layout, [key(2)], [...old.get(key(2))!.keys()]))[0]!.size).toBe(0);
  });

  it('reads missing records and fields as empty maps, and rejects fields not of the layout', async () => {
    expect(await store.readTiles(layout, [], ['1000:1'])).toEqual([]);
    expect(await store.readTiles(layout, [key(1), key(2)], [])).toEqual([new Map(), new Map()]);
    expect(await store.readTiles(layout, [key(1), key(2), key(3)], [`1000:${T / 1000}`])).toEqual([new Map(), new Map(), new Map()]);
    const updates = tileUpdates(layout, [{ key: key(1), eventMs: T, createdMs: T, values: [1, 2] }]);
    await store.mergeTiles(layout, updates, T);
    const read = await store.readTiles(layout, [key(2), key(1)], [`1000:${T / 1000 - 1}`, `1000:${T / 1000}`]);
    expect(read[0]!.size).toBe(0);
    expect([...read[1]!.keys()]).toEqual([`1000:${T / 1000}`]);
    // The same entity's tiles under another view (another layout) are another record.
    expect((await store.readTiles(longLayout, [key(1)], [`1000:${T / 1000}`]))[0]!.size).toBe(0);

    const bad = (field: string, tile: Float64Array): TileUpdates => new Map([[key(5), new Map([[`1000:${T / 1000}`, updates.get(key(1))!.get(`1000:${T / 1000}`)!], [field, tile]])]]);
    const one = updates.get(key(1))!.get(`1000:${T / 1000}`)!;
    await expect(store.mergeTiles(layout, bad(`5000:${T / 5000}`, one), T)).rejects.toThrow(/not a tile field/);
    await expect(store.mergeTiles(layout, bad(`1000:x`, one), T)).rejects.toThrow(/not a tile field/);
    await expect(store.mergeTiles(layout, bad(`10000:${T / 10_000}`, one), T)).rejects.toThrow(/has 18 values, expected 9/);
    // Nothing of a rejected batch was written.
    expect((await store.readTiles(layout, [key(5)], [`1000:${T / 1000}`]))[0]!.size).toBe(0);
  });

  it('drops a record once its retention has passed since its last write', async () => {
    const updates = tileUpdates(layout, [{ key: key(1), eventMs: T, createdMs: T, values: [1, 2] }]);
    await store.mergeTiles(layout, updates, T);
    const field = `1000:${T / 1000}`;
    if (store instanceof RedisOnlineStore) {
      const admin = new Redis(redisUrl());
      try {
        const tileKey = store.tileKeyOf(layout, key(1));
        // The hash tag of the entity's value record: the same slot.
        expect(tileKey).toBe(`${store.prefix}{driver_id=1}:tiles:driver_signal:${layout.fingerprint}`);
        const ttl = await admin.pttl(tileKey);
        // The retention, plus the longest time to the next sweep (which refreshes it).
        expect(ttl).toBeGreaterThan(layout.retentionMs + TILE_SWEEP_MS - 5000);
        expect(ttl).toBeLessThanOrEqual(layout.retentionMs + TILE_SWEEP_MS);
        await admin.pexpire(tileKey, 100_000);
        // A write before the next sweep only merges; the one at the sweep pushes the expiry back.
        await store.mergeTiles(layout, tileUpdates(layout, [{ key: key(1), eventMs: T + 1, createdMs: T, values: [3, 4] }]), T);
        expect(await admin.pttl(tileKey)).toBeLessThanOrEqual(100_000);
        await store.mergeTiles(layout, tileUpdates(layout, [{ key: key(1), eventMs: T + 2, createdMs: T, values: [3, 4] }]), T + TILE_SWEEP_MS);
        expect(await admin.pttl(tileKey)).toBeGreaterThan(layout.retentionMs + TILE_SWEEP_MS - 5000);
        expect((await admin.hkeys(tileKey)).sort()).toEqual([field, `10000:${T / 10_000}`, 'swept', 'v'].sort());
        await admin.pexpire(tileKey, 1);
      } finally {
        admin.disconnect();
      }
      await new Promise((r) => setTimeout(r, 20));
    } else {
      // The embedded store judges expiry by its clock.
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(Date.now() + layout.retentionMs - 1000);
      expect((await store.readTiles(layout, [key(1)], [field]))[0]!.size).toBe(1);
      vi.setSystemTime(Date.now() + 2000);
    }
    expect((await store.readTiles(layout, [key(1)], [field]))[0]!.size).toBe(0);
    // A write to a gone record starts afresh.
    await store.mergeTiles(layout, updates, T);
    const [tiles] = await store.readTiles(layout, [key(1)], [...updates.get(key(1))!.keys()]);
    expect(asHex(tiles!)).toEqual(asHex(updates.get(key(1))!));
  });
});

describe('redis tile store on the wire', () => {
  const prefix = uniquePrefix('tiles-wire');
  let store: RedisOnlineStore;
  let admin: Redis;
  beforeEach(async () => {
    store = (await openOnlineStore(redisUrl(), { prefix })) as RedisOnlineStore;
    admin = new Redis(redisUrl());
  });
  afterEach(async () => {
    await store.close();
    await deletePrefix(admin, prefix);
    admin.disconnect();
  });

  /** Counts the client's socket writes while `work` runs. */
  async function socketWrites(work: () => Promise<unknown>): Promise<number> {
    const socket = (store.connection.client as Redis).stream;
    const write = socket.write.bind(socket);
    let writes = 0;
    socket.write = ((...args: Parameters<typeof socket.write>) => {
      writes++;
      return write(...args);
    }) as typeof socket.write;
    try {
      await work();
    } finally {
      socket.write = write;
    }
    return writes;
  }

  it('reads N entities in one round trip; merges them with a read and a write script call per 500 keys, then without the read', async () => {
    const events: TileEvent[] = Array.from({ length: 1200 }, (_, i) => ({ key: key(i), eventMs: T - (i % 50) * 1000, createdMs: T, values: [i, i] }));
    const updates = tileUpdates(layout, events);
    // Once first, so that Redis has the script cached (a first call may be sent twice: EVALSHA, then EVAL).
    await store.mergeTiles(layout, tileUpdates(layout, [{ key: key(5000), eventMs: T, createdMs: T, values: [1, 1] }]), T);
    // 1200 keys of 2 tiles each: 3 read script calls, then 3 compare-and-set script calls (500
    // keys each at most).
    expect(await socketWrites(() => store.mergeTiles(layout, updates, T))).toBe(6);
    const keys = events.map((e) => e.key);
    const fields = [...new Set([...updates.values()].flatMap((m) => [...m.keys()]))];
    let read: Map<string, Float64Array>[] = [];
    expect(await socketWrites(async () => (read = await store.readTiles(layout, keys, fields)))).toBe(1);
    expect(read.map(asHex)).toEqual(keys.map((k) => asHex(updates.get(k)!)));

    // The store now knows those records: merging into them again reads nothing back.
    expect(await socketWrites(() => store.mergeTiles(layout, updates, T))).toBe(3);
    // Another writer (its own connection, knowing nothing) changes one record: the next merge's
    // compare-and-set notices, reads it again, and loses neither writer's events.
    const other = await openOnlineStore(redisUrl(), { prefix: (store as RedisOnlineStore).prefix });
    try {
      await other.mergeTiles(layout, tileUpdates(layout, [events[7]!]), T);
      await store.mergeTiles(layout, tileUpdates(layout, [events[7]!]), T);
    } finally {
      await other.close();
    }
    const expected = new Map<string, Float64Array>();
    for (const [field, tile] of updates.get(events[7]!.key)!) {
      const merged = Float64Array.from(tile);
      for (let n = 0; n < 3; n++) mergeTile(merged, tile);
      expected.set(field, merged);
    }
    const [seventh] = await store.readTiles(layout, [events[7]!.key], [...expected.keys()]);
    expect([...seventh!.values()].map((t) => t[0])).toEqual([...expected.values()].map((t) => t[0]));
    expect([...seventh!.values()].map((t) => t[0])).toEqual([4, 4]);
  });

  it('rejects with OnlineStoreUnavailableError when Redis does not answer', async () => {
    const down = await openOnlineStore('redis://127.0.0.1:1', { prefix, commandTimeoutMs: 300 });
    try {
      await expect(down.readTiles(layout, [key(1)], ['1000:1'])).rejects.toMatchObject({ name: 'OnlineStoreUnavailableError' });
      await expect(down.mergeTiles(layout, tileUpdates(layout, [{ key: key(1), eventMs: T, createdMs: T, values: [1, 1] }]), T)).rejects.toMatchObject({
        name: 'OnlineStoreUnavailableError',
      });
    } finally {
      await down.close();
    }
  });
});
