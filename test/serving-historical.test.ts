/**
 * `POST /get-historical-features` over HTTP, and online reads, on the embedded store: JSON or
 * Arrow IPC entity rows in, an Arrow IPC stream or JSON columns out, equal to what the library's
 * `getHistoricalFeatures` gives for the same request; bad requests a 4xx naming their field.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as arrow from 'apache-arrow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type LarderConfig } from '../src/config.js';
import { asEpochMs } from '../src/core/time.js';
import { loadDefinitions } from '../src/definitions/loader.js';
import type { Definitions } from '../src/definitions/types.js';
import { materialize } from '../src/materialize/materialize.js';
import { backfill } from '../src/offline/backfill.js';
import { getHistoricalFeatures } from '../src/offline/dataset.js';
import { openDuckDB } from '../src/offline/duckdb.js';
import { FileRegistry } from '../src/registry/file.js';
import { startServer, type RunningServer } from '../src/serving/server.js';

const HOUR = 3_600_000;
const T0 = Math.floor((Date.now() - 30 * HOUR) / HOUR) * HOUR;
const iso = (ms: number): string => new Date(ms).toISOString();
const ARROW = 'application/vnd.apache.arrow.stream';

const DEFINITIONS = `import { entity, featureService, featureView, fileSource, sparse } from 'larder';
export const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
const stats = fileSource({ name: 'stats', path: 'data/stats.parquet', timestampField: 'event_timestamp' });
export const driverStats = featureView({
  name: 'driver_stats', entities: [driver], source: stats, ttl: '2h',
  schema: { conv_rate: 'float64', trips: 'int64', words: sparse(8), seen_at: 'timestamp', label: 'string' },
});
export const driverTrips = featureView({
  name: 'driver_trips', entities: [driver], source: stats,
  aggregations: [{ column: 'trips', functions: ['sum', 'count'], windows: ['3h'] }],
});
export const model = featureService({ name: 'model', features: [driverStats.select('conv_rate', 'words'), driverTrips] });
`;

let repo: string;
let config: LarderConfig;
let defs: Definitions;
let server: RunningServer;

beforeAll(async () => {
  repo = await mkdtemp(join(tmpdir(), 'larder-serving-historical-'));
  await mkdir(join(repo, 'data'));
  await writeFile(join(repo, 'definitions.ts'), DEFINITIONS);
  const db = await openDuckDB();
  try {
    // Drivers 1-3, one row an hour for 6 hours from T0.
    await db.connection.run(
      `COPY (SELECT d::BIGINT AS driver_id, make_timestamptz((${T0}::BIGINT + h * ${HOUR}) * 1000) AS event_timestamp, (d * 10 + h) / 100.0 AS conv_rate,
                    (d * 100 + h)::BIGINT AS trips, struct_pack(indices := [h::INTEGER], "values" := [d::FLOAT]) AS words,
                    make_timestamptz((${T0}::BIGINT + h * ${HOUR} - 60000) * 1000) AS seen_at, 'd' || d || 'h' || h AS label
             FROM range(1, 4) r(d), range(0, 6) s(h))
       TO '${join(repo, 'data', 'stats.parquet')}' (FORMAT parquet)`,
    );
  } finally {
    db.close();
  }
  const home = join(repo, '.larder');
  config = loadConfig({ LARDER_REPO: repo, LARDER_HOME: home });
  defs = await loadDefinitions(repo);
  await backfill({ defs, offlineDir: config.offlineDir, start: asEpochMs(T0 - 24 * HOUR), end: asEpochMs(T0 + 24 * HOUR) });
  server = await startServer({ config, port: 0, log: () => {} });
});

afterAll(async () => {
  await server?.close();
  if (repo) await rm(repo, { recursive: true, force: true });
});

const entities = {
  driver_id: [1, 2, 3, 2, 9],
  event_timestamp: [iso(T0 + 2 * HOUR + 1), iso(T0 + 5 * HOUR), iso(T0 - HOUR), iso(T0 + 9 * HOUR), iso(T0 + 3 * HOUR)],
  request_id: ['a', 'b', 'c', 'd', 'e'],
};
const features = ['driver_stats:conv_rate', 'driver_stats:trips', 'driver_stats:words', 'driver_stats:seen_at', 'driver_stats:label', 'driver_trips:trips_sum_3h', 'driver_trips:trips_count_3h'];

/** A table's rows as plain comparable values. */
const rowsOf = (table: arrow.Table): unknown[] =>
  JSON.parse(JSON.stringify(table.toArray().map((r) => r.toJSON()), (_k, v) => (typeof v === 'bigint' ? `${v}n` : v instanceof arrow.Vector ? Array.from(v) : v)));

