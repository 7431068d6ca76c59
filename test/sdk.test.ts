/**
 * The SDK. First its wire format, against a small `node:http` server written here that answers
 * as the HTTP API does (Feast-shaped JSON, Arrow IPC streams, `{ error, detail }` on 4xx/5xx) and
 * records what it was sent: request shapes, headers, auth, batching, error mapping, timeouts and
 * connection reuse. Then end to end against `larder serve` (startServer) on a temp repo, backfilled
 * and materialized into Redis under a prefix of its own.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tableFromArrays, tableFromIPC, tableToIPC, type Table } from 'apache-arrow';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { entity, featureService, featureView, fileSource, sparse } from 'larder';
import {
  LarderClient,
  LarderClientError,
  LarderConnectionError,
  LarderHttpError,
  LarderPushError,
  LarderTimeoutError,
  type FeastOnlineResponse,
} from 'larder/sdk';
import { asEpochMs } from '../src/core/time.js';
import { loadDefinitions } from '../src/definitions/loader.js';
import type { Definitions } from '../src/definitions/types.js';
import { materialize } from '../src/materialize/materialize.js';
import { backfill } from '../src/offline/backfill.js';
import { getHistoricalFeatures } from '../src/offline/dataset.js';
import { openDuckDB } from '../src/offline/duckdb.js';
import { openOnlineStore } from '../src/online/open.js';
import { flattenOnlineResponse, getOnlineFeatures } from '../src/online/online-features.js';
import type { OnlineStore } from '../src/online/store.js';
import { FileRegistry } from '../src/registry/file.js';
import { startServer, type RunningServer } from '../src/serving/server.js';
import { deleteRedisPrefix, redisUrl, uniquePrefix } from './support/services.js';

interface Recorded {
  method: string;
  url: URL;
  headers: IncomingMessage['headers'];
  body: Buffer;
  json?: any;
  socket: Socket;
}

type Handler = (req: Recorded, res: ServerResponse) => unknown;

let server: Server;
let base: string;
let handler: Handler;
let requests: Recorded[] = [];

beforeAll(async () => {
  server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const rec: Recorded = { method: req.method!, url: new URL(req.url!, 'http://stub'), headers: req.headers, body, socket: req.socket };
    if (/json/.test(req.headers['content-type'] ?? '')) rec.json = JSON.parse(body.toString('utf8'));
    requests.push(rec);
    try {
      await handler(rec, res);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `stub: ${(err as Error).message}` }));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(() => {
  requests = [];
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const json = (res: ServerResponse, status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
const arrowBody = (res: ServerResponse, table: Table) => res.writeHead(200, { 'content-type': 'application/vnd.apache.arrow.stream' }).end(tableToIPC(table, 'stream'));

/** What the server answers for `{ driver_id: [1001, 1002, 1003] }`: the second driver unknown, the third expired. */
const ONLINE: FeastOnlineResponse = {
  metadata: { feature_names: ['driver_id', 'conv_rate', 'trips', 'blob'] },
  results: [
    { values: [1001, 1002, 1003], statuses: ['PRESENT', 'PRESENT', 'PRESENT'], event_timestamps: ['1970-01-01T00:00:00Z', '1970-01-01T00:00:00Z', '1970-01-01T00:00:00Z'] },
    { values: [0.5, null, 0.7], statuses: ['PRESENT', 'NOT_FOUND', 'OUTSIDE_MAX_AGE'], event_timestamps: ['2024-01-01T10:00:00Z', '1970-01-01T00:00:00Z', '2023-01-01T00:00:00Z'] },
    { values: [12, null, 3], statuses: ['PRESENT', 'NOT_FOUND', 'OUTSIDE_MAX_AGE'], event_timestamps: ['2024-01-01T10:00:00Z', '1970-01-01T00:00:00Z', '2023-01-01T00:00:00Z'] },
    { values: [Buffer.from([1, 2, 250]).toString('base64'), null, null], statuses: ['PRESENT', 'NOT_FOUND', 'OUTSIDE_MAX_AGE'], event_timestamps: ['2024-01-01T10:00:00Z', '1970-01-01T00:00:00Z', '2023-01-01T00:00:00Z'] },
  ],
};

const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
const source = fileSource({ name: 'stats_source', path: 'data/stats.parquet', timestampField: 'event_timestamp' });
const driverStats = featureView({
  name: 'driver_stats',
  entities: [driver],
  source,
  schema: { conv_rate: 'float64', trips: 'int64', blob: 'bytes', words: sparse(8) },
});
const driverModel = featureService({ name: 'driver_model_v1', features: [driverStats.select('conv_rate', 'trips', 'blob')] });

