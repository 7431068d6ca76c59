/**
 * `POST /push` over HTTP, on Redis: JSON and Arrow IPC bodies, to online, offline or both; the
 * pushed values read back online and in datasets; the transform run on a pushed row gives what
 * backfill gives for the same row; a later push at the same event time wins; aggregation views
 * take raw rows offline and fresh events into online tiles; every bad body a 4xx naming its field with
 * nothing written; API keys (401, 403, then 200).
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import * as arrow from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type LarderConfig } from '../src/config.js';
import { asEpochMs } from '../src/core/time.js';
import { loadDefinitions } from '../src/definitions/loader.js';
import type { Definitions } from '../src/definitions/types.js';
import { backfill, offlineColumns } from '../src/offline/backfill.js';
import { getHistoricalFeatures } from '../src/offline/dataset.js';
import { openDuckDB } from '../src/offline/duckdb.js';
import { openOnlineStore } from '../src/online/open.js';
import type { OnlineStore } from '../src/online/store.js';
import { FileRegistry } from '../src/registry/file.js';
import { startServer, type RunningServer } from '../src/serving/server.js';
import { deleteRedisPrefix, redisUrl, uniquePrefix } from './support/services.js';

const HOUR = 3_600_000;
// Whole seconds: Parquet and Date keep them exactly.
const T0 = Math.floor((Date.now() - 3 * HOUR) / 1000) * 1000;
const iso = (ms: number): string => new Date(ms).toISOString();

const DEFINITIONS = `import { entity, featureView, fileSource, pushSource, sparse } from 'larder';
export const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
const history = fileSource({ name: 'trips_history', path: 'data/trips.parquet', timestampField: 'event_timestamp' });
export const trips = pushSource({
  name: 'trips', timestampField: 'event_timestamp', batchSource: history,
  schema: { driver_id: 'int64', note: 'string', speed: 'float64', tags: 'float32[]' },
});
const bucket = (word: string): number => [...word].reduce((sum, c) => sum + c.charCodeAt(0), 0) % 16;
export const driverNotes = featureView({
  name: 'driver_notes', entities: [driver], source: trips, ttl: '7d',
  schema: { note_length: 'int32', note_words: sparse(16), hour: 'int32', speed: 'float64' },
  transform: (row) => {
    if (row.note === 'boom') throw new Error('cannot read a boom');
    const counts = new Map<number, number>();
    for (const word of String(row.note).split(/\\s+/).filter(Boolean)) counts.set(bucket(word), (counts.get(bucket(word)) ?? 0) + 1);
    const indices = [...counts.keys()].sort((a, b) => a - b);
    // A Date, as backfill gives timestamps.
    const hour = (row.event_timestamp as Date).getUTCHours();
    return { note_length: String(row.note).length, note_words: { size: 16, indices, values: indices.map((i) => counts.get(i)!) }, hour };
  },
});
export const driverSpeed = featureView({ name: 'driver_speed', entities: [driver], source: trips, ttl: '7d', schema: { speed: 'float64', tags: 'float32[]' } });
export const driverSpeedStats = featureView({
  name: 'driver_speed_stats', entities: [driver], source: trips,
  aggregations: [{ column: 'speed', functions: ['mean', 'count'], windows: ['1h'] }],
});
const pings = pushSource({ name: 'pings', schema: { driver_id: 'int64', strength: 'float64' }, timestampField: 'event_timestamp' });
export const pingStats = featureView({ name: 'ping_stats', entities: [driver], source: pings, aggregations: [{ column: 'strength', functions: ['max'], windows: ['10m'] }] });
`;

let repo: string;
let config: LarderConfig;
let defs: Definitions;
let store: OnlineStore;
let prefix: string;
let server: RunningServer;

beforeAll(async () => {
  repo = await mkdtemp(join(tmpdir(), 'larder-serving-push-'));
  await mkdir(join(repo, 'data'));
  await writeFile(join(repo, 'definitions.ts'), DEFINITIONS);
  const db = await openDuckDB();
  try {
    // Driver 2001's history; driver 2002 gets the same row by push.
    await db.connection.run(
      `COPY (SELECT 2001::BIGINT AS driver_id, make_timestamptz(${T0}::BIGINT * 1000) AS event_timestamp, 'abc abd bb abc' AS note, 42.5::DOUBLE AS speed, [1.5, 2]::FLOAT[] AS tags)
       TO '${join(repo, 'data', 'trips.parquet')}' (FORMAT parquet)`,
    );
  } finally {
    db.close();
  }
  config = loadConfig({ LARDER_REPO: repo, LARDER_ONLINE: redisUrl() });
  defs = await loadDefinitions(repo);
  await backfill({ defs, offlineDir: config.offlineDir, start: asEpochMs(T0 - 24 * HOUR), end: asEpochMs(T0 + 24 * HOUR) });
  prefix = uniquePrefix('serving-push');
  store = await openOnlineStore(redisUrl(), { prefix });
  server = await startServer({ config, port: 0, store, registry: new FileRegistry(join(config.home, 'registry.json')), maxBodyBytes: 256 * 1024, log: () => {} });
});

afterAll(async () => {
  await server?.close();
  await store?.close();
  await deleteRedisPrefix(prefix);
  if (repo) await rm(repo, { recursive: true, force: true });
});

interface Answer {
  status: number;
  json: any;
  headers: Headers;
}

async function request(path: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }, url = server.url): Promise<Answer> {
  const res = await fetch(url + path, { method: 'POST', headers, body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
}

const online = async (ids: number[], features: string[]) => {
  const res = await request('/get-online-features', { features, entities: { driver_id: ids }, full_feature_names: true });
  expect(res.status).toBe(200);
  const out: Record<string, unknown[]> = {};
  res.json.metadata.feature_names.forEach((name: string, i: number) => (out[name] = res.json.results[i].values));
  return out;
};

/** Every file of the offline store, relative to it. */
async function offlineFiles(): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(join(dir, e.name));
      else out.push(relative(config.offlineDir, join(dir, e.name)));
    }
  };
  await walk(config.offlineDir);
  return out.sort();
}

