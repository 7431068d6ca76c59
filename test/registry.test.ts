/**
 * The registry: canonical form and diff (pure), then one suite run against both backends (a file,
 * and PostgreSQL), then what only the file backend needs (the lock between processes).
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir, hostname } from 'node:os';
import { join } from 'node:path';
import { entity, featureService, featureView, fileSource, postgresSource, pushSource } from '../src/definitions/builders.js';
import type { Definitions, FeatureService, FeatureView, RowTransform } from '../src/definitions/types.js';
import type { KeyType, ValueType } from '../src/core/value-types.js';
import { BreakingChangeError } from '../src/core/errors.js';
import { canonicalJson, hashOf, toCanonical, versionOf, type CanonicalRepo } from '../src/registry/canonical.js';
import { breakingChanges, diffRepos, formatDiff } from '../src/registry/diff.js';
import { FileRegistry } from '../src/registry/file.js';
import { openRegistry } from '../src/registry/open.js';
import type { Registry } from '../src/registry/registry.js';
import { createTestDatabase } from './support/services.js';
import { registryBackends } from './support/registries.js';

// ---------------------------------------------------------------------------------------------
// A small repo built with the real builders, in variants.

interface Variant {
  tripsType?: ValueType;
  dropTrips?: boolean;
  joinKey?: string;
  keyType?: KeyType;
  ttl?: string | number;
  transform?: RowTransform;
  extraView?: boolean;
  dropService?: boolean;
  unusedEntity?: boolean;
  description?: string;
}

function defsOf(v: Variant = {}): Definitions {
  const driver = entity({ name: 'driver', joinKeys: [v.joinKey ?? 'driver_id'], valueType: v.keyType ?? 'int64' });
  const source = fileSource({ name: 'driver_stats_source', path: 'data/driver_stats.parquet', timestampField: 'event_timestamp' });
  const schema: Record<string, ValueType> = { conv_rate: 'float64', ...(v.dropTrips ? {} : { trips: v.tripsType ?? 'int64' }) };
  const stats = featureView({
    name: 'driver_stats',
    entities: [driver],
    source,
    ttl: v.ttl ?? '2h',
    schema,
    ...(v.transform && { transform: v.transform }),
    ...(v.description && { description: v.description }),
  }) as FeatureView;
  const views: FeatureView[] = [stats];
  if (v.extraView) {
    views.push(featureView({ name: 'driver_hourly', entities: [driver], source, schema: { acc_rate: 'float32' } }) as unknown as FeatureView);
  }
  const services: FeatureService[] = v.dropService ? [] : [featureService({ name: 'driver_model_v1', features: [stats.select('conv_rate')] }) as unknown as FeatureService];
  const entities = [driver, ...(v.unusedEntity ? [entity({ name: 'rider', joinKeys: ['rider_id'] })] : [])];
  return {
    entities: new Map(entities.map((e) => [e.name, e])),
    sources: new Map([[source.name, source]]),
    views: new Map(views.map((x) => [x.name, x])),
    services: new Map(services.map((s) => [s.name, s])),
    repoDir: '/nowhere',
  };
}

const repoOf = (v: Variant = {}): CanonicalRepo => toCanonical(defsOf(v));

// ---------------------------------------------------------------------------------------------

describe('canonical form', () => {
  it('gives the same version for the same definitions, whatever the order they were registered in', () => {
    const a = defsOf({ extraView: true, unusedEntity: true });
    const reversed: Definitions = {
      ...a,
      entities: new Map([...a.entities].reverse()),
      views: new Map([...a.views].reverse()),
    };
    expect(versionOf(toCanonical(reversed))).toBe(versionOf(toCanonical(a)));
    expect(canonicalJson(toCanonical(reversed))).toBe(canonicalJson(toCanonical(a)));
    expect(versionOf(repoOf({ ttl: '3h' }))).not.toBe(versionOf(repoOf()));
    expect(hashOf(repoOf())).toMatch(/^[0-9a-f]{64}$/);
    expect(hashOf(repoOf()).startsWith(versionOf(repoOf()))).toBe(true);
  });

  it('records what users defined: keys, schema, ttl, source path as written, service selections', () => {
    const repo = repoOf();
    expect(repo.featureViews[0]).toMatchObject({
      name: 'driver_stats',
      entities: ['driver'],
      joinKeys: ['driver_id'],
      keyTypes: { driver_id: 'int64' },
      source: 'driver_stats_source',
      ttlMs: 7_200_000,
      schema: { conv_rate: 'float64', trips: 'int64' },
      online: true,
    });
    expect(repo.sources[0]).toMatchObject({ type: 'file', path: 'data/driver_stats.parquet', format: 'parquet' });
    expect(repo.featureServices[0]).toEqual({ name: 'driver_model_v1', features: { driver_stats: ['conv_rate'] } });
    // Plain JSON: survives a round trip unchanged.
    expect(JSON.parse(JSON.stringify(repo))).toEqual(repo);
  });

  it('shows an edited transform as a change, and keeps passwords out of postgres source connections', () => {
    const before = repoOf({ transform: (row) => ({ conv_rate: row.conv, trips: row.trips }) });
    const after = repoOf({ transform: (row) => ({ conv_rate: Number(row.conv) * 2, trips: row.trips }) });
    const diff = diffRepos(before, after);
    expect(diff.objects).toHaveLength(1);
    expect(diff.objects[0]!.fields.map((f) => [f.path, f.breaking])).toEqual([['transform.sha256', false]]);

    const src = postgresSource({ name: 'pg_src', table: 'public.stats', connection: 'postgres://larder:s3cret@db:5432/prod', timestampField: 'ts' });
    const defs = defsOf();
    const repo = toCanonical({ ...defs, sources: new Map([...defs.sources, [src.name, src]]) });
    expect(canonicalJson(repo)).not.toContain('s3cret');
    expect(repo.sources.find((s) => s.name === 'pg_src')).toMatchObject({ type: 'postgres', connection: 'postgres://larder@db:5432/prod', table: 'public.stats' });
  });

  it('lists resolved aggregations by name; a changed tile is a change, a dropped function a breaking one', () => {
    const build = (functions: ('mean' | 'max' | 'count')[], tile?: string): CanonicalRepo => {
      const weld = entity({ name: 'weld', joinKeys: ['weld_id'] });
      const readings = pushSource({ name: 'weld_readings', schema: { weld_id: 'string', amplitude: 'float32' }, timestampField: 'event_timestamp' });
      const view = featureView({
        name: 'weld_sensor_stats',
        entities: [weld],
        source: readings,
        aggregations: [{ column: 'amplitude', functions, windows: ['1m', '10m'], ...(tile && { tile }) }],
      }) as unknown as FeatureView;
      return toCanonical({ entities: new Map([['weld', weld]]), sources: new Map([['weld_readings', readings]]), views: new Map([[view.name, view]]), services: new Map(), repoDir: '/x' });
    };
    const base = build(['mean', 'max', 'count']);
    expect(base.featureViews[0]!.aggregations!.map((a) => a.name)).toEqual([
      'amplitude_count_10m',
      'amplitude_count_1m',
      'amplitude_max_10m',
      'amplitude_max_1m',
      'amplitude_mean_10m',
      'amplitude_mean_1m',
    ]);
    expect(base.featureViews[0]!.schema.amplitude_count_1m).toBe('int64');

    const retiled = diffRepos(base, build(['mean', 'max', 'count'], '5s'));
    expect(retiled.objects[0]!.breaking).toBe(false);
    expect(retiled.objects[0]!.fields.map((f) => f.path)).toContain('aggregations.amplitude_mean_10m.tileMs');

    const dropped = diffRepos(base, build(['mean', 'count']));
    expect(dropped.objects[0]!.breaking).toBe(true);
    expect(breakingChanges(dropped)).toContain("featureView 'weld_sensor_stats': schema.amplitude_max_1m: float64 removed");
  });
});

describe('diff', () => {
  it('lists everything as added against an empty registry', () => {
    const diff = diffRepos(null, repoOf());
    expect(diff.objects.map((o) => `${o.action} ${o.kind} ${o.name}`)).toEqual([
      'add entity driver',
      'add source driver_stats_source',
      'add featureView driver_stats',
      'add featureService driver_model_v1',
    ]);
    expect(breakingChanges(diff)).toEqual([]);
  });

  it('prints added, changed and removed objects with their fields, breaking ones marked, then a summary', () => {
    const from = repoOf({ unusedEntity: true });
    const to = repoOf({ tripsType: 'float64', extraView: true, dropService: true, description: 'per-driver stats' });
    expect(formatDiff(diffRepos(from, to))).toBe(
      [
        '- entity rider',
        '+ featureView driver_hourly',
        '~ featureView driver_stats',
        '    + description: per-driver stats',
        '    ~ schema.trips: int64 -> float64  [breaking]',
        '- featureService driver_model_v1  [breaking]',
        '',
        '1 to add, 1 to change (1 breaking), 2 to remove (1 breaking)',
      ].join('\n'),
    );
  });

  it('flags join key changes on the entity and on every view keyed by it', () => {
    const renamed = diffRepos(repoOf(), repoOf({ joinKey: 'driver_uuid' }));
    expect(breakingChanges(renamed)).toEqual(
      expect.arrayContaining(["entity 'driver': joinKeys: [driver_id] -> [driver_uuid]", "featureView 'driver_stats': joinKeys: [driver_id] -> [driver_uuid]"]),
    );
    const retyped = diffRepos(repoOf(), repoOf({ keyType: 'string' }));
    expect(breakingChanges(retyped)).toEqual(["entity 'driver': keyTypes.driver_id: int64 -> string", "featureView 'driver_stats': keyTypes.driver_id: int64 -> string"]);
  });

  it('says the registry is up to date when nothing changed', () => {
    expect(formatDiff(diffRepos(repoOf(), repoOf()), 'abc123def456')).toBe('No changes. Registry is up to date at version abc123def456.');
  });
});

// ---------------------------------------------------------------------------------------------
// Both backends

let tmp: string;
let database: { url: string; drop(): Promise<void> };

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'larder-registry-'));
  database = await createTestDatabase('registry');
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
  await database?.drop();
});

const backends = registryBackends(() => ({ tmp, databaseUrl: database.url }));

describe.each(backends)('$name registry', (backend) => {
  let url: string;
  const opened: Registry[] = [];
  const open = async (): Promise<Registry> => {
    const r = await openRegistry(url);
    opened.push(r);
    return r;
  };

  beforeEach(async () => {
    url = await backend.fresh();
  });
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((r) => r.close()));
  });

  it('starts empty, and the first apply stores the repo as the current version', async () => {
    const registry = await open();
    expect(await registry.current()).toBeNull();
    expect(await registry.history()).toEqual([]);
    await registry.ping();

    const repo = repoOf();
    const before = Date.now();
    const result = await registry.apply(repo);
    expect(result.changed).toBe(true);
    expect(result.version.version).toBe(versionOf(repo));
    expect(result.version.hash).toBe(hashOf(repo));
    expect(result.diff.objects.every((o) => o.action === 'add')).toBe(true);
    expect(Date.parse(result.version.appliedAt)).toBeGreaterThanOrEqual(before - 1000);

    const reopened = await open();
    const current = await reopened.current();
    expect(current?.version).toBe(versionOf(repo));
    expect(current?.repo).toEqual(repo);
    expect(hashOf(current!.repo)).toBe(hashOf(repo));
  });

  it('re-applying unchanged definitions stores nothing and returns the same version', async () => {
    const registry = await open();
    const first = await registry.apply(repoOf());
    const again = await registry.apply(repoOf());
    expect(again.changed).toBe(false);
    expect(again.diff.objects).toEqual([]);
    expect(again.version).toEqual(first.version);
    expect(await registry.history()).toHaveLength(1);
  });

  it('applies added, changed and removed objects that break nothing', async () => {
    const registry = await open();
    await registry.apply(repoOf({ unusedEntity: true }));
    const { diff, changed } = await registry.apply(repoOf({ extraView: true, ttl: '3h' }));
    expect(changed).toBe(true);
    expect(diff.objects.map((o) => `${o.action} ${o.kind} ${o.name}`)).toEqual(['remove entity rider', 'add featureView driver_hourly', 'change featureView driver_stats']);
    expect(diff.objects[2]!.fields).toEqual([{ path: 'ttlMs', action: 'change', from: 7_200_000, to: 10_800_000, breaking: false }]);
    expect((await registry.current())!.version).toBe(versionOf(repoOf({ extraView: true, ttl: '3h' })));
  });

  it.each([
    { change: 'a feature type changed', variant: { tripsType: 'float64' } as Variant, names: "featureView 'driver_stats': schema.trips: int64 -> float64" },
    { change: 'a feature removed', variant: { dropTrips: true } as Variant, names: "featureView 'driver_stats': schema.trips: int64 removed" },
    { change: 'a join key changed', variant: { joinKey: 'driver_uuid' } as Variant, names: "entity 'driver': joinKeys: [driver_id] -> [driver_uuid]" },
    { change: 'a feature service removed', variant: { dropService: true } as Variant, names: "featureService 'driver_model_v1' removed" },
  ])('refuses a breaking change ($change) without force, and applies it with force', async ({ variant, names }) => {
    const registry = await open();
    const base = await registry.apply(repoOf());
    const refused = await registry.apply(repoOf(variant)).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(BreakingChangeError);
    const message = (refused as Error).message;
    expect(message).toContain(names);
    expect(message).toContain('--force');
    expect(message).not.toContain('\n');
    expect((await registry.current())!.version).toBe(base.version.version);
    expect(await registry.history()).toHaveLength(1);

    const forced = await registry.apply(repoOf(variant), { force: true });
    expect(forced.changed).toBe(true);
    expect((await registry.current())!.version).toBe(versionOf(repoOf(variant)));
    expect(await registry.history()).toHaveLength(2);
  });

  it('keeps every applied version with its time, oldest first, including a return to an earlier one', async () => {
    const registry = await open();
    const a = await registry.apply(repoOf());
    const b = await registry.apply(repoOf({ ttl: '3h' }));
    const c = await registry.apply(repoOf());
    const history = await registry.history();
    expect(history.map((h) => h.version)).toEqual([a.version.version, b.version.version, a.version.version]);
    expect(history.map((h) => h.appliedAt)).toEqual([a.version.appliedAt, b.version.appliedAt, c.version.appliedAt]);
    const times = history.map((h) => Date.parse(h.appliedAt));
    expect(times.every((t) => Number.isFinite(t))).toBe(true);
    expect([...times].sort((x, y) => x - y)).toEqual(times);
  });

  it('keeps state beside the definitions, across instances and applies', async () => {
    const registry = await open();
    expect(await registry.getState('watermark:driver_stats')).toBeUndefined();
    await registry.setState('watermark:driver_stats', { end: '2024-01-02T00:00:00.000Z', rows: 12 });
    await registry.apply(repoOf());
    await registry.setState('other', [1, 'two', null]);
    await registry.setState('watermark:driver_stats', { end: '2024-01-03T00:00:00.000Z', rows: 20 });
    const other = await open();
    expect(await other.getState('watermark:driver_stats')).toEqual({ end: '2024-01-03T00:00:00.000Z', rows: 20 });
    expect(await other.getState('other')).toEqual([1, 'two', null]);
    expect((await other.current())!.version).toBe(versionOf(repoOf()));
  });

  it('serialises concurrent applies from separate instances: every version lands, none lost', async () => {
    const repos = [1, 2, 3, 4, 5].map((h) => repoOf({ ttl: `${h}h` }));
    // Five instances, each its own connection pool or lock queue, all starting on an empty registry.
    const instances = await Promise.all(repos.map(() => open()));
    const results = await Promise.all(repos.map((repo, i) => instances[i]!.apply(repo)));
    expect(results.every((r) => r.changed)).toBe(true);
    const history = await instances[0]!.history();
    expect(history).toHaveLength(5);
    expect(new Set(history.map((h) => h.hash))).toEqual(new Set(repos.map(hashOf)));
    // Each apply diffed against the version it replaced: exactly one saw an empty registry.
    expect(results.filter((r) => r.diff.objects.every((o) => o.action === 'add'))).toHaveLength(1);
    expect((await instances[1]!.current())!.hash).toBe(history[4]!.hash);
    if (backend.name === 'file') JSON.parse(await readFile(url.slice('file:'.length), 'utf8'));
  });
});

// ---------------------------------------------------------------------------------------------
// File backend only

describe('file registry', () => {
  const fileOf = (name: string): string => join(tmp, name, 'registry.json');

  it('loses no version when two processes apply at once, and the file always parses', async () => {
    const path = fileOf('two-processes');
    const perChild = 12;
    const reposFor = (child: number): CanonicalRepo[] => Array.from({ length: perChild }, (_, i) => repoOf({ ttl: child * 1000 + i + 1 }));
    const script = join(tmp, 'apply-child.mts');
    const registryModule = new URL('../src/registry/file.ts', import.meta.url).href;
    await writeFile(
      script,
      [
        `import { readFileSync } from 'node:fs';`,
        `import { FileRegistry } from ${JSON.stringify(registryModule)};`,
        `const [path, reposFile, startAt] = process.argv.slice(2);`,
        `const repos = JSON.parse(readFileSync(reposFile, 'utf8'));`,
        `const registry = new FileRegistry(path);`,
        `await new Promise((r) => setTimeout(r, Math.max(0, Number(startAt) - Date.now())));`,
        `for (const repo of repos) await registry.apply(repo, { force: true });`,
      ].join('\n'),
    );
    const startAt = Date.now() + 2500;
    const children = [1, 2].map(async (child) => {
      const reposFile = join(tmp, `repos-${child}.json`);
      await writeFile(reposFile, JSON.stringify(reposFor(child)));
      return new Promise<{ code: number | null; stderr: string }>((resolveChild) => {
        const p = spawn(process.execPath, ['--import', 'tsx', script, path, reposFile, String(startAt)], { cwd: process.cwd(), stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        p.on('close', (code) => resolveChild({ code, stderr }));
      });
    });
    // Read the file while the children write it: a reader must never see a partial file.
    let reads = 0;
    let done = false;
    const reader = (async () => {
      while (!done) {
        const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? null : Promise.reject(err)));
        if (text !== null) {
          JSON.parse(text);
          reads++;
        }
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    const outcomes = await Promise.all(children);
    done = true;
    await reader;
    expect(outcomes).toEqual([
      { code: 0, stderr: '' },
      { code: 0, stderr: '' },
    ]);
    expect(reads).toBeGreaterThan(0);
    const history = await new FileRegistry(path).history();
    expect(history).toHaveLength(2 * perChild);
    expect(new Set(history.map((h) => h.hash))).toEqual(new Set([...reposFor(1), ...reposFor(2)].map(hashOf)));
    expect(existsSync(`${path}.lock`)).toBe(false);
  });

  it('breaks a lock left by a process that died', async () => {
    const path = fileOf('stale-lock');
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    await new FileRegistry(path).setState('x', 1);
    await writeFile(`${path}.lock`, JSON.stringify({ pid: dead, host: hostname(), token: 'left-behind' }));
    const registry = new FileRegistry(path, { lockTimeoutMs: 2000 });
    expect((await registry.apply(repoOf())).changed).toBe(true);
    expect(existsSync(`${path}.lock`)).toBe(false);
  });

  it('waits for a live lock holder, then fails naming the lock file and its holder', async () => {
    const path = fileOf('live-lock');
    await new FileRegistry(path).setState('x', 1);
    await writeFile(`${path}.lock`, JSON.stringify({ pid: process.pid, host: hostname(), token: 'someone-else' }));
    const registry = new FileRegistry(path, { lockTimeoutMs: 300 });
    await expect(registry.apply(repoOf())).rejects.toThrow(`${path}.lock: held by pid ${process.pid}`);
    // The holder's lock is left alone, and nothing was written.
    expect(JSON.parse(await readFile(`${path}.lock`, 'utf8')).token).toBe('someone-else');
    expect(await registry.current()).toBeNull();
  });

  it('names the file when it is not a registry', async () => {
    const path = fileOf('corrupt');
    await new FileRegistry(path).setState('x', 1);
    await writeFile(path, '{"format": 1, "histo');
    await expect(new FileRegistry(path).current()).rejects.toThrow(`registry file '${path}': not valid JSON`);
  });
});

describe('postgres registry', () => {
  it('reports an unreachable server in one line naming the URL without its password', async () => {
    const registry = await openRegistry('postgres://larder:hunter2@127.0.0.1:1/registry');
    try {
      const err = (await registry.current().catch((e: unknown) => e)) as Error;
      expect(err.message).toMatch(/^registry postgres:\/\/larder@127\.0\.0\.1:1\/registry: .*ECONNREFUSED/);
      expect(err.message).not.toContain('hunter2');
      expect(err.message).not.toContain('\n');
      await expect(registry.ping()).rejects.toThrow('registry postgres://larder@127.0.0.1:1/registry');
    } finally {
      await registry.close();
    }
  });
});
