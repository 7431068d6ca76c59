/**
 * SQL injection, end to end: every PostgreSQL and DuckDB statement built from user input (names,
 * paths, entity values and columns, time ranges, model names) either refuses the input with one
 * line naming it or treats it as data. Each attack is tried for real — through definitions, the
 * library, the HTTP server and the `larder` CLI — against canaries that an injection would
 * damage: a table in a fresh PostgreSQL database, a file, the offline store's files, and the
 * `pwn-*` files that `COPY ... TO` payloads would create.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as arrow from 'apache-arrow';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type LarderConfig } from '../src/config.js';
import { DefinitionError, InputError } from '../src/core/errors.js';
import { asEpochMs } from '../src/core/time.js';
import { entity, featureView, fileSource, postgresSource } from '../src/definitions/builders.js';
import { loadDefinitions } from '../src/definitions/loader.js';
import type { Definitions, FeatureView, PostgresSource } from '../src/definitions/types.js';
import { validateDefinitions } from '../src/definitions/validate.js';
import { materialize } from '../src/materialize/materialize.js';
import { backfill } from '../src/offline/backfill.js';
import { getHistoricalFeatures, writeDataset } from '../src/offline/dataset.js';
import { openDuckDB, sqlPath, sqlString } from '../src/offline/duckdb.js';
import { describeSourceColumns, readSourceRange } from '../src/offline/sources.js';
import { getOnlineFeatures } from '../src/online/online-features.js';
import { FileRegistry } from '../src/registry/file.js';
import { PostgresRegistry } from '../src/registry/postgres.js';
import { startServer, type RunningServer } from '../src/serving/server.js';
import { runLarder } from './support/cli.js';
import { createTestDatabase } from './support/services.js';

const HOUR = 3_600_000;
const T0 = Date.parse('2024-03-10T00:00:00Z');
const AT = new Date(T0 + HOUR).toISOString();
const ARROW = 'application/vnd.apache.arrow.stream';

/** Key values that break SQL built by string concatenation; each must come back byte for byte. */
const NASTY = [
  "O'Brien",
  '";',
  'back\\slash \\\' \\"',
  'nul\u0000byte',
  'ünïcödé ß 🍕 ‮rtl',
  "'); DROP TABLE canary; --",
  '"; DROP TABLE canary; --',
  "') UNION SELECT 'pwned', 1 --",
  'line\nbreak,comma',
  'plain',
] as const;
/** Not in the data: a tautology that must match nothing (its features null), not everything. */
const PROBE = "x' OR '1'='1";
/** PostgreSQL text cannot hold NUL; the PostgreSQL source has every other key. */
const PG_KEYS: readonly string[] = NASTY.filter((k) => !k.includes('\u0000'));

const CANARY_NOTE = 'still here';
const BAD_COLUMN = 'ts"; DROP TABLE canary; --';
const BAD_NOTE_COLUMN = "note'); DROP TABLE canary; --";

let dir: string;
let repo: string;
let home: string;
let config: LarderConfig;
let defs: Definitions;
let server: RunningServer;
let database: { url: string; drop(): Promise<void> };
let canaryFile: string;
let offlineBaseline: Record<string, string>;
let oddPath: string;
let db: Awaited<ReturnType<typeof openDuckDB>>;

/** Writes (customer_id, event_timestamp, score, note) rows through an appender: no value is ever SQL text. */
async function writeEvents(file: string, keys: readonly string[], score: (i: number) => number, format: 'parquet' | 'csv' = 'parquet'): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await db.connection.run('CREATE OR REPLACE TEMP TABLE fixture (customer_id VARCHAR, ms BIGINT, score DOUBLE, note VARCHAR)');
  const appender = await db.connection.createAppender('fixture');
  keys.forEach((k, i) => {
    appender.appendVarchar(k);
    appender.appendBigInt(BigInt(T0));
    appender.appendDouble(score(i));
    appender.appendVarchar(k);
    appender.endRow();
  });
  appender.closeSync();
  await db.connection.run(
    `COPY (SELECT customer_id, make_timestamptz(ms * 1000) AS event_timestamp, score, note FROM fixture ORDER BY score) TO ${sqlString(file)} (FORMAT ${format})`,
  );
}

/** Every file under a folder with its sha256: the offline store before and after. */
async function snapshot(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out[p.slice(root.length)] = createHash('sha256').update(await readFile(p)).digest('hex');
    }
  };
  await walk(root);
  return out;
}

