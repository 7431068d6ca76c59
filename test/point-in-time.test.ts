/**
 * Point-in-time datasets (CONTRACT s.3): feature files written straight into the offline layout
 * with DuckDB, definitions from the real builders, then the library calls case by case, and a
 * cell-by-cell comparison with a brute-force reading of the contract on random data.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as arrow from 'apache-arrow';
import { InputError } from '../src/core/errors.js';
import { utcDate } from '../src/core/time.js';
import { sparse } from '../src/core/value-types.js';
import { entity, featureService, featureView, fileSource, pushSource } from '../src/definitions/builders.js';
import type { Definitions, FeatureService, FeatureView } from '../src/definitions/types.js';
import { explainDataset, getHistoricalFeatures, writeDataset, type DatasetRequest } from '../src/offline/dataset.js';
import { openDuckDB, sqlString } from '../src/offline/duckdb.js';

type Db = Awaited<ReturnType<typeof openDuckDB>>;
type Cell = string | number | bigint | boolean | null;

const T0 = Date.parse('2024-03-10T12:00:00Z');
const H = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();

const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
const customer = entity({ name: 'customer', joinKeys: ['customer_id'] });
const zone = entity({ name: 'zone', joinKeys: ['zone_id'], valueType: 'int32' });
const source = fileSource({ name: 'unused', path: 'data/unused.parquet', timestampField: 'event_timestamp' });
const driverStats = featureView({ name: 'driver_stats', entities: [driver], source, ttl: '2h', schema: { conv_rate: 'float64', trips: 'int64' } });
const driverLifetime = featureView({ name: 'driver_lifetime', entities: [driver], source, schema: { rate: 'float64', rating: 'float32' } });
const customerProfile = featureView({
  name: 'customer_profile',
  entities: [customer],
  source,
  ttl: '1d',
  schema: { rate: 'float64', segment: 'string', word_counts: sparse(10), embedding: 'float32[]', joined_at: 'timestamp' },
});
const zoneStats = featureView({ name: 'zone_stats', entities: [zone], source, schema: { demand: 'float64' } });
const welds = entity({ name: 'weld', joinKeys: ['weld_id'] });
const readings = pushSource({ name: 'readings', schema: { weld_id: 'string', amplitude: 'float64' }, timestampField: 'event_timestamp' });
const weldStats = featureView({
  name: 'weld_stats',
  entities: [welds],
  source: readings,
  aggregations: [{ column: 'amplitude', functions: ['count', 'mean', 'last'], windows: ['1m', '10m'] }],
});
const driverModel = featureService({ name: 'driver_model', features: [driverStats.select('trips'), customerProfile.select('segment', 'rate')] });

// Definitions as the loader returns them; each builder value keeps its narrow schema type, hence the casts.
function definitions(views: readonly FeatureView<string, any>[], services: readonly FeatureService<string, any>[] = []): Definitions {
  return {
    entities: new Map([driver, customer, zone, welds].map((e) => [e.name, e])),
    sources: new Map([[source.name, source]]),
    views: new Map(views.map((v) => [v.name, v as unknown as FeatureView])),
    services: new Map(services.map((s) => [s.name, s as unknown as FeatureService])),
    repoDir: tmpdir(),
  };
}
const defs = definitions([driverStats, driverLifetime, customerProfile, zoneStats, weldStats], [driverModel]);

let db: Db;
let dir: string;
let offline: string;

beforeAll(async () => {
  db = await openDuckDB({ threads: 2 });
  await db.connection.run(`SET TimeZone = 'UTC'`);
});
afterAll(() => db.close());
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'larder-pit-'));
  offline = join(dir, 'offline');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const literal = (v: Cell): string => (v === null ? 'NULL' : typeof v === 'string' ? sqlString(v) : String(v));

/** Writes rows to one Parquet file with the given column types. */
async function writeParquet(path: string, columns: readonly (readonly [string, string])[], rows: readonly (readonly Cell[])[]): Promise<void> {
  const select = columns.map(([name, type], i) => `CAST(c${i} AS ${type}) AS "${name}"`).join(', ');
  const values = rows.length
    ? `FROM (VALUES ${rows.map((r) => `(${r.map(literal).join(', ')})`).join(', ')}) AS t(${columns.map((_, i) => `c${i}`).join(', ')})`
    : `FROM (SELECT ${columns.map((_, i) => `NULL AS c${i}`).join(', ')}) AS t WHERE false`;
  await db.connection.run(`COPY (SELECT ${select} ${values}) TO ${sqlString(path)} (FORMAT parquet)`);
}

interface FeatureRow {
  keys: Cell[];
  e: number;
  created?: number | null;
  values: Cell[];
}