describe('getOnlineFeatures', () => {
  it('sends Feast’s body and turns the columns into rows, non-PRESENT values as null', async () => {
    handler = (_req, res) => json(res, 200, ONLINE);
    const client = new LarderClient({ url: base, apiKey: 'k-123' });
    const rows = await client.getOnlineFeatures({ features: [driverStats.select('conv_rate', 'trips', 'blob')], entities: [{ driver_id: 1001 }, { driver_id: 1002 }, { driver_id: 1003 }] });

    const [req] = requests;
    expect(req!.method).toBe('POST');
    expect(req!.url.pathname).toBe('/get-online-features');
    expect(req!.headers.authorization).toBe('Bearer k-123');
    expect(req!.headers['content-type']).toBe('application/json');
    expect(req!.headers.accept).toBe('application/json');
    expect(req!.json).toEqual({
      features: ['driver_stats:conv_rate', 'driver_stats:trips', 'driver_stats:blob'],
      entities: { driver_id: [1001, 1002, 1003] },
      full_feature_names: false,
    });
    // Bytes typed by the definitions arrive as base64 and become bytes.
    expect(rows).toEqual([
      { driver_id: 1001, conv_rate: 0.5, trips: 12, blob: new Uint8Array([1, 2, 250]) },
      { driver_id: 1002, conv_rate: null, trips: null, blob: null },
      { driver_id: 1003, conv_rate: null, trips: null, blob: null },
    ]);
    expect(Object.keys(rows[0]!)).toEqual(['driver_id', 'conv_rate', 'trips', 'blob']);
  });

  it('sends a service definition by name, names as given, whole views as all their features', async () => {
    handler = (_req, res) => json(res, 200, ONLINE);
    const client = new LarderClient({ url: `${base}/` });
    await client.getOnlineFeatures({ service: driverModel, entities: { driver_id: [1001, 1002, 1003] }, fullNames: true });
    await client.getOnlineFeatures({ service: 'driver_model_v1', entities: { driver_id: [1001, 1002, 1003] } });
    const rows = await client.getOnlineFeatures({ features: ['driver_stats:conv_rate', driverStats], entities: { driver_id: [1001n, 1002, '1003'] } });

    expect(requests.map((r) => r.json)).toEqual([
      { feature_service: 'driver_model_v1', entities: { driver_id: [1001, 1002, 1003] }, full_feature_names: true },
      { feature_service: 'driver_model_v1', entities: { driver_id: [1001, 1002, 1003] }, full_feature_names: false },
      {
        features: ['driver_stats:conv_rate', 'driver_stats:conv_rate', 'driver_stats:trips', 'driver_stats:blob', 'driver_stats:words'],
        entities: { driver_id: [1001, 1002, '1003'] },
        full_feature_names: false,
      },
    ]);
    // No API key, no Authorization header.
    expect(requests.every((r) => r.headers.authorization === undefined)).toBe(true);
    expect(rows[0]!.conv_rate).toBe(0.5);
  });

  it('decodes bytes under full names too, and leaves them base64 for names given as strings', async () => {
    const full: FeastOnlineResponse = { ...ONLINE, metadata: { feature_names: ['driver_id', 'driver_stats__conv_rate', 'driver_stats__trips', 'driver_stats__blob'] } };
    handler = (_req, res) => json(res, 200, full);
    const client = new LarderClient({ url: base });
    const typed = await client.getOnlineFeatures({ service: driverModel, entities: { driver_id: [1001, 1002, 1003] }, fullNames: true });
    expect(typed[0]!.driver_stats__blob).toEqual(new Uint8Array([1, 2, 250]));
    const untyped = await client.getOnlineFeatures({ features: ['driver_stats:blob'], entities: { driver_id: [1001, 1002, 1003] }, fullNames: true });
    expect(untyped[0]!.driver_stats__blob).toBe('AQL6');
  });

  it('answers the Feast response as is with raw: true, and statuses with getOnlineFeaturesWithStatus', async () => {
    handler = (_req, res) => json(res, 200, ONLINE);
    const client = new LarderClient({ url: base });
    const raw = await client.getOnlineFeatures({ service: driverModel, entities: { driver_id: [1001, 1002, 1003] }, raw: true });
    expect(raw).toEqual(ONLINE);

    const withStatus = await client.getOnlineFeaturesWithStatus({ service: driverModel, entities: { driver_id: [1001, 1002, 1003] } });
    expect(withStatus[1]).toEqual({
      values: { driver_id: 1002, conv_rate: null, trips: null, blob: null },
      statuses: { driver_id: 'PRESENT', conv_rate: 'NOT_FOUND', trips: 'NOT_FOUND', blob: 'NOT_FOUND' },
      eventTimestamps: { driver_id: '1970-01-01T00:00:00Z', conv_rate: '1970-01-01T00:00:00Z', trips: '1970-01-01T00:00:00Z', blob: '1970-01-01T00:00:00Z' },
    });
    expect(withStatus[2]!.statuses.trips).toBe('OUTSIDE_MAX_AGE');
    expect(withStatus[2]!.eventTimestamps.trips).toBe('2023-01-01T00:00:00Z');
    expect(withStatus[0]!.values.blob).toEqual(new Uint8Array([1, 2, 250]));
  });

  it('gives no rows for no entities, and rejects a response that is not Feast-shaped', async () => {
    handler = (_req, res) => json(res, 200, { metadata: { feature_names: ['driver_id', 'conv_rate'] }, results: [{ values: [], statuses: [], event_timestamps: [] }, { values: [], statuses: [], event_timestamps: [] }] });
    const client = new LarderClient({ url: base });
    expect(await client.getOnlineFeatures({ features: ['driver_stats:conv_rate'], entities: { driver_id: [] } })).toEqual([]);

    handler = (_req, res) => json(res, 200, { metadata: { feature_names: ['driver_id', 'conv_rate'] }, results: [{ values: [1] }] });
    await expect(client.getOnlineFeatures({ features: ['driver_stats:conv_rate'], entities: { driver_id: [1] } })).rejects.toThrow(
      'POST /get-online-features: unexpected response: 2 feature names but 1 results',
    );
    handler = (_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>proxy</html>');
    await expect(client.getOnlineFeatures({ features: ['driver_stats:conv_rate'], entities: { driver_id: [1] } })).rejects.toThrow(/unexpected response: not JSON: <html>proxy/);
  });

  it('refuses features and service together, or neither, before sending anything', async () => {
    const client = new LarderClient({ url: base });
    const both = { service: 'driver_model_v1', features: ['driver_stats:trips'], entities: { driver_id: [1] } } as any;
    await expect(client.getOnlineFeatures(both)).rejects.toThrow('POST /get-online-features: give exactly one of features and service');
    await expect(client.getOnlineFeatures({ entities: { driver_id: [1] } } as any)).rejects.toThrow('give exactly one of features and service');
    await expect(client.getOnlineFeatures({ features: [42], entities: { driver_id: [1] } } as any)).rejects.toThrow("features[0]: expected 'view:feature'");
    expect(requests).toEqual([]);
  });
});

describe('errors, timeouts and connections', () => {
  it('maps { error, detail } answers to LarderHttpError naming the endpoint and status', async () => {
    handler = (_req, res) => json(res, 400, { error: 'entities.driver_id[1]: expected int64, got "abc"', detail: { field: 'entities.driver_id[1]' } });
    const client = new LarderClient({ url: base });
    const err = await client.getOnlineFeatures({ features: ['driver_stats:trips'], entities: { driver_id: [1, 'abc'] } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LarderHttpError);
    expect(err).toBeInstanceOf(LarderClientError);
    expect(err).toMatchObject({
      status: 400,
      endpoint: 'POST /get-online-features',
      error: 'entities.driver_id[1]: expected int64, got "abc"',
      detail: { field: 'entities.driver_id[1]' },
    });
    expect((err as Error).message).toBe('POST /get-online-features answered 400: entities.driver_id[1]: expected int64, got "abc"');

    for (const [status, error] of [[401, 'missing API key'], [403, 'wrong API key'], [503, 'online store did not answer']] as const) {
      handler = (_req, res) => json(res, status, { error });
      const e = await client.push('weld_readings', [{ weld_id: 'w1' }]).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(LarderPushError);
      expect(e).toMatchObject({ status, rowsPushed: 0 });
      expect((e as LarderPushError).cause).toMatchObject({ status, error, detail: undefined });
    }

    // A body that is not JSON (a proxy's page) still gives the status and its text.
    handler = (_req, res) => res.writeHead(502, { 'content-type': 'text/plain' }).end('Bad Gateway from proxy');
    await expect(client.registry()).rejects.toMatchObject({ status: 502, error: 'Bad Gateway from proxy', message: 'GET /registry answered 502: Bad Gateway from proxy' });
  });

  it('times out a call that gets no answer, and one whose answer stalls, within the timeout', async () => {
    const stalled: ServerResponse[] = [];
    handler = (req, res) => {
      stalled.push(res);
      // Headers and half a body, then nothing, for the second kind.
      if (req.url.pathname === '/registry') res.writeHead(200, { 'content-type': 'application/json' }).write('{"views":');
    };
    const client = new LarderClient({ url: base, timeoutMs: 300 });
    let started = Date.now();
    const err = await client.health().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LarderTimeoutError);
    expect((err as Error).message).toBe('GET /health: no answer within 300 ms');
    expect(Date.now() - started).toBeLessThan(2000);

    started = Date.now();
    await expect(client.registry({ timeoutMs: 150 })).rejects.toThrow('GET /registry: no answer within 150 ms');
    expect(Date.now() - started).toBeLessThan(2000);
    for (const res of stalled) res.destroy();
  });

  it('passes a caller’s abort through as the abort', async () => {
    const held: ServerResponse[] = [];
    handler = (_req, res) => held.push(res);
    const client = new LarderClient({ url: base });
    const controller = new AbortController();
    const call = client.health({ signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await expect(call).rejects.toMatchObject({ name: 'AbortError' });
    for (const res of held) res.destroy();
  });

  it('sends a read again when its kept-alive connection was closed under it, never a write', async () => {
    handler = (_req, res) => json(res, 200, ONLINE);
    const client = new LarderClient({ url: base });
    await client.getOnlineFeatures({ features: ['driver_stats:trips'], entities: { driver_id: [1001, 1002, 1003] } });
    // The server drops the next request's connection without answering, as a server closing an
    // idle connection while the client reuses it does.
    let dropped = 0;
    handler = (req, res) => (dropped++ === 0 ? req.socket.destroy() : json(res, 200, ONLINE));
    const rows = await client.getOnlineFeatures({ features: ['driver_stats:trips'], entities: { driver_id: [1001, 1002, 1003] } });
    expect(rows).toHaveLength(3);
    expect(dropped).toBe(2);

    dropped = 0;
    handler = (req, res) => (dropped++ === 0 ? req.socket.destroy() : json(res, 200, {}));
    const err = (await client.push('weld_readings', [{ weld_id: 'w1' }]).catch((e: unknown) => e)) as LarderPushError;
    expect(err.cause).toBeInstanceOf(LarderConnectionError);
    expect((err.cause as Error).message).toMatch(/could not reach .* \(UND_ERR_SOCKET\)/);
    expect(dropped).toBe(1);
  });

  it('says which server it could not reach', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const client = new LarderClient({ url: `http://127.0.0.1:${port}` });
    const err = await client.health().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LarderConnectionError);
    expect((err as Error).message).toMatch(new RegExp(`^GET /health: could not reach http://127.0.0.1:${port}/health: fetch failed \\(ECONNREFUSED\\)`));
  });

  it('keeps connections alive: many sequential calls over one or two sockets', async () => {
    handler = (_req, res) => json(res, 200, { status: 'ok' });
    const client = new LarderClient({ url: base });
    for (let i = 0; i < 20; i++) await client.health();
    // undici hands a socket back to its pool a tick after the body ends, so a call made at once
    // may open a second one; after that the two are reused.
    const used = new Set(requests.map((r) => r.socket));
    expect(used.size).toBeLessThanOrEqual(2);
    // Error answers are read to the end too, so their connections are reused as well.
    handler = (_req, res) => json(res, 404, { error: 'no such model' });
    for (let i = 0; i < 10; i++) await client.predict('nope', { review_id: ['r1'] }).catch(() => {});
    expect(new Set(requests.map((r) => r.socket)).size).toBeLessThanOrEqual(2);
  });

  it('keeps a base path, and rejects a URL that is not http(s)', async () => {
    handler = (_req, res) => json(res, 200, { version: 'unapplied', hash: null, appliedAt: null, repo: {} });
    await new LarderClient({ url: `${base}/larder/` }).registry();
    expect(requests[0]!.url.pathname).toBe('/larder/registry');
    expect(() => new LarderClient({ url: 'localhost:6566' })).toThrow('LarderClient: url must be an http(s) URL, got "localhost:6566"');
    expect(() => new LarderClient({ url: base, timeoutMs: 0 })).toThrow('timeoutMs must be a positive number, got 0');
  });
});

describe('getHistoricalFeatures', () => {
  const answer = tableFromArrays({ driver_id: BigInt64Array.from([1001n, 1002n]), conv_rate: Float64Array.from([0.5, NaN]) });

  it('posts JSON columns and reads the Arrow IPC answer into a Table', async () => {
    handler = (_req, res) => arrowBody(res, answer);
    const client = new LarderClient({ url: base, apiKey: 'k' });
    const table = await client.getHistoricalFeatures({
      service: driverModel,
      entities: [
        { driver_id: 1001, event_timestamp: new Date('2024-01-01T10:00:00Z'), label: 1 },
        { driver_id: 1002, event_timestamp: new Date('2024-01-02T10:00:00Z') },
      ],
      fullNames: true,
      timestampColumn: 'event_timestamp',
    });
    const [req] = requests;
    expect(req!.url.pathname).toBe('/get-historical-features');
    expect(req!.headers.accept).toBe('application/vnd.apache.arrow.stream');
    expect(req!.headers.authorization).toBe('Bearer k');
    expect(req!.json).toEqual({
      feature_service: 'driver_model_v1',
      entities: { driver_id: [1001, 1002], event_timestamp: ['2024-01-01T10:00:00.000Z', '2024-01-02T10:00:00.000Z'], label: [1, null] },
      full_feature_names: true,
      timestamp_column: 'event_timestamp',
    });
    expect(table.numRows).toBe(2);
    expect(table.schema.fields.map((f) => f.name)).toEqual(['driver_id', 'conv_rate']);
    expect(table.getChild('driver_id')!.get(1)).toBe(1002n);
  });

  it('sends an Arrow table as an IPC stream with the selection in the query', async () => {
    handler = (req, res) => {
      // The stub reads the entity rows back and answers them with a feature column.
      const entities = tableFromIPC(req.body);
      arrowBody(res, tableFromArrays({ driver_id: entities.getChild('driver_id')!.toArray(), trips: Int32Array.from({ length: entities.numRows }, (_, i) => i * 10) }));
    };
    const client = new LarderClient({ url: base });
    const entities = tableFromArrays({ driver_id: Int32Array.from([7, 8, 9]), event_timestamp: Float64Array.from([1, 2, 3]) });
    const table = await client.getHistoricalFeatures({ features: [driverStats.select('trips'), 'driver_stats:conv_rate'], entities, fullNames: true });
    const [req] = requests;
    expect(req!.headers['content-type']).toBe('application/vnd.apache.arrow.stream');
    expect(Object.fromEntries(req!.url.searchParams)).toEqual({ features: 'driver_stats:trips,driver_stats:conv_rate', full_feature_names: 'true' });
    expect(tableFromIPC(req!.body).numRows).toBe(3);
    expect([...table.getChild('trips')!]).toEqual([0, 10, 20]);

    await client.getHistoricalFeatures({ service: 'driver_model_v1', entities, timestampColumn: 'ts' });
    expect(Object.fromEntries(requests[1]!.url.searchParams)).toEqual({ feature_service: 'driver_model_v1', timestamp_column: 'ts' });
  });

  it('refuses an answer that is not an Arrow stream', async () => {
    handler = (_req, res) => json(res, 200, { df: { driver_id: [1] } });
    const client = new LarderClient({ url: base });
    await expect(client.getHistoricalFeatures({ service: 'x', entities: { driver_id: [1] } })).rejects.toThrow(
      "POST /get-historical-features: unexpected response: expected application/vnd.apache.arrow.stream, got 'application/json'",
    );
  });
});

describe('push', () => {
  const readings = Array.from({ length: 2500 }, (_, i) => ({ weld_id: `w${i % 7}`, amplitude: i / 10, event_timestamp: new Date(Date.UTC(2024, 0, 1) + i * 1000) }));

  it('sends rows as df columns in ordered batches, dates as ISO strings', async () => {
    handler = (_req, res) => json(res, 200, { status: 'ok' });
    const client = new LarderClient({ url: base, apiKey: 'writer' });
    const result = await client.push('weld_readings', readings, { to: 'online_and_offline' });
    expect(result).toEqual({ rows: 2500, batches: 3 });
    expect(requests.map((r) => r.json.df.weld_id.length)).toEqual([1000, 1000, 500]);
    expect(requests.every((r) => r.url.pathname === '/push' && r.headers.authorization === 'Bearer writer')).toBe(true);
    expect(requests.every((r) => r.json.push_source_name === 'weld_readings' && r.json.to === 'online_and_offline')).toBe(true);
    // In order, nothing lost or repeated.
    expect(requests.flatMap((r) => r.json.df.amplitude)).toEqual(readings.map((r) => r.amplitude));
    expect(requests[0]!.json.df.event_timestamp[1]).toBe('2024-01-01T00:00:01.000Z');
    expect(Object.keys(requests[2]!.json)).toEqual(['push_source_name', 'df', 'to']);
  });

  it('sends columns as they are, with Feast’s default target, and one batch at a time', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    handler = async (_req, res) => {
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      await new Promise((resolve) => setTimeout(resolve, 5));
      inFlight--;
      json(res, 200, {});
    };
    const client = new LarderClient({ url: base });
    const result = await client.push('weld_readings', { weld_id: ['a', 'b', 'c', 'd', 'e'], amplitude: [1, 2, 3, 4, 5] }, { batchSize: 2 });
    expect(result).toEqual({ rows: 5, batches: 3 });
    expect(maxInFlight).toBe(1);
    // Bytes (Buffer or Uint8Array) travel as base64, bigints as numbers when exact.
    await client.push('blobs', [{ id: 2n ** 60n, small: 7n, blob: Buffer.from('hi'), raw: new Uint8Array([0, 255]) }]);
    expect(requests.at(-1)!.json.df).toEqual({ id: ['1152921504606846976'], small: [7], blob: ['aGk='], raw: ['AP8='] });
    requests = requests.slice(0, 3);
    expect(requests.map((r) => r.json)).toEqual([
      { push_source_name: 'weld_readings', df: { weld_id: ['a', 'b'], amplitude: [1, 2] }, to: 'online' },
      { push_source_name: 'weld_readings', df: { weld_id: ['c', 'd'], amplitude: [3, 4] }, to: 'online' },
      { push_source_name: 'weld_readings', df: { weld_id: ['e'], amplitude: [5] }, to: 'online' },
    ]);
    expect(await client.push('weld_readings', [])).toEqual({ rows: 0, batches: 0 });
    await expect(client.push('weld_readings', { weld_id: ['a'], amplitude: [1, 2] })).rejects.toThrow('rows.amplitude: 2 values, but rows.weld_id has 1');
  });

  it('stops at a rejected batch and says how many rows landed', async () => {
    handler = (req, res) => (req.json.df.amplitude[0] === 200 ? json(res, 400, { error: 'df.amplitude[3]: expected float32, got "x"', detail: 'detail' }) : json(res, 200, {}));
    const client = new LarderClient({ url: base });
    const rows = Array.from({ length: 500 }, (_, i) => ({ weld_id: 'w', amplitude: i }));
    const err = (await client.push('weld_readings', rows, { batchSize: 100 }).catch((e: unknown) => e)) as LarderPushError;
    expect(err).toBeInstanceOf(LarderPushError);
    expect(err).toMatchObject({ rowsPushed: 200, totalRows: 500, batch: 2, status: 400, pushSource: 'weld_readings' });
    expect(err.message).toBe(
      "push 'weld_readings': batch 3 failed after 200 of 500 rows landed: POST /push answered 400: df.amplitude[3]: expected float32, got \"x\" (detail)",
    );
    expect(err.cause).toBeInstanceOf(LarderHttpError);
    expect(requests).toHaveLength(3);

    // A caller's abort mid-push says the same.
    const controller = new AbortController();
    handler = (req, res) => {
      if (req.json.df.amplitude[0] === 300) controller.abort();
      json(res, 200, {});
    };
    const aborted = (await client.push('weld_readings', rows, { batchSize: 100, signal: controller.signal }).catch((e: unknown) => e)) as LarderPushError;
    expect(aborted).toMatchObject({ name: 'LarderPushError', rowsPushed: 300, batch: 3, status: undefined });
    expect((aborted.cause as Error).name).toBe('AbortError');
    await expect(client.push('weld_readings', rows, { batchSize: 2.5 })).rejects.toThrow('batchSize must be a whole number of rows, got 2.5');
  });

  it('sends an Arrow table as IPC streams, batched, with the source and target in the query', async () => {
    handler = (_req, res) => json(res, 200, {});
    const client = new LarderClient({ url: base });
    const table = tableFromArrays({ weld_id: ['a', 'b', 'c'], amplitude: Float32Array.from([0.5, 1.5, 2.5]) });
    expect(await client.push('weld_readings', table, { to: 'offline', batchSize: 2 })).toEqual({ rows: 3, batches: 2 });
    expect(requests.map((r) => r.headers['content-type'])).toEqual(['application/vnd.apache.arrow.stream', 'application/vnd.apache.arrow.stream']);
    expect(Object.fromEntries(requests[0]!.url.searchParams)).toEqual({ push_source_name: 'weld_readings', to: 'offline' });
    expect(requests.flatMap((r) => [...tableFromIPC(r.body).getChild('weld_id')!])).toEqual(['a', 'b', 'c']);
  });
});

