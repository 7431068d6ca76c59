/**
 * Materialization end to end, on both online stores: a temp definitions repo with data written by
 * DuckDB, `backfill`, then `materialize`. Online values of a random sample of entities equal the
 * point-in-time dataset at the materialization end; a second run loads only rows after the
 * watermark; an older window re-run changes nothing; aggregation views are skipped with a note;
 * and a reader in another process never sees a torn value while a materialize writes.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { asEpochMs, type EpochMs } from '../src/core/time.js';
import { loadDefinitions } from '../src/definitions/loader.js';
import type { Definitions } from '../src/definitions/types.js';
import { materialize } from '../src/materialize/materialize.js';
import { getWatermark } from '../src/materialize/watermarks.js';
import { backfill } from '../src/offline/backfill.js';
import { getHistoricalFeatures } from '../src/offline/dataset.js';
import { openDuckDB } from '../src/offline/duckdb.js';
import { listPartitions } from '../src/offline/layout.js';
import { openOnlineStore } from '../src/online/open.js';
import { getOnlineFeatures, getOnlineFeaturesJson } from '../src/online/online-features.js';
import type { OnlineStore } from '../src/online/store.js';
import { FileRegistry } from '../src/registry/file.js';
import type { Registry } from '../src/registry/registry.js';
import { redisUrl, uniquePrefix } from './support/services.js';
import { offlineJson } from '../src/verify/skew.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SECOND = 1000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

// The materialization end: a little before the clock (reads judge record expiry by the clock),
// off whole seconds so no event (all at whole seconds) sits exactly on it.
const END = asEpochMs(Math.floor((Date.now() - 2 * 60_000) / 60_000) * 60_000 + 123);
const FIRST_END = asEpochMs(END - 2 * DAY);
const VERSION_TIME = [0, END - 10 * HOUR, END - 5 * HOUR];
const VERSION_ENTITIES = 20_000;

let seed = 7;
const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;

interface StatsRow {
  driver_id: number;
  event: number;
  created: number;
  conv_rate: number;
  trips: number;
}

/**
 * Event times at whole seconds in [END - 3d, END + 1h), 10 minutes away from the TTL edges END - 1d
 * and END - 2d: a value fresh at END but past its TTL by the clock (minutes later) has expired
 * online, while the dataset at END still has it.
 */
function eventTime(): number {
  for (;;) {
    const t = Math.floor((END - 3 * DAY + random() * (3 * DAY + HOUR)) / SECOND) * SECOND;
    if (Math.abs(t - (END - DAY)) > 10 * 60_000 && Math.abs(t - (END - 2 * DAY)) > 10 * 60_000) return t;
  }
}

const drivers = Array.from({ length: 300 }, (_, i) => 1000 + i);
const customers = [...Array.from({ length: 60 }, (_, i) => `c-${i}`), 'c{7}', 'a&b=c%', 'ünï', ''];
const statsRows: StatsRow[] = [];
for (const d of drivers) {
  const n = 1 + Math.floor(random() * 6);
  for (let i = 0; i < n; i++) {
    const event = eventTime();
    statsRows.push({ driver_id: d, event, created: event + Math.floor(random() * 100) * SECOND, conv_rate: Math.round(random() * 1e6) / 1e6, trips: Math.floor(random() * 500) });
    // Now and then a correction at the same event time, created later.
    if (random() < 0.2) statsRows.push({ driver_id: d, event, created: event + 200 * SECOND, conv_rate: 0.5, trips: 999 });
  }
}
const customerRows = customers.flatMap((c) => Array.from({ length: 1 + Math.floor(random() * 3) }, () => ({ customer_id: c, event: eventTime(), score: Math.round(random() * 100) / 4 })));
/**
 * Rows on the bounds of two runs, (beginning, FIRST_END] then (FIRST_END, END], for view `edges`
 * (TTL 7 days): exactly on FIRST_END, exactly on END, 1 ms after each, and exactly on (and 1 ms
 * before) FIRST_END - 7d, the oldest row still fresh at FIRST_END.
 */
