/**
 * `larder plan` and `larder apply` end to end: the real command on a temp definitions repo whose
 * files import from 'larder', against a file registry and a PostgreSQL one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openRegistry } from '../src/registry/open.js';
import { createTestDatabase } from './support/services.js';

const BIN = fileURLToPath(new URL('../bin/larder.mjs', import.meta.url));

const definitions = (tripsType: string): string => `
import { entity, fileSource, featureView, featureService } from 'larder';

export const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });

const source = fileSource({ name: 'driver_stats_source', path: 'data/driver_stats.csv', timestampField: 'event_timestamp' });

export const driverStats = featureView({
  name: 'driver_stats',
  entities: [driver],
  source,
  ttl: '2h',
  schema: { conv_rate: 'float64', trips: '${tripsType}' },
});

export const driverModel = featureService({ name: 'driver_model_v1', features: [driverStats.select('conv_rate', 'trips')] });
`;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let tmp: string;
let database: { url: string; drop(): Promise<void> };

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'larder-cli-plan-'));
  database = await createTestDatabase('cli_plan_apply');
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
  await database?.drop();
});

describe.each([
  { backend: 'file', registry: (home: string) => `file:${join(home, 'registry.json')}` },
  { backend: 'postgres', registry: () => database.url },
])('larder plan / apply with a $backend registry', ({ backend, registry }) => {
  it('plans, applies, refuses a breaking change without --force and applies it with --force', async () => {
    const repo = join(tmp, backend, 'defs');
    const home = join(tmp, backend, 'home');
    await mkdir(join(repo, 'data'), { recursive: true });
    await writeFile(join(repo, 'data', 'driver_stats.csv'), 'driver_id,event_timestamp,conv_rate,trips\n1001,2024-01-01T00:00:00Z,0.5,3\n');
    await writeFile(join(repo, 'drivers.ts'), definitions('int64'));
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LARDER_REPO: repo, LARDER_HOME: home };
    if (backend === 'postgres') env.LARDER_REGISTRY = registry(home);
    const larder = (...args: string[]): Promise<Run> =>
      new Promise((resolveRun) => {
        execFile(process.execPath, [BIN, ...args], { env, cwd: tmp }, (err, stdout, stderr) => {
          resolveRun({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
        });
      });

    const plan1 = await larder('plan');
    expect(plan1).toMatchObject({ code: 0, stderr: '' });
    expect(plan1.stdout).toContain('nothing applied yet');
    expect(plan1.stdout).toContain('+ featureView driver_stats');
    expect(plan1.stdout).toContain('4 to add, 0 to change, 0 to remove');

    const apply1 = await larder('apply');
    expect(apply1).toMatchObject({ code: 0, stderr: '' });
    const version = /Applied version ([0-9a-f]{12}) \(4 objects\)\./.exec(apply1.stdout)?.[1];
    expect(version).toBeDefined();

    const apply2 = await larder('apply');
    expect(apply2).toMatchObject({ code: 0, stdout: `No changes. Registry is up to date at version ${version}.\n` });

    await writeFile(join(repo, 'drivers.ts'), definitions('float64'));
    const plan2 = await larder('plan');
    expect(plan2.code).toBe(0);
    expect(plan2.stdout).toContain('~ featureView driver_stats\n    ~ schema.trips: int64 -> float64  [breaking]');
    expect(plan2.stdout).toContain('0 to add, 1 to change (1 breaking), 0 to remove');

    const refused = await larder('apply');
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain('~ schema.trips: int64 -> float64  [breaking]');
    expect(refused.stderr).toBe(
      "larder apply: breaking change refused: featureView 'driver_stats': schema.trips: int64 -> float64; run with --force to apply it anyway\n",
    );
    const reg = await openRegistry(registry(home));
    try {
      expect((await reg.current())?.version).toBe(version);

      const forced = await larder('apply', '--force');
      expect(forced).toMatchObject({ code: 0, stderr: '' });
      expect(forced.stdout).toMatch(/Applied version [0-9a-f]{12} \(4 objects\), forcing 1 breaking change\./);
      const history = await reg.history();
      expect(history).toHaveLength(2);
      expect((await reg.current())?.repo.featureViews[0]?.schema.trips).toBe('float64');
    } finally {
      await reg.close();
    }
    if (backend === 'file') expect(JSON.parse(await readFile(join(home, 'registry.json'), 'utf8')).history).toHaveLength(2);
  });
});

describe('larder apply', () => {
  it('rejects an unknown flag in one line naming it', async () => {
    const result = await new Promise<Run>((resolveRun) => {
      execFile(process.execPath, [BIN, 'apply', '--froce'], { env: { PATH: process.env.PATH, LARDER_REPO: tmp } }, (err, stdout, stderr) =>
        resolveRun({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain("'--froce'");
  });
});
