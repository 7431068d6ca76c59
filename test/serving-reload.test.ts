/**
 * `larder serve` as users run it, in its own process on the embedded store: it serves before any
 * apply, picks up each `larder apply` without a restart (a feature added to a view becomes
 * servable), keeps serving when the registry breaks (and says so in /health), and on SIGTERM
 * finishes the request in flight and exits 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { asEpochMs } from '../src/core/time.js';
import { loadDefinitions } from '../src/definitions/loader.js';
import { materialize } from '../src/materialize/materialize.js';
import { backfill } from '../src/offline/backfill.js';
import { openDuckDB } from '../src/offline/duckdb.js';
import { openOnlineStore } from '../src/online/open.js';
import { FileRegistry } from '../src/registry/file.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const LARDER = join(ROOT, 'bin', 'larder.mjs');
const HOUR = 3_600_000;
const NOW = Math.floor(Date.now() / 1000) * 1000;
const iso = (ms: number): string => new Date(ms).toISOString();

const definitions = (schema: string) => `import { entity, featureView, fileSource } from 'larder';
export const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
export const driverStats = featureView({
  name: 'driver_stats', entities: [driver],
  source: fileSource({ name: 'stats', path: 'data/stats.parquet', timestampField: 'event_timestamp' }),
  schema: { ${schema} },
});
`;

let repo: string;
let home: string;
let env: NodeJS.ProcessEnv;
let child: ChildProcess | undefined;
let output = '';
let url: string;

const run = promisify(execFile);
/** A `larder` command in its own process, as a user runs it. */
const larder = (...args: string[]) => run(process.execPath, [LARDER, ...args], { cwd: ROOT, env, timeout: 60_000 });

beforeAll(async () => {
  repo = await mkdtemp(join(tmpdir(), 'larder-serving-reload-'));
  home = join(repo, '.larder');
  await mkdir(join(repo, 'data'));
  await writeFile(join(repo, 'definitions.ts'), definitions(`conv_rate: 'float64'`));
  const db = await openDuckDB();
  try {
    await db.connection.run(
      `COPY (SELECT d::BIGINT AS driver_id, make_timestamptz(${NOW - HOUR}::BIGINT * 1000) AS event_timestamp, d / 10.0 AS conv_rate, (d * 7)::BIGINT AS trips FROM range(1, 6) r(d))
       TO '${join(repo, 'data', 'stats.parquet')}' (FORMAT parquet)`,
    );
  } finally {
    db.close();
  }
  env = { ...process.env, LARDER_REPO: repo, LARDER_HOME: home, LARDER_RELOAD_MS: '200' };
  for (const name of ['LARDER_REGISTRY', 'LARDER_ONLINE', 'LARDER_OFFLINE', 'LARDER_API_KEYS', 'LARDER_ONLINE_PREFIX']) delete env[name];
  const config = loadConfig(env);
  const defs = await loadDefinitions(repo);
  await backfill({ defs, offlineDir: config.offlineDir, start: asEpochMs(NOW - 24 * HOUR), end: asEpochMs(NOW) });
  const store = await openOnlineStore(config.online);
  try {
    await materialize({ defs, offlineDir: config.offlineDir, store, registry: new FileRegistry(join(home, 'registry.json')), end: asEpochMs(NOW) });
  } finally {
    await store.close();
  }

  child = spawn(process.execPath, [LARDER, 'serve', '--port', '0'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const m = /Larder serving on (http:\/\/127\.0\.0\.1:\d+) \(online: embedded:.*, registry: file:.*\)/.exec(output);
    if (m) {
      url = m[1]!;
      break;
    }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`larder serve did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}, 90_000);

afterAll(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  if (repo) await rm(repo, { recursive: true, force: true });
});

const health = async () => {
  const res = await fetch(`${url}/health`);
  return { status: res.status, body: (await res.json()) as Record<string, any> };
};

const read = (features: string[]) =>
  fetch(`${url}/get-online-features`, { method: 'POST', body: JSON.stringify({ features, entities: { driver_id: [2, 3] } }) }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));

async function until<T>(what: string, probe: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(v)} after ${ms} ms\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('larder serve, hot reload', () => {
  it('serves before any apply, as version unapplied', async () => {
    expect(await health()).toMatchObject({ status: 200, body: { status: 'ok', version: 'unapplied', definitions: { inSync: true } } });
    const res = await read(['driver_stats:conv_rate']);
    expect(res.status).toBe(200);
    expect(res.body.results[1].values).toEqual([0.2, 0.3]);
  });

  it('picks up an apply, then a newly added feature, without a restart', async () => {
    await larder('apply');
    const v1 = (await new FileRegistry(join(home, 'registry.json')).current())!.version;
    await until('the first apply', health, (h) => h.body.version === v1);
    expect((await read(['driver_stats:trips'])).status).toBe(400);

    await writeFile(join(repo, 'definitions.ts'), definitions(`conv_rate: 'float64', trips: 'int64'`));
    await larder('apply');
    await larder('backfill', '--start', iso(NOW - 24 * HOUR), '--end', iso(NOW));
    await larder('materialize', '--start', iso(NOW - 24 * HOUR), '--end', iso(NOW));
    const v2 = (await new FileRegistry(join(home, 'registry.json')).current())!.version;
    expect(v2).not.toBe(v1);
    await until('the second apply', health, (h) => h.body.version === v2);
    const res = await read(['driver_stats:trips', 'driver_stats:conv_rate']);
    expect(res.status).toBe(200);
    expect(res.body.results.map((r: { values: unknown[] }) => r.values)).toEqual([[2, 3], [14, 21], [0.2, 0.3]]);
    expect((await health()).body.definitions).toMatchObject({ version: v2, repoVersion: v2, inSync: true });
  }, 60_000);

  it('keeps serving when the registry breaks, and says so in /health', async () => {
    const file = join(home, 'registry.json');
    const saved = await readFile(file, 'utf8');
    await writeFile(file, '{ not json');
    try {
      const broken = await health();
      expect(broken.status).toBe(503);
      expect(broken.body).toMatchObject({ status: 'unavailable', online: 'ok', registry: 'unavailable', error: expect.stringMatching(/registry/) });
      await new Promise((r) => setTimeout(r, 500));
      expect((await read(['driver_stats:trips'])).status).toBe(200);
    } finally {
      await writeFile(file, saved);
    }
    expect((await health()).status).toBe(200);
    expect((await health()).body.version).toMatch(/^[0-9a-f]{12}$/);
  });

  it('on SIGTERM finishes the request in flight and exits 0', async () => {
    const body = JSON.stringify({ entities: { driver_id: Array.from({ length: 2000 }, (_, i) => i % 5), event_timestamp: Array.from({ length: 2000 }, () => iso(NOW)) }, features: ['driver_stats:conv_rate'] });
    const inFlight = fetch(`${url}/get-historical-features`, { method: 'POST', headers: { accept: 'application/json' }, body });
    await new Promise((r) => setTimeout(r, 30));
    const exited = new Promise<number | null>((resolve) => child!.once('exit', resolve));
    child!.kill('SIGTERM');
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(((await res.json()) as { df: { conv_rate: number[] } }).df.conv_rate.slice(0, 3)).toEqual([null, 0.1, 0.2]);
    expect(await exited).toBe(0);
    expect(output).toMatch(/Larder stopping \(SIGTERM\)/);
  });
});