const tripsDf = (ids: number[], at: number, speed = 10) => ({
  driver_id: ids,
  note: ids.map((id) => `note of ${id}`),
  speed: ids.map((_, i) => speed + i),
  tags: ids.map(() => [0.5, 0.25]),
  event_timestamp: ids.map(() => iso(at)),
});

describe('POST /push', () => {
  it('to online: the values read back at once, the transform applied; nothing goes offline', async () => {
    const before = await offlineFiles();
    const at = T0 + 60_000;
    const res = await request('/push', { push_source_name: 'trips', df: tripsDf([3001, 3002], at) });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      status: 'ok',
      rows: 2,
      views: ['driver_notes', 'driver_speed', 'driver_speed_stats'],
      online: ['driver_notes', 'driver_speed', 'driver_speed_stats'],
      offline: [],
      skipped: [],
      // Three hours old: past the aggregation view's 5-minute lateness, so offline only.
      late: [{ view: 'driver_speed_stats', rows: 2 }],
    });
    const values = await online([3001, 3002], ['driver_speed:speed', 'driver_speed:tags', 'driver_notes:note_length', 'driver_notes:hour']);
    expect(values).toEqual({
      driver_id: [3001, 3002],
      driver_speed__speed: [10, 11],
      driver_speed__tags: [[0.5, 0.25], [0.5, 0.25]],
      driver_notes__note_length: [12, 12],
      driver_notes__hour: [new Date(at).getUTCHours(), new Date(at).getUTCHours()],
    });
    // The late events of the aggregation view went offline, and nothing else did.
    const added = (await offlineFiles()).filter((f) => !before.includes(f));
    expect(added.map((f) => f.split('/')[0])).toEqual(['driver_speed_stats']);
  });

  it('to online_and_offline: online, and datasets see the rows, aggregation views included, in the layout backfill writes', async () => {
    const before = await offlineFiles();
    const at = T0 + 120_000;
    const res = await request('/push', { push_source_name: 'trips', df: tripsDf([3101, 3101], at, 20), to: 'online_and_offline' });
    expect(res.status).toBe(200);
    expect(res.json.offline).toEqual(['driver_notes', 'driver_speed', 'driver_speed_stats']);
    // Two rows of one entity at one event time: the later one wins.
    expect((await online([3101], ['driver_speed:speed'])).driver_speed__speed).toEqual([21]);
    const dataset = await getHistoricalFeatures({
      defs,
      offlineDir: config.offlineDir,
      entities: { driver_id: [3101], event_timestamp: [iso(at + 1000)] },
      features: ['driver_speed:speed', 'driver_notes:note_length', 'driver_speed_stats:speed_mean_1h', 'driver_speed_stats:speed_count_1h'],
    });
    const row = dataset.get(0)!.toJSON();
    expect(row).toMatchObject({ speed: 21, note_length: 12, speed_count_1h: 2n, speed_mean_1h: 20.5 });

    const date = iso(at).slice(0, 10);
    const files = (await offlineFiles()).filter((f) => f.includes('push-') && !before.includes(f));
    for (const view of ['driver_notes', 'driver_speed', 'driver_speed_stats']) {
      expect(files.filter((f) => f.startsWith(`${view}/date=${date}/push-`) && f.endsWith('.parquet')), view).toHaveLength(1);
    }
    expect(files.some((f) => f.includes('.tmp'))).toBe(false);
    const db = await openDuckDB();
    try {
      for (const view of ['driver_notes', 'driver_speed_stats']) {
        const file = join(config.offlineDir, files.find((f) => f.startsWith(`${view}/`))!);
        const described = (await db.connection.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${file}', hive_partitioning = false)`)).getRowObjects();
        const layout = offlineColumns(defs.views.get(view)!);
        expect(described.map((c) => [c.column_name, String(c.column_type).replace('TIMESTAMP WITH TIME ZONE', 'TIMESTAMPTZ')]), view).toEqual(layout.map((c) => [c.name, c.type]));
      }
    } finally {
      db.close();
    }
  });

  it("runs the view's transform on a pushed row exactly as backfill does on the same source row", async () => {
    const res = await request('/push', {
      push_source_name: 'trips',
      df: { driver_id: [2002], note: ['abc abd bb abc'], speed: [42.5], tags: [[1.5, 2]], event_timestamp: [T0] },
      to: 'online_and_offline',
    });
    expect(res.status).toBe(200);
    const features = ['driver_notes:note_length', 'driver_notes:note_words', 'driver_notes:hour', 'driver_notes:speed', 'driver_speed:tags'];
    const dataset = await getHistoricalFeatures({ defs, offlineDir: config.offlineDir, entities: { driver_id: [2001, 2002], event_timestamp: [T0, T0] }, features });
    const [backfilled, pushed] = [0, 1].map((i) => {
      const { driver_id: _, ...rest } = dataset.get(i)!.toJSON();
      return JSON.stringify(rest, (_k, v) => (typeof v === 'bigint' ? Number(v) : v instanceof arrow.Vector ? Array.from(v) : v));
    });
    expect(pushed).toBe(backfilled);
    expect(JSON.parse(backfilled!).note_length).toBe(14);
    const values = await online([2002], ['driver_notes:note_words', 'driver_notes:note_length']);
    expect(values.driver_notes__note_length).toEqual([14]);
    expect(values.driver_notes__note_words).toEqual([{ size: 16, indices: [4, 6, 7], values: [1, 2, 1] }]);
  });

  it('takes an Arrow IPC stream; a later push at the same event time wins', async () => {
    const at = T0 + 180_000;
    const table = (speed: number) =>
      new arrow.Table({
        driver_id: arrow.vectorFromArray([3201n], new arrow.Int64()),
        note: arrow.vectorFromArray(['arrow note']),
        speed: arrow.vectorFromArray([speed], new arrow.Float64()),
        tags: arrow.vectorFromArray([[1, 2, 3]], new arrow.List(new arrow.Field('item', new arrow.Float32(), true))),
        event_timestamp: arrow.vectorFromArray([at], new arrow.TimestampMillisecond('UTC')),
      });
    const headers = { 'content-type': 'application/vnd.apache.arrow.stream' };
    const first = await request('/push?push_source_name=trips&to=online_and_offline', arrow.tableToIPC(table(1), 'stream'), headers);
    expect(first.status).toBe(200);
    expect(first.json.rows).toBe(1);
    expect(await online([3201], ['driver_speed:speed', 'driver_speed:tags', 'driver_notes:note_length'])).toEqual({ driver_id: [3201], driver_speed__speed: [1], driver_speed__tags: [[1, 2, 3]], driver_notes__note_length: [10] });
    const second = await request('/push?push_source_name=trips&to=online_and_offline', arrow.tableToIPC(table(2), 'stream'), headers);
    expect(second.status).toBe(200);
    expect((await online([3201], ['driver_speed:speed'])).driver_speed__speed).toEqual([2]);
    const dataset = await getHistoricalFeatures({ defs, offlineDir: config.offlineDir, entities: { driver_id: [3201], event_timestamp: [at] }, features: ['driver_speed:speed'] });
    expect(dataset.getChild('speed')!.get(0)).toBe(2);
  });

  it('stores the raw rows of a source feeding only aggregation views offline, and folds fresh ones into online tiles', async () => {
    const df = { driver_id: [4001, 4001], strength: [0.5, 0.75], event_timestamp: [T0, T0 + 1000] };
    const fresh = Date.now() - 5000;
    const live = await request('/push', { push_source_name: 'pings', df: { driver_id: [4002, 4002], strength: [0.25, 0.5], event_timestamp: [fresh, fresh + 1000] } });
    expect(live.status).toBe(200);
    expect(live.json).toMatchObject({ online: ['ping_stats'], late: [{ view: 'ping_stats', rows: 0 }] });
    expect(await online([4002], ['ping_stats:strength_max_10m'])).toEqual({ driver_id: [4002], ping_stats__strength_max_10m: [0.5] });
    // Too late for the tiles (the pings are hours old): counted in /metrics, kept offline.
    const late = await request('/push', { push_source_name: 'pings', df: { driver_id: [4003], strength: [0.1], event_timestamp: [T0] } });
    expect(late.json).toMatchObject({ online: ['ping_stats'], late: [{ view: 'ping_stats', rows: 1 }] });
    expect(await (await fetch(`${server.url}/metrics`)).text()).toMatch(/larder_late_events_total\{view="ping_stats"\} 1\n/);
    expect(await online([4003], ['ping_stats:strength_max_10m'])).toEqual({ driver_id: [4003], ping_stats__strength_max_10m: [null] });
    const stored = await request('/push', { push_source_name: 'pings', df, to: 'offline' });
    expect(stored.status).toBe(200);
    expect(stored.json).toMatchObject({ views: ['ping_stats'], online: [], offline: ['ping_stats'] });
    const dataset = await getHistoricalFeatures({ defs, offlineDir: config.offlineDir, entities: { driver_id: [4001], event_timestamp: [T0 + 2000] }, features: ['ping_stats:strength_max_10m'] });
    expect(dataset.getChild('strength_max_10m')!.get(0)).toBe(0.75);
  });
});

