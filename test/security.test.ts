/**
 * Security of `larder serve`, on Redis with a file registry: every write route needs a key when
 * LARDER_API_KEYS is set (401 without, 403 with a wrong one); reads are open by default and need
 * a key with LARDER_PROTECT_READS, on the hot paths server.ts answers before express too, while
 * /health and /metrics stay open; keys never show in the server's log lines nor in any answer,
 * on 401/403/4xx/5xx paths; each request limit at its boundary (the limit passes, one more is a
 * 400 naming it, a refused push writes nothing); the configuration's parsing; and the PostgreSQL
 * registry's statement bound.
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import * as arrow from 'apache-arrow';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, loadConfig, type LarderConfig } from '../src/config.js';
import { InputError } from '../src/core/errors.js';
import { openOnlineStore } from '../src/online/open.js';
import type { OnlineStore } from '../src/online/store.js';
import { FileRegistry } from '../src/registry/file.js';
import { loadCanonicalRepo } from '../src/registry/operations.js';
import { PostgresRegistry } from '../src/registry/postgres.js';
import { RegistryUnavailableError, type Registry } from '../src/registry/registry.js';
import { startServer, type RunningServer } from '../src/serving/server.js';
import { createTestDatabase, deleteRedisPrefix, redisUrl, uniquePrefix } from './support/services.js';

const DEFINITIONS = `import { entity, featureView, pushSource } from 'larder';
export const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
export const trips = pushSource({ name: 'trips', timestampField: 'event_timestamp', schema: { driver_id: 'int64', speed: 'float64', note: 'string', lane: 'int64' } });
export const driverSpeed = featureView({ name: 'driver_speed', entities: [driver], source: trips, ttl: '7d', schema: { speed: 'float64', note: 'string', lane: 'int64' } });
`;

/** Key-looking texts: what must never come back in an answer or a log line. */
const KEY = 'lk_live_7f3a9c2e1b8d4f60a5e3c7b9d2f1e8a4';
const OTHER_KEY = 'lk_live_second_51c0ffee9d8e7f6a5b4c3d2e';
const WRONG_KEY = 'lk_live_wrong_0c1d2e3f4a5b6c7d8e9f0a1b';
const SECRETS = [KEY, OTHER_KEY, WRONG_KEY];

const LIMITS = { LARDER_MAX_ENTITIES: '5', LARDER_MAX_FEATURES: '3', LARDER_MAX_DATASET_ROWS: '4', LARDER_MAX_PUSH_ROWS: '6' };
const ARROW = 'application/vnd.apache.arrow.stream';
const JSON_TYPE = { 'content-type': 'application/json' };
const HOUR = 3_600_000;
const T0 = Math.floor((Date.now() - 2 * HOUR) / 1000) * 1000;
const iso = (ms: number): string => new Date(ms).toISOString();
const FEATURES = ['driver_speed:speed', 'driver_speed:note', 'driver_speed:lane'];

let repo: string;
let env: NodeJS.ProcessEnv;
let config: LarderConfig;
let store: OnlineStore;
let prefix: string;
let registry: FileRegistry;
/** Keys set, reads open (the default), small limits from the environment. */
let open: RunningServer;
/** Keys set and LARDER_PROTECT_READS=true; its log lines are kept. */
let guarded: RunningServer;
const guardedLog: string[] = [];
/** Calls of the guarded server's registry that read models. */
let modelReads = 0;