const EDGE_TTL = 7 * DAY;
const edgeRows = [
  { driver_id: 1, event: FIRST_END, v: 11 },
  { driver_id: 2, event: FIRST_END, v: 21 },
  { driver_id: 2, event: END, v: 22 },
  { driver_id: 3, event: END + 1, v: 31 },
  { driver_id: 4, event: FIRST_END - EDGE_TTL, v: 41 },
  { driver_id: 5, event: FIRST_END - EDGE_TTL - 1, v: 51 },
  { driver_id: 6, event: FIRST_END, v: 61 },
  { driver_id: 6, event: FIRST_END + 1, v: 62 },
];
const pairRows = Array.from({ length: 200 }, () => ({ driver_id: pick(drivers), customer_id: pick(customers), event: eventTime(), rides: Math.floor(random() * 40) }));

const DEFINITIONS = `import { entity, featureView, fileSource, sparse } from 'larder';
export const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
export const customer = entity({ name: 'customer', joinKeys: ['customer_id'], valueType: 'string' });
const statsSource = fileSource({ name: 'stats_source', path: 'data/stats.parquet', timestampField: 'event_timestamp', createdTimestampField: 'created' });
export const driverStats = featureView({
  name: 'driver_stats', entities: [driver], source: statsSource, ttl: '1d',
  schema: { conv_rate: 'float64', trips: 'int64', label: 'string', embedding: 'float32[]', words: sparse(16), seen_at: 'timestamp', lucky: 'bool' },
});
export const driverWindows = featureView({
  name: 'driver_windows', entities: [driver], source: statsSource,
  aggregations: [{ column: 'conv_rate', functions: ['mean'], windows: ['1h'] }],
});
export const customerProfile = featureView({
  name: 'customer_profile', entities: [customer],
  source: fileSource({ name: 'customer_source', path: 'data/customers.parquet', timestampField: 'event_timestamp' }),
  schema: { score: 'float32', tier: 'string' },
});
export const driverCustomer = featureView({
  name: 'driver_customer', entities: [driver, customer], ttl: '2d',
  source: fileSource({ name: 'pair_source', path: 'data/pairs.parquet', timestampField: 'event_timestamp' }),
  schema: { rides: 'int32' },
});
export const edges = featureView({
  name: 'edges', entities: [driver], ttl: '7d',
  source: fileSource({ name: 'edge_source', path: 'data/edges.parquet', timestampField: 'event_timestamp' }),
  schema: { v: 'int64' },
});
export const versions = featureView({
  name: 'versions', entities: [driver], ttl: '7d',
  source: fileSource({ name: 'version_source', path: 'data/versions.parquet', timestampField: 'event_timestamp' }),
  schema: { a: 'int64', b: 'float64', c: 'string', d: 'float64[]' },
});
`;

const ts = (ms: number): string => `make_timestamptz(${ms}::BIGINT * 1000)`;

/** Writes the source files with DuckDB, from the rows generated above. */
async function writeSources(dataDir: string): Promise<void> {
  const db = await openDuckDB();
  try {
    const c = db.connection;
    const copy = (select: string, file: string) => c.run(`COPY (${select}) TO '${join(dataDir, file)}' (FORMAT parquet)`);
    const values = (rows: string[]) => `(VALUES ${rows.join(', ')})`;
    await copy(
      `SELECT driver_id, ${ts(0)} + to_milliseconds(e) AS event_timestamp, ${ts(0)} + to_milliseconds(cr) AS created, conv_rate, trips,
              'd' || driver_id || '-' || trips AS label, [conv_rate, trips]::FLOAT[] AS embedding,
              struct_pack(indices := [trips % 16]::INTEGER[], "values" := [conv_rate]::FLOAT[]) AS words,
              ${ts(0)} + to_milliseconds(e - 1000) AS seen_at, trips % 2 = 0 AS lucky
       FROM ${values(statsRows.map((r) => `(${r.driver_id}::BIGINT, ${r.event}::BIGINT, ${r.created}::BIGINT, ${r.conv_rate}::DOUBLE, ${r.trips}::BIGINT)`))} AS t(driver_id, e, cr, conv_rate, trips)`,
      'stats.parquet',
    );
    await copy(
      `SELECT customer_id, ${ts(0)} + to_milliseconds(e) AS event_timestamp, score, CASE WHEN score > 12 THEN 'gold' ELSE 'tin' END AS tier
       FROM ${values(customerRows.map((r) => `('${r.customer_id.replace(/'/g, "''")}', ${r.event}::BIGINT, ${r.score}::DOUBLE)`))} AS t(customer_id, e, score)`,
      'customers.parquet',
    );
    await copy(
      `SELECT driver_id, customer_id, ${ts(0)} + to_milliseconds(e) AS event_timestamp, rides
       FROM ${values(pairRows.map((r) => `(${r.driver_id}::BIGINT, '${r.customer_id.replace(/'/g, "''")}', ${r.event}::BIGINT, ${r.rides}::INTEGER)`))} AS t(driver_id, customer_id, e, rides)`,
      'pairs.parquet',
    );
    await copy(
      `SELECT driver_id, ${ts(0)} + to_milliseconds(e) AS event_timestamp, v
       FROM ${values(edgeRows.map((r) => `(${r.driver_id}::BIGINT, ${r.event}::BIGINT, ${r.v}::BIGINT)`))} AS t(driver_id, e, v)`,
      'edges.parquet',
    );
    // Two versions of every entity; every value of version v derives from v, so a torn read shows.
    await copy(
      `SELECT i::BIGINT AS driver_id, ${ts(0)} + to_milliseconds(CASE v WHEN 1 THEN ${VERSION_TIME[1]}::BIGINT ELSE ${VERSION_TIME[2]}::BIGINT END) AS event_timestamp,
              v::BIGINT AS a, v + 0.5 AS b, 'v' || v || '-' || i AS c, [v, v, v]::DOUBLE[] AS d
       FROM range(${VERSION_ENTITIES}) r(i), (VALUES (1), (2)) vs(v)`,
      'versions.parquet',
    );
  } finally {
    db.close();
  }
}