describe('a bad push writes nothing', () => {
  const good = () => tripsDf([5001, 5002, 5003], T0 + 240_000);
  const bad: { name: string; body: unknown; status: number; field: string; message: RegExp; headers?: Record<string, string>; path?: string }[] = [
    { name: 'not JSON', body: '{"push_source_name": "trips", ', status: 400, field: 'body', message: /not valid JSON/ },
    { name: 'no push source name', body: { df: good() }, status: 400, field: 'push_source_name', message: /missing/ },
    { name: 'an unknown push source', body: { push_source_name: 'nope', df: good() }, status: 404, field: 'push_source_name', message: /no push source 'nope' \(defined: pings, trips\)/ },
    { name: 'a batch source named as push source', body: { push_source_name: 'trips_history', df: good() }, status: 404, field: 'push_source_name', message: /no push source/ },
    { name: 'an unknown target', body: { push_source_name: 'trips', df: good(), to: 'everywhere' }, status: 400, field: 'to', message: /expected one of "online", "offline", "online_and_offline"/ },
    { name: 'df not columns', body: { push_source_name: 'trips', df: [{ driver_id: 1 }] }, status: 400, field: 'df', message: /expected an object of columns/ },
    { name: 'a missing column', body: { push_source_name: 'trips', df: { ...good(), speed: undefined } }, status: 400, field: 'df.speed', message: /missing/ },
    { name: 'an unknown column', body: { push_source_name: 'trips', df: { ...good(), colour: ['r', 'g', 'b'] } }, status: 400, field: 'df.colour', message: /not a column of push source 'trips'/ },
    { name: 'a value of the wrong type', body: { push_source_name: 'trips', df: { ...good(), speed: [1, 2, 'fast'] } }, status: 400, field: 'df.speed[2]', message: /expected float64, got "fast"/ },
    { name: 'a bad timestamp', body: { push_source_name: 'trips', df: { ...good(), event_timestamp: [iso(T0), iso(T0), 'yesterday'] } }, status: 400, field: 'df.event_timestamp[2]', message: /ISO-8601/ },
    { name: 'a missing join key', body: { push_source_name: 'trips', df: { ...good(), driver_id: [5001, 5002, null] } }, status: 400, field: 'df.driver_id[2]', message: /expected int64, got null/ },
    { name: 'a bad vector', body: { push_source_name: 'trips', df: { ...good(), tags: [[1], [2], [3, 'x']] } }, status: 400, field: 'df.tags[2]', message: /array of numbers/ },
    { name: 'columns of unequal length', body: { push_source_name: 'trips', df: { ...good(), note: ['a', 'b'] } }, status: 400, field: 'df.note', message: /2 values, but df.driver_id has 3/ },
    { name: 'a row the transform rejects', body: { push_source_name: 'trips', df: { ...good(), note: ['fine', 'fine', 'boom'] }, to: 'online_and_offline' }, status: 400, field: 'df[2]', message: /transform of feature view 'driver_notes' failed on this row: cannot read a boom/ },
    { name: 'too large', body: { push_source_name: 'trips', df: { ...good(), note: ['x'.repeat(300_000), 'a', 'b'] } }, status: 413, field: 'body', message: /larger than the limit/ },
    { name: 'an Arrow body without push source', body: new Uint8Array([1, 2, 3]), headers: { 'content-type': 'application/vnd.apache.arrow.stream' }, status: 400, field: 'query.push_source_name', message: /missing/ },
    { name: 'an Arrow body that is not Arrow', body: new Uint8Array([1, 2, 3]), headers: { 'content-type': 'application/vnd.apache.arrow.stream' }, path: '/push?push_source_name=trips', status: 400, field: 'body', message: /not an Arrow IPC stream/ },
    { name: 'another content type', body: 'a,b', headers: { 'content-type': 'text/csv' }, status: 415, field: 'content-type', message: /not accepted/ },
  ];
  it.each(bad)('$name: $status naming $field', async ({ body, status, field, message, headers, path }) => {
    const before = await offlineFiles();
    const res = await request(path ?? '/push', body, headers);
    expect(res.status).toBe(status);
    expect(res.json.error).toMatch(message);
    expect(res.json.error.startsWith(`${field}: `)).toBe(true);
    expect(res.json.detail.field).toBe(field);
    expect(await offlineFiles()).toEqual(before);
    const values = await online([5001, 5002], ['driver_speed:speed']);
    expect(values.driver_speed__speed).toEqual([null, null]);
  });
});