beforeAll(async () => {
  repo = await mkdtemp(join(tmpdir(), 'larder-security-'));
  await writeFile(join(repo, 'definitions.ts'), DEFINITIONS);
  env = { LARDER_REPO: repo, LARDER_ONLINE: redisUrl(), LARDER_API_KEYS: `${KEY}, ${OTHER_KEY}`, ...LIMITS };
  config = loadConfig(env);
  registry = new FileRegistry(join(config.home, 'registry.json'));
  await registry.apply((await loadCanonicalRepo(repo)).repo);
  prefix = uniquePrefix('security');
  store = await openOnlineStore(redisUrl(), { prefix });
  open = await startServer({ config, port: 0, store, registry, servingLog: false, log: () => {} });
  // The real registry, its model reads counted: a /predict refused for want of a key reads none.
  const counted = new Proxy(registry as Registry, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (prop === 'latestModel' || prop === 'loadModel' || prop === 'modelNames' || prop === 'modelVersions') modelReads++;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  guarded = await startServer({
    config: loadConfig({ ...env, LARDER_PROTECT_READS: 'true' }),
    port: 0,
    store,
    registry: counted,
    maxBodyBytes: 64 * 1024,
    servingLog: false,
    log: (line) => guardedLog.push(line),
  });
  // Rows for the reads to find, online and offline.
  const seeded = await post(open, '/push', { push_source_name: 'trips', df: tripsDf([1, 2, 3], T0), to: 'online_and_offline' }, auth(KEY));
  expect(seeded.status).toBe(200);
});

afterAll(async () => {
  await guarded?.close();
  await open?.close();
  await store?.close();
  if (prefix) await deleteRedisPrefix(prefix);
  if (repo) await rm(repo, { recursive: true, force: true });
});

interface Answer {
  status: number;
  text: string;
  json: any;
  headers: Headers;
}

const auth = (key: string): Record<string, string> => ({ ...JSON_TYPE, authorization: `Bearer ${key}` });

async function call(server: RunningServer, method: string, path: string, body?: unknown, headers: Record<string, string> = JSON_TYPE): Promise<Answer> {
  const res = await fetch(server.url + path, {
    method,
    headers,
    ...(body !== undefined && { body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, headers: res.headers };
}

const post = (server: RunningServer, path: string, body: unknown, headers?: Record<string, string>) => call(server, 'POST', path, body, headers);
const get = (server: RunningServer, path: string, headers?: Record<string, string>) => call(server, 'GET', path, undefined, headers);

const tripsDf = (ids: number[], at: number) => ({
  driver_id: ids,
  speed: ids.map((id) => id / 2),
  note: ids.map((id) => `note ${id}`),
  lane: ids.map((id) => id % 3),
  event_timestamp: ids.map(() => iso(at)),
});

const tripsArrow = (ids: number[], at: number): Uint8Array =>
  arrow.tableToIPC(
    new arrow.Table({
      driver_id: arrow.vectorFromArray(ids.map(BigInt), new arrow.Int64()),
      speed: arrow.vectorFromArray(ids.map((id) => id / 2), new arrow.Float64()),
      note: arrow.vectorFromArray(ids.map((id) => `note ${id}`)),
      lane: arrow.vectorFromArray(ids.map((id) => BigInt(id % 3)), new arrow.Int64()),
      event_timestamp: arrow.vectorFromArray(ids.map(() => at), new arrow.TimestampMillisecond('UTC')),
    }),
    'stream',
  );

const entityArrow = (ids: number[]): Uint8Array =>
  arrow.tableToIPC(
    new arrow.Table({
      driver_id: arrow.vectorFromArray(ids.map(BigInt), new arrow.Int64()),
      event_timestamp: arrow.vectorFromArray(ids.map(() => T0 + HOUR), new arrow.TimestampMillisecond('UTC')),
    }),
    'stream',
  );

const ids = (n: number, from = 1): number[] => Array.from({ length: n }, (_, i) => from + i);
const onlineBody = (n: number, features = ['driver_speed:speed']) => ({ features, entities: { driver_id: ids(n) } });
const historicalBody = (n: number, features = ['driver_speed:speed']) => ({ features, entities: { driver_id: ids(n), event_timestamp: ids(n).map(() => iso(T0 + HOUR)) } });

/** Every file of the offline store, relative to it. */
async function offlineFiles(dir = config.offlineDir): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else out.push(relative(dir, join(d, e.name)));
    }
  };
  await walk(dir);
  return out.sort();
}

/** Every key of this file's Redis prefix. */
async function redisKeys(): Promise<string[]> {
  const admin = new Redis(redisUrl());
  try {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    return keys.sort();
  } finally {
    admin.disconnect();
  }
}

/** The statuses of driver_speed:speed for `driverIds`, read on the open server (5 at a time: its entity limit). */
async function speedStatuses(driverIds: number[]): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < driverIds.length; i += 5) {
    const res = await post(open, '/get-online-features', { features: ['driver_speed:speed'], entities: { driver_id: driverIds.slice(i, i + 5) } });
    expect(res.status).toBe(200);
    out.push(...res.json.results[1].statuses);
  }
  return out;
}

/** No key text anywhere in what the server said. */
function expectNoSecret(answer: Answer): void {
  for (const secret of SECRETS) {
    expect(answer.text).not.toContain(secret);
    for (const [name, value] of answer.headers) expect(`${name}: ${value}`).not.toContain(secret);
  }
}