async function withPg<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Nothing an injection would hit was touched: the canary table and its row, the reviews, the canary file, no pwn files, the offline store. */
async function expectNothingDamaged(): Promise<void> {
  await withPg(async (c) => {
    expect((await c.query('SELECT note FROM canary')).rows).toEqual([{ note: CANARY_NOTE }]);
    expect(Number((await c.query('SELECT count(*) AS n FROM reviews')).rows[0].n)).toBe(PG_KEYS.length);
  });
  expect(await readFile(canaryFile, 'utf8')).toBe('canary');
  // COPY payloads write `pwn-*` into the test folder or, relative, where the process runs.
  for (const folder of [dir, repo, process.cwd()]) expect((await readdir(folder)).filter((f) => f.startsWith('pwn'))).toEqual([]);
  expect(await snapshot(config.offlineDir)).toEqual(offlineBaseline);
}

const scoreOf = (key: string): number | null => {
  const i = NASTY.indexOf(key as (typeof NASTY)[number]);
  return i < 0 ? null : i + 1;
};

/** The rows of an Arrow table as plain objects. */
const rowsOf = (table: arrow.Table): Record<string, unknown>[] => table.toArray().map((r) => ({ ...r.toJSON() }));

async function post(path: string, body: unknown, headers: Record<string, string> = { 'content-type': 'application/json' }): Promise<Response> {
  return fetch(server.url + path, { method: 'POST', headers, body: body instanceof Uint8Array ? body : JSON.stringify(body) });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'larder-sql-injection-'));
  repo = join(dir, 'repo');
  home = join(dir, '.larder');
  canaryFile = join(dir, 'canary.txt');
  await writeFile(canaryFile, 'canary');
  db = await openDuckDB({ threads: 1 });

  database = await createTestDatabase('sql_injection');
  await withPg(async (c) => {
    await c.query('CREATE TABLE canary (note text)');
    await c.query('INSERT INTO canary VALUES ($1)', [CANARY_NOTE]);
    await c.query('CREATE TABLE reviews (review_id text, ts timestamptz, stars int8)');
    // A function with a side effect, as a query might call one.
    await c.query('CREATE FUNCTION drop_canary() RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN DROP TABLE canary; RETURN true; END $$');
    for (const [i, key] of PG_KEYS.entries()) await c.query('INSERT INTO reviews VALUES ($1, $2, $3)', [key, new Date(T0), i + 1]);
  });

  // The scores: customer_stats i + 1, bracket_stats 100 + i, odd_stats 200 + i; the decoy beside
  // the bracketed file (what its name means as a glob) has -1 everywhere.
  await writeEvents(join(repo, 'data', 'events.parquet'), NASTY, (i) => i + 1);
  await writeEvents(join(repo, 'data', 'events[1].parquet'), NASTY, (i) => 100 + i);
  await writeEvents(join(repo, 'data', 'events1.parquet'), NASTY, () => -1);
  // A source path that closes the string literal and COPYs to a file, were it pasted into SQL.
  oddPath = `data/it's'); COPY (SELECT 42 AS pwned) TO '${dir}/pwn-source.csv' (FORMAT csv); --.parquet`;
  await writeEvents(resolve(repo, oddPath), NASTY, (i) => 200 + i);

  await writeFile(
    join(repo, 'definitions.ts'),
    `import { entity, featureView, fileSource, postgresSource } from 'larder';
export const customer = entity({ name: 'customer', joinKeys: ['customer_id'], valueType: 'string' });
const events = fileSource({ name: 'events', path: 'data/events.parquet', timestampField: 'event_timestamp' });
export const customerStats = featureView({ name: 'customer_stats', entities: [customer], source: events, schema: { score: 'float64', note: 'string' } });
const bracket = fileSource({ name: 'bracket', path: 'data/events[1].parquet', timestampField: 'event_timestamp' });
export const bracketStats = featureView({ name: 'bracket_stats', entities: [customer], source: bracket, schema: { score: 'float64' } });
const odd = fileSource({ name: 'odd', path: ${JSON.stringify(oddPath)}, timestampField: 'event_timestamp' });
export const oddStats = featureView({ name: 'odd_stats', entities: [customer], source: odd, schema: { score: 'float64' } });
export const review = entity({ name: 'review', joinKeys: ['review_id'], valueType: 'string' });
const reviews = postgresSource({ name: 'reviews_pg', table: 'reviews', connection: ${JSON.stringify(database.url)}, timestampField: 'ts' });
export const reviewStars = featureView({ name: 'review_stars', entities: [review], source: reviews, schema: { stars: 'int64' } });
`,
  );
  config = loadConfig({ LARDER_REPO: repo, LARDER_HOME: home });
  defs = await loadDefinitions(repo);
  await backfill({ defs, offlineDir: config.offlineDir, start: asEpochMs(T0 - 24 * HOUR), end: asEpochMs(T0 + 24 * HOUR) });
  server = await startServer({ config, port: 0, log: () => {} });
  await materialize({
    defs,
    offlineDir: config.offlineDir,
    store: server.context.store,
    registry: new FileRegistry(join(home, 'registry.json')),
    end: asEpochMs(Date.now()),
    views: ['customer_stats'],
  });
  offlineBaseline = await snapshot(config.offlineDir);
});