describe('a store that fails during a push', () => {
  it('answers 503 and leaves no offline file: the staged files are dropped', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
    const down = await startServer({ config: { ...config, online: `redis://127.0.0.1:${port}` }, port: 0, registry: new FileRegistry(join(config.home, 'registry.json')), log: () => {} });
    try {
      const before = await offlineFiles();
      const res = await request('/push', { push_source_name: 'trips', df: tripsDf([7001, 7002], T0 + 300_000), to: 'online_and_offline' }, undefined, down.url);
      expect(res.status).toBe(503);
      expect(res.json.error).toMatch(/^online store redis:/);
      expect(await offlineFiles()).toEqual(before);
      const metrics = await (await fetch(`${down.url}/metrics`)).text();
      expect(metrics).toMatch(/larder_store_errors_total\{store="online"\} [1-9]/);
      expect(metrics).not.toMatch(/larder_rows_pushed_total\{/);
    } finally {
      await down.close();
    }
  });
});

describe('API keys', () => {
  it('a write without a key is 401, with a wrong one 403, with a right one 200; reads stay open', async () => {
    const guarded = await startServer({ config, port: 0, store, registry: new FileRegistry(join(config.home, 'registry.json')), apiKeys: ['first-key', 'second-key'], log: () => {} });
    try {
      const body = { push_source_name: 'trips', df: tripsDf([6001], T0) };
      const none = await request('/push', body, { 'content-type': 'application/json' }, guarded.url);
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(none.json.error).toMatch(/^authorization: /);
      const wrong = await request('/push', body, { 'content-type': 'application/json', authorization: 'Bearer not-the-key' }, guarded.url);
      expect(wrong.status).toBe(403);
      expect(JSON.stringify(wrong.json)).not.toContain('not-the-key');
      const right = await request('/push', body, { 'content-type': 'application/json', authorization: 'Bearer second-key' }, guarded.url);
      expect(right.status).toBe(200);
      const read = await request('/get-online-features', { features: ['driver_speed:speed'], entities: { driver_id: [6001] } }, undefined, guarded.url);
      expect(read.status).toBe(200);
      expect(read.json.results[1].values).toEqual([10]);
    } finally {
      await guarded.close();
    }
  });
});