describe('write routes need a key when LARDER_API_KEYS is set', () => {
  it('POST /push: 401 without a key (or with one in the query string, another header or another scheme), 403 with a wrong one, 200 with either key', async () => {
    const body = { push_source_name: 'trips', df: tripsDf([101], T0) };
    const none = await post(open, '/push', body);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="larder"');
    expect(none.json).toEqual({ error: 'authorization: this endpoint writes and needs an API key (Authorization: Bearer <key>)', detail: { field: 'authorization' } });
    // A key anywhere but the Authorization header is no key.
    expect((await post(open, `/push?api_key=${KEY}`, body)).status).toBe(401);
    expect((await post(open, '/push', body, { ...JSON_TYPE, 'x-api-key': KEY })).status).toBe(401);
    expect((await post(open, '/push', body, { ...JSON_TYPE, authorization: KEY })).status).toBe(401);
    expect((await post(open, '/push', body, { ...JSON_TYPE, authorization: `Basic ${KEY}` })).status).toBe(401);
    expect((await post(open, '/push', body, { ...JSON_TYPE, authorization: `Bearer ${KEY} extra` })).status).toBe(401);
    const wrong = await post(open, '/push', body, auth(WRONG_KEY));
    expect(wrong.status).toBe(403);
    expect(wrong.json).toEqual({ error: 'authorization: the API key is not valid', detail: { field: 'authorization' } });
    // A key that differs from a configured one only by its last character, or is a prefix of one.
    expect((await post(open, '/push', body, auth(`${KEY.slice(0, -1)}5`))).status).toBe(403);
    expect((await post(open, '/push', body, auth(KEY.slice(0, 10)))).status).toBe(403);
    expect(await speedStatuses([101])).toEqual(['NOT_FOUND']);
    expect((await post(open, '/push', body, auth(KEY))).status).toBe(200);
    expect((await post(open, '/push', { ...body, df: tripsDf([102], T0) }, { ...JSON_TYPE, authorization: `bearer\t${OTHER_KEY}` })).status).toBe(200);
    expect(await speedStatuses([101, 102])).toEqual(['PRESENT', 'PRESENT']);
  });

  it('POST /push checks the key before the body: a malformed body without a key is a 401, an Arrow push too', async () => {
    expect((await post(open, '/push', '{not json')).status).toBe(401);
    expect((await post(open, '/push', new Uint8Array([1, 2, 3]), { 'content-type': 'text/csv' })).status).toBe(401);
    const arrowPush = await post(open, '/push?push_source_name=trips', tripsArrow([103], T0), { 'content-type': ARROW });
    expect(arrowPush.status).toBe(401);
    expect((await post(open, '/push?push_source_name=trips', tripsArrow([103], T0), { 'content-type': ARROW, authorization: `Bearer ${WRONG_KEY}` })).status).toBe(403);
    expect(await speedStatuses([103])).toEqual(['NOT_FOUND']);
    expect((await post(open, '/push?push_source_name=trips', tripsArrow([103], T0), { 'content-type': ARROW, authorization: `Bearer ${KEY}` })).status).toBe(200);
    expect(await speedStatuses([103])).toEqual(['PRESENT']);
  });

  it('POST /review-queue/{model}/{id}/label: 401, 403, then 200 and the label written; refused ones leave the item queued', async () => {
    const [id] = await open.context.reviewQueue.enqueue([
      { model: 'fraud', version: '1', requestId: 'req-1', at: T0, entity: { driver_id: 1 }, inputs: null, prediction: 1, probability: 0.55 },
    ]);
    const path = `/review-queue/fraud/${id}/label`;
    const none = await post(open, path, { label: 1 });
    expect(none.status).toBe(401);
    expect(none.json.error).toMatch(/^authorization: this endpoint writes/);
    expect((await post(open, path, { label: 1 }, auth(WRONG_KEY))).status).toBe(403);
    expect(await open.context.reviewQueue.size('fraud')).toBe(1);
    expect((await offlineFiles()).filter((f) => f.startsWith('_labels'))).toEqual([]);
    const labelled = await post(open, path, { label: 1, reviewer: 'ana' }, auth(KEY));
    expect(labelled.status).toBe(200);
    expect(labelled.json.label).toMatchObject({ reviewId: id, model: 'fraud', label: 1, reviewer: 'ana' });
    expect(await open.context.reviewQueue.size('fraud')).toBe(0);
    expect((await offlineFiles()).filter((f) => f.startsWith(join('_labels', 'fraud')))).toHaveLength(1);
  });

  it('reads stay open by default: online, historical, registry, predict and the review queue answer without a key', async () => {
    const online = await post(open, '/get-online-features', onlineBody(2));
    expect(online.status).toBe(200);
    expect(online.json.results[1].statuses).toEqual(['PRESENT', 'PRESENT']);
    const historical = await post(open, '/get-historical-features', historicalBody(2), { ...JSON_TYPE, accept: 'application/json' });
    expect(historical.status).toBe(200);
    expect(historical.json.df.speed).toEqual([0.5, 1]);
    expect((await get(open, '/registry')).status).toBe(200);
    // No model is registered: past the key check, the model is looked up.
    const predict = await post(open, '/predict/fraud', { entities: { driver_id: [1] } });
    expect(predict.status).toBe(404);
    expect(predict.json.error).toMatch(/^model: no model 'fraud'/);
    expect((await get(open, '/review-queue/fraud')).status).toBe(404);
    expect(open.context.auth).toMatchObject({ enabled: true, protectReads: false });
  });
});