let repo: string;
let offlineDir: string;
let defs: Definitions;

beforeAll(async () => {
  repo = await mkdtemp(join(tmpdir(), 'larder-materialize-'));
  await mkdir(join(repo, 'data'));
  await writeSources(join(repo, 'data'));
  await writeFile(join(repo, 'definitions.ts'), DEFINITIONS);
  defs = await loadDefinitions(repo);
  offlineDir = join(repo, 'offline');
  await backfill({ defs, offlineDir, start: asEpochMs(END - 10 * DAY), end: asEpochMs(END + 2 * HOUR) });
  await pushCorrections();
}, 60_000);

/**
 * As pushes do, a `push-*.parquet` beside `data.parquet`: for every 7th driver, each row again at
 * the same event time with a later created time and other values. Those must win, online as in
 * the dataset.
 */
async function pushCorrections(): Promise<void> {
  const db = await openDuckDB();
  try {
    for (const partition of await listPartitions(offlineDir, 'driver_stats')) {
      const data = join(partition.dir, 'data.parquet');
      await db.connection.run(
        `COPY (SELECT * REPLACE (created_timestamp + INTERVAL 1 HOUR AS created_timestamp, 0.999 AS conv_rate, 7777::BIGINT AS trips)
               FROM read_parquet('${data}') WHERE driver_id % 7 = 0)
         TO '${join(partition.dir, 'push-test.parquet')}' (FORMAT parquet)`,
      );
    }
  } finally {
    db.close();
  }
}

afterAll(async () => {
  if (repo) await rm(repo, { recursive: true, force: true });
});

/** An Arrow dataset value as the online read path's JSON value. */

