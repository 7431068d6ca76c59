/**
 * The online stores, both backends through one suite: values round-trip, NOT_FOUND,
 * OUTSIDE_MAX_AGE at the TTL bound, late rows that must not win (also under concurrent writers),
 * record expiry, and the Feast-shaped read path with its input checks. Real Redis, real LMDB.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { asEpochMs } from '../src/core/time.js';
import { InputError } from '../src/core/errors.js';
import { sparse } from '../src/core/value-types.js';
import { entity, featureService, featureView, fileSource } from '../src/definitions/builders.js';
import type { Definitions, Entity, FeatureService, FeatureView } from '../src/definitions/types.js';
import { ViewCodec } from '../src/online/codec.js';
import { encodeEntityKey, type EntityKey } from '../src/online/entity-key.js';
import { openOnlineStore } from '../src/online/open.js';
import { getOnlineFeatures, getOnlineFeaturesJson, NO_TIMESTAMP } from '../src/online/online-features.js';
import { NEVER_EXPIRES_MS, RedisOnlineStore } from '../src/online/redis/store.js';
import { onlineViewSpec, type OnlineRow, type OnlineStore, type OnlineViewSpec } from '../src/online/store.js';
import { redisUrl, uniquePrefix } from './support/services.js';

const HOUR = 3_600_000;

const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
const customer = entity({ name: 'customer', joinKeys: ['customer_id'], valueType: 'string' });
const source = fileSource({ name: 'src', path: 'data/none.parquet', timestampField: 'event_timestamp' });

const everyType = featureView({
  name: 'every_type',
  entities: [driver],
  source,
  ttl: '1d',
  schema: {
    i32: 'int32',
    i64: 'int64',
    f32: 'float32',
    f64: 'float64',
    flag: 'bool',
    text: 'string',
    at: 'timestamp',
    blob: 'bytes',
    v32: 'float32[]',
    v64: 'float64[]',
    words: sparse(10),
  },
});
const stats = featureView({ name: 'driver_stats', entities: [driver], source, ttl: '1h', schema: { conv_rate: 'float64', trips: 'int64' } });
const quick = featureView({ name: 'driver_quick', entities: [driver], source, ttl: '1m', schema: { speed: 'float64' } });
const forever = featureView({ name: 'driver_profile', entities: [driver], source, schema: { rating: 'float32' } });
const shortLived = featureView({ name: 'driver_blip', entities: [driver], source, ttl: 1, schema: { blip: 'int32' } });
const customerView = featureView({ name: 'customer_profile', entities: [customer], source, schema: { tier: 'string' } });
const offlineOnly = featureView({ name: 'offline_only', entities: [driver], source, schema: { x: 'float64' }, online: false });
const windowed = featureView({
  name: 'driver_windows',
  entities: [driver],
  source,
  aggregations: [{ column: 'conv_rate', functions: ['mean'], windows: ['1h'] }],
});

// Typed views widen to the Definitions' maps through unknown (their select() is generic).
const VIEWS = [everyType, stats, quick, forever, shortLived, customerView, offlineOnly, windowed] as unknown as FeatureView[];
const defs: Definitions = {
  entities: new Map<string, Entity>([
    ['driver', driver],
    ['customer', customer],
  ]),
  sources: new Map([['src', source]]),
  views: new Map(VIEWS.map((v) => [v.name, v])),
  services: new Map([['stats_service', featureService({ name: 'stats_service', features: [stats.select('trips')] }) as unknown as FeatureService]]),
  repoDir: '/nonexistent',
};

const key = (id: number | string): EntityKey => encodeEntityKey([{ name: 'driver_id', type: 'int64' }], { driver_id: id });
const row = (id: number, eventMs: number, values: unknown[], createdMs: number | null = null): OnlineRow => ({
  key: key(id),
  eventMs: asEpochMs(eventMs),
  createdMs: createdMs === null ? null : asEpochMs(createdMs),
  values,
});

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
      const prefix = uniquePrefix('online');
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
      const dir = await mkdtemp(join(tmpdir(), 'larder-online-'));
      return {
        name: 'embedded',
        open: () => openOnlineStore(`embedded:${dir}`),
        cleanup: () => rm(dir, { recursive: true, force: true }),
      };
    },
  },
];

describe.each(backends)('online store: $name', ({ make }) => {
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
    for (const s of opened.splice(0)) await s.close();
    await backend.cleanup();
  });

  it('round-trips every value type, nulls included', async () => {
    const spec = onlineViewSpec(everyType);
    const now = Date.now();
    const values = [
      -2147483648,
      2 ** 53 - 1,
      Math.fround(0.1),
      Math.PI,
      true,
      'ünïcødé – {braces} & = %',
      Date.UTC(2024, 0, 2, 3, 4, 5, 678),
      new Uint8Array([0, 1, 2, 255]),
      [Math.fround(1.5), Math.fround(-2.25), 0],
      [0.1, 0.2, 1e300],
      { size: 10, indices: [1, 4, 9], values: [Math.fround(0.5), 2, Math.fround(3.3)] },
    ];
    const nulls = values.map(() => null);
    expect(await store.write(spec, [row(1, now, values, now + 5), row(2, now, nulls)])).toEqual({ written: 2, stale: 0 });
    const read = await store.read([key(1), key(2), key(3)], [spec]);
    const [one, two, none] = read.map((perView) => perView[0]);
    expect(one).toEqual({ eventMs: now, createdMs: now + 5, values: [...values.slice(0, 7), Buffer.from([0, 1, 2, 255]), ...values.slice(8)] });
    expect(two).toEqual({ eventMs: now, createdMs: null, values: nulls });
    expect(none).toBeNull();

    // Through the read path: JSON types of CONTRACT s.5.
    const response = await getOnlineFeatures({ defs, store, features: Object.keys(everyType.schema).map((f) => `every_type:${f}`), entities: { driver_id: [1, '2'] } });
    expect(response.metadata.feature_names).toEqual(['driver_id', ...Object.keys(everyType.schema)]);
    const column = (name: string) => response.results[response.metadata.feature_names.indexOf(name)]!;
    expect(column('driver_id')).toEqual({ values: [1, 2], statuses: ['PRESENT', 'PRESENT'], event_timestamps: [NO_TIMESTAMP, NO_TIMESTAMP] });
    expect(column('i64').values).toEqual([2 ** 53 - 1, null]);
    expect(column('at').values).toEqual(['2024-01-02T03:04:05.678Z', null]);
    expect(column('blob').values).toEqual(['AAEC/w==', null]);
    expect(column('words').values[0]).toEqual({ size: 10, indices: [1, 4, 9], values: [0.5, 2, Math.fround(3.3)] });
    expect(column('f32').statuses).toEqual(['PRESENT', 'PRESENT']);
    expect(column('f32').event_timestamps).toEqual([new Date(now).toISOString(), new Date(now).toISOString()]);
    expect(JSON.parse(JSON.stringify(response))).toEqual(response);
  });

  it('writes the JSON text of the answer byte for byte as JSON.stringify of the answer object', async () => {
    const now = Date.now();
    const values = [7, -(2 ** 53 - 1), NaN, -0, false, 'quote " backslash \\ \u2028 é', now - 1, new Uint8Array([9]), [Infinity, 1], [1e-7, 1e21], { size: 10, indices: [], values: [] }];
    await store.write(onlineViewSpec(everyType), [row(1, now - 2 * HOUR, values), row(2, now, values.map(() => null)), row(3, now - 20 * HOUR, values)]);
    await store.write(onlineViewSpec(stats), [row(1, now, [0.25, 4]), row(3, now - 2 * HOUR, [1, 2])]);
    await store.write(onlineViewSpec(customerView), [{ key: encodeEntityKey(customerView.entities[0]!.joinKeys.map((name) => ({ name, type: 'string' as const })), { customer_id: 'ann' }), eventMs: asEpochMs(now), createdMs: null, values: ['gold'] }]);
    const requests: Omit<Parameters<typeof getOnlineFeatures>[0], 'defs' | 'store'>[] = [
      { features: [...Object.keys(everyType.schema).map((f) => `every_type:${f}`), 'driver_stats:trips', 'customer_profile:tier'], entities: { customer_id: ['ann', 'bob', 'ann', 'ann'], driver_id: [1, 2, 3, '404'] }, now: asEpochMs(now + 5 * HOUR) },
      { service: 'stats_service', entities: { driver_id: [3, 1] }, fullNames: true },
      { features: ['driver_stats:conv_rate'], entities: { driver_id: [] } },
    ];
    for (const request of requests) {
      const text = await getOnlineFeaturesJson({ defs, store, ...request });
      expect(text).toBe(JSON.stringify(await getOnlineFeatures({ defs, store, ...request })));
    }
    const first = JSON.parse(await getOnlineFeaturesJson({ defs, store, ...requests[0]! }));
    expect(first.results[2].values).toEqual([7, null, null, null]);
    expect(first.results[2].statuses).toEqual(['PRESENT', 'PRESENT', 'OUTSIDE_MAX_AGE', 'NOT_FOUND']);
    expect(first.results[4].values).toEqual([null, null, null, null]);
  });

  it('answers NOT_FOUND for entities and views it has nothing for', async () => {
    const now = Date.now();
    await store.write(onlineViewSpec(stats), [row(1, now, [0.5, 3])]);
    const response = await getOnlineFeatures({
      defs,
      store,
      features: ['driver_stats:conv_rate', 'driver_profile:rating'],
      entities: { driver_id: [1, 404] },
    });
    expect(response.results.map((r) => r.statuses)).toEqual([
      ['PRESENT', 'PRESENT'],
      ['PRESENT', 'NOT_FOUND'],
      ['NOT_FOUND', 'NOT_FOUND'],
    ]);
    expect(response.results[1]!.values).toEqual([0.5, null]);
    expect(response.results[2]!.event_timestamps).toEqual([NO_TIMESTAMP, NO_TIMESTAMP]);
  });

  it('is fresh at exactly the TTL and OUTSIDE_MAX_AGE 1 ms past it', async () => {
    const event = Date.now() - 1000;
    await store.write(onlineViewSpec(stats), [row(7, event, [0.25, 9])]);
    const at = async (now: number) =>
      (await getOnlineFeatures({ defs, store, features: ['driver_stats:trips'], entities: { driver_id: [7] }, now: asEpochMs(now) })).results[1]!;
    expect(await at(event + HOUR)).toEqual({ values: [9], statuses: ['PRESENT'], event_timestamps: [new Date(event).toISOString()] });
    expect(await at(event + HOUR + 1)).toEqual({ values: [null], statuses: ['OUTSIDE_MAX_AGE'], event_timestamps: [new Date(event).toISOString()] });
    // A view without TTL is never too old.
    await store.write(onlineViewSpec(forever), [row(7, event, [4.5])]);
    const profile = await getOnlineFeatures({ defs, store, features: ['driver_profile:rating'], entities: { driver_id: [7] }, now: asEpochMs(event + 1000 * HOUR) });
    expect(profile.results[1]!.statuses).toEqual(['PRESENT']);
  });

  it('never lets an older row win; on equal event time the greater created time wins', async () => {
    const spec = onlineViewSpec(stats);
    const t = Date.now();
    expect(await store.write(spec, [row(1, t, [1, 1], t)])).toEqual({ written: 1, stale: 0 });
    expect(await store.write(spec, [row(1, t - 1, [2, 2], t + 1000)])).toEqual({ written: 0, stale: 1 });
    expect(await store.write(spec, [row(1, t, [3, 3], t)])).toEqual({ written: 0, stale: 1 });
    expect(await store.write(spec, [row(1, t, [4, 4], t - 1)])).toEqual({ written: 0, stale: 1 });
    expect((await store.read([key(1)], [spec]))[0]![0]!.values).toEqual([1, 1]);
    expect(await store.write(spec, [row(1, t, [5, 5], t + 1)])).toEqual({ written: 1, stale: 0 });
    expect(await store.write(spec, [row(1, t + 1, [6, 6], null)])).toEqual({ written: 1, stale: 0 });
    expect((await store.read([key(1)], [spec]))[0]![0]!.values).toEqual([6, 6]);
    // Within one batch too: the same entity twice, the later-listed but older row loses.
    expect(await store.write(spec, [row(2, t + 5, [7, 7]), row(2, t + 4, [8, 8])])).toEqual({ written: 1, stale: 1 });
    expect((await store.read([key(2)], [spec]))[0]![0]!.values).toEqual([7, 7]);
  });

  it('keeps the newest row under concurrent writers', async () => {
    const spec = onlineViewSpec(stats);
    const writers = [store, await open(), await open(), await open()];
    const base = Date.now();
    const entities = 50;
    const versions = 20;
    // Every writer writes every version of every entity, each in its own shuffled order, in small batches.
    let seed = 42;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const results = await Promise.all(
      writers.map(async (w) => {
        const rows: OnlineRow[] = [];
        for (let e = 0; e < entities; e++) for (let v = 0; v < versions; v++) rows.push(row(e, base + v, [v, v]));
        rows.sort(() => random() - 0.5);
        let written = 0;
        for (let i = 0; i < rows.length; i += 25) written += (await w.write(spec, rows.slice(i, i + 25))).written;
        return written;
      }),
    );
    const read = await store.read(
      Array.from({ length: entities }, (_, e) => key(e)),
      [spec],
    );
    for (const [value] of read) expect(value).toMatchObject({ eventMs: base + versions - 1, values: [versions - 1, versions - 1] });
    // Each write that landed was newer than what it replaced: at most `versions` per entity.
    expect(results.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(entities * versions);
  });

  it('keeps a record while any of its views is live, and drops it when all have expired', async () => {
    const now = Date.now();
    await store.write(onlineViewSpec(shortLived), [row(1, now, [1]), row(2, now, [2])]);
    await store.write(onlineViewSpec(stats), [row(2, now, [0.5, 5])]);
    await new Promise((r) => setTimeout(r, 1300));
    const [one, two] = (await store.read([key(1), key(2)], [onlineViewSpec(shortLived)])).map((perView) => perView[0]);
    expect(one).toBeNull();
    // Entity 2's record lives on through driver_stats: its old blip is there, but too old to serve.
    expect(two?.values).toEqual([2]);
    const response = await getOnlineFeatures({ defs, store, features: ['driver_blip:blip', 'driver_stats:trips'], entities: { driver_id: [1, 2] } });
    expect(response.results[1]!.statuses).toEqual(['NOT_FOUND', 'OUTSIDE_MAX_AGE']);
    expect(response.results[2]!.statuses).toEqual(['NOT_FOUND', 'PRESENT']);
    // A row already past its TTL when written is never served.
    await store.write(onlineViewSpec(quick), [row(3, now - 2 * 60_000, [1])]);
    expect((await store.read([key(3)], [onlineViewSpec(quick)]))[0]![0]).toBeNull();
  });

  it('reports a stored value past its TTL as OUTSIDE_MAX_AGE, and a record gone by expiry as NOT_FOUND', async () => {
    // Old data, as materializing last year's sample would write it: every row past its TTL by the clock.
    const old = Date.now() - 3 * HOUR;
    // Entity 1: only a view with a 1-minute TTL; its record expires at old + 1 min, already past: gone.
    await store.write(onlineViewSpec(quick), [row(1, old, [1])]);
    // Entity 2: a view without TTL first, so the record lives on; the old quick value is stored but stale.
    await store.write(onlineViewSpec(forever), [row(2, old, [4.5])]);
    await store.write(onlineViewSpec(quick), [row(2, old, [2])]);
    // Entity 3: a view with a 1-hour TTL whose row is 30 minutes old keeps the record for 30 more.
    await store.write(onlineViewSpec(stats), [row(3, Date.now() - HOUR / 2, [0.5, 3])]);
    await store.write(onlineViewSpec(quick), [row(3, old, [3])]);

    const stored = (await store.read([key(1), key(2), key(3)], [onlineViewSpec(quick)])).map(([v]) => v?.values ?? null);
    expect(stored).toEqual([null, [2], [3]]);
    const response = await getOnlineFeatures({ defs, store, features: ['driver_quick:speed', 'driver_profile:rating', 'driver_stats:trips'], entities: { driver_id: [1, 2, 3] } });
    const [speed, rating, trips] = response.results.slice(1);
    expect(speed).toEqual({
      values: [null, null, null],
      statuses: ['NOT_FOUND', 'OUTSIDE_MAX_AGE', 'OUTSIDE_MAX_AGE'],
      event_timestamps: [NO_TIMESTAMP, new Date(old).toISOString(), new Date(old).toISOString()],
    });
    expect(rating!.statuses).toEqual(['NOT_FOUND', 'PRESENT', 'NOT_FOUND']);
    expect(trips!.statuses).toEqual(['NOT_FOUND', 'NOT_FOUND', 'PRESENT']);
  });

  it('treats a value written under another schema as absent, and replaces it', async () => {
    const spec = onlineViewSpec(stats);
    const changed: OnlineViewSpec = { ...spec, features: [{ name: 'conv_rate', type: 'string' }], codec: new ViewCodec([{ name: 'conv_rate', type: 'string' }]) };
    const t = Date.now();
    await store.write(changed, [row(1, t + 10, ['high'])]);
    expect((await store.read([key(1)], [spec]))[0]![0]).toBeNull();
    expect(await store.write(spec, [row(1, t, [0.5, 1])])).toEqual({ written: 1, stale: 0 });
    expect((await store.read([key(1)], [spec]))[0]![0]!.values).toEqual([0.5, 1]);
  });

  it('reads entities of different entity types in one request', async () => {
    const now = Date.now();
    await store.write(onlineViewSpec(stats), [row(10, now, [0.1, 1])]);
    await store.write(onlineViewSpec(customerView), [
      { key: encodeEntityKey([{ name: 'customer_id', type: 'string' }], { customer_id: 'c{1}&=' }), eventMs: asEpochMs(now), createdMs: null, values: ['gold'] },
    ]);
    const response = await getOnlineFeatures({
      defs,
      store,
      features: ['customer_profile:tier', 'driver_stats:trips'],
      entities: { customer_id: ['c{1}&=', 'c2'], driver_id: ['10', 11] },
      fullNames: true,
    });
    expect(response.metadata.feature_names).toEqual(['customer_id', 'driver_id', 'customer_profile__tier', 'driver_stats__trips']);
    expect(response.results.map((r) => r.values)).toEqual([
      ['c{1}&=', 'c2'],
      [10, 11],
      ['gold', null],
      [1, null],
    ]);
  });

  it('rejects bad requests with one line naming the field', async () => {
    const ask = (entities: Record<string, unknown[]>, features = ['driver_stats:trips']) => getOnlineFeatures({ defs, store, features, entities });
    await expect(ask({ driver_id: [1, 2, 3, 'abc'] })).rejects.toThrow(new InputError('entities.driver_id[3]: expected int64, got "abc"'));
    await expect(ask({ driver_id: [1.5] })).rejects.toThrow('entities.driver_id[0]: expected int64, got 1.5');
    await expect(ask({ driver_id: [2 ** 60] })).rejects.toThrow(/entities\.driver_id\[0\]: expected int64/);
    await expect(ask({})).rejects.toThrow("entities.driver_id: missing; feature view 'driver_stats' needs join key 'driver_id'");
    await expect(ask({ driver_id: [1], rider_id: [1] })).rejects.toThrow('entities.rider_id: not a join key of the requested features (they need driver_id)');
    await expect(ask({ driver_id: [1], customer_id: ['a', 'b'] }, ['driver_stats:trips', 'customer_profile:tier'])).rejects.toThrow(
      'entities.customer_id: 2 values, but entities.driver_id has 1',
    );
    await expect(ask({ customer_id: [7] }, ['customer_profile:tier'])).rejects.toThrow('entities.customer_id[0]: expected string, got 7');
    // An aggregation view without any event: a count would be 0, a mean null.
    expect((await ask({ driver_id: [1] }, ['driver_windows:conv_rate_mean_1h'])).results[1]).toEqual({ values: [null], statuses: ['PRESENT'], event_timestamps: [NO_TIMESTAMP] });
    await expect(ask({ driver_id: [1] }, ['offline_only:x'])).rejects.toThrow("feature view 'offline_only' is not online (online: false)");
    await expect(ask({ driver_id: [1] }, ['driver_stats:nope'])).rejects.toThrow(/feature view 'driver_stats' has no feature 'nope'/);
    // A service resolves like a list of features; an empty request answers an empty result.
    const viaService = await getOnlineFeatures({ defs, store, service: 'stats_service', entities: { driver_id: [] } });
    expect(viaService).toEqual({ metadata: { feature_names: ['driver_id', 'trips'] }, results: [{ values: [], statuses: [], event_timestamps: [] }, { values: [], statuses: [], event_timestamps: [] }] });
  });
});

describe('entity keys', () => {
  it('map every spelling of an id to one key', () => {
    const k = [{ name: 'driver_id', type: 'int64' as const }];
    expect(new Set([1001, '1001', 1001n, ' 1001', '+1001', '01001'].map((v) => encodeEntityKey(k, { driver_id: v })))).toEqual(new Set(['driver_id=1001']));
    expect(encodeEntityKey(k, { driver_id: '9223372036854775807' })).toBe('driver_id=9223372036854775807');
    expect(() => encodeEntityKey(k, { driver_id: '9223372036854775808' })).toThrow('driver_id: expected int64, got "9223372036854775808"');
    expect(() => encodeEntityKey([{ name: 'n', type: 'int32' }], { n: 2 ** 31 })).toThrow('n: expected int32, got 2147483648');
    // Keys sort by name, whatever the order of the entities in a view.
    const two = [
      { name: 'driver_id', type: 'int64' as const },
      { name: 'customer_id', type: 'string' as const },
    ];
    expect(encodeEntityKey(two, { driver_id: -0, customer_id: 'a&b=c{d}%' })).toBe('customer_id=a%26b%3Dc%7Bd%7D%25&driver_id=0');
  });
});

describe('redis record expiry', () => {
  const prefix = uniquePrefix('expiry');
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

  it('expires a record at its latest event time + TTL, never sooner, and never once a TTL-0 view was written to it', async () => {
    const now = Date.now();
    const redisKey = store.keyOf(key(1));
    await store.write(onlineViewSpec(stats), [row(1, now, [0.1, 1])]);
    const first = await admin.pttl(redisKey);
    expect(first).toBeGreaterThan(HOUR - 60_000);
    expect(first).toBeLessThanOrEqual(HOUR);
    // A view with a shorter TTL does not bring the expiry closer.
    await store.write(onlineViewSpec(quick), [row(1, now, [3])]);
    expect(await admin.pttl(redisKey)).toBeGreaterThan(HOUR - 60_000);
    // A newer row pushes it out.
    await store.write(onlineViewSpec(stats), [row(1, now + HOUR, [0.2, 2])]);
    expect(await admin.pttl(redisKey)).toBeGreaterThan(2 * HOUR - 60_000);
    // A view without TTL makes the record persistent (its expiry moves to 9999); later writes
    // do not bring it back.
    const expiresAt = async (k: string) => Number(await admin.call('PEXPIRETIME', k));
    await store.write(onlineViewSpec(forever), [row(1, now, [4.5])]);
    expect(await expiresAt(redisKey)).toBe(NEVER_EXPIRES_MS);
    await store.write(onlineViewSpec(stats), [row(1, now + 2 * HOUR, [0.3, 3])]);
    await store.write(onlineViewSpec(quick), [row(2, now, [3])]);
    expect(await expiresAt(redisKey)).toBe(NEVER_EXPIRES_MS);
    expect(await expiresAt(store.keyOf(key(2)))).toBe(now + 60_000);
    // A record that is new to the write gets the TTL-0 expiry at once too.
    await store.write(onlineViewSpec(forever), [row(3, now, [1.5])]);
    expect(await expiresAt(store.keyOf(key(3)))).toBe(NEVER_EXPIRES_MS);
    // The record is one hash, one field per view, values binary (not JSON).
    expect((await admin.hkeys(redisKey)).sort()).toEqual(['driver_profile', 'driver_quick', 'driver_stats']);
    expect(redisKey).toBe(`${prefix}{driver_id=1}`);
  });

  it('compares and sets the expiry on every path of a batch mixing new, newer and older rows', async () => {
    // The script picks its first command from the previous row (new: HSETNX, present: HGET);
    // this batch takes each path after each other one.
    const spec = onlineViewSpec(stats);
    const t = Date.now();
    await store.write(spec, [row(1, t, [1, 1]), row(2, t, [2, 2])]);
    const batch = [
      row(1, t + 1, [1, 11]), // present, newer
      row(3, t, [3, 3]), // new after a present row
      row(2, t - 1, [2, 22]), // present, older
      row(4, t + 2, [4, 4]), // new after an older row
      row(5, t + 3, [5, 5]), // new after a new row
      row(1, t, [1, 111]), // present, older than the first row of this batch
      row(6, t, [6, 6], 5), // new after an older row, with a created time
      row(6, t, [6, 66], 6), // present, same event time, later created: wins
    ];
    expect(await store.write(spec, batch)).toEqual({ written: 6, stale: 2 });
    const read = await store.read([1, 2, 3, 4, 5, 6].map(key), [spec]);
    expect(read.map(([v]) => v?.values[1])).toEqual([11, 2, 3, 4, 5, 66]);
    const expiries = await Promise.all([1, 2, 3, 4, 5, 6].map(async (id) => Number(await admin.call('PEXPIRETIME', store.keyOf(key(id))))));
    expect(expiries).toEqual([t + 1, t, t, t + 2, t + 3, t].map((e) => e + HOUR));
  });

  it('deletes a new record whose expiry has already passed, and never shortens an existing one', async () => {
    const now = Date.now();
    const old = now - 3 * HOUR;
    await store.write(onlineViewSpec(quick), [row(1, old, [1])]);
    expect(await admin.exists(store.keyOf(key(1)))).toBe(0);
    await store.write(onlineViewSpec(stats), [row(2, now, [0.5, 2])]);
    expect(await store.write(onlineViewSpec(quick), [row(2, old, [2])])).toEqual({ written: 1, stale: 0 });
    expect(Number(await admin.call('PEXPIRETIME', store.keyOf(key(2))))).toBe(now + HOUR);
    expect((await admin.hkeys(store.keyOf(key(2)))).sort()).toEqual(['driver_quick', 'driver_stats']);
  });

  it('reads N entities in one round trip', async () => {
    const spec = onlineViewSpec(stats);
    const now = Date.now();
    await store.write(
      spec,
      Array.from({ length: 100 }, (_, i) => row(i, now, [i / 100, i])),
    );
    const socket = (store.connection.client as Redis).stream;
    const write = socket.write.bind(socket);
    let writes = 0;
    socket.write = ((...args: Parameters<typeof socket.write>) => {
      writes++;
      return write(...args);
    }) as typeof socket.write;
    try {
      const read = await store.read(
        Array.from({ length: 100 }, (_, i) => key(i)),
        [spec],
      );
      expect(read.map(([v]) => v?.values[1])).toEqual(Array.from({ length: 100 }, (_, i) => i));
    } finally {
      socket.write = write;
    }
    expect(writes).toBe(1);
  });

  it('fails fast with OnlineStoreUnavailableError when Redis does not answer', async () => {
    const down = await openOnlineStore('redis://127.0.0.1:1', { prefix, commandTimeoutMs: 300 });
    const started = Date.now();
    await expect(down.read([key(1)], [onlineViewSpec(stats)])).rejects.toMatchObject({ name: 'OnlineStoreUnavailableError' });
    await expect(down.ping()).rejects.toMatchObject({ name: 'OnlineStoreUnavailableError' });
    expect(Date.now() - started).toBeLessThan(5000);
    await down.close();
  });
});