describe('LARDER_PROTECT_READS=true', () => {
  const reads: { name: string; method: 'GET' | 'POST'; path: string; body?: unknown; headers?: Record<string, string>; passes: number }[] = [
    { name: 'POST /get-online-features (hot path)', method: 'POST', path: '/get-online-features', body: onlineBody(1), passes: 200 },
    { name: 'POST /get-online-features?x=1 (hot path, a query)', method: 'POST', path: '/get-online-features?x=1', body: onlineBody(1), passes: 200 },
    { name: 'POST /get-online-features/ (through express)', method: 'POST', path: '/get-online-features/', body: onlineBody(1), passes: 200 },
    { name: 'POST /get-historical-features (JSON)', method: 'POST', path: '/get-historical-features', body: historicalBody(1), headers: { accept: 'application/json' }, passes: 200 },
    { name: 'POST /get-historical-features (Arrow)', method: 'POST', path: '/get-historical-features?features=driver_speed:speed', body: entityArrow([1]), headers: { 'content-type': ARROW }, passes: 200 },
    { name: 'GET /registry', method: 'GET', path: '/registry', passes: 200 },
    // No model registered and an empty queue: past the key, 404 naming the model.
    { name: 'POST /predict/{model} (hot path)', method: 'POST', path: '/predict/fraud', body: { entities: { driver_id: [1] } }, passes: 404 },
    { name: 'GET /review-queue/{model}', method: 'GET', path: '/review-queue/fraud', passes: 404 },
  ];

  for (const r of reads) {
    it(`${r.name}: 401 without a key, 403 with a wrong one, answered with a right one`, async () => {
      const headers = r.headers ?? JSON_TYPE;
      const none = await call(guarded, r.method, r.path, r.body, headers);
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toBe('Bearer realm="larder"');
      expect(none.json).toEqual({ error: 'authorization: this endpoint reads (LARDER_PROTECT_READS is on) and needs an API key (Authorization: Bearer <key>)', detail: { field: 'authorization' } });
      const inQuery = await call(guarded, r.method, `${r.path}${r.path.includes('?') ? '&' : '?'}api_key=${KEY}`, r.body, headers);
      expect(inQuery.status).toBe(401);
      const wrong = await call(guarded, r.method, r.path, r.body, { ...headers, authorization: `Bearer ${WRONG_KEY}` });
      expect(wrong.status).toBe(403);
      const right = await call(guarded, r.method, r.path, r.body, { ...headers, authorization: `Bearer ${OTHER_KEY}` });
      expect(right.status).toBe(r.passes);
      expect(right.json?.detail?.field).not.toBe('authorization');
    });
  }

  it('/predict is refused before any model is read', async () => {
    const before = modelReads;
    expect((await post(guarded, '/predict/fraud', { entities: { driver_id: [1] } })).status).toBe(401);
    expect((await post(guarded, '/predict/not-a-name!', '{broken')).status).toBe(401);
    expect((await post(guarded, '/predict/fraud', { entities: { driver_id: [1] } }, auth(WRONG_KEY))).status).toBe(403);
    expect(modelReads).toBe(before);
    expect((await post(guarded, '/predict/fraud', { entities: { driver_id: [1] } }, auth(KEY))).status).toBe(404);
    expect(modelReads).toBeGreaterThan(before);
  });

  it('a read is refused before its body is parsed or the store asked: a malformed body without a key is a 401', async () => {
    expect((await post(guarded, '/get-online-features', '{not json')).status).toBe(401);
    expect((await post(guarded, '/get-historical-features', '{not json')).status).toBe(401);
    expect((await post(guarded, '/get-online-features', '{not json', auth(KEY))).status).toBe(400);
  });

  it('writes still need the key; /health and /metrics stay open for probes', async () => {
    expect((await post(guarded, '/push', { push_source_name: 'trips', df: tripsDf([201], T0) })).status).toBe(401);
    expect((await post(guarded, '/push', { push_source_name: 'trips', df: tripsDf([201], T0) }, auth(KEY))).status).toBe(200);
    const health = await get(guarded, '/health', {});
    expect(health.status).toBe(200);
    expect(health.json.status).toBe('ok');
    const metrics = await get(guarded, '/metrics', {});
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/larder_http_requests_total|larder_/);
    expect(guarded.context.auth).toMatchObject({ enabled: true, protectReads: true });
  });

  it('without LARDER_API_KEYS the server refuses to start rather than leave reads open', async () => {
    const noKeys = loadConfig({ ...env, LARDER_API_KEYS: '', LARDER_PROTECT_READS: 'true' });
    expect(noKeys.protectReads).toBe(true);
    await expect(startServer({ config: noKeys, port: 0, store, registry, servingLog: false, log: () => {} })).rejects.toThrow(InputError);
    await expect(startServer({ config: noKeys, port: 0, store, registry, servingLog: false, log: () => {} })).rejects.toThrow(/LARDER_PROTECT_READS: .*LARDER_API_KEYS/);
    // The option overrides the config either way.
    await expect(startServer({ config, port: 0, store, registry, protectReads: true, apiKeys: [], log: () => {} })).rejects.toThrow(/LARDER_PROTECT_READS/);
  });
});

