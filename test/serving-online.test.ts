/**
 * `POST /get-online-features` over HTTP, on Redis: a temp repo with data written by DuckDB,
 * backfilled and materialized, then served by `startServer` on a free port. Feast's request and
 * response names byte for byte, the three statuses, full names, services; every malformed body a
 * 4xx naming its field; a Redis that does not answer a 503 in bounded time, the server still up;
 * `/health`, `/metrics` and `/registry`.
 */
import { createServer } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type LarderConfig } from '../src/config.js';
import { asEpochMs } from '../src/core/time.js';
import { loadDefinitions } from '../src/definitions/loader.js';
import type { Definitions } from '../src/definitions/types.js';
import { materialize } from '../src/materialize/materialize.js';
import { backfill } from '../src/offline/backfill.js';
import { openDuckDB } from '../src/offline/duckdb.js';
import { openOnlineStore } from '../src/online/open.js';
import { getOnlineFeatures } from '../src/online/online-features.js';
import type { OnlineStore } from '../src/online/store.js';
import { loadCanonicalRepo } from '../src/registry/operations.js';
import { FileRegistry } from '../src/registry/file.js';
import { startServer, type RunningServer } from '../src/serving/server.js';
import { deleteRedisPrefix, redisUrl, uniquePrefix } from './support/services.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const NOW = Date.now();

const DEFINITIONS = `import { entity, featureService, featureView, fileSource, sparse } from 'larder';
export const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
export const customer = entity({ name: 'customer', joinKeys: ['customer_id'] });
export const driverStats = featureView({
  name: 'driver_stats', entities: [driver], ttl: '1h',
  source: fileSource({ name: 'stats_source', path: 'data/stats.parquet', timestampField: 'event_timestamp', createdTimestampField: 'created' }),
  schema: { conv_rate: 'float64', trips: 'int64', label: 'string', seen_at: 'timestamp', embedding: 'float32[]', words: sparse(8), lucky: 'bool' },
});
export const driverProfile = featureView({
  name: 'driver_profile', entities: [driver],
  source: fileSource({ name: 'profile_source', path: 'data/profiles.parquet', timestampField: 'event_timestamp' }),
  schema: { rating: 'float32', city: 'string' },
});
export const customerStats = featureView({
  name: 'customer_stats', entities: [customer],
  source: fileSource({ name: 'customer_source', path: 'data/customers.parquet', timestampField: 'event_timestamp' }),
  schema: { conv_rate: 'float64' },
});
export const driverModel = featureService({ name: 'driver_model', features: [driverStats.select('conv_rate', 'trips'), driverProfile] });
`;

/** driver 1001: stats 2 h old (past the 1 h TTL), profile present; 1002: two stats rows, the later wins; 1003: nothing; 1004-1010: fresh. */
const STATS = [
  { id: 1001, at: NOW - 2 * HOUR, conv: 0.25, trips: 5 },
  { id: 1002, at: NOW - 50 * MINUTE, conv: 0.1, trips: 1 },
  { id: 1002, at: NOW - 30 * MINUTE, conv: 0.5, trips: 7 },
  ...Array.from({ length: 7 }, (_, i) => ({ id: 1004 + i, at: NOW - 10 * MINUTE, conv: i / 8, trips: 100 + i })),
];
const PROFILES = [1001, 1002, ...Array.from({ length: 7 }, (_, i) => 1004 + i)].map((id) => ({ id, at: NOW - 72 * HOUR, rating: id / 1000, city: `c${id}` }));

const ts = (ms: number): string => `make_timestamptz(${Math.round(ms)}::BIGINT * 1000)`;

async function writeData(dataDir: string): Promise<void> {
  const db = await openDuckDB();
  try {
    const copy = (select: string, file: string) => db.connection.run(`COPY (${select}) TO '${join(dataDir, file)}' (FORMAT parquet)`);
    await copy(
      `SELECT id::BIGINT AS driver_id, ${ts(0)} + to_milliseconds(e) AS event_timestamp, ${ts(0)} + to_milliseconds(e) AS created, conv AS conv_rate, trips::BIGINT AS trips,
              'd' || id AS label, ${ts(0)} + to_milliseconds(e - 1000) AS seen_at, [conv, trips]::FLOAT[] AS embedding,
              struct_pack(indices := [trips % 8]::INTEGER[], "values" := [conv]::FLOAT[]) AS words, trips % 2 = 0 AS lucky
       FROM (VALUES ${STATS.map((s) => `(${s.id}, ${s.at}::BIGINT, ${s.conv}::DOUBLE, ${s.trips})`).join(', ')}) t(id, e, conv, trips)`,
      'stats.parquet',
    );
    await copy(
      `SELECT id::BIGINT AS driver_id, ${ts(0)} + to_milliseconds(e) AS event_timestamp, rating::FLOAT AS rating, city
       FROM (VALUES ${PROFILES.map((p) => `(${p.id}, ${p.at}::BIGINT, ${p.rating}, '${p.city}')`).join(', ')}) t(id, e, rating, city)`,
      'profiles.parquet',
    );
    await copy(`SELECT 'ann' AS customer_id, ${ts(NOW - HOUR)} AS event_timestamp, 0.75::DOUBLE AS conv_rate`, 'customers.parquet');
  } finally {
    db.close();
  }
}