describe('predict, health, registry', () => {
  const predictions = { model: 'review_sentiment', version: '3', predictions: [{ prediction: 1, probability: 0.97, needs_review: false, features: {} }] };

  it('posts entities (bare, wrapped or as rows) or raw inputs to /predict/{model}', async () => {
    handler = (_req, res) => json(res, 200, predictions);
    const client = new LarderClient({ url: base });
    expect(await client.predict('review_sentiment', { review_id: ['r1'] })).toEqual(predictions);
    await client.predict('review_sentiment', { entities: { review_id: ['r1'] } });
    await client.predict('review_sentiment', [{ review_id: 'r1' }]);
    await client.predict('review_sentiment', { inputs: { text: ['Essa sandália é maravilhosa'] } });
    await client.predict('a model/v2', { entities: [{ review_id: 'r9' }] });
    expect(requests.map((r) => r.url.pathname)).toEqual([...Array(4).fill('/predict/review_sentiment'), '/predict/a%20model%2Fv2']);
    expect(requests.map((r) => r.json)).toEqual([
      { entities: { review_id: ['r1'] } },
      { entities: { review_id: ['r1'] } },
      { entities: { review_id: ['r1'] } },
      { inputs: { text: ['Essa sandália é maravilhosa'] } },
      { entities: { review_id: ['r9'] } },
    ]);
  });

  it('reports health as ok or not without throwing on 503, and reads the registry', async () => {
    const client = new LarderClient({ url: base });
    handler = (_req, res) => json(res, 200, { status: 'ok', stores: { online: 'ok' } });
    expect(await client.health()).toEqual({ ok: true, status: 200, body: { status: 'ok', stores: { online: 'ok' } } });
    handler = (_req, res) => json(res, 503, { error: 'online store did not answer within 1000 ms' });
    expect(await client.health()).toEqual({ ok: false, status: 503, body: { error: 'online store did not answer within 1000 ms' } });
    const applied = { version: 'abc', hash: 'abcdef', appliedAt: '2024-01-01T00:00:00.000Z', repo: { entities: [], sources: [], featureViews: [], featureServices: [] } };
    handler = (_req, res) => json(res, 200, applied);
    expect(await client.registry()).toEqual(applied);
    expect(requests.map((r) => `${r.method} ${r.url.pathname} ${r.headers['content-type'] ?? '-'}`)).toEqual(['GET /health -', 'GET /health -', 'GET /registry -']);
  });
});