/** Feature rows in the offline layout, one file per UTC date of the event time. */
async function writeView(view: string, columns: { keys: [string, string][]; features: [string, string][] }, rows: FeatureRow[], file = 'data.parquet'): Promise<void> {
  const byDate = new Map<string, FeatureRow[]>();
  for (const r of rows) byDate.set(utcDate(r.e), [...(byDate.get(utcDate(r.e)) ?? []), r]);
  for (const [date, part] of byDate) {
    const folder = join(offline, view, `date=${date}`);
    await mkdir(folder, { recursive: true });
    await writeParquet(
      join(folder, file),
      [...columns.keys, ['event_timestamp', 'TIMESTAMPTZ'], ['created_timestamp', 'TIMESTAMPTZ'], ...columns.features],
      part.map((r) => [...r.keys, iso(r.e), r.created === undefined || r.created === null ? null : iso(r.created), ...r.values]),
    );
  }
}

const DRIVER_STATS = { keys: [['driver_id', 'BIGINT']] as [string, string][], features: [['conv_rate', 'DOUBLE'], ['trips', 'BIGINT']] as [string, string][] };
const DRIVER_LIFETIME = { keys: [['driver_id', 'BIGINT']] as [string, string][], features: [['rate', 'DOUBLE'], ['rating', 'FLOAT']] as [string, string][] };
const CUSTOMER_PROFILE = {
  keys: [['customer_id', 'VARCHAR']] as [string, string][],
  features: [
    ['rate', 'DOUBLE'],
    ['segment', 'VARCHAR'],
    ['word_counts', 'STRUCT(indices INTEGER[], "values" FLOAT[])'],
    ['embedding', 'FLOAT[]'],
    ['joined_at', 'TIMESTAMPTZ'],
  ] as [string, string][],
};

const request = (entities: DatasetRequest['entities'], features: string[], extra: Partial<DatasetRequest> = {}): DatasetRequest => ({ defs, offlineDir: offline, entities, features, ...extra });

/** A column of an Arrow table as JS values, nulls kept. */
const column = (table: arrow.Table, name: string): unknown[] => {
  const vector = table.getChild(name);
  if (!vector) throw new Error(`no column ${name} (has ${table.schema.fields.map((f) => f.name).join(', ')})`);
  return Array.from({ length: table.numRows }, (_, i) => vector.get(i));
};