/** Online values at END equal the point-in-time dataset at END, for a random sample of entities. */
async function expectConsistent(store: OnlineStore): Promise<number> {
  const features = [
    ...['conv_rate', 'trips', 'label', 'embedding', 'words', 'seen_at', 'lucky'].map((f) => `driver_stats:${f}`),
    'customer_profile:score',
    'customer_profile:tier',
    'driver_customer:rides',
  ];
  // Mostly pairs that exist, some random ones, and ids nobody has.
  const sample = Array.from({ length: 120 }, (_, i) => {
    if (i % 10 === 9) return { driver_id: 5 + i, customer_id: `nobody-${i}` };
    if (i % 3 === 0) return { driver_id: pick(drivers), customer_id: pick(customers) };
    const p = pick(pairRows);
    return { driver_id: p.driver_id, customer_id: p.customer_id };
  });
  const entities = { driver_id: sample.map((s) => s.driver_id), customer_id: sample.map((s) => s.customer_id) };
  const online = await getOnlineFeatures({ defs, store, features, entities, fullNames: true, now: END });
  // The server's text answer is the same answer.
  expect(await getOnlineFeaturesJson({ defs, store, features, entities, fullNames: true, now: END })).toBe(JSON.stringify(online));
  const offline = await getHistoricalFeatures({ defs, offlineDir, features, fullNames: true, entities: { ...entities, event_timestamp: sample.map(() => END) } });
  const trips = online.results[online.metadata.feature_names.indexOf('driver_stats__trips')]!.values;
  expect(trips.filter((t, i) => t === 7777 && sample[i]!.driver_id % 7 === 0).length, 'pushed corrections served').toBeGreaterThan(0);
  let present = 0;
  for (const ref of features) {
    const [view, feature] = ref.split(':') as [string, string];
    const name = `${view}__${feature}`;
    const type = defs.views.get(view)!.schema[feature]!;
    const column = online.results[online.metadata.feature_names.indexOf(name)]!;
    const expected = sample.map((_, i) => offlineJson(type, offline.getChild(name)!.get(i)));
    expect(column.values, name).toEqual(expected);
    column.statuses.forEach((s, i) => expect(s === 'PRESENT', `${name}[${i}] ${s}`).toBe(expected[i] !== null));
    present += column.statuses.filter((s) => s === 'PRESENT').length;
  }
  return present;
}

/** Distinct entities with an event in [from, to) for the generated driver_stats rows. */
const statsEntitiesIn = (from: number, to: number): number => new Set(statsRows.filter((r) => r.event >= from && r.event < to).map((r) => r.driver_id)).size;

interface Backend {
  name: string;
  open(): Promise<{ store: OnlineStore; url: string; prefix?: string; cleanup(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'redis',
    async open() {
      const prefix = uniquePrefix('materialize');
      const store = await openOnlineStore(redisUrl(), { prefix, commandTimeoutMs: 30_000 });
      return {
        store,
        url: redisUrl(),
        prefix,
        async cleanup() {
          await store.close();
          const admin = new Redis(redisUrl());
          let cursor = '0';
          do {
            const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 5000);
            cursor = next;
            if (keys.length) await admin.unlink(...keys);
          } while (cursor !== '0');
          admin.disconnect();
        },
      };
    },
  },
  {
    name: 'embedded',
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'larder-materialize-online-'));
      const store = await openOnlineStore(`embedded:${dir}`);
      return {
        store,
        url: `embedded:${dir}`,
        async cleanup() {
          await store.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  },
];