describe('the SDK package', () => {
  it('imports nothing at runtime but apache-arrow and its own files', async () => {
    const dir = fileURLToPath(new URL('../sdk/', import.meta.url));
    const files = (await readdir(dir)).filter((f) => f.endsWith('.ts'));
    expect(files).toContain('index.ts');
    for (const file of files) {
      const text = await readFile(`${dir}${file}`, 'utf8');
      for (const m of text.matchAll(/^(import|export)\s+(type\s+)?[^;]*?from\s+'([^']+)'/gm)) {
        const [, , typeOnly, spec] = m;
        if (typeOnly) continue;
        // `import { x, type Y }` keeps x at runtime: only relative sdk files and apache-arrow may be named.
        expect(spec === 'apache-arrow' || /^\.\/[\w-]+\.js$/.test(spec!), `${file}: ${m[0]}`).toBe(true);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// End to end: the SDK against the real server

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
// Before the clock (reads judge freshness by it), off whole seconds so no event sits on it.
const END = asEpochMs(Math.floor((Date.now() - 2 * MINUTE) / MINUTE) * MINUTE + 123);
const DRIVERS = Array.from({ length: 12 }, (_, i) => 1001 + i);
/** Two rows per driver: an older and a newer one, values derived from the driver and the row. */
const STATS = DRIVERS.flatMap((d, i) =>
  [0, 1].map((v) => ({ driver_id: d, event: END - (v === 0 ? 5 : 1) * HOUR - i * 1000, conv_rate: ((d % 100) * 10 + v) / 1000, trips: d * 10 + v, label: `d${d}-v${v}` })),
);

const E2E_DEFINITIONS = `import { entity, featureService, featureView, fileSource, pushSource } from 'larder';
export const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
export const sensor = entity({ name: 'sensor', joinKeys: ['sensor_id'] });
export const driverStats = featureView({
  name: 'driver_stats', entities: [driver], ttl: '1d',
  source: fileSource({ name: 'stats_source', path: 'data/stats.parquet', timestampField: 'event_timestamp' }),
  schema: { conv_rate: 'float64', trips: 'int64', label: 'string' },
});
export const driverModelV1 = featureService({ name: 'driver_model_v1', features: [driverStats.select('conv_rate', 'trips')] });
export const sensorPush = pushSource({ name: 'sensor_push', schema: { sensor_id: 'string', temperature: 'float64', state: 'string' }, timestampField: 'event_timestamp' });
export const sensorStats = featureView({ name: 'sensor_stats', entities: [sensor], source: sensorPush, schema: { temperature: 'float64', state: 'string' } });
`;

describe('end to end against larder serve', () => {
  let repo: string;
  let defs: Definitions;
  let store: OnlineStore;
  let registry: FileRegistry;
  let running: RunningServer;
  let prefix: string;
  const KEY = 'e2e-key';

  beforeAll(async () => {
    repo = await mkdtemp(join(tmpdir(), 'larder-sdk-'));
    await mkdir(join(repo, 'data'));
    const db = await openDuckDB();
    try {
      const rows = STATS.map((r) => `(${r.driver_id}::BIGINT, ${r.event}::BIGINT, ${r.conv_rate}::DOUBLE, ${r.trips}::BIGINT, '${r.label}')`).join(', ');
      await db.connection.run(
        `COPY (SELECT driver_id, make_timestamptz(e * 1000) AS event_timestamp, conv_rate, trips, label FROM (VALUES ${rows}) AS t(driver_id, e, conv_rate, trips, label))
         TO '${join(repo, 'data', 'stats.parquet')}' (FORMAT parquet)`,
      );
    } finally {
      db.close();
    }
    await writeFile(join(repo, 'definitions.ts'), E2E_DEFINITIONS);
    defs = await loadDefinitions(repo);
    const offlineDir = join(repo, '.larder', 'offline');
    await backfill({ defs, offlineDir, start: asEpochMs(END - 2 * 24 * HOUR), end: END });
    prefix = uniquePrefix('sdk');
    store = await openOnlineStore(redisUrl(), { prefix });
    registry = new FileRegistry(join(repo, '.larder', 'registry.json'));
    await materialize({ defs, offlineDir, store, registry, end: END, views: ['driver_stats'] });
    running = await startServer({
      config: { repoDir: repo, home: join(repo, '.larder'), registry: `file:${join(repo, '.larder', 'registry.json')}`, offlineDir, online: redisUrl(), port: 0, apiKeys: [KEY], pushFlushMs: 100 },
      port: 0,
      store,
      registry,
      log: () => {},
    });
  }, 120_000);

  afterAll(async () => {
    await running?.close();
    await store?.close();
    await registry?.close();
    if (prefix) {
      await deleteRedisPrefix(prefix);
    }
    if (repo) await rm(repo, { recursive: true, force: true });
  });

  it('reads online rows equal to the server’s values and to the data', async () => {
    const client = new LarderClient({ url: running.url });
    const entities = { driver_id: [...DRIVERS.slice(0, 5), 4242] };
    const rows = await client.getOnlineFeatures({ service: defs.services.get('driver_model_v1')!, entities });
    const latest = (d: number) => STATS.filter((r) => r.driver_id === d).sort((a, b) => b.event - a.event)[0]!;
    expect(rows).toEqual([
      ...DRIVERS.slice(0, 5).map((d) => ({ driver_id: d, conv_rate: latest(d).conv_rate, trips: latest(d).trips })),
      { driver_id: 4242, conv_rate: null, trips: null },
    ]);

    // The same as the server's own read path answers, and the raw response as is.
    const library = await getOnlineFeatures({ defs, store, service: 'driver_model_v1', entities });
    expect(rows).toEqual(flattenOnlineResponse(library));
    const raw = await client.getOnlineFeatures({ service: 'driver_model_v1', entities, raw: true });
    expect(raw.metadata.feature_names).toEqual(['driver_id', 'conv_rate', 'trips']);
    expect(raw.results.map((r) => r.values)).toEqual(library.results.map((r) => r.values));

    const withStatus = await client.getOnlineFeaturesWithStatus({ features: [defs.views.get('driver_stats')!.select('label')], entities, fullNames: true });
    expect(withStatus[0]!.values).toEqual({ driver_id: 1001, driver_stats__label: 'd1001-v1' });
    expect(withStatus.map((r) => r.statuses.driver_stats__label)).toEqual([...Array(5).fill('PRESENT'), 'NOT_FOUND']);
    expect(Date.parse(withStatus[0]!.eventTimestamps.driver_stats__label!)).toBe(latest(1001).event);
  });

  it('answers a bad request with the server’s error and detail', async () => {
    const client = new LarderClient({ url: running.url });
    const err = await client.getOnlineFeatures({ features: ['driver_stats:nope'], entities: { driver_id: [1001] } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LarderHttpError);
    expect((err as LarderHttpError).status).toBe(400);
    expect((err as LarderHttpError).error).toMatch(/nope/);
    expect((err as Error).message).toMatch(/^POST \/get-online-features answered 400: /);
    const bad = await client.getOnlineFeatures({ features: ['driver_stats:trips'], entities: { driver_id: [1001, 'abc'] } }).catch((e: unknown) => e);
    expect(bad).toMatchObject({ status: 400, detail: { field: 'entities.driver_id[1]' } });
  });

  it('gets the point-in-time Table, from JSON columns and from an Arrow table alike', async () => {
    const client = new LarderClient({ url: running.url });
    // Between each driver's two rows: the older values; before both: nulls.
    const times = DRIVERS.map((d, i) => new Date(i % 4 === 3 ? END - 10 * HOUR : END - 3 * HOUR));
    const entities = { driver_id: DRIVERS, event_timestamp: times, note: DRIVERS.map((d) => `n${d}`) };
    const table = await client.getHistoricalFeatures({ features: ['driver_stats:conv_rate', 'driver_stats:label'], entities });
    expect(table.schema.fields.map((f) => f.name)).toEqual(['driver_id', 'event_timestamp', 'note', 'conv_rate', 'label']);
    expect(table.numRows).toBe(DRIVERS.length);
    DRIVERS.forEach((d, i) => {
      const older = STATS.find((r) => r.driver_id === d && r.trips === d * 10)!;
      expect(table.getChild('conv_rate')!.get(i)).toBe(i % 4 === 3 ? null : older.conv_rate);
      expect(table.getChild('label')!.get(i)).toBe(i % 4 === 3 ? null : older.label);
      expect(table.getChild('note')!.get(i)).toBe(`n${d}`);
    });

    // The library computes the same dataset.
    const library = await getHistoricalFeatures({ defs, offlineDir: running.context.offlineDir, features: ['driver_stats:conv_rate', 'driver_stats:label'], entities: { ...entities, event_timestamp: times.map((t) => t.getTime()) } });
    expect([...table.getChild('conv_rate')!]).toEqual([...library.getChild('conv_rate')!]);

    // Entities as an Arrow table go as an IPC stream; the answer is the same.
    const arrowEntities = tableFromArrays({ driver_id: BigInt64Array.from(DRIVERS.map(BigInt)), event_timestamp: times.map((t) => t.getTime()) });
    const fromArrow = await client.getHistoricalFeatures({ service: defs.services.get('driver_model_v1')!, entities: arrowEntities, fullNames: true });
    expect(fromArrow.schema.fields.map((f) => f.name)).toEqual(['driver_id', 'event_timestamp', 'driver_stats__conv_rate', 'driver_stats__trips']);
    expect([...fromArrow.getChild('driver_stats__conv_rate')!]).toEqual([...table.getChild('conv_rate')!]);
  });

  it('pushes in batches with the API key, then reads the rows back online and offline', async () => {
    const t0 = Date.now() - 30_000;
    const readings = Array.from({ length: 25 }, (_, i) => ({ sensor_id: `s${i % 5}`, temperature: 20 + i, state: i % 2 ? 'hot' : 'cold', event_timestamp: new Date(t0 + i * 1000) }));

    // Writes need the key: without it nothing lands.
    const anonymous = new LarderClient({ url: running.url });
    const refused = (await anonymous.push('sensor_push', readings).catch((e: unknown) => e)) as LarderPushError;
    expect(refused).toBeInstanceOf(LarderPushError);
    expect(refused).toMatchObject({ status: 401, rowsPushed: 0, batch: 0 });
    const wrongKey = new LarderClient({ url: running.url, apiKey: 'not-the-key' });
    await expect(wrongKey.push('sensor_push', readings)).rejects.toMatchObject({ status: 403 });

    const client = new LarderClient({ url: running.url, apiKey: KEY });
    expect(await client.push('sensor_push', readings, { to: 'online_and_offline', batchSize: 10 })).toEqual({ rows: 25, batches: 3 });

    const sensorStats = defs.views.get('sensor_stats')!;
    const rows = await client.getOnlineFeatures({ features: [sensorStats], entities: [0, 1, 2, 3, 4, 9].map((i) => ({ sensor_id: `s${i}` })) });
    // Each sensor's last reading (i = 20..24), and nothing for one never pushed.
    expect(rows).toEqual([
      ...[0, 1, 2, 3, 4].map((k) => ({ sensor_id: `s${k}`, temperature: 40 + k, state: (20 + k) % 2 ? 'hot' : 'cold' })),
      { sensor_id: 's9', temperature: null, state: null },
    ]);

    // Datasets see pushed rows within 10 s (CONTRACT s.5).
    const entities = { sensor_id: ['s0', 's1'], event_timestamp: [new Date(t0 + 12_000), new Date(t0 + 60_000)] };
    let table = await client.getHistoricalFeatures({ features: ['sensor_stats:temperature'], entities });
    for (let waited = 0; table.getChild('temperature')!.get(1) === null && waited < 10_000; waited += 250) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      table = await client.getHistoricalFeatures({ features: ['sensor_stats:temperature'], entities });
    }
    // s0 at t0 + 12 s: its reading at i = 10; s1 at t0 + 60 s: its last, i = 21.
    expect([...table.getChild('temperature')!]).toEqual([30, 41]);

    // An Arrow table pushes as an IPC stream.
    const later = tableFromArrays({ sensor_id: ['s3'], temperature: Float64Array.from([99.5]), state: ['molten'], event_timestamp: [new Date(t0 + 40_000).toISOString()] });
    expect(await client.push('sensor_push', later)).toEqual({ rows: 1, batches: 1 });
    const [s3] = await client.getOnlineFeatures({ features: ['sensor_stats:temperature', 'sensor_stats:state'], entities: { sensor_id: ['s3'] } });
    expect(s3).toEqual({ sensor_id: 's3', temperature: 99.5, state: 'molten' });
  });

  it('reports health and the registry', async () => {
    const client = new LarderClient({ url: running.url });
    const health = await client.health();
    expect(health).toMatchObject({ ok: true, status: 200, body: { status: 'ok', online: 'ok', registry: 'ok' } });
    const served = await client.registry();
    expect(served).toMatchObject({ version: 'unapplied', hash: null, appliedAt: null });
    expect(served.repo.featureViews.map((v) => v.name).sort()).toEqual(['driver_stats', 'sensor_stats']);
    expect(served.repo.featureServices.map((v) => v.name)).toEqual(['driver_model_v1']);
  });
});