describe('point-in-time join', () => {
  it('keeps a row exactly TTL old, drops one 1 ms older, and never looks ahead', async () => {
    await writeView('driver_stats', DRIVER_STATS, [{ keys: [1], e: T0, values: [0.25, 7] }]);
    const entities = { driver_id: [1, 1, 1, 1], event_timestamp: [T0 + 2 * H, T0 + 2 * H + 1, T0, T0 - 1] };
    const table = await getHistoricalFeatures(request(entities, ['driver_stats:conv_rate', 'driver_stats:trips']));
    expect(column(table, 'conv_rate')).toEqual([0.25, null, 0.25, null]);
    expect(column(table, 'trips')).toEqual([7n, null, 7n, null]);
  });

  it('with no TTL takes any older row, from partitions long before the entity rows', async () => {
    await writeView('driver_lifetime', DRIVER_LIFETIME, [
      { keys: [1], e: T0 - 40 * 24 * H, values: [0.5, 4.5] },
      { keys: [2], e: T0 - 24 * H, values: [0.75, 3] },
    ]);
    const table = await getHistoricalFeatures(request({ driver_id: [1, 2], event_timestamp: [iso(T0), iso(T0)] }, ['driver_lifetime:rate', 'driver_lifetime:rating']));
    expect(column(table, 'rate')).toEqual([0.5, 0.75]);
    expect(column(table, 'rating')).toEqual([4.5, 3]);
  });

  it('takes the greatest event time, then the greatest created timestamp, also across push files', async () => {
    await writeView('driver_stats', DRIVER_STATS, [
      { keys: [1], e: T0, created: T0 + 10, values: [0.1, 1] },
      { keys: [1], e: T0 + H, created: T0 + H, values: [0.3, 3] },
      { keys: [2], e: T0, created: T0 + 10, values: [0.6, 6] },
    ]);
    await writeView(
      'driver_stats',
      DRIVER_STATS,
      [
        { keys: [1], e: T0, created: T0 + 20, values: [0.2, 2] }, // pushed later at the same event time: wins
        { keys: [2], e: T0, created: null, values: [0.5, 5] }, // no created timestamp: loses the tie
        { keys: [3], e: T0 - 24 * H, created: T0, values: [0.9, 9] }, // a partition holding only a push
      ],
      'push-0001.parquet',
    );
    const entities = { driver_id: [1, 1, 2, 3], event_timestamp: [T0 + H / 2, T0 + H, T0 + H / 2, T0 - 24 * H + 1] };
    const table = await getHistoricalFeatures(request(entities, ['driver_stats:conv_rate']));
    expect(column(table, 'conv_rate')).toEqual([0.2, 0.3, 0.6, 0.9]);
  });

  it('gives nulls before the first feature row and for unknown keys', async () => {
    await writeView('driver_stats', DRIVER_STATS, [{ keys: [1], e: T0, values: [0.25, 7] }]);
    const entities = { driver_id: [1, 99, null], event_timestamp: [T0 - H, T0, T0] };
    const table = await getHistoricalFeatures(request(entities, ['driver_stats:conv_rate']));
    expect(column(table, 'conv_rate')).toEqual([null, null, null]);
    expect(column(table, 'driver_id')).toEqual([1n, 99n, null]);
  });

  it('keeps duplicate entity rows, in their input order', async () => {
    await writeView('driver_stats', DRIVER_STATS, [
      { keys: [1], e: T0, values: [0.1, 1] },
      { keys: [1], e: T0 + H, values: [0.2, 2] },
      { keys: [2], e: T0, values: [0.3, 3] },
    ]);
    const entities = {
      driver_id: [2, 1, 1, 2, 1, 1],
      event_timestamp: [T0 + H, T0 + H, T0 + 1, T0 + H, T0 + H, T0 - 5],
      row: [0, 1, 2, 3, 4, 5],
    };
    const table = await getHistoricalFeatures(request(entities, ['driver_stats:conv_rate']));
    expect(column(table, 'row')).toEqual([0n, 1n, 2n, 3n, 4n, 5n]);
    expect(column(table, 'conv_rate')).toEqual([0.3, 0.2, 0.1, 0.3, 0.2, null]);
  });

  it('joins views with different join keys in one request, features in request order', async () => {
    await writeView('driver_stats', DRIVER_STATS, [{ keys: [1], e: T0, values: [0.25, 7] }]);
    await writeView('customer_profile', CUSTOMER_PROFILE, [{ keys: ['c1'], e: T0 - H, values: [0.5, 'gold', null, null, null] }]);
    await writeView('zone_stats', { keys: [['zone_id', 'INTEGER']], features: [['demand', 'DOUBLE']] }, [{ keys: [3], e: T0 - 3 * H, values: [9.5] }]);
    const entities = { customer_id: ['c1', 'c1', 'c2'], driver_id: [1, 2, 1], zone_id: [3, 3, 4], event_timestamp: [T0, T0, T0] };
    const table = await getHistoricalFeatures(request(entities, ['customer_profile:segment', 'driver_stats:trips', 'zone_stats:demand', 'customer_profile:rate']));
    expect(table.schema.fields.map((f) => f.name)).toEqual(['customer_id', 'driver_id', 'zone_id', 'event_timestamp', 'segment', 'trips', 'demand', 'rate']);
    expect(column(table, 'segment')).toEqual(['gold', 'gold', null]);
    expect(column(table, 'trips')).toEqual([7n, null, 7n]);
    expect(column(table, 'demand')).toEqual([9.5, 9.5, null]);
    expect(column(table, 'rate')).toEqual([0.5, 0.5, null]);
  });

  it('names features view__feature with full names and refuses a clash of bare names', async () => {
    await writeView('driver_lifetime', DRIVER_LIFETIME, [{ keys: [1], e: T0, values: [0.5, 4] }]);
    await writeView('customer_profile', CUSTOMER_PROFILE, [{ keys: ['c1'], e: T0, values: [0.75, 'gold', null, null, null] }]);
    const entities = { driver_id: [1], customer_id: ['c1'], event_timestamp: [T0] };
    const features = ['driver_lifetime:rate', 'customer_profile:rate'];
    const clash = getHistoricalFeatures(request(entities, features));
    await expect(clash).rejects.toThrow(InputError);
    await expect(clash).rejects.toThrow(/'rate' is a feature of both 'driver_lifetime' and 'customer_profile'.*full names/);
    const table = await getHistoricalFeatures(request(entities, features, { fullNames: true }));
    expect(table.schema.fields.map((f) => f.name)).toEqual(['driver_id', 'customer_id', 'event_timestamp', 'driver_lifetime__rate', 'customer_profile__rate']);
    expect(column(table, 'driver_lifetime__rate')).toEqual([0.5]);
    expect(column(table, 'customer_profile__rate')).toEqual([0.75]);
    // A feature named like an input column would shadow it.
    await expect(getHistoricalFeatures(request({ ...entities, rate: [1] }, ['driver_lifetime:rate']))).rejects.toThrow(/like a column of the entity rows.*full names/);
  });

  it('carries every input column through unchanged, types and order included', async () => {
    await writeView('driver_stats', DRIVER_STATS, [{ keys: [1], e: T0, values: [0.25, 7] }]);
    const input = join(dir, 'entities.parquet');
    await writeParquet(
      input,
      [
        ['label', 'INTEGER'],
        ['driver_id', 'BIGINT'],
        ['note', 'VARCHAR'],
        ['event_timestamp', 'TIMESTAMP'], // zone-less: read as UTC
        ['weight', 'FLOAT'],
        ['rowid', 'BIGINT'], // named like DuckDB's row id
        ['day', 'DATE'],
      ],
      [
        [1, 1, 'a', '2024-03-10 13:00:00', 0.5, 42, '2024-03-10'],
        [0, 2, null, '2024-03-10 13:00:00', null, 7, null],
      ],
    );
    const out = join(dir, 'out.parquet');
    await writeDataset({ ...request(input, ['driver_stats:conv_rate']), out });
    const describe = async (file: string) => (await db.connection.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${sqlString(file)})`)).getRowObjectsJson().map((r) => `${r.column_name} ${r.column_type}`);
    expect(await describe(out)).toEqual([...(await describe(input)), 'conv_rate DOUBLE']);
    const rows = (await db.connection.runAndReadAll(`SELECT * EXCLUDE (conv_rate) FROM read_parquet(${sqlString(out)})`)).getRowsJson();
    const inputRows = (await db.connection.runAndReadAll(`SELECT * FROM read_parquet(${sqlString(input)})`)).getRowsJson();
    expect(rows).toEqual(inputRows);
    const features = (await db.connection.runAndReadAll(`SELECT conv_rate FROM read_parquet(${sqlString(out)})`)).getRowsJson();
    expect(features).toEqual([[0.25], [null]]);
  });

  it('joins string keys as text: a CSV key 0012 stays 0012', async () => {
    await writeView('customer_profile', CUSTOMER_PROFILE, [
      { keys: ['0012'], e: T0, values: [0.5, 'gold', null, null, null] },
      { keys: ['12'], e: T0, values: [0.25, 'tin', null, null, null] },
    ]);
    const csv = join(dir, 'entities.csv');
    await writeFile(csv, 'customer_id,event_timestamp\n0012,2024-03-10T13:00:00Z\n12,2024-03-10T13:00:00Z\n');
    const table = await getHistoricalFeatures(request(csv, ['customer_profile:segment']));
    expect(column(table, 'customer_id')).toEqual(['0012', '12']);
    expect(column(table, 'segment')).toEqual(['gold', 'tin']);
  });

  it('casts int64 keys given as text for the join only; the output keeps the text', async () => {
    await writeView('driver_stats', DRIVER_STATS, [{ keys: [9007199254740993n], e: T0, values: [0.25, 7] }]);
    const table = await getHistoricalFeatures(request({ driver_id: ['9007199254740993'], event_timestamp: [T0] }, ['driver_stats:trips']));
    expect(column(table, 'driver_id')).toEqual(['9007199254740993']);
    expect(column(table, 'trips')).toEqual([7n]);
  });

  it('reads entity rows from JSON columns, CSV, Parquet and Arrow alike', async () => {
    await writeView('driver_stats', DRIVER_STATS, [
      { keys: [1], e: T0, values: [0.1, 1] },
      { keys: [2], e: T0 + H, values: [0.2, 2] },
    ]);
    const ids = [2, 1, 1, 3];
    const times = [T0 + H, T0 + H + 30 * 60_000, T0 - 1, T0 + H];
    const expected = [0.2, 0.1, null, null];
    const csv = join(dir, 'entities.csv');
    await writeFile(csv, `driver_id,event_timestamp\n${ids.map((id, i) => `${id},${iso(times[i]!)}`).join('\n')}\n`);
    const parquet = join(dir, 'entities.parquet');
    await writeParquet(
      parquet,
      [
        ['driver_id', 'BIGINT'],
        ['event_timestamp', 'TIMESTAMPTZ'],
      ],
      ids.map((id, i) => [id, iso(times[i]!)]),
    );
    const table = new arrow.Table({
      driver_id: arrow.vectorFromArray(ids.map(BigInt), new arrow.Int64()),
      event_timestamp: arrow.vectorFromArray(times, new arrow.TimestampMillisecond('UTC')),
    });
    for (const entities of [{ driver_id: ids, event_timestamp: times.map(iso) }, { driver_id: ids, event_timestamp: times }, csv, parquet, table]) {
      const out = await getHistoricalFeatures(request(entities, ['driver_stats:conv_rate']));
      expect(column(out, 'conv_rate'), String(typeof entities === 'string' ? entities : 'in memory')).toEqual(expected);
      expect(column(out, 'event_timestamp')).toEqual(times);
    }
  });

  it('answers a feature service request with its features in order', async () => {
    await writeView('driver_stats', DRIVER_STATS, [{ keys: [1], e: T0, values: [0.25, 7] }]);
    await writeView('customer_profile', CUSTOMER_PROFILE, [{ keys: ['c1'], e: T0, values: [0.5, 'gold', null, null, null] }]);
    const table = await getHistoricalFeatures({ defs, offlineDir: offline, entities: { driver_id: [1], customer_id: ['c1'], event_timestamp: [T0] }, service: 'driver_model' });
    expect(table.schema.fields.map((f) => f.name)).toEqual(['driver_id', 'customer_id', 'event_timestamp', 'trips', 'segment', 'rate']);
    expect(table.toArray().map((r) => r.toJSON())).toEqual([{ driver_id: 1n, customer_id: 'c1', event_timestamp: T0, trips: 7n, segment: 'gold', rate: 0.5 }]);
  });

  it('keeps feature types in Arrow, and gives typed nulls for a view with no files', async () => {
    await writeView('customer_profile', CUSTOMER_PROFILE, [
      { keys: ['c1'], e: T0, values: [0.5, 'gold', "{'indices': [1, 7], 'values': [2.0, 0.5]}", '[0.25, -1.5]', '2023-01-02T03:04:05.006Z'] },
    ]);
    const table = await getHistoricalFeatures(
      request({ customer_id: ['c1', 'c2'], event_timestamp: [T0, T0] }, ['customer_profile:rate', 'customer_profile:segment', 'customer_profile:word_counts', 'customer_profile:embedding', 'customer_profile:joined_at', 'driver_stats:trips'], {
        entities: { customer_id: ['c1', 'c2'], driver_id: [1, 1], event_timestamp: [T0, T0] },
      }),
    );
    const types = Object.fromEntries(table.schema.fields.map((f) => [f.name, String(f.type)]));
    expect(types).toMatchObject({
      customer_id: 'Utf8',
      driver_id: 'Int64',
      event_timestamp: 'Timestamp<MICROSECOND, UTC>',
      rate: 'Float64',
      segment: 'Utf8',
      word_counts: 'Struct<{indices:List<Int32>, values:List<Float32>}>',
      embedding: 'List<Float32>',
      joined_at: 'Timestamp<MICROSECOND, UTC>',
      trips: 'Int64',
    });
    const [first, second] = table.toArray().map((r) => r.toJSON());
    expect(first!.word_counts.toJSON()).toEqual({ indices: expect.anything(), values: expect.anything() });
    expect([...first!.word_counts.indices]).toEqual([1, 7]);
    expect([...first!.word_counts.values]).toEqual([2, 0.5]);
    expect([...first!.embedding]).toEqual([0.25, -1.5]);
    expect(first!.joined_at).toBe(Date.parse('2023-01-02T03:04:05.006Z'));
    expect(first!.trips).toBeNull();
    expect(second).toMatchObject({ rate: null, segment: null, word_counts: null, embedding: null, joined_at: null, trips: null });
  });

  it('reads a feature named like the partition column from the file, not the folder name', async () => {
    const calendar = featureView({ name: 'calendar', entities: [driver], source, schema: { date: 'string' } });
    await writeView('calendar', { keys: [['driver_id', 'BIGINT']], features: [['date', 'VARCHAR']] }, [{ keys: [1], e: T0, values: ['payday'] }]);
    const table = await getHistoricalFeatures({ ...request({ driver_id: [1], event_timestamp: [T0] }, ['calendar:date']), defs: definitions([calendar]) });
    expect(column(table, 'date')).toEqual(['payday']);
  });

  it('reads only the partitions the entity time range needs', async () => {
    await writeView('driver_stats', DRIVER_STATS, [
      { keys: [1], e: Date.parse('2024-03-09T23:30:00Z'), values: [0.25, 7] }, // yesterday, within the 2h TTL of 00:30
      { keys: [1], e: Date.parse('2024-03-12T10:00:00Z'), values: [0.5, 8] }, // after every entity row
    ]);
    // Partitions no entity row can reach hold garbage: reading them would fail.
    for (const date of ['2024-03-01', '2024-03-12']) {
      await mkdir(join(offline, 'driver_stats', `date=${date}`), { recursive: true });
      await writeFile(join(offline, 'driver_stats', `date=${date}`, 'push-9.parquet'), 'not parquet');
    }
    const entities = { driver_id: [1], event_timestamp: ['2024-03-10T00:30:00Z'] };
    const table = await getHistoricalFeatures(request(entities, ['driver_stats:conv_rate']));
    expect(column(table, 'conv_rate')).toEqual([0.25]);
    const sql = await explainDataset(request(entities, ['driver_stats:conv_rate']));
    expect(sql).toContain('date=2024-03-09');
    expect(sql).not.toContain('date=2024-03-12');
    expect(sql).not.toContain('date=2024-03-01');
  });

  it('computes windowed aggregations at each entity row time', async () => {
    const layout = { keys: [['weld_id', 'VARCHAR']] as [string, string][], features: [['amplitude', 'DOUBLE']] as [string, string][] };
    await writeView('weld_stats', layout, [
      { keys: ['w1'], e: T0 - 30_000, created: T0, values: [1] },
      { keys: ['w1'], e: T0 - 30_000, created: T0 + 5, values: [4] }, // same time, pushed later: the last value
      { keys: ['w1'], e: T0 - 5 * 60_000, values: [3] },
      { keys: ['w1'], e: T0 - 20 * 60_000, values: [5] },
      { keys: ['w1'], e: T0 + 1000, values: [100] }, // after the first entity row
      { keys: ['w2'], e: T0 - 2 * 24 * H, values: [7] },
    ]);
    const entities = { weld_id: ['w1', 'w1', 'w2', 'w9'], event_timestamp: [T0, T0 + 1000, T0, T0] };
    const features = ['amplitude_count_1m', 'amplitude_mean_1m', 'amplitude_count_10m', 'amplitude_mean_10m', 'amplitude_last_10m'].map((f) => `weld_stats:${f}`);
    const table = await getHistoricalFeatures(request(entities, features));
    expect(column(table, 'amplitude_count_1m')).toEqual([2n, 3n, 0n, 0n]);
    expect(column(table, 'amplitude_mean_1m')).toEqual([2.5, 35, null, null]);
    expect(column(table, 'amplitude_count_10m')).toEqual([3n, 4n, 0n, 0n]);
    expect(column(table, 'amplitude_mean_10m')).toEqual([8 / 3, 27, null, null]);
    expect(column(table, 'amplitude_last_10m')).toEqual([4, 100, null, null]);
  });

  it('writes Parquet and CSV files whole, and explains the SQL', async () => {
    await writeView('driver_stats', DRIVER_STATS, [{ keys: [1], e: T0, values: [0.25, 7] }]);
    const entities = { driver_id: [1, 2], event_timestamp: [T0, T0] };
    const csv = join(dir, 'sub', 'out.csv');
    expect(await writeDataset({ ...request(entities, ['driver_stats:conv_rate']), out: csv })).toEqual({ rows: 2, file: csv });
    const text = (await db.connection.runAndReadAll(`SELECT * FROM read_csv(${sqlString(csv)})`)).getRowsJson();
    expect(text).toEqual([
      ['1', '2024-03-10 12:00:00+00', 0.25],
      ['2', '2024-03-10 12:00:00+00', null],
    ]);
    expect((await readdir(join(dir, 'sub'))).sort()).toEqual(['out.csv']);
    const sql = await explainDataset(request(entities, ['driver_stats:conv_rate']));
    expect(sql).toMatch(/ASOF LEFT JOIN/);
    expect(sql).toMatch(/INTERVAL \(7200000\) MILLISECOND/);
  });

  it('refuses bad requests with one line naming what is at fault, and writes nothing', async () => {
    await writeView('driver_stats', DRIVER_STATS, [{ keys: [1], e: T0, values: [0.25, 7] }]);
    const out = join(dir, 'out.parquet');
    const cases: [DatasetRequest['entities'], string[], RegExp][] = [
      [{ event_timestamp: [T0] }, ['driver_stats:trips'], /no column 'driver_id', the join key of feature view 'driver_stats'/],
      [{ driver_id: [1] }, ['driver_stats:trips'], /no timestamp column 'event_timestamp'/],
      [{ driver_id: [1, 2], event_timestamp: [T0, 'yesterday'] }, ['driver_stats:trips'], /entities\.event_timestamp\[1\]: expected an ISO-8601 instant/],
      [{ driver_id: [1, 'abc'], event_timestamp: [T0, T0] }, ['driver_stats:trips'], /entities\.driver_id\[1\]: expected a number/],
      [{ driver_id: ['1', 'abc'], event_timestamp: [T0, T0] }, ['driver_stats:trips'], /entities\.driver_id\[1\]: 'abc' is not a int64/],
      [{ driver_id: [1], event_timestamp: [T0] }, ['nope:trips'], /no feature view 'nope'/],
      [{ driver_id: [1], event_timestamp: [T0] }, ['driver_stats:nope'], /feature view 'driver_stats' has no feature 'nope'/],
      [{ driver_id: [1], event_timestamp: [T0] }, ['driver_stats'], /not a feature reference/],
      [join(dir, 'missing.parquet'), ['driver_stats:trips'], /no such file/],
    ];
    for (const [entities, features, message] of cases) {
      const attempt = writeDataset({ ...request(entities, features), out });
      await expect(attempt).rejects.toThrow(InputError);
      await expect(attempt).rejects.toThrow(message);
      const err = await attempt.catch((e: Error) => e);
      expect((err as Error).message.split('\n')).toHaveLength(1);
    }
    const csv = join(dir, 'bad.csv');
    await writeFile(csv, 'driver_id,event_timestamp\n1,2024-03-10T12:00:00Z\n2,soon\n');
    await expect(writeDataset({ ...request(csv, ['driver_stats:trips']), out })).rejects.toThrow(/entities\.event_timestamp\[1\]: 'soon' is not an instant/);
    await expect(writeDataset({ ...request({ driver_id: [1], event_timestamp: [T0] }, ['driver_stats:trips']), out: join(dir, 'out.txt') })).rejects.toThrow(/not a \.parquet or \.csv/);
    await expect(getHistoricalFeatures({ defs, offlineDir: offline, entities: { driver_id: [1], event_timestamp: [T0] }, service: 'nope' })).rejects.toThrow(/no feature service 'nope'/);
    expect(existsSync(out)).toBe(false);
    expect((await readdir(dir)).filter((f) => f.includes('out'))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Random data against a brute-force reading of CONTRACT s.3.

const mulberry32 = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let r = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
  return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
};

interface RandomRow {
  key: number;
  e: number;
  created: number | null;
  value: number | null;
  file: string;
}

/** The feature value for one entity row; several candidates when the contract leaves a tie open. */
function referenceValues(rows: readonly RandomRow[], key: number, t: number, ttl: number): (number | null)[] {
  const eligible = rows.filter((r) => r.key === key && r.e <= t && (ttl === 0 || r.e >= t - ttl));
  if (eligible.length === 0) return [null];
  const created = (r: RandomRow) => r.created ?? -Infinity;
  const maxE = Math.max(...eligible.map((r) => r.e));
  const atMax = eligible.filter((r) => r.e === maxE);
  const maxC = Math.max(...atMax.map(created));
  return atMax.filter((r) => created(r) === maxC).map((r) => r.value);
}

describe('point-in-time join on random data', () => {
  it('matches a brute-force reading of the contract in every cell', async () => {
    const rnd = mulberry32(7);
    const int = (n: number) => Math.floor(rnd() * n);
    const start = Date.parse('2024-05-01T00:00:00Z');
    const span = 4 * 24 * H;
    const ttls = { r_ttl0: 0, r_ttl30m: 30 * 60_000, r_ttl6h: 6 * H };
    const views = Object.entries(ttls).map(([name, ttl]) =>
      featureView({ name, entities: [driver], source, ttl: ttl / 1000, schema: { value: 'float64' } }),
    );
    const rows: RandomRow[] = [];
    const used = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      // Times on whole minutes, so equal event times are common.
      const e = start + int(span / 60_000) * 60_000;
      const key = int(20);
      const day = utcDate(e);
      // data.parquet holds each (key, e) once, as backfill writes it; repeats go to push files,
      // and only on some days, so both the plain and the deduplicating paths run.
      const pushDay = day.endsWith('2') || day.endsWith('4');
      const id = `${key}/${e}`;
      const file = !used.has(id) ? 'data.parquet' : pushDay ? `push-${int(3)}.parquet` : undefined;
      if (!file) continue;
      used.add(id);
      rows.push({ key, e, created: rnd() < 0.15 ? null : start + int(50), value: rnd() < 0.05 ? null : Math.round(rnd() * 1e6) / 1e3, file });
    }
    for (const view of views) {
      for (const file of new Set(rows.map((r) => r.file))) {
        await writeView(
          view.name,
          { keys: [['driver_id', 'BIGINT']], features: [['value', 'DOUBLE']] },
          rows.filter((r) => r.file === file).map((r) => ({ keys: [r.key], e: r.e, created: r.created, values: [r.value] })),
          file,
        );
      }
    }
    const ids: number[] = [];
    const times: number[] = [];
    for (let i = 0; i < 1500; i++) {
      const r = rows[int(rows.length)]!;
      const pick = i % 4;
      ids.push(pick === 3 ? int(23) : r.key); // some unknown keys
      // At a feature row's time, exactly one TTL after it, 1 ms past that, or anywhere.
      const ttl = Object.values(ttls)[int(3)]!;
      times.push(pick === 0 ? r.e : pick === 1 ? r.e + ttl : pick === 2 ? r.e + ttl + 1 : start - H + int(span + 2 * H));
    }
    const localDefs = definitions(views);
    const table = await getHistoricalFeatures({
      defs: localDefs,
      offlineDir: offline,
      entities: { driver_id: ids, event_timestamp: times },
      features: views.map((v) => `${v.name}:value`),
      fullNames: true,
    });
    expect(table.numRows).toBe(ids.length);
    expect(column(table, 'driver_id')).toEqual(ids.map(BigInt));
    expect(column(table, 'event_timestamp')).toEqual(times);
    let hits = 0;
    for (const [name, ttl] of Object.entries(ttls)) {
      const got = column(table, `${name}__value`);
      ids.forEach((id, i) => {
        const want = referenceValues(rows, id, times[i]!, ttl);
        expect(want, `${name} row ${i}: driver ${id} at ${iso(times[i]!)}`).toContain(got[i]);
        if (got[i] !== null) hits++;
      });
    }
    // The data must make the join do real work: most rows find a value.
    expect(hits).toBeGreaterThan(ids.length);
    const sql = await explainDataset({ defs: localDefs, offlineDir: offline, entities: { driver_id: ids, event_timestamp: times }, features: ['r_ttl0:value'] });
    expect(sql).toMatch(/QUALIFY row_number\(\)/);
  });
});

describe('windowed aggregations in a dataset on random data', () => {
  it('match a brute-force reading of the window rule, with events pruned to what rows reach', async () => {
    const rnd = mulberry32(11);
    const int = (n: number) => Math.floor(rnd() * n);
    const start = Date.parse('2024-06-01T00:00:00Z');
    const span = 3 * 24 * H;
    const events: { key: string; e: number; created: number | null; value: number | null }[] = [];
    for (let i = 0; i < 4000; i++) {
      // Bursts: a reading every few seconds around a few hundred instants, so windows fill.
      const burst = start + int(300) * (span / 300);
      events.push({ key: `w${int(4)}`, e: burst + int(20 * 60_000), created: rnd() < 0.3 ? null : start + int(5), value: rnd() < 0.1 ? null : rnd() * 100 });
    }
    const layout = { keys: [['weld_id', 'VARCHAR']] as [string, string][], features: [['amplitude', 'DOUBLE']] as [string, string][] };
    await writeView('weld_stats', layout, events.map((ev) => ({ keys: [ev.key], e: ev.e, created: ev.created, values: [ev.value] })));
    const keys: string[] = [];
    const times: number[] = [];
    for (let i = 0; i < 300; i++) {
      const ev = events[int(events.length)]!;
      keys.push(i % 10 === 0 ? 'w9' : ev.key);
      times.push(i % 3 === 0 ? ev.e : i % 3 === 1 ? ev.e + 60_000 + int(2000) : start + int(span));
    }
    const names = weldStats.aggregatedFeatures!.map((f) => f.name);
    const table = await getHistoricalFeatures(request({ weld_id: keys, event_timestamp: times }, names.map((n) => `weld_stats:${n}`)));
    let nonEmpty = 0;
    for (const f of weldStats.aggregatedFeatures!) {
      const got = column(table, f.name);
      keys.forEach((key, i) => {
        const t = times[i]!;
        const lo = Math.floor((t - f.windowMs) / f.tileMs) * f.tileMs;
        const inWindow = events.filter((ev) => ev.key === key && ev.e >= lo && ev.e <= t && ev.value !== null);
        const where = `${f.name} row ${i} (${key} at ${iso(t)})`;
        if (f.fn === 'count') {
          expect(got[i], where).toBe(BigInt(inWindow.length));
          if (inWindow.length > 1) nonEmpty++;
        } else if (inWindow.length === 0) {
          expect(got[i], where).toBeNull();
        } else if (f.fn === 'mean') {
          const mean = inWindow.reduce((a, ev) => a + ev.value!, 0) / inWindow.length;
          expect(Math.abs((got[i] as number) - mean), where).toBeLessThanOrEqual(1e-9 * Math.abs(mean));
        } else {
          const created = (ev: (typeof events)[number]) => ev.created ?? -Infinity;
          const best = inWindow.reduce((a, b) => (b.e > a.e || (b.e === a.e && created(b) > created(a)) ? b : a));
          const tied = inWindow.filter((ev) => ev.e === best.e && created(ev) === created(best)).map((ev) => ev.value);
          expect(tied, where).toContain(got[i]);
        }
      });
    }
    expect(nonEmpty).toBeGreaterThan(100);
  });
});