describe('keys never show in answers or log lines', () => {
  it('401, 403 and other 4xx answers of the guarded server, with keys in the header, the query string and other headers', async () => {
    const answers: Answer[] = [];
    const push = { push_source_name: 'trips', df: tripsDf([301], T0) };
    const paths = ['/push', '/get-online-features', '/get-historical-features', '/registry', '/predict/fraud', '/review-queue/fraud', '/review-queue/fraud/1/label', '/nowhere', '/health', '/metrics'];
    for (const path of paths) {
      for (const method of ['GET', 'POST', 'PUT']) {
        const body = method === 'GET' ? undefined : push;
        answers.push(await call(guarded, method, `${path}?api_key=${KEY}&token=${OTHER_KEY}`, body));
        answers.push(await call(guarded, method, path, body, { ...JSON_TYPE, authorization: `Bearer ${WRONG_KEY}` }));
        answers.push(await call(guarded, method, path, body, { ...JSON_TYPE, authorization: WRONG_KEY, 'x-api-key': KEY, cookie: `session=${OTHER_KEY}` }));
        answers.push(await call(guarded, method, path, body, { ...JSON_TYPE, authorization: `Bearer ${WRONG_KEY} ${KEY}` }));
      }
    }
    // With a right key, 4xx for other reasons: a malformed body, a bad field, an unknown push
    // source, a body too large, a content type not taken, past a limit, a path not served.
    const keyed = auth(KEY);
    answers.push(await post(guarded, '/get-online-features', '{not json', keyed));
    answers.push(await post(guarded, '/get-online-features', { features: ['driver_speed:nope'], entities: { driver_id: [1] } }, keyed));
    answers.push(await post(guarded, '/push', { push_source_name: 'nope', df: tripsDf([1], T0) }, keyed));
    answers.push(await post(guarded, '/push', { push_source_name: 'trips', df: { ...tripsDf([1], T0), speed: ['fast'] } }, keyed));
    answers.push(await post(guarded, '/push', 'x'.repeat(128 * 1024), keyed));
    answers.push(await post(guarded, '/push', 'a,b', { ...keyed, 'content-type': 'text/csv' }));
    answers.push(await post(guarded, '/get-online-features', onlineBody(6), keyed));
    answers.push(await post(guarded, `/predict/${'x'.repeat(3)}-`, {}, keyed));
    answers.push(await post(guarded, '/review-queue/fraud/none/label', { label: 1 }, keyed));
    answers.push(await get(guarded, `/registry?api_key=${KEY}`, keyed));
    const statuses = new Set(answers.map((a) => a.status));
    for (const s of [400, 401, 403, 404, 405, 413, 415]) expect(statuses).toContain(s);
    for (const a of answers) {
      expect(a.status).toBeGreaterThanOrEqual(200);
      expectNoSecret(a);
      // Every error is JSON naming what is at fault.
      if (a.status >= 400) expect(typeof a.json?.error).toBe('string');
    }
    for (const line of guardedLog) for (const secret of SECRETS) expect(line).not.toContain(secret);
  });

  it('5xx answers and the lines a failing server logs: an online store that does not answer (503), an offline store that cannot be written (500)', async () => {
    // A Redis that takes connections and never answers.
    const sockets = new Set<import('node:net').Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    const lines: string[] = [];
    // The offline folder is a file: every offline write fails.
    const blocked = join(repo, 'offline-is-a-file');
    await writeFile(blocked, 'not a folder');
    const downEnv = { ...env, LARDER_PROTECT_READS: 'true', LARDER_OFFLINE: blocked };
    const down = await startServer({ config: { ...loadConfig(downEnv), online: `redis://127.0.0.1:${port}` }, port: 0, registry, servingLog: false, log: (l) => lines.push(l) });
    const broken = await startServer({ config: loadConfig(downEnv), port: 0, store, registry, servingLog: false, log: (l) => lines.push(l) });
    try {
      const answers: Answer[] = [];
      const keyed = { ...auth(KEY), 'x-api-key': OTHER_KEY };
      answers.push(await post(down, `/get-online-features?api_key=${KEY}`, onlineBody(1), keyed));
      answers.push(await post(down, '/push', { push_source_name: 'trips', df: tripsDf([401], T0), to: 'online' }, keyed));
      answers.push(await post(down, '/predict/fraud', { entities: { driver_id: [1] } }, keyed));
      answers.push(await get(down, `/health?api_key=${KEY}`, keyed));
      answers.push(await post(broken, `/push?api_key=${KEY}`, { push_source_name: 'trips', df: tripsDf([402], T0), to: 'offline' }, keyed));
      answers.push(await post(broken, '/get-historical-features', historicalBody(1), { ...keyed, accept: 'application/json' }));
      expect(answers.map((a) => a.status).slice(0, 2)).toEqual([503, 503]);
      expect(answers[3]!.status).toBe(503);
      expect(answers[4]!.status).toBe(500);
      expect(answers[4]!.json.error).toMatch(/^offline store: /);
      for (const a of answers) expectNoSecret(a);
      // The 500 was logged (with its stack): there are lines to look into.
      expect(lines.some((l) => l.includes('POST /push'))).toBe(true);
      for (const line of lines) for (const secret of SECRETS) expect(line).not.toContain(secret);
    } finally {
      await broken.close();
      await down.close();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
    for (const line of lines) for (const secret of SECRETS) expect(line).not.toContain(secret);
  });
});

describe('request limits', () => {
  it('entities per /get-online-features: the limit passes, one more is a 400 naming it', async () => {
    expect(open.context.limits).toEqual({ maxEntities: 5, maxFeatures: 3, maxDatasetRows: 4, maxPushRows: 6 });
    const at = await post(open, '/get-online-features', onlineBody(5));
    expect(at.status).toBe(200);
    expect(at.json.results[0].values).toHaveLength(5);
    const past = await post(open, '/get-online-features', onlineBody(6));
    expect(past.status).toBe(400);
    expect(past.json).toEqual({ error: 'entities: 6 rows, at most 5 per request (LARDER_MAX_ENTITIES)', detail: { field: 'entities', limit: 5 } });
    // Counted by the longest column, whatever the others.
    const uneven = await post(open, '/get-online-features', { features: ['driver_speed:speed'], entities: { driver_id: ids(6), other: [1] } });
    expect(uneven.json.detail).toEqual({ field: 'entities', limit: 5 });
  });

  it('features per /get-online-features: the limit passes, one more is a 400 naming it', async () => {
    const at = await post(open, '/get-online-features', onlineBody(1, FEATURES));
    expect(at.status).toBe(200);
    expect(at.json.metadata.feature_names).toEqual(['driver_id', 'speed', 'note', 'lane']);
    const past = await post(open, '/get-online-features', onlineBody(1, [...FEATURES, 'driver_speed:speed']));
    expect(past.status).toBe(400);
    expect(past.json).toEqual({ error: 'features: 4 features, at most 3 per request (LARDER_MAX_FEATURES)', detail: { field: 'features', limit: 3 } });
  });

  it('entity rows and features per /get-historical-features, JSON and Arrow', async () => {
    const json = { ...JSON_TYPE, accept: 'application/json' };
    const rows = await post(open, '/get-historical-features', historicalBody(4), json);
    expect(rows.status).toBe(200);
    expect(rows.json.df.speed).toEqual([0.5, 1, 1.5, null]);
    const pastRows = await post(open, '/get-historical-features', historicalBody(5), json);
    expect(pastRows.status).toBe(400);
    expect(pastRows.json).toEqual({ error: 'entities: 5 rows, at most 4 per request (LARDER_MAX_DATASET_ROWS)', detail: { field: 'entities', limit: 4 } });
    expect((await post(open, '/get-historical-features', historicalBody(1, FEATURES), json)).status).toBe(200);
    const pastFeatures = await post(open, '/get-historical-features', historicalBody(1, [...FEATURES, 'driver_speed:note']), json);
    expect(pastFeatures.status).toBe(400);
    expect(pastFeatures.json).toEqual({ error: 'features: 4 features, at most 3 per request (LARDER_MAX_FEATURES)', detail: { field: 'features', limit: 3 } });

    const arrowHeaders = { 'content-type': ARROW, accept: 'application/json' };
    const arrowAt = await post(open, '/get-historical-features?features=driver_speed:speed', entityArrow(ids(4)), arrowHeaders);
    expect(arrowAt.status).toBe(200);
    expect(arrowAt.json.df.speed).toHaveLength(4);
    const arrowPast = await post(open, '/get-historical-features?features=driver_speed:speed', entityArrow(ids(5)), arrowHeaders);
    expect(arrowPast.status).toBe(400);
    expect(arrowPast.json).toEqual({ error: 'body: 5 entity rows, at most 4 per request (LARDER_MAX_DATASET_ROWS)', detail: { field: 'body', limit: 4 } });
    expect((await post(open, `/get-historical-features?features=${FEATURES.join(',')}`, entityArrow(ids(1)), arrowHeaders)).status).toBe(200);
    const arrowFeatures = await post(open, `/get-historical-features?features=${[...FEATURES, 'driver_speed:lane'].join(',')}`, entityArrow(ids(1)), arrowHeaders);
    expect(arrowFeatures.status).toBe(400);
    expect(arrowFeatures.json).toEqual({ error: 'query.features: 4 features, at most 3 per request (LARDER_MAX_FEATURES)', detail: { field: 'query.features', limit: 3 } });
  });

  it('rows per /push, JSON and Arrow: the limit is written, one more is a 400 with nothing written online or offline', async () => {
    const filesBefore = await offlineFiles();
    const keysBefore = await redisKeys();
    const past = await post(open, '/push', { push_source_name: 'trips', df: tripsDf(ids(7, 500), T0), to: 'online_and_offline' }, auth(KEY));
    expect(past.status).toBe(400);
    expect(past.json).toEqual({ error: 'df: 7 rows, at most 6 per push (LARDER_MAX_PUSH_ROWS)', detail: { field: 'df', limit: 6 } });
    const pastArrow = await post(open, '/push?push_source_name=trips&to=online_and_offline', tripsArrow(ids(7, 600), T0), { 'content-type': ARROW, authorization: `Bearer ${KEY}` });
    expect(pastArrow.status).toBe(400);
    expect(pastArrow.json).toEqual({ error: 'body: 7 rows, at most 6 per push (LARDER_MAX_PUSH_ROWS)', detail: { field: 'body', limit: 6 } });
    expect(await offlineFiles()).toEqual(filesBefore);
    expect(await redisKeys()).toEqual(keysBefore);
    expect(await speedStatuses([...ids(7, 500), ...ids(7, 600)])).toEqual(new Array(14).fill('NOT_FOUND'));

    const at = await post(open, '/push', { push_source_name: 'trips', df: tripsDf(ids(6, 500), T0), to: 'online_and_offline' }, auth(KEY));
    expect(at.status).toBe(200);
    expect(at.json.rows).toBe(6);
    const atArrow = await post(open, '/push?push_source_name=trips&to=online_and_offline', tripsArrow(ids(6, 600), T0), { 'content-type': ARROW, authorization: `Bearer ${KEY}` });
    expect(atArrow.status).toBe(200);
    expect(await speedStatuses([...ids(6, 500), ...ids(6, 600)])).toEqual(new Array(12).fill('PRESENT'));
    expect((await offlineFiles()).length).toBeGreaterThan(filesBefore.length);
  });

  it('the defaults: 1,000 entities pass, 1,001 are a 400 naming LARDER_MAX_ENTITIES; options override the config', async () => {
    const defaults = await startServer({ config: loadConfig({ LARDER_REPO: repo, LARDER_ONLINE: redisUrl() }), port: 0, store, registry, servingLog: false, log: () => {} });
    const overridden = await startServer({ config, port: 0, store, registry, servingLog: false, limits: { maxEntities: 2 }, log: () => {} });
    try {
      expect(defaults.context.limits).toEqual(DEFAULT_LIMITS);
      expect(DEFAULT_LIMITS).toEqual({ maxEntities: 1000, maxFeatures: 1000, maxDatasetRows: 1_000_000, maxPushRows: 100_000 });
      const at = await post(defaults, '/get-online-features', onlineBody(1000));
      expect(at.status).toBe(200);
      expect(at.json.results[1].statuses.filter((s: string) => s === 'PRESENT').length).toBeGreaterThanOrEqual(3);
      const past = await post(defaults, '/get-online-features', onlineBody(1001));
      expect(past.status).toBe(400);
      expect(past.json).toEqual({ error: 'entities: 1001 rows, at most 1000 per request (LARDER_MAX_ENTITIES)', detail: { field: 'entities', limit: 1000 } });

      expect(overridden.context.limits).toEqual({ maxEntities: 2, maxFeatures: 3, maxDatasetRows: 4, maxPushRows: 6 });
      expect((await post(overridden, '/get-online-features', onlineBody(2))).status).toBe(200);
      expect((await post(overridden, '/get-online-features', onlineBody(3))).json.detail).toEqual({ field: 'entities', limit: 2 });
    } finally {
      await overridden.close();
      await defaults.close();
    }
    await expect(startServer({ config, port: 0, store, registry, limits: { maxPushRows: 0 }, log: () => {} })).rejects.toThrow(/limits\.maxPushRows/);
  });
});

describe('configuration', () => {
  const base = { LARDER_REPO: '/tmp/larder-security-config' };

  it('defaults: reads open, the default limits', () => {
    const c = loadConfig(base);
    expect(c.protectReads).toBe(false);
    expect({ maxEntities: c.maxEntities, maxFeatures: c.maxFeatures, maxDatasetRows: c.maxDatasetRows, maxPushRows: c.maxPushRows }).toEqual(DEFAULT_LIMITS);
  });

  it('LARDER_PROTECT_READS takes true, false, 1 or 0 and nothing else', () => {
    for (const v of ['true', '1', 'TRUE', ' true ']) expect(loadConfig({ ...base, LARDER_PROTECT_READS: v }).protectReads).toBe(true);
    for (const v of ['false', '0', 'False']) expect(loadConfig({ ...base, LARDER_PROTECT_READS: v }).protectReads).toBe(false);
    for (const v of ['yes', 'on', 'no', '', '2', 'truee']) {
      expect(() => loadConfig({ ...base, LARDER_PROTECT_READS: v })).toThrow(InputError);
      expect(() => loadConfig({ ...base, LARDER_PROTECT_READS: v })).toThrow(`LARDER_PROTECT_READS: expected true, false, 1 or 0, got '${v}'`);
    }
  });

  it('each limit takes a whole number from 1 up, and names itself when it does not', () => {
    const variables = { LARDER_MAX_ENTITIES: 'maxEntities', LARDER_MAX_FEATURES: 'maxFeatures', LARDER_MAX_DATASET_ROWS: 'maxDatasetRows', LARDER_MAX_PUSH_ROWS: 'maxPushRows' } as const;
    for (const [variable, field] of Object.entries(variables)) {
      expect(loadConfig({ ...base, [variable]: '25' })[field]).toBe(25);
      expect(loadConfig({ ...base, [variable]: '1' })[field]).toBe(1);
      for (const bad of ['0', '-1', '1.5', 'abc', '', '1e3', '10 rows', '2000000000']) {
        expect(() => loadConfig({ ...base, [variable]: bad })).toThrow(InputError);
        expect(() => loadConfig({ ...base, [variable]: bad })).toThrow(new RegExp(`^${variable}: expected a whole number from 1 to 1000000000, got '${bad}'$`));
      }
    }
  });
});

describe('the PostgreSQL registry bounds its statements', () => {
  it('an apply stuck on a lock fails with RegistryUnavailableError within the statement timeout, and the registry works after', async () => {
    const db = await createTestDatabase('security_timeout');
    const reg = new PostgresRegistry(db.url, { queryTimeoutMs: 300 });
    const holder = new pg.Client({ connectionString: db.url });
    try {
      const canonical = (await loadCanonicalRepo(repo)).repo;
      expect(await reg.current()).toBeNull();
      await holder.connect();
      // The apply lock (postgres.ts: namespace 'Lard', key 2), held by another session.
      await holder.query('SELECT pg_advisory_lock($1, $2)', [0x4c617264, 2]);
      const began = Date.now();
      const stuck = await reg.apply(canonical).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(stuck).toBeInstanceOf(RegistryUnavailableError);
      expect((stuck as Error).message).toMatch(/statement timeout/);
      expect(Date.now() - began).toBeLessThan(3000);
      await holder.query('SELECT pg_advisory_unlock($1, $2)', [0x4c617264, 2]);
      const applied = await reg.apply(canonical);
      expect(applied.changed).toBe(true);
      expect((await reg.current())?.hash).toBe(applied.version.hash);
    } finally {
      await holder.end().catch(() => undefined);
      await reg.close();
      await db.drop();
    }
  });

  it('a bound must be a positive whole number of ms', () => {
    expect(() => new PostgresRegistry('postgres://postgres@127.0.0.1:5432/test', { queryTimeoutMs: 0 })).toThrow(/queryTimeoutMs/);
  });
});