describe.each(backends)('materialize into $name', (backend) => {
  let opened: Awaited<ReturnType<Backend['open']>>;
  let registry: Registry;
  let registryDir: string;

  afterEach(async () => {
    await opened?.cleanup();
    await registry?.close();
    if (registryDir) await rm(registryDir, { recursive: true, force: true });
  });

  const setUp = async () => {
    opened = await backend.open();
    registryDir = await mkdtemp(join(tmpdir(), 'larder-materialize-registry-'));
    registry = new FileRegistry(join(registryDir, 'registry.json'));
  };

  it('serves the point-in-time values at the end, loading incrementally from the watermark', async () => {
    await setUp();
    const { store } = opened;
    const notes: string[] = [];
    const run = (end: EpochMs, start?: EpochMs) =>
      materialize({
        defs,
        offlineDir,
        store,
        registry,
        end,
        start,
        views: ['driver_stats', 'customer_profile', 'driver_customer', 'driver_windows'],
        onViewDone: (v) => v.skipped && notes.push(`${v.name}: ${v.skipped}`),
      });

    const first = await run(FIRST_END);
    const firstStats = first.views.find((v) => v.name === 'driver_stats')!;
    expect(firstStats).toMatchObject({ start: null, end: FIRST_END, rows: statsEntitiesIn(FIRST_END - DAY, FIRST_END), stale: 0 });
    expect(notes).toEqual(['driver_windows: aggregation view: its online values come from streaming tiles, not materialization']);
    expect(await getWatermark(registry, 'driver_stats')).toBe(FIRST_END);

    // The second run starts at the watermark (rows before END - ttl are too old to serve anyway).
    const second = await run(END);
    const secondStats = second.views.find((v) => v.name === 'driver_stats')!;
    expect(secondStats).toMatchObject({ start: FIRST_END, end: END, rows: statsEntitiesIn(Math.max(FIRST_END, END - DAY), END) });
    expect(secondStats.written).toBe(secondStats.rows);
    expect(await getWatermark(registry, 'customer_profile')).toBe(END);

    expect(await expectConsistent(store)).toBeGreaterThan(300);

    // An older window again: rows lose against what is online (rows of TTL views that expired by
    // the clock are written again, and expire again at once), what is served does not change, and
    // the watermark stays.
    const late = await run(FIRST_END, asEpochMs(END - 4 * DAY));
    const lateProfiles = late.views.find((v) => v.name === 'customer_profile')!;
    expect(lateProfiles.rows).toBeGreaterThan(0);
    expect(lateProfiles).toMatchObject({ written: 0, stale: lateProfiles.rows });
    expect(await getWatermark(registry, 'driver_stats')).toBe(END);
    expect(await expectConsistent(store)).toBeGreaterThan(300);

    // Up to date: nothing to load.
    const again = await run(END);
    expect(again.views.filter((v) => !v.skipped).map((v) => v.rows)).toEqual([0, 0, 0]);
  });

  it('loads (start, end]: a row exactly at end goes online with that run, and the next run neither reloads nor loses it', async () => {
    await setUp();
    const { store } = opened;
    const ids = [1, 2, 3, 4, 5, 6];
    const values = async (at: EpochMs) => {
      const online = await getOnlineFeatures({ defs, store, features: ['edges:v'], entities: { driver_id: ids }, now: at });
      const offline = await getHistoricalFeatures({ defs, offlineDir, features: ['edges:v'], entities: { driver_id: ids, event_timestamp: ids.map(() => at) } });
      return { online: online.results[1]!.values, offline: ids.map((_, i) => offlineJson('int64', offline.getChild('v')!.get(i))) };
    };

    // First run, (beginning, FIRST_END]: drivers 1, 2 and 6 at exactly FIRST_END, and driver 4
    // exactly at FIRST_END - ttl (fresh at FIRST_END: t - d <= e); not driver 5, 1 ms older.
    const first = await materialize({ defs, offlineDir, store, registry, end: FIRST_END, views: ['edges'] });
    expect(first.views[0]).toMatchObject({ start: null, end: FIRST_END, rows: 4, written: 4, stale: 0 });
    expect(await getWatermark(registry, 'edges')).toBe(FIRST_END);
    // The point-in-time values at FIRST_END (driver 4's record expired by the clock long ago, at
    // FIRST_END: physically gone, so not compared).
    const atFirst = await values(FIRST_END);
    expect(atFirst.offline).toEqual([11, 21, null, 41, null, 61]);
    expect(atFirst.online).toEqual([11, 21, null, null, null, 61]);

    // Second run from the watermark, (FIRST_END, END]: the rows exactly at FIRST_END are not
    // loaded again, the row 1 ms after it and the row exactly at END are; END + 1 ms is not.
    const second = await materialize({ defs, offlineDir, store, registry, end: END, views: ['edges'] });
    expect(second.views[0]).toMatchObject({ start: FIRST_END, end: END, rows: 2, written: 2, stale: 0 });
    expect(await getWatermark(registry, 'edges')).toBe(END);
    const atEnd = await values(END);
    expect(atEnd.offline).toEqual([11, 22, null, null, null, 62]);
    expect(atEnd.online).toEqual(atEnd.offline);

    // Again up to END: the row exactly at END is not reloaded.
    const third = await materialize({ defs, offlineDir, store, registry, end: END, views: ['edges'] });
    expect(third.views[0]).toMatchObject({ rows: 0, written: 0 });
    // An explicit --start equal to the previous end means the same window.
    const explicit = await materialize({ defs, offlineDir, store, registry, start: FIRST_END, end: END, views: ['edges'] });
    expect(explicit.views[0]).toMatchObject({ start: FIRST_END, rows: 2, written: 0, stale: 2 });
    expect((await values(END)).online).toEqual(atEnd.offline);
  });

  it('never shows a reader in another process a torn value', async () => {
    await setUp();
    const { store, url, prefix } = opened;
    await materialize({ defs, offlineDir, store, registry, end: asEpochMs(VERSION_TIME[1]! + 1), views: ['versions'] });
    const child = await startReader(url, prefix);
    try {
      child.send('start');
      const result = await materialize({ defs, offlineDir, store, registry, end: END, views: ['versions'], batchSize: 1000 });
      child.send('end');
      expect(result.views[0]).toMatchObject({ rows: VERSION_ENTITIES, written: VERSION_ENTITIES });
      const report = await child.finish();
      expect(report.torn).toEqual([]);
      expect(report.readsDuring).toBeGreaterThan(0);
      expect(report.missing).toBe(0);
      // After the materialize, the other process sees every entity at version 2.
      expect(report.finalVersion2).toBe(VERSION_ENTITIES);
    } finally {
      child.kill();
    }
  });
});