let repo: string;
let config: LarderConfig;
let defs: Definitions;
let store: OnlineStore;
let prefix: string;
let server: RunningServer;
let registry: FileRegistry;

beforeAll(async () => {
  repo = await mkdtemp(join(tmpdir(), 'larder-serving-online-'));
  await mkdir(join(repo, 'data'));
  await writeFile(join(repo, 'definitions.ts'), DEFINITIONS);
  await writeData(join(repo, 'data'));
  config = loadConfig({ LARDER_REPO: repo, LARDER_ONLINE: redisUrl() });
  defs = await loadDefinitions(repo);
  registry = new FileRegistry(join(config.home, 'registry.json'));
  await registry.apply((await loadCanonicalRepo(repo)).repo);
  prefix = uniquePrefix('serving-online');
  store = await openOnlineStore(redisUrl(), { prefix });
  await backfill({ defs, offlineDir: config.offlineDir, start: asEpochMs(NOW - 4 * 24 * HOUR), end: asEpochMs(NOW + HOUR) });
  // The profile (no TTL) makes each driver's record persistent; then driver 1001's stats row is
  // loaded as of 90 minutes ago, while fresh, and stays: it reads OUTSIDE_MAX_AGE, not absent.
  const run = (views: string[], end: number) => materialize({ defs, offlineDir: config.offlineDir, store, registry, end: asEpochMs(end), views });
  await run(['driver_profile', 'customer_stats'], NOW + 1);
  await run(['driver_stats'], NOW - 90 * MINUTE);
  await run(['driver_stats'], NOW + 1);
  server = await startServer({ config, port: 0, store, registry, maxBodyBytes: 64 * 1024, log: () => {} });
});

afterAll(async () => {
  await server?.close();
  await store?.close();
  await deleteRedisPrefix(prefix);
  if (repo) await rm(repo, { recursive: true, force: true });
});