async function post(path: string, body: unknown, headers: Record<string, string>): Promise<Response> {
  return fetch(server.url + path, { method: 'POST', headers, body: body instanceof Uint8Array ? body : JSON.stringify(body) });
}

describe('POST /get-historical-features', () => {
  it('JSON entity rows in, an Arrow IPC stream out: the library dataset, types and values', async () => {
    const res = await post('/get-historical-features', { entities, features }, { 'content-type': 'application/json' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(ARROW);
    const table = arrow.tableFromIPC(new Uint8Array(await res.arrayBuffer()));
    const library = await getHistoricalFeatures({ defs, offlineDir: config.offlineDir, entities, features });
    expect(table.schema.fields.map((f) => `${f.name}:${f.type}`)).toEqual(library.schema.fields.map((f) => `${f.name}:${f.type}`));
    expect(table.schema.fields.map((f) => f.name)).toEqual(['driver_id', 'event_timestamp', 'request_id', 'conv_rate', 'trips', 'words', 'seen_at', 'label', 'trips_sum_3h', 'trips_count_3h']);
    expect(rowsOf(table)).toEqual(rowsOf(library));
    expect(table.getChild('conv_rate')!.toArray()[0]).toBe(0.12);
  });

  it('with Accept: application/json, the same dataset as JSON columns', async () => {
    const res = await post('/get-historical-features', { entities, features, full_feature_names: true }, { 'content-type': 'application/json', accept: 'application/json' });
    expect(res.status).toBe(200);
    const { df } = (await res.json()) as { df: Record<string, unknown[]> };
    expect(Object.keys(df)).toEqual([
      'driver_id',
      'event_timestamp',
      'request_id',
      'driver_stats__conv_rate',
      'driver_stats__trips',
      'driver_stats__words',
      'driver_stats__seen_at',
      'driver_stats__label',
      'driver_trips__trips_sum_3h',
      'driver_trips__trips_count_3h',
    ]);
    expect(df.driver_id).toEqual([1, 2, 3, 2, 9]);
    expect(df.event_timestamp).toEqual(entities.event_timestamp);
    expect(df.request_id).toEqual(entities.request_id);
    expect(df.driver_stats__conv_rate).toEqual([0.12, 0.25, null, null, null]);
    expect(df.driver_stats__trips).toEqual([102, 205, null, null, null]);
    expect(df.driver_stats__words).toEqual([{ size: 8, indices: [2], values: [1] }, { size: 8, indices: [5], values: [2] }, null, null, null]);
    expect(df.driver_stats__seen_at).toEqual([iso(T0 + 2 * HOUR - 60_000), iso(T0 + 5 * HOUR - 60_000), null, null, null]);
    expect(df.driver_stats__label).toEqual(['d1h2', 'd2h5', null, null, null]);
    expect(df.driver_trips__trips_count_3h).toEqual([3, 4, 0, 0, 0]);
    expect(df.driver_trips__trips_sum_3h).toEqual([100 + 101 + 102, 202 + 203 + 204 + 205, null, null, null]);
  });

  it('an Arrow IPC stream of entity rows with the selection in the query, and a feature service', async () => {
    const table = new arrow.Table({
      driver_id: arrow.vectorFromArray([1n, 3n], new arrow.Int64()),
      ts: arrow.vectorFromArray([T0 + 4 * HOUR, T0 + HOUR], new arrow.TimestampMillisecond('UTC')),
    });
    const res = await post('/get-historical-features?feature_service=model&full_feature_names=true&timestamp_column=ts', arrow.tableToIPC(table, 'stream'), { 'content-type': ARROW });
    expect(res.status).toBe(200);
    const answer = arrow.tableFromIPC(new Uint8Array(await res.arrayBuffer()));
    const library = await getHistoricalFeatures({ defs, offlineDir: config.offlineDir, entities: table, service: 'model', fullNames: true, timestampColumn: 'ts' });
    expect(answer.schema.fields.map((f) => f.name)).toEqual(['driver_id', 'ts', 'driver_stats__conv_rate', 'driver_stats__words', 'driver_trips__trips_sum_3h', 'driver_trips__trips_count_3h']);
    expect(rowsOf(answer)).toEqual(rowsOf(library));
    const byQuery = await post(`/get-historical-features?features=${encodeURIComponent('driver_stats:trips,driver_stats:label')}&timestamp_column=ts`, arrow.tableToIPC(table, 'stream'), { 'content-type': ARROW, accept: 'application/json' });
    expect(await byQuery.json()).toEqual({ df: { driver_id: [1, 3], ts: [iso(T0 + 4 * HOUR), iso(T0 + HOUR)], trips: [104, 301], label: ['d1h4', 'd3h1'] } });
  });

  const bad: { name: string; body: unknown; path?: string; headers?: Record<string, string>; status: number; field: string; message: RegExp }[] = [
    { name: 'an unknown feature', body: { entities, features: ['driver_stats:nope'] }, status: 400, field: 'features', message: /no feature 'nope'/ },
    { name: 'an unknown service', body: { entities, feature_service: 'nope' }, status: 404, field: 'feature_service', message: /no feature service 'nope' \(defined: model\)/ },
    { name: 'no selection', body: { entities }, status: 400, field: 'features', message: /give the features/ },
    { name: 'features and a service', body: { entities, features, feature_service: 'model' }, status: 400, field: 'features', message: /not both/ },
    { name: 'no entities', body: { features }, status: 400, field: 'entities', message: /missing/ },
    { name: 'no timestamp column', body: { entities: { driver_id: [1] }, features }, status: 400, field: 'entities', message: /no timestamp column 'event_timestamp'/ },
    { name: 'a bad timestamp', body: { entities: { driver_id: [1, 2], event_timestamp: [iso(T0), 'soon'] }, features }, status: 400, field: 'entities.event_timestamp[1]', message: /ISO-8601/ },
    { name: 'a missing join key', body: { entities: { event_timestamp: [iso(T0)] }, features }, status: 400, field: 'entities', message: /no column 'driver_id'/ },
    { name: 'a key of the wrong type', body: { entities: { driver_id: [1, 'x'], event_timestamp: [iso(T0), iso(T0)] }, features }, status: 400, field: 'entities.driver_id[1]', message: /expected a number like the values before it/ },
    { name: 'columns of unequal length', body: { entities: { driver_id: [1, 2], event_timestamp: [iso(T0)] }, features }, status: 400, field: 'entities.event_timestamp', message: /has 1 values, but driver_id has 2/ },
    { name: 'an Arrow body that is not Arrow', body: new Uint8Array([9, 9, 9]), path: '/get-historical-features?features=driver_stats:trips', headers: { 'content-type': ARROW }, status: 400, field: 'body', message: /not an Arrow IPC stream/ },
    { name: 'a bad query flag', body: new Uint8Array([9]), path: '/get-historical-features?features=driver_stats:trips&full_feature_names=maybe', headers: { 'content-type': ARROW }, status: 400, field: 'query.full_feature_names', message: /expected one of/ },
  ];
  it.each(bad)('$name: $status naming $field', async ({ body, path, headers, status, field, message }) => {
    const res = await post(path ?? '/get-historical-features', body, headers ?? { 'content-type': 'application/json' });
    expect(res.status).toBe(status);
    const json = (await res.json()) as { error: string; detail: { field: string } };
    expect(json.error).toMatch(message);
    expect(json.error.startsWith(`${field}: `)).toBe(true);
    expect(json.detail.field).toBe(field);
  });
});

describe('POST /get-online-features on the embedded store', () => {
  it('serves what materialize loaded', async () => {
    const registry = new FileRegistry(join(config.home, 'registry.json'));
    const { store } = server.context;
    await materialize({ defs, offlineDir: config.offlineDir, store, registry, start: asEpochMs(T0), end: asEpochMs(Date.now()), views: ['driver_stats'] });
    const res = await post('/get-online-features', { features: ['driver_stats:label', 'driver_stats:trips'], entities: { driver_id: [1, 2, 9] } }, {});
    expect(res.status).toBe(200);
    // T0 is 30 h ago: every row is past the 2 h TTL at materialization, so none was loaded.
    expect(((await res.json()) as { results: { statuses: string[] }[] }).results[1]!.statuses).toEqual(['NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND']);
  });
});