afterAll(async () => {
  await server?.close();
  db?.close();
  await database?.drop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------

describe('names in definitions', () => {
  /** A one-file repo; its load must fail with one line naming the file and the bad value. */
  async function loadFails(name: string, source: string, bad: string): Promise<string> {
    const bad_repo = join(dir, 'bad-repos', name);
    await mkdir(bad_repo, { recursive: true });
    await writeFile(join(bad_repo, 'defs.ts'), source);
    const err = await loadDefinitions(bad_repo).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(DefinitionError);
    expect(err!.message).not.toContain('\n');
    expect(err!.message).toContain('defs.ts');
    expect(err!.message).toContain(bad);
    return err!.message;
  }

  const HEAD = `import { entity, featureView, fileSource, postgresSource } from 'larder';\n`;
  const SOURCE = `const src = fileSource({ name: 'src', path: 'data/x.parquet', timestampField: 'event_timestamp' });\n`;
  const CUSTOMER = `const customer = entity({ name: 'customer', joinKeys: ['customer_id'] });\n`;

  it.each([
    ['view name', 'customer_stats"; DROP TABLE canary; --', (bad: string) => `${SOURCE}${CUSTOMER}export const v = featureView({ name: ${JSON.stringify(bad)}, entities: [customer], source: src, schema: { score: 'float64' } });`],
    ['entity name', "customer'); DROP TABLE canary; --", (bad: string) => `export const e = entity({ name: ${JSON.stringify(bad)}, joinKeys: ['id'] });`],
    ['join key', "customer_id') UNION SELECT * FROM canary --", (bad: string) => `export const e = entity({ name: 'customer', joinKeys: [${JSON.stringify(bad)}] });`],
    ['feature name', 'score" OR 1=1 --', (bad: string) => `${SOURCE}${CUSTOMER}export const v = featureView({ name: 'v', entities: [customer], source: src, schema: { ${JSON.stringify(bad)}: 'float64' } });`],
    ['aggregation column', 'amount"); DROP TABLE canary; --', (bad: string) => `${SOURCE}${CUSTOMER}export const v = featureView({ name: 'v', entities: [customer], source: src, aggregations: [{ column: ${JSON.stringify(bad)}, functions: ['sum'], windows: ['1h'] }] });`],
    ['timestamp field', 'ts"; DROP TABLE canary; --', (bad: string) => `export const s = fileSource({ name: 's', path: 'data/x.parquet', timestampField: ${JSON.stringify(bad)} });`],
    ['source name', "s'; DROP TABLE canary; --", (bad: string) => `export const s = fileSource({ name: ${JSON.stringify(bad)}, path: 'data/x.parquet', timestampField: 'ts' });`],
    ['postgres table', 'reviews; DROP TABLE canary', (bad: string) => `export const s = postgresSource({ name: 's', table: ${JSON.stringify(bad)}, timestampField: 'ts' });`],
  ])('a %s that is not an identifier is refused by the builder, in one line', async (what, bad, body) => {
    const message = await loadFails(what.replace(/\W/g, '_'), HEAD + body(bad), bad);
    expect(message).toMatch(/must be (an identifier|a table name)/);
    await expectNothingDamaged();
  });

  // Anything exported with a `kind` registers, so objects not made by a builder are checked again.
  it.each([
    ['spread view', '../../pwn-view', (bad: string) => `${SOURCE}${CUSTOMER}const ok = featureView({ name: 'ok', entities: [customer], source: src, schema: { score: 'float64' } });\nexport const v = { ...ok, name: ${JSON.stringify(bad)} };`],
    ['spread feature', 'score" FROM x; DROP TABLE canary; --', (bad: string) => `${SOURCE}${CUSTOMER}const ok = featureView({ name: 'ok', entities: [customer], source: src, schema: { score: 'float64' } });\nexport const v = { ...ok, schema: { ${JSON.stringify(bad)}: 'float64' } };`],
    ['literal entity', 'id"; DROP TABLE canary; --', (bad: string) => `export const e = { kind: 'entity', name: 'e', joinKeys: [${JSON.stringify(bad)}], keyTypes: { ${JSON.stringify(bad)}: 'string' } };`],
    ['spread postgres table', 'reviews; DROP TABLE canary', (bad: string) => `const ok = postgresSource({ name: 's', table: 'reviews', timestampField: 'ts' });\nexport const s = { ...ok, table: ${JSON.stringify(bad)} };`],
    ['spread timestamp', "ts') TO '/tmp/pwn", (bad: string) => `const ok = fileSource({ name: 's', path: 'data/x.parquet', timestampField: 'ts' });\nexport const s = { ...ok, timestampField: ${JSON.stringify(bad)} };`],
  ])('a %s bypassing the builders is refused by the loader, in one line', async (what, bad, body) => {
    const message = await loadFails(what.replace(/\W/g, '_'), HEAD + body(bad), bad);
    expect(message).toMatch(/must be (an identifier|a table name)/);
    await expectNothingDamaged();
  });

  it('a postgresSource table with a statement after it: refused by the builder, and quoted as one name when the builder is bypassed', async () => {
    expect(() => postgresSource({ name: 's', table: 'reviews; DROP TABLE canary', timestampField: 'ts', connection: database.url })).toThrow(
      "postgresSource 's': table: must be a table name, optionally schema-qualified",
    );
    const forged = { ...postgresSource({ name: 's', table: 'reviews', timestampField: 'ts', connection: database.url }), table: 'reviews; DROP TABLE canary' } as PostgresSource;
    await expect(describeSourceColumns(forged, repo)).rejects.toThrow(`postgresSource 's': relation "reviews; DROP TABLE canary" does not exist`);
    await expect(readSourceRange(db.connection, forged, { repoDir: repo, start: asEpochMs(0), end: asEpochMs(Date.now()) })).rejects.toThrow(
      `postgresSource 's': relation "reviews; DROP TABLE canary" does not exist`,
    );
    await expectNothingDamaged();
  });

  it('a postgresSource query cannot run a second statement or write, neither when described (plan) nor when read (backfill)', async () => {
    // The query is SQL by design; it is run read-only, one statement at a time.
    const stacked = postgresSource({
      name: 'stacked',
      query: 'SELECT * FROM reviews) AS x; DROP TABLE canary; SELECT * FROM (SELECT 1',
      timestampField: 'ts',
      connection: database.url,
    });
    const writing = postgresSource({ name: 'writing', query: 'SELECT * FROM reviews WHERE drop_canary()', timestampField: 'ts', connection: database.url });
    const range = { repoDir: repo, start: asEpochMs(0), end: asEpochMs(Date.now()) };
    const stackedError = "postgresSource 'stacked': cannot insert multiple commands into a prepared statement";
    await expect(describeSourceColumns(stacked, repo)).rejects.toThrow(stackedError);
    await expect(readSourceRange(db.connection, stacked, range)).rejects.toThrow(stackedError);
    // Describing reads no row; reading calls the function, in a read-only transaction.
    expect((await describeSourceColumns(writing, repo)).map((c) => c.name)).toEqual(['review_id', 'ts', 'stars']);
    await expect(readSourceRange(db.connection, writing, range)).rejects.toThrow("postgresSource 'writing': cannot execute DROP TABLE in a read-only transaction");
    // `larder plan` validates through the same describe: a warning, nothing run.
    const customer = entity({ name: 'customer', joinKeys: ['review_id'] });
    const view = featureView({ name: 'stacked_view', entities: [customer], source: stacked, schema: { stars: 'int64' } });
    const report = await validateDefinitions({ ...defs, views: new Map<string, FeatureView>([[view.name, view as unknown as FeatureView]]) });
    expect(report.warnings).toEqual([`source 'stacked' could not be read, its columns were not checked: postgresSource 'stacked': cannot insert multiple commands into a prepared statement`]);
    await expectNothingDamaged();
  });
});

// ---------------------------------------------------------------------------------------------

describe('feature references in requests', () => {
  const BAD_REFS = ['customer_stats:score" OR 1=1 --', "customer_stats:score'); DROP TABLE canary; --", 'v:f" FROM x; --', 'customer_stats"; DROP TABLE canary; --:score'];
  const entities = { customer_id: ['plain'], event_timestamp: [AT] };

  it.each(BAD_REFS)('library: %s is not a feature reference', async (ref) => {
    await expect(getHistoricalFeatures({ defs, offlineDir: config.offlineDir, entities, features: [ref] })).rejects.toThrow(
      new InputError(`features: '${ref}' is not a feature reference (expected view:feature)`),
    );
    await expect(getOnlineFeatures({ defs, store: server.context.store, entities: { customer_id: ['plain'] }, features: [ref] })).rejects.toThrow(
      `'${ref}' is not a feature reference`,
    );
    await expectNothingDamaged();
  });

  it.each(BAD_REFS)('HTTP: %s is a 400 naming it, online and historical', async (ref) => {
    for (const [path, body] of [
      ['/get-historical-features', { entities, features: [ref] }],
      ['/get-online-features', { entities: { customer_id: ['plain'] }, features: [ref] }],
    ] as const) {
      const res = await post(path, body);
      expect(res.status, path).toBe(400);
      expect(((await res.json()) as { error: string }).error).toContain(`'${ref}' is not a feature reference`);
    }
    // Arrow bodies take the features in the query string.
    const ipc = arrow.tableToIPC(arrow.tableFromArrays({ customer_id: ['plain'], event_timestamp: Float64Array.from([T0 + HOUR]) }), 'stream');
    const res = await post(`/get-historical-features?features=${encodeURIComponent(ref)}`, ipc, { 'content-type': ARROW });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toContain(`'${ref}' is not a feature reference`);
    await expectNothingDamaged();
  });

  it('a feature service name with SQL in it is an unknown service', async () => {
    const name = "x'; DROP TABLE canary; --";
    const res = await post('/get-historical-features', { entities, feature_service: name });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toContain(`no feature service '${name}'`);
    await expectNothingDamaged();
  });
});

// ---------------------------------------------------------------------------------------------

describe('entity values are data', () => {
  const keys = [...NASTY, PROBE, '{"$ne":null}'];
  const entities = { customer_id: keys, event_timestamp: keys.map(() => AT) };
  const expected = keys.map((k) => ({ customer_id: k, score: scoreOf(k), note: scoreOf(k) === null ? null : k }));

  it('library: every key joins its own row, byte for byte', async () => {
    const table = await getHistoricalFeatures({ defs, offlineDir: config.offlineDir, entities, features: ['customer_stats:score', 'customer_stats:note'] });
    expect(rowsOf(table).map(({ customer_id, score, note }) => ({ customer_id, score, note }))).toEqual(expected);
    await expectNothingDamaged();
  });

  it('HTTP JSON in, JSON out; and an Arrow IPC stream in, Arrow out', async () => {
    const res = await post('/get-historical-features', { entities, features: ['customer_stats:score', 'customer_stats:note'] }, { 'content-type': 'application/json', accept: 'application/json' });
    expect(res.status).toBe(200);
    const { df } = (await res.json()) as { df: Record<string, unknown[]> };
    expect(df.customer_id).toEqual(keys);
    expect(df.score).toEqual(expected.map((e) => e.score));
    expect(df.note).toEqual(expected.map((e) => e.note));

    const ipc = arrow.tableToIPC(arrow.tableFromArrays({ customer_id: keys, event_timestamp: Float64Array.from(keys.map(() => T0 + HOUR)) }), 'stream');
    const arrowRes = await post('/get-historical-features?features=customer_stats:score,customer_stats:note', ipc, { 'content-type': ARROW });
    expect(arrowRes.status).toBe(200);
    const table = arrow.tableFromIPC(new Uint8Array(await arrowRes.arrayBuffer()));
    expect(rowsOf(table).map(({ customer_id, score, note }) => ({ customer_id, score, note }))).toEqual(expected);
    await expectNothingDamaged();
  });

  it('from a PostgreSQL source: keys streamed from the table join as they are', async () => {
    const pgKeys = [...PG_KEYS, PROBE];
    const table = await getHistoricalFeatures({ defs, offlineDir: config.offlineDir, entities: { review_id: pgKeys, event_timestamp: pgKeys.map(() => AT) }, features: ['review_stars:stars'] });
    expect(rowsOf(table).map((r) => [r.review_id, r.stars === null ? null : Number(r.stars)])).toEqual(pgKeys.map((k) => [k, k === PROBE ? null : PG_KEYS.indexOf(k) + 1]));
    await expectNothingDamaged();
  });

  it('online: /get-online-features and the library read the values of exactly those keys', async () => {
    const response = await getOnlineFeatures({ defs, store: server.context.store, entities: { customer_id: keys }, features: ['customer_stats:score'] });
    expect(response.results[0]!.values).toEqual(keys);
    expect(response.results[1]!.values).toEqual(expected.map((e) => e.score));
    const res = await post('/get-online-features', { entities: { customer_id: keys }, features: ['customer_stats:note'] });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { results: { values: unknown[] }[] };
    expect(body.results[1]!.values).toEqual(expected.map((e) => e.note));
    await expectNothingDamaged();
  });

  it('entity column names and the timestamp column may hold quotes: they are names, kept exactly', async () => {
    const columns = { customer_id: ['plain', "O'Brien"], [BAD_COLUMN]: [AT, AT], [BAD_NOTE_COLUMN]: ['a', 'b'], __t: [1, 2], __row: [3, 4], rowid: [5, 6] };
    const table = await getHistoricalFeatures({ defs, offlineDir: config.offlineDir, entities: columns, features: ['customer_stats:score'], timestampColumn: BAD_COLUMN });
    expect(table.schema.fields.map((f) => f.name)).toEqual(['customer_id', BAD_COLUMN, BAD_NOTE_COLUMN, '__t', '__row', 'rowid', 'score']);
    expect(rowsOf(table).map((r) => [r.customer_id, r[BAD_NOTE_COLUMN], Number(r.__t), Number(r.__row), Number(r.rowid), r.score])).toEqual([
      ['plain', 'a', 1, 3, 5, scoreOf('plain')],
      ["O'Brien", 'b', 2, 4, 6, scoreOf("O'Brien")],
    ]);
    // Over HTTP, and a timestamp column the rows do not have: an error naming it.
    const res = await post('/get-historical-features', { entities: columns, features: ['customer_stats:score'], timestamp_column: BAD_COLUMN }, { 'content-type': 'application/json', accept: 'application/json' });
    expect(res.status).toBe(200);
    expect(Object.keys(((await res.json()) as { df: object }).df)).toEqual(['customer_id', BAD_COLUMN, BAD_NOTE_COLUMN, '__t', '__row', 'rowid', 'score']);
    const missing = "x\"; DROP TABLE canary; --'";
    const bad = await post('/get-historical-features', { entities: columns, features: ['customer_stats:score'], timestamp_column: missing });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toContain(`no timestamp column '${missing}'`);
    // An online request with a join key column that is SQL: unknown, named.
    const online = await post('/get-online-features', { entities: { 'customer_id"; DROP TABLE canary; --': ['plain'] }, features: ['customer_stats:score'] });
    expect(online.status).toBe(400);
    expect(((await online.json()) as { error: string }).error).toContain('customer_id"; DROP TABLE canary; --');
    await expectNothingDamaged();
  });
});

// ---------------------------------------------------------------------------------------------

describe('larder dataset with entity files', () => {
  const larder = (...args: string[]) => runLarder(['dataset', ...args], { cwd: dir, env: { LARDER_REPO: repo, LARDER_HOME: home } });
  const csvField = (v: string): string => `"${v.replace(/"/g, '""')}"`;
  /** CSV cannot carry NUL; every other key goes in, quoted as CSV quotes. */
  const CSV_KEYS = [...NASTY.filter((k) => !k.includes('\u0000')), PROBE];

  async function readOut(file: string): Promise<Record<string, unknown>[]> {
    return (await db.connection.runAndReadAll(`SELECT * FROM read_parquet(${sqlPath(file)})`)).getRowObjectsJS();
  }

  it('a CSV whose keys, column names and file name are SQL: the rows come back as written', async () => {
    // The entity file's own name closes a string literal and COPYs elsewhere, were it pasted into SQL.
    const name = `entities'); COPY (SELECT 1) TO '${dir}/pwn-entities.csv' (FORMAT csv); --.csv`;
    const file = resolve(dir, name);
    await mkdir(dirname(file), { recursive: true });
    const lines = [[csvField('customer_id'), csvField(BAD_COLUMN), csvField(BAD_NOTE_COLUMN)].join(',')];
    for (const k of CSV_KEYS) lines.push([csvField(k), csvField(AT), csvField(k)].join(','));
    await writeFile(file, `${lines.join('\n')}\n`);
    const out = join(dir, "out'); DROP TABLE canary; --.parquet");
    const r = await larder('--entities', file, '--features', 'customer_stats:score', '--timestamp-column', BAD_COLUMN, '--out', out);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rows = await readOut(out);
    expect(rows.map((row) => [row.customer_id, row[BAD_NOTE_COLUMN], row.score])).toEqual(CSV_KEYS.map((k) => [k, k, scoreOf(k)]));
    await rm(out);
    await expectNothingDamaged();
  });

  it('a Parquet entity file (NUL included): the rows come back as written', async () => {
    const keys = [...NASTY, PROBE];
    const file = join(dir, 'entities.parquet');
    await writeEvents(file, keys, (i) => i);
    const out = join(dir, 'parquet-out.parquet');
    const r = await larder('--entities', file, '--features', 'customer_stats:score,customer_stats:note', '--full-names', '--out', out);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const rows = await readOut(out);
    expect(rows.map((row) => [row.customer_id, row.customer_stats__score, row.customer_stats__note])).toEqual(keys.map((k) => [k, scoreOf(k), scoreOf(k) === null ? null : k]));
    await rm(out);
    await expectNothingDamaged();
  });

  it('--timestamp-column with quotes that the file does not have: refused, naming it', async () => {
    const file = join(dir, 'plain.csv');
    await writeFile(file, `customer_id,event_timestamp\nplain,${AT}\n`);
    const column = `x"; DROP TABLE canary; --`;
    const r = await larder('--entities', file, '--features', 'customer_stats:score', '--timestamp-column', column, '--out', join(dir, 'never.parquet'));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`larder dataset: --entities ${file}: no timestamp column '${column}' (columns: customer_id, event_timestamp; choose one with --timestamp-column)\n`);
    expect(existsSync(join(dir, 'never.parquet'))).toBe(false);
    await expectNothingDamaged();
  });

  it('an entity file name with glob characters is that file, not the files the pattern matches', async () => {
    await writeFile(join(dir, 'keys[1].csv'), `customer_id,event_timestamp\nplain,${AT}\n`);
    await writeFile(join(dir, 'keys1.csv'), `customer_id,event_timestamp\n"O'Brien",${AT}\n`);
    const table = await getHistoricalFeatures({ defs, offlineDir: config.offlineDir, entities: join(dir, 'keys[1].csv'), features: ['customer_stats:score'] });
    expect(rowsOf(table).map((r) => [r.customer_id, r.score])).toEqual([['plain', scoreOf('plain')]]);
    await writeFile(join(dir, 'star.csv'), `customer_id,event_timestamp\nplain,${AT}\n`);
    await expect(getHistoricalFeatures({ defs, offlineDir: config.offlineDir, entities: join(dir, '*.csv'), features: ['customer_stats:score'] })).rejects.toThrow(
      new InputError(`entities: no such file '${join(dir, '*.csv')}'`),
    );
    await expectNothingDamaged();
  });

  it('an --out path with quotes is written at exactly that path', async () => {
    const out = join(dir, "it's'); COPY (SELECT 1) TO 'pwn-out.csv' (FORMAT csv); --.csv");
    const { rows } = await writeDataset({ defs, offlineDir: config.offlineDir, entities: { customer_id: ['plain'], event_timestamp: [AT] }, features: ['customer_stats:score'], out });
    expect(rows).toBe(1);
    expect(await readFile(out, 'utf8')).toBe(`customer_id,event_timestamp,score\nplain,2024-03-10 01:00:00+00,${scoreOf('plain')}.0\n`);
    await rm(out);
    await expectNothingDamaged();
  });
});

// ---------------------------------------------------------------------------------------------

describe('file source paths', () => {
  it('a path with quotes and a COPY payload reads the file at exactly that path', async () => {
    const table = await getHistoricalFeatures({ defs, offlineDir: config.offlineDir, entities: { customer_id: [...NASTY], event_timestamp: NASTY.map(() => AT) }, features: ['odd_stats:score'] });
    expect(rowsOf(table).map((r) => r.score)).toEqual(NASTY.map((_, i) => 200 + i));
    await expectNothingDamaged();
  });

  it('a path with glob characters reads that file, not the files the pattern matches', async () => {
    const table = await getHistoricalFeatures({ defs, offlineDir: config.offlineDir, entities: { customer_id: [...NASTY], event_timestamp: NASTY.map(() => AT) }, features: ['bracket_stats:score'] });
    expect(rowsOf(table).map((r) => r.score)).toEqual(NASTY.map((_, i) => 100 + i));
    expect((await describeSourceColumns(fileSource({ name: 'b', path: 'data/events[1].parquet', timestampField: 'event_timestamp' }), repo)).map((c) => c.name)).toEqual([
      'customer_id',
      'event_timestamp',
      'score',
      'note',
    ]);
    await expectNothingDamaged();
  });

  it.each([
    `data/missing'); COPY (SELECT 42 AS pwned) TO '${'DIR'}/pwn-missing.csv' (FORMAT csv); --.parquet`,
    `data/missing'; COPY (SELECT 1) TO 'pwn-relative.csv'; --.csv`,
    'data/*.parquet',
  ])('a path that is no file fails naming it, and backfill writes nothing: %s', async (template) => {
    const path = template.replace('DIR', dir);
    const source = fileSource({ name: 'missing', path, timestampField: 'event_timestamp' });
    await expect(describeSourceColumns(source, repo)).rejects.toThrow(`fileSource 'missing': path '${path}' does not exist (looked at ${resolve(repo, path)})`);
    const customer = entity({ name: 'customer', joinKeys: ['customer_id'] });
    const view = featureView({ name: 'customer_stats', entities: [customer], source, schema: { score: 'float64' } }) as unknown as FeatureView;
    await expect(backfill({ defs: { ...defs, views: new Map([[view.name, view]]) }, offlineDir: config.offlineDir, start: asEpochMs(T0 - HOUR), end: asEpochMs(T0 + HOUR) })).rejects.toThrow(
      `path '${path}' does not exist`,
    );
    await expectNothingDamaged();
  });
});

// ---------------------------------------------------------------------------------------------

describe('time ranges and model names from the CLI', () => {
  const larder = (args: string[], env: Record<string, string> = {}) => runLarder(args, { cwd: dir, env: { LARDER_REPO: repo, LARDER_HOME: home, ...env } });
  const BAD_INSTANT = "2024-01-01'; DROP TABLE canary; --";

  it('an instant with SQL after it is refused by instant parsing, naming the flag and the value', async () => {
    const runs = await Promise.all([
      larder(['backfill', '--start', BAD_INSTANT, '--end', '2024-01-02']),
      larder(['backfill', '--start', '2024-01-01', '--end', `2024-01-02" OR 1=1 --`]),
      larder(['materialize', '--end', BAD_INSTANT]),
      larder(['verify', '--at', BAD_INSTANT]),
      larder(['drift', '--model', 'review_sentiment', '--since', BAD_INSTANT], { LARDER_REGISTRY: database.url }),
      larder(['train', 'review_sentiment', '--until', BAD_INSTANT], { LARDER_REGISTRY: database.url }),
    ]);
    const expected = [
      ['backfill', 'start', BAD_INSTANT],
      ['backfill', 'end', `2024-01-02" OR 1=1 --`],
      ['materialize', 'end', BAD_INSTANT],
      ['verify', 'at', BAD_INSTANT],
      ['drift', 'since', BAD_INSTANT],
      ['train', 'until', BAD_INSTANT],
    ];
    runs.forEach((r, i) => {
      const [command, flag, value] = expected[i]!;
      expect(r.stderr, `${command} --${flag}`).toBe(`larder ${command}: --${flag}: expected an ISO-8601 instant like 2024-01-01T00:00:00Z, got '${value}'\n`);
      expect(r.code).toBe(1);
    });
    await expectNothingDamaged();
  });

  it('model names that are not identifiers: refused by drift, train, the registry and /predict', async () => {
    const name = "review_sentiment'; DROP TABLE canary; --";
    const [drift, train] = await Promise.all([
      larder(['drift', '--model', name], { LARDER_REGISTRY: database.url }),
      larder(['train', name], { LARDER_REGISTRY: database.url }),
    ]);
    expect(drift.stderr).toBe(`larder drift: model name '${name}': expected letters, digits and underscores, not starting with a digit\n`);
    expect(drift.code).toBe(1);
    expect(train.stderr).toMatch(new RegExp(`^larder train: unknown model '${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}' \\(models: `));
    expect(train.code).toBe(1);

    const registry = new PostgresRegistry(database.url);
    try {
      for (const read of [() => registry.latestModel(name), () => registry.modelVersions(name), () => registry.loadModel(name)]) {
        await expect(read()).rejects.toThrow(new InputError(`model name '${name}': expected letters, digits and underscores, not starting with a digit`));
      }
    } finally {
      await registry.close();
    }

    for (const path of [`/predict/${encodeURIComponent(name)}`, "/predict/m'--", '/predict/..%2F..%2Fcanary']) {
      const res = await post(path, { entities: { review_id: ['plain'] } });
      expect(res.status, path).toBe(404);
      expect(((await res.json()) as { error: string }).error, path).toContain('is not a model name');
    }
    await expectNothingDamaged();
  });
});
