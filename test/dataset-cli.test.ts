/**
 * `larder dataset` end to end, as a user runs it: a definitions folder importing from 'larder',
 * an offline store in the layout, and `node bin/larder.mjs dataset ...` in a child process.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDuckDB, sqlString } from '../src/offline/duckdb.js';
import { runLarder } from './support/cli.js';


let dir: string;
let repo: string;
let offline: string;
let db: Awaited<ReturnType<typeof openDuckDB>>;

const DEFINITIONS = `import { entity, fileSource, featureView, featureService } from 'larder';
export const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
const source = fileSource({ name: 'driver_source', path: 'data/drivers.parquet', timestampField: 'event_timestamp' });
export const driverStats = featureView({ name: 'driver_stats', entities: [driver], source, ttl: '2h', schema: { conv_rate: 'float64', trips: 'int64' } });
export const driverModel = featureService({ name: 'driver_model', features: [driverStats.select('trips')] });
`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'larder-dataset-cli-'));
  repo = join(dir, 'repo');
  offline = join(dir, 'offline');
  await mkdir(repo);
  await writeFile(join(repo, 'drivers.ts'), DEFINITIONS);
  db = await openDuckDB();
  const partition = join(offline, 'driver_stats', 'date=2024-03-10');
  await mkdir(partition, { recursive: true });
  await db.connection.run(`COPY (
    SELECT * FROM (VALUES
      (1::BIGINT, TIMESTAMPTZ '2024-03-10 10:00:00+00', NULL::TIMESTAMPTZ, 0.5::DOUBLE, 7::BIGINT),
      (2::BIGINT, TIMESTAMPTZ '2024-03-10 11:00:00+00', NULL::TIMESTAMPTZ, 0.25::DOUBLE, 3::BIGINT)
    ) AS t(driver_id, event_timestamp, created_timestamp, conv_rate, trips)
  ) TO ${sqlString(join(partition, 'data.parquet'))} (FORMAT parquet)`);
  await writeFile(
    join(dir, 'entities.csv'),
    'driver_id,ts,label,note\n2,2024-03-10T12:00:00Z,1,2024-03-10\n1,2024-03-10T12:00:00Z,0,soon\n1,2024-03-10T12:00:00.001Z,1,\n3,2024-03-10T12:00:00Z,0,\n',
  );
});

afterAll(async () => {
  db.close();
  await rm(dir, { recursive: true, force: true });
});

const larder = (...args: string[]) =>
  runLarder(['dataset', ...args], { cwd: dir, env: { LARDER_REPO: repo, LARDER_OFFLINE: offline, LARDER_HOME: join(dir, '.larder') } });

const rowsOf = async (file: string, reader: string) => (await db.connection.runAndReadAll(`SELECT * FROM ${reader}(${sqlString(file)})`)).getRowsJson();

describe('larder dataset', () => {
  it('writes a Parquet dataset of the entity rows, in order, with the features', async () => {
    const out = join(dir, 'train.parquet');
    const r = await larder('--entities', 'entities.csv', '--features', 'driver_stats:conv_rate,driver_stats:trips', '--timestamp-column', 'ts', '--out', out);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^wrote 4 rows to train\.parquet \(\d+\.\d s\)\n$/);
    expect(await rowsOf(out, 'read_parquet')).toEqual([
      ['2', '2024-03-10 12:00:00+00', '1', '2024-03-10', 0.25, '3'],
      ['1', '2024-03-10 12:00:00+00', '0', 'soon', 0.5, '7'],
      ['1', '2024-03-10 12:00:00.001+00', '1', null, null, null],
      ['3', '2024-03-10 12:00:00+00', '0', null, null, null],
    ]);
  });

  it('writes CSV for a feature service with full names', async () => {
    const out = join(dir, 'sub', 'train.csv');
    const r = await larder('--entities', 'entities.csv', '--service', 'driver_model', '--full-names', '--timestamp-column', 'ts', '--out', out);
    expect(r.code).toBe(0);
    const header = (await db.connection.runAndReadAll(`DESCRIBE SELECT * FROM read_csv(${sqlString(out)})`)).getRowObjectsJson().map((c) => c.column_name);
    expect(header).toEqual(['driver_id', 'ts', 'label', 'note', 'driver_stats__trips']);
    expect((await rowsOf(out, 'read_csv')).map((row) => row[4])).toEqual(['3', '7', null, null]);
  });

  it('prints the SQL with --explain and writes nothing', async () => {
    const out = join(dir, 'explained.parquet');
    const r = await larder('--entities', 'entities.csv', '--features', 'driver_stats:trips', '--timestamp-column', 'ts', '--out', out, '--explain');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/CREATE TABLE __larder_input AS SELECT \* FROM read_csv\(.*entities\.csv/);
    expect(r.stdout).toMatch(/ASOF LEFT JOIN "__view0" AS v0/);
    expect(r.stdout).toContain('date=2024-03-10/data.parquet');
    expect(existsSync(out)).toBe(false);
  });

  it.each([
    { args: ['--features', 'driver_stats:nope'], line: /^larder dataset: --features: feature view 'driver_stats' has no feature 'nope' \(has conv_rate, trips\)$/ },
    { args: ['--features', 'driver_stats:trips', '--service', 'driver_model'], line: /^larder dataset: give --features or --service, not both$/ },
    { args: ['--features', 'driver_stats:trips', '--bogus'], line: /^larder dataset: Unknown option '--bogus'/ },
    { args: ['--features', 'driver_stats:trips', '--timestamp-column', 'when'], line: /^larder dataset: --entities entities\.csv: no timestamp column 'when' \(columns: driver_id, ts, label, note; .*--timestamp-column\)$/ },
    { args: ['--features', 'driver_stats:conv_rate', '--timestamp-column', 'note'], line: /^larder dataset: --entities entities\.csv: note\[1\]: 'soon' is not an instant .*$/ },
    { args: ['--service', 'nope', '--timestamp-column', 'ts'], line: /^larder dataset: --service: no feature service 'nope' \(defined: driver_model\)$/ },
  ])('fails with one line and no file: $args', async ({ args, line }) => {
    const out = join(dir, 'bad', 'out.parquet');
    const r = await larder('--entities', 'entities.csv', '--out', out, ...args);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr.trimEnd()).toMatch(line);
    expect(existsSync(join(dir, 'bad')) ? await readdir(join(dir, 'bad')) : []).toEqual([]);
  });
});