async function post(path: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<{ status: number; text: string; json: any }> {
  const res = await fetch(server.url + path, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

const statsFeatures = ['conv_rate', 'trips', 'label', 'seen_at', 'embedding', 'words', 'lucky'].map((f) => `driver_stats:${f}`);

describe('POST /get-online-features', () => {
  it("answers Feast's response, field names and order byte for byte", async () => {
    const res = await post('/get-online-features', { features: ['driver_stats:conv_rate', 'driver_profile:city'], entities: { driver_id: [1002] }, full_feature_names: false });
    expect(res.status).toBe(200);
    const at = new Date(NOW - 30 * MINUTE).toISOString();
    const profileAt = new Date(NOW - 72 * HOUR).toISOString();
    expect(res.text).toBe(
      `{"metadata":{"feature_names":["driver_id","conv_rate","city"]},"results":[` +
        `{"values":[1002],"statuses":["PRESENT"],"event_timestamps":["1970-01-01T00:00:00Z"]},` +
        `{"values":[0.5],"statuses":["PRESENT"],"event_timestamps":["${at}"]},` +
        `{"values":["c1002"],"statuses":["PRESENT"],"event_timestamps":["${profileAt}"]}]}`,
    );
  });

  it('answers exactly what the library read answers, every value type, and the three statuses', async () => {
    const entities = { driver_id: [1001, 1002, 1003, 1004, '1010'] };
    const res = await post('/get-online-features', { features: [...statsFeatures, 'driver_profile:rating'], entities });
    expect(res.status).toBe(200);
    const library = await getOnlineFeatures({ defs, store, features: [...statsFeatures, 'driver_profile:rating'], entities });
    expect(res.json).toEqual(JSON.parse(JSON.stringify(library)));
    const conv = res.json.results[1];
    expect(conv.statuses).toEqual(['OUTSIDE_MAX_AGE', 'PRESENT', 'NOT_FOUND', 'PRESENT', 'PRESENT']);
    expect(conv.values).toEqual([null, 0.5, null, 0, 0.75]);
    expect(res.json.results[0].values).toEqual([1001, 1002, 1003, 1004, 1010]);
    const words = res.json.results[6].values[1];
    expect(words).toEqual({ size: 8, indices: [7], values: [0.5] });
    expect(res.json.results[5].values[1]).toEqual([0.5, 7]);
    expect(res.json.results[4].values[1]).toBe(new Date(NOW - 30 * MINUTE - 1000).toISOString());
    expect(res.json.results[8].statuses[0]).toBe('PRESENT');
  });

  it('answers concurrent requests, read from the store together, each with its own entities', async () => {
    const ids = [1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010];
    const requests = Array.from({ length: 40 }, (_, i) => ({
      features: i % 3 === 0 ? ['driver_profile:city', 'driver_stats:trips'] : statsFeatures,
      entities: { driver_id: ids.slice(i % 7, (i % 7) + 1 + (i % 4)) },
    }));
    const answers = await Promise.all(requests.map((r) => post('/get-online-features', r)));
    for (const [i, r] of requests.entries()) {
      expect(answers[i]!.status).toBe(200);
      expect(answers[i]!.json).toEqual(JSON.parse(JSON.stringify(await getOnlineFeatures({ defs, store, ...r }))));
    }
  });

  it('serves a feature service, and full feature names', async () => {
    const service = await post('/get-online-features', { feature_service: 'driver_model', entities: { driver_id: [1002] } });
    expect(service.status).toBe(200);
    expect(service.json.metadata.feature_names).toEqual(['driver_id', 'conv_rate', 'trips', 'rating', 'city']);
    const full = await post('/get-online-features', { feature_service: 'driver_model', entities: { driver_id: [1002] }, full_feature_names: true });
    expect(full.json.metadata.feature_names).toEqual(['driver_id', 'driver_stats__conv_rate', 'driver_stats__trips', 'driver_profile__rating', 'driver_profile__city']);
    const twoKeys = await post('/get-online-features', { features: ['driver_stats:conv_rate', 'customer_stats:conv_rate'], entities: { driver_id: [1002], customer_id: ['ann'] }, full_feature_names: true });
    expect(twoKeys.status).toBe(200);
    expect(twoKeys.json.results.map((r: { values: unknown[] }) => r.values[0])).toEqual([1002, 'ann', 0.5, 0.75]);
  });

  it('takes the body as curl -d sends it, and nulls for optional fields', async () => {
    const res = await post('/get-online-features', '{"features":["driver_stats:trips"],"entities":{"driver_id":[1002]},"feature_service":null}', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(res.status).toBe(200);
    expect(res.json.results[1].values).toEqual([7]);
  });

  const bad: [string, unknown, number, string, RegExp][] = [
    ['not JSON', '{"features": [', 400, 'body', /not valid JSON/],
    ['not an object', '[1, 2]', 400, 'body', /expected a JSON object/],
    ['entities missing', { features: ['driver_stats:trips'] }, 400, 'entities', /missing/],
    ['entities not columns', { features: ['driver_stats:trips'], entities: { driver_id: 5 } }, 400, 'entities.driver_id', /expected an array, got 5/],
    ['a feature not a string', { features: ['driver_stats:trips', 3], entities: { driver_id: [1] } }, 400, 'features[1]', /expected a string, got 3/],
    ['full_feature_names not a boolean', { features: ['driver_stats:trips'], entities: { driver_id: [1] }, full_feature_names: 'yes' }, 400, 'full_feature_names', /boolean/],
    ['a key of the wrong type', { features: ['driver_stats:trips'], entities: { driver_id: [1001, 'abc'] } }, 400, 'entities.driver_id[1]', /expected int64, got "abc"/],
    ['an unknown feature', { features: ['driver_stats:nope'], entities: { driver_id: [1] } }, 400, 'features', /no feature 'nope'/],
    ['an unknown view', { features: ['nope:x'], entities: { driver_id: [1] } }, 400, 'features', /no feature view 'nope'/],
    ['a missing join key', { features: ['driver_stats:trips', 'customer_stats:conv_rate'], entities: { driver_id: [1] }, full_feature_names: true }, 400, 'entities.customer_id', /missing/],
    ['a key nobody needs', { features: ['driver_stats:trips'], entities: { driver_id: [1], rider_id: [2] } }, 400, 'entities.rider_id', /not a join key/],
    ['columns of unequal length', { features: ['driver_stats:trips', 'customer_stats:conv_rate'], entities: { driver_id: [1, 2], customer_id: ['a'] }, full_feature_names: true }, 400, 'entities.customer_id', /1 values, but entities.driver_id has 2/],
    ['a clash of bare names', { features: ['driver_stats:conv_rate', 'customer_stats:conv_rate'], entities: { driver_id: [1], customer_id: ['a'] } }, 400, 'features', /full names/],
    ['an unknown service', { feature_service: 'nope', entities: { driver_id: [1] } }, 404, 'feature_service', /no feature service 'nope'/],
  ];
  const cases = bad.map(([name, body, status, field, message]) => ({ name, body, status, field, message }));
  it.each(cases)('$name: $status naming $field', async ({ body, status, field, message }) => {
    const res = await post('/get-online-features', body);
    expect(res.status).toBe(status);
    expect(res.json.error).toMatch(message);
    expect(res.json.error.startsWith(`${field}: `)).toBe(true);
    expect(res.json.detail.field).toBe(field);
  });

  it('refuses a body past the limit (413), another content type (415) and another method (405)', async () => {
    const big = { features: ['driver_stats:trips'], entities: { driver_id: Array.from({ length: 20_000 }, (_, i) => i) } };
    const tooLarge = await post('/get-online-features', big);
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.json.detail).toMatchObject({ field: 'body', limit: 64 * 1024 });
    const xml = await post('/get-online-features', '<features/>', { 'content-type': 'application/xml' });
    expect(xml.status).toBe(415);
    expect(xml.json.error).toMatch(/^content-type: 'application\/xml' is not accepted/);
    const get = await fetch(`${server.url}/get-online-features`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    const unknown = await fetch(`${server.url}/get-offline-features`, { method: 'POST' });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: string }).error).toMatch(/no route POST \/get-offline-features/);
  });
});

describe('/health, /metrics, /registry', () => {
  it('health is 200 when both stores answer', async () => {
    const res = await fetch(`${server.url}/health`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    const current = await registry.current();
    expect(body).toMatchObject({ status: 'ok', online: 'ok', registry: 'ok', version: current!.version, definitions: { inSync: true } });
  });

  it('metrics hold the latency histogram by route and status, and the store counters', async () => {
    await post('/get-online-features', { features: ['driver_stats:trips'], entities: { driver_id: [1002] } });
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/larder_http_request_duration_seconds_bucket\{le="0\.005",route="\/get-online-features",method="POST",status="200"\} [1-9]/);
    expect(text).toMatch(/larder_http_request_duration_seconds_count\{route="\/get-online-features",method="POST",status="400"\} [1-9]/);
    expect(text).toMatch(/larder_store_errors_total\{store="online"\} 0/);
    expect(text).toMatch(/larder_rows_pushed_total/);
    expect(text).toMatch(/larder_late_events_total 0/);
    expect(text).toMatch(/larder_process_cpu_seconds_total/);
  });

  it('registry answers the applied version', async () => {
    const body = (await (await fetch(`${server.url}/registry`)).json()) as Record<string, unknown>;
    const current = await registry.current();
    expect(body).toEqual({ version: current!.version, hash: current!.hash, appliedAt: current!.appliedAt, repo: current!.repo });
  });
});

/** A port nothing listens on. */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe('a Redis that does not answer', () => {
  it('a Redis that takes the connection and never answers: 503 within the command bound', async () => {
    const sockets = new Set<import('node:net').Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const down = await startServer({ config: { ...config, online: `redis://127.0.0.1:${port}` }, port: 0, registry, log: () => {} });
    try {
      const began = Date.now();
      const [read, health] = await Promise.all([
        fetch(`${down.url}/get-online-features`, { method: 'POST', body: JSON.stringify({ features: ['driver_stats:trips'], entities: { driver_id: [1002] } }) }),
        fetch(`${down.url}/health`),
      ]);
      expect(read.status).toBe(503);
      expect(health.status).toBe(503);
      expect(Date.now() - began).toBeLessThan(4000);
      expect((await (await fetch(`${down.url}/metrics`)).text()).length).toBeGreaterThan(0);
    } finally {
      await down.close();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('gives 503 in bounded time, on reads and /health, and the server stays up', async () => {
    const down = await startServer({ config: { ...config, online: `redis://127.0.0.1:${await freePort()}` }, port: 0, registry, log: () => {} });
    try {
      const began = Date.now();
      const res = await fetch(`${down.url}/get-online-features`, { method: 'POST', body: JSON.stringify({ features: ['driver_stats:trips'], entities: { driver_id: [1002] } }) });
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: string; detail: unknown })).toMatchObject({ error: expect.stringMatching(/^online store redis:\/\/127\.0\.0\.1:\d+/), detail: { store: 'online' } });
      expect(Date.now() - began).toBeLessThan(5000);
      const health = await fetch(`${down.url}/health`);
      expect(health.status).toBe(503);
      expect(await health.json()).toMatchObject({ status: 'unavailable', online: 'unavailable', registry: 'ok', error: expect.stringMatching(/online store/) });
      expect(Date.now() - began).toBeLessThan(10_000);
      const metrics = await (await fetch(`${down.url}/metrics`)).text();
      expect(metrics).toMatch(/larder_store_errors_total\{store="online"\} [1-9]/);
    } finally {
      await down.close();
    }
  });
});