interface ReaderReport {
  reads: number;
  readsDuring: number;
  missing: number;
  torn: string[];
  finalVersion2: number;
}

const READER = `
const { openOnlineStore } = await import(process.env.SRC + '/online/open.ts');
const { ViewCodec } = await import(process.env.SRC + '/online/codec.ts');
const { encodeEntityKey } = await import(process.env.SRC + '/online/entity-key.ts');
const features = [{ name: 'a', type: 'int64' }, { name: 'b', type: 'float64' }, { name: 'c', type: 'string' }, { name: 'd', type: 'float64[]' }];
const spec = { name: 'versions', joinKeys: [{ name: 'driver_id', type: 'int64' }], features, ttlMs: 7 * 86400000, codec: new ViewCodec(features) };
const times = JSON.parse(process.env.TIMES);
const entities = Number(process.env.ENTITIES);
const store = await openOnlineStore(process.env.URL, process.env.PREFIX ? { prefix: process.env.PREFIX } : {});
const key = (i) => encodeEntityKey(spec.joinKeys, { driver_id: i });
let phase = 'before';
let stopped = false;
let buffered = '';
process.stdin.on('data', (d) => {
  buffered += d;
  if (buffered.includes('start')) phase = 'during';
  if (buffered.includes('end')) phase = 'after';
});
process.stdin.on('end', () => (stopped = true));
const report = { reads: 0, readsDuring: 0, missing: 0, torn: [], finalVersion2: 0 };
const check = (i, v) => {
  if (!v) return report.missing++;
  const [a, b, c, d] = v.values;
  const ok = (a === 1 || a === 2) && b === a + 0.5 && c === 'v' + a + '-' + i && JSON.stringify(d) === JSON.stringify([a, a, a]) && v.eventMs === times[a];
  if (!ok && report.torn.length < 5) report.torn.push(JSON.stringify({ i, v }));
};
console.log('ready');
const deadline = Date.now() + 40000;
while (!stopped && phase !== 'after' && Date.now() < deadline && report.reads < 100000) {
  const ids = Array.from({ length: 50 }, () => Math.floor(Math.random() * entities));
  const during = phase === 'during';
  const values = await store.read(ids.map(key), [spec]);
  values.forEach(([v], j) => check(ids[j], v));
  report.reads++;
  if (during && phase === 'during') report.readsDuring++;
  await new Promise((r) => setImmediate(r));
}
for (let i = 0; i < entities; i += 1000) {
  const ids = Array.from({ length: Math.min(1000, entities - i) }, (_, j) => i + j);
  const values = await store.read(ids.map(key), [spec]);
  values.forEach(([v], j) => {
    check(ids[j], v);
    if (v && v.values[0] === 2) report.finalVersion2++;
  });
}
await store.close();
console.log(JSON.stringify(report));
`;

/** A child process reading the `versions` view in a loop until told the materialize ended. */
async function startReader(url: string, prefix: string | undefined) {
  const dir = await mkdtemp(join(tmpdir(), 'larder-reader-'));
  const script = join(dir, 'reader.mjs');
  await writeFile(script, READER);
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    env: { ...process.env, SRC: join(ROOT, 'src'), URL: url, PREFIX: prefix ?? '', TIMES: JSON.stringify(VERSION_TIME), ENTITIES: String(VERSION_ENTITIES) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const deadline = Date.now() + 30_000;
  while (!out.includes('ready')) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`reader did not start: ${err || out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    send: (line: string) => child.stdin.write(`${line}\n`),
    async finish(): Promise<ReaderReport> {
      child.stdin.end();
      const code = await exited;
      await rm(dir, { recursive: true, force: true });
      if (code !== 0) throw new Error(`reader exited ${code}: ${err}`);
      return JSON.parse(out.trim().split('\n').pop()!) as ReaderReport;
    },
    kill: () => {
      if (child.exitCode === null) child.kill();
    },
  };
}
