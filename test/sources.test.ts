/**
 * Batch sources (CONTRACT s.2): Parquet and CSV files through DuckDB, PostgreSQL tables and
 * queries streamed in batches from a real database. Each reads exactly the rows with event time
 * in [start, end) (plus rows without event time, which backfill counts and drops), with
 * timestamps as UTC instants.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { fileSource, postgresSource } from '../src/definitions/builders.js';
import { DefinitionError, InputError } from '../src/core/errors.js';
import { parseInstant } from '../src/core/time.js';
import { openDuckDB } from '../src/offline/duckdb.js';
import { describeSourceColumns, readSourceRange } from '../src/offline/sources.js';
import { createTestDatabase } from './support/services.js';

type Db = Awaited<ReturnType<typeof openDuckDB>>;

let dir: string;
let db: Db;
let database: { url: string; drop(): Promise<void> };

const at = (iso: string) => parseInstant(iso);

async function rowsOf(relation: string, order = 'id'): Promise<Record<string, unknown>[]> {
  const reader = await db.connection.runAndReadAll(`SELECT * FROM ${relation} ORDER BY ${order}`);
  return reader.getRowObjectsJS();
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'larder-sources-'));
  db = await openDuckDB({ threads: 1 });
  database = await createTestDatabase('sources');
  // 48 hourly rows from 2024-01-01 00:00 (naive, meaning UTC), one without event time.
  await db.connection.run(`COPY (
      SELECT i AS id, CASE WHEN i = 47 THEN NULL ELSE TIMESTAMP '2024-01-01 00:00:00' + to_hours(i) END AS ts,
             i * 0.5 AS amount, 'item ' || i AS label
      FROM range(48) t(i)) TO '${join(dir, 'events.parquet')}' (FORMAT parquet)`);
  await writeFile(
    join(dir, 'events.csv'),
    [
      'id,ts,amount',
      '1,2024-01-01T09:59:59Z,1.5',
      '2,2024-01-01T10:00:00Z,2.5', // start: included
      '3,2024-01-01T12:00:00+02:00,3.5', // 10:00Z: included
      '4,2024-01-01T11:59:59.999Z,4.5',
      '5,2024-01-01T12:00:00Z,5.5', // end: excluded
      '6,2024-01-01T14:30:00+02:00,6.5', // 12:30Z: excluded
    ].join('\n'),
  );
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  await client.query(`CREATE TABLE readings (
      id int8 PRIMARY KEY, sensor text, ts timestamptz, local_ts timestamp, value numeric, ok bool, samples float8[], payload bytea)`);
  await client.query(`INSERT INTO readings
      SELECT i, 's' || (i % 3), TIMESTAMPTZ '2024-03-01 00:00:00+00' + i * interval '10 minutes', TIMESTAMP '2024-03-01 00:00:00' + i * interval '10 minutes',
             i * 1.25, i % 2 = 0, ARRAY[i, i + 0.5]::float8[], '\\x0102'::bytea
      FROM generate_series(0, 99) i`);
  await client.query(`INSERT INTO readings (id, sensor, ts) VALUES (1000, 'late', NULL)`);
  await client.end();
});

afterAll(async () => {
  db?.close();
  await database?.drop();
  await rm(dir, { recursive: true, force: true });
});

describe('file sources', () => {
  it('describes a Parquet source', async () => {
    const source = fileSource({ name: 'events', path: 'events.parquet', timestampField: 'ts' });
    expect(await describeSourceColumns(source, dir)).toEqual([
      { name: 'id', type: 'BIGINT' },
      { name: 'ts', type: 'TIMESTAMP' },
      { name: 'amount', type: 'DECIMAL(21,1)' },
      { name: 'label', type: 'VARCHAR' },
    ]);
  });

  it('reads a Parquet source in [start, end), naive timestamps as UTC, rows without time kept for counting', async () => {
    const source = fileSource({ name: 'events', path: join(dir, 'events.parquet'), timestampField: 'ts' });
    const rows = await readSourceRange(db.connection, source, { repoDir: '/elsewhere', start: at('2024-01-01T10:00:00Z'), end: at('2024-01-01T13:00:00Z') });
    try {
      expect(rows.columns.find((c) => c.name === 'ts')).toEqual({ name: 'ts', type: 'TIMESTAMP WITH TIME ZONE' });
      const got = await rowsOf(rows.relation);
      expect(got.map((r) => r.id)).toEqual([10n, 11n, 12n, 47n]);
      expect((got[0]!.ts as Date).toISOString()).toBe('2024-01-01T10:00:00.000Z');
      expect(got[3]!.ts).toBeNull();
    } finally {
      await rows.release();
    }
  });

  it('reads a CSV source: zones honoured, start included, end excluded', async () => {
    const source = fileSource({ name: 'events_csv', path: 'events.csv', timestampField: 'ts' });
    const columns = await describeSourceColumns(source, dir);
    expect(columns.map((c) => c.name)).toEqual(['id', 'ts', 'amount']);
    const rows = await readSourceRange(db.connection, source, { repoDir: dir, start: at('2024-01-01T10:00:00Z'), end: at('2024-01-01T12:00:00Z') });
    try {
      const got = await rowsOf(rows.relation);
      expect(got.map((r) => Number(r.id))).toEqual([2, 3, 4]);
      expect(got.map((r) => (r.ts as Date).toISOString())).toEqual(['2024-01-01T10:00:00.000Z', '2024-01-01T10:00:00.000Z', '2024-01-01T11:59:59.999Z']);
    } finally {
      await rows.release();
    }
  });

  it('a missing file is one line naming the source and the path', async () => {
    const source = fileSource({ name: 'ghost', path: 'data/ghost.parquet', timestampField: 'ts' });
    const err = await describeSourceColumns(source, dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DefinitionError);
    expect((err as Error).message).toContain(`fileSource 'ghost'`);
    expect((err as Error).message).toContain('data/ghost.parquet');
    expect((err as Error).message).not.toContain('\n');
  });

  it('a timestamp field that is not a column is a definition error', async () => {
    const source = fileSource({ name: 'events', path: 'events.parquet', timestampField: 'when' });
    await expect(readSourceRange(db.connection, source, { repoDir: dir, start: at('2024-01-01'), end: at('2024-01-02') })).rejects.toThrow(
      /fileSource 'events': timestampField 'when' is not a column of the source \(has id, ts, amount, label\)/,
    );
  });
});

describe('PostgreSQL sources', () => {
  it('describes a table and a query by their result columns', async () => {
    const table = postgresSource({ name: 'readings', table: 'public.readings', timestampField: 'ts', connection: database.url });
    expect(await describeSourceColumns(table, dir)).toEqual([
      { name: 'id', type: 'BIGINT' },
      { name: 'sensor', type: 'VARCHAR' },
      { name: 'ts', type: 'TIMESTAMP WITH TIME ZONE' },
      { name: 'local_ts', type: 'TIMESTAMP' },
      { name: 'value', type: 'DOUBLE' },
      { name: 'ok', type: 'BOOLEAN' },
      { name: 'samples', type: 'DOUBLE[]' },
      { name: 'payload', type: 'BLOB' },
    ]);
    const query = postgresSource({ name: 'doubled', query: 'SELECT id, ts, value * 2 AS twice FROM readings;', timestampField: 'ts', connection: database.url });
    expect(await describeSourceColumns(query, dir)).toEqual([
      { name: 'id', type: 'BIGINT' },
      { name: 'ts', type: 'TIMESTAMP WITH TIME ZONE' },
      { name: 'twice', type: 'DOUBLE' },
    ]);
  });

  it('streams a table in batches of batchSize, only rows in [start, end), typed in DuckDB', async () => {
    const source = postgresSource({ name: 'readings', table: 'readings', timestampField: 'ts', connection: database.url });
    const seen: number[] = [];
    // 00:50 up to 03:00 (excluded): ids 5..17, 13 rows, plus the row without time.
    const rows = await readSourceRange(db.connection, source, {
      repoDir: dir,
      start: at('2024-03-01T00:50:00Z'),
      end: at('2024-03-01T03:00:00Z'),
      batchSize: 4,
      onRows: (n) => seen.push(n),
    });
    try {
      expect(seen).toEqual([4, 8, 12, 14]);
      const got = await rowsOf(rows.relation);
      expect(got.map((r) => Number(r.id))).toEqual([5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 1000]);
      expect(got[0]).toEqual({
        id: 5n,
        sensor: 's2',
        ts: new Date('2024-03-01T00:50:00Z'),
        local_ts: new Date('2024-03-01T00:50:00Z'),
        value: 6.25,
        ok: false,
        samples: [5, 5.5],
        payload: Buffer.from([1, 2]),
      });
      expect(got[13]!.ts).toBeNull();
    } finally {
      await rows.release();
    }
  });

  it('wraps a query source as a subquery and filters on its timestamp column', async () => {
    const source = postgresSource({
      name: 'even_readings',
      query: 'SELECT id, local_ts AS at, value * 2 AS twice FROM readings WHERE id % 2 = 0',
      timestampField: 'at',
      connection: database.url,
    });
    const rows = await readSourceRange(db.connection, source, { repoDir: dir, start: at('2024-03-01T01:00:00Z'), end: at('2024-03-01T02:00:00Z'), batchSize: 2 });
    try {
      const got = await rowsOf(rows.relation);
      // Row 1000 has no local_ts: kept so that backfill can count it as dropped.
      expect(got.map((r) => Number(r.id))).toEqual([6, 8, 10, 1000]);
      expect(got.map((r) => r.twice)).toEqual([15, 20, 25, null]);
      expect((got[0]!.at as Date).toISOString()).toBe('2024-03-01T01:00:00.000Z');
    } finally {
      await rows.release();
    }
  });

  it('without connection nor DATABASE_URL, says so in one line', async () => {
    const saved = process.env.DATABASE_URL;
    delete process.env.DATABASE_URL;
    try {
      const source = postgresSource({ name: 'nowhere', table: 'readings', timestampField: 'ts' });
      const err = await describeSourceColumns(source, dir).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(InputError);
      expect((err as Error).message).toBe(`postgresSource 'nowhere': no database to read from (give the source a connection or set DATABASE_URL)`);
    } finally {
      if (saved !== undefined) process.env.DATABASE_URL = saved;
    }
  });

  it('falls back to DATABASE_URL, and names the source when its table does not exist', async () => {
    const saved = process.env.DATABASE_URL;
    process.env.DATABASE_URL = database.url;
    try {
      const ok = postgresSource({ name: 'readings', table: 'readings', timestampField: 'ts' });
      expect((await describeSourceColumns(ok, dir)).length).toBe(8);
      const missing = postgresSource({ name: 'missing', table: 'no_such_table', timestampField: 'ts' });
      await expect(describeSourceColumns(missing, dir)).rejects.toThrow(/^postgresSource 'missing': relation "no_such_table" does not exist$/);
    } finally {
      if (saved === undefined) delete process.env.DATABASE_URL;
      else process.env.DATABASE_URL = saved;
    }
  });
});
