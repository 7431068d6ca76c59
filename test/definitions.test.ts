import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { entity, featureService, featureView, fileSource, pushSource } from '../src/definitions/builders.js';
import { sparse } from '../src/core/value-types.js';
import { loadDefinitions } from '../src/definitions/loader.js';

const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
const source = fileSource({ name: 'driver_stats_source', path: 'data/driver_stats.parquet', timestampField: 'event_timestamp', createdTimestampField: 'created' });

describe('definition builders', () => {
  it('builds a view whose select() projects declared features', () => {
    const stats = featureView({ name: 'driver_stats', entities: [driver], source, ttl: '2h', schema: { conv_rate: 'float64', trips: 'int64' } });
    expect(stats.ttlMs).toBe(7_200_000);
    expect(stats.online).toBe(true);
    expect(stats.select('trips').features).toEqual(['trips']);
    // @ts-expect-error: 'nope' is not a declared feature, so this does not compile
    expect(() => stats.select('nope')).toThrow(/select\('nope'\): no such feature/);
    const service = featureService({ name: 'svc', features: [stats.select('conv_rate'), featureView({ name: 'other', entities: [driver], source, schema: { x: 'bool' } })] });
    expect(service.projections.map((p) => [p.view.name, p.features])).toEqual([
      ['driver_stats', ['conv_rate']],
      ['other', ['x']],
    ]);
  });

  it('accepts ttl as seconds, and 0 or nothing as no limit', () => {
    expect(featureView({ name: 'a', entities: [driver], source, ttl: 90, schema: { x: 'int32' } }).ttlMs).toBe(90_000);
    expect(featureView({ name: 'b', entities: [driver], source, ttl: 0, schema: { x: 'int32' } }).ttlMs).toBe(0);
    expect(featureView({ name: 'c', entities: [driver], source, schema: { x: 'int32' } }).ttlMs).toBe(0);
  });

  it('names aggregation features <column>_<function>_<window> with tiles of window/60, at least 1 s', () => {
    const readings = pushSource({ name: 'readings', schema: { driver_id: 'int64', speed: 'float32' }, timestampField: 'ts' });
    const view = featureView({
      name: 'speed_stats',
      entities: [driver],
      source: readings,
      aggregations: [
        { column: 'speed', functions: ['mean', 'count'], windows: ['1m', '1h'] },
        { column: 'speed', functions: ['max'], windows: ['10m'], tile: '30s' },
      ],
    });
    expect(Object.keys(view.schema)).toEqual(['speed_mean_1m', 'speed_count_1m', 'speed_mean_1h', 'speed_count_1h', 'speed_max_10m']);
    expect(view.schema.speed_count_1h).toBe('int64');
    expect(view.aggregatedFeatures!.map((f) => f.tileMs)).toEqual([1000, 1000, 60_000, 60_000, 30_000]);
    expect(view.allowedLatenessMs).toBe(300_000);
    expect(view.select('speed_max_10m').features).toEqual(['speed_max_10m']);
  });

  it.each([
    [() => entity({ name: 'bad name', joinKeys: ['id'] }), /entity 'bad name': name: must be an identifier/],
    [() => entity({ name: 'e', joinKeys: [] }), /entity 'e': joinKeys: needs at least one join key/],
    [() => featureView({ name: 'v', entities: [driver], source, schema: { x: 'floaty' as 'float32' } }), /featureView 'v': schema.x: unknown value type 'floaty'/],
    [() => featureView({ name: 'v', entities: [driver], source, ttl: 'soon', schema: { x: 'int32' } }), /featureView 'v': ttl: expected a duration like/],
    [() => featureView({ name: 'v', entities: [driver], source, schema: { driver_id: 'int64' } }), /schema.driver_id: a feature cannot be named like a join key/],
    [() => fileSource({ name: 's', path: 'x.json', timestampField: 'ts' }), /fileSource 's': path: must end in .parquet or .csv/],
    [() => sparse(0), /sparse\(n\): n must be a positive integer/],
  ])('rejects bad input with one line naming the object and field (%#)', (build, message) => {
    expect(build).toThrow(message);
    try {
      build();
    } catch (err) {
      expect((err as Error).message).not.toContain('\n');
    }
  });
});

describe('definitions loader', () => {
  const dirs: string[] = [];
  const repo = async (files: Record<string, string>): Promise<string> => {
    const dir = await mkdtemp(join(tmpdir(), 'larder-defs-'));
    dirs.push(dir);
    for (const [name, text] of Object.entries(files)) {
      await mkdir(join(dir, name, '..'), { recursive: true });
      await writeFile(join(dir, name), text);
    }
    return dir;
  };
  afterAll(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  const DRIVER = `import { entity, fileSource, featureView } from 'larder';
export const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
const src = fileSource({ name: 'src', path: 'data/d.parquet', timestampField: 'ts' });
export const stats = featureView({ name: 'driver_stats', entities: [driver], source: src, schema: { trips: 'int64' } });
`;

  it('imports every .ts file, registers exports and what they reference, and skips tests, data/ and .larder/', async () => {
    const dir = await repo({
      'drivers.ts': DRIVER,
      'nested/services.ts': `import { featureService } from 'larder';\nimport { stats } from '../drivers.ts';\nexport const svc = featureService({ name: 'svc', features: [stats] });\n`,
      'drivers.test.ts': `throw new Error('test files are not definitions');`,
      'data/x.ts': `throw new Error('data/ is not definitions');`,
      '.larder/y.ts': `throw new Error('.larder/ is not definitions');`,
    });
    const defs = await loadDefinitions(dir);
    expect([...defs.entities.keys()]).toEqual(['driver']);
    expect([...defs.sources.keys()]).toEqual(['src']);
    expect([...defs.views.keys()]).toEqual(['driver_stats']);
    expect([...defs.services.keys()]).toEqual(['svc']);
  });

  it('refuses two objects of one kind with the same name, naming both files', async () => {
    const dir = await repo({ 'a.ts': DRIVER, 'b.ts': DRIVER.replace("'src'", "'src2'") });
    await expect(loadDefinitions(dir)).rejects.toThrow(/two entities are named 'driver': in .*a\.ts and .*b\.ts/);
  });

  it('resolves entities named by string and refuses an unknown one', async () => {
    const ok = await repo({
      'a.ts': `import { entity, fileSource, featureView } from 'larder';
export const driver = entity({ name: 'driver', joinKeys: ['driver_id'] });
export const v = featureView({ name: 'v', entities: ['driver'], source: fileSource({ name: 's', path: 'd.csv', timestampField: 'ts' }), schema: { x: 'int32' } });
`,
    });
    expect((await loadDefinitions(ok)).views.get('v')!.entities[0]!.name).toBe('driver');
    const bad = await repo({
      'a.ts': `import { fileSource, featureView } from 'larder';
export const v = featureView({ name: 'v', entities: ['rider'], source: fileSource({ name: 's', path: 'd.csv', timestampField: 'ts' }), schema: { x: 'int32' } });
`,
    });
    await expect(loadDefinitions(bad)).rejects.toThrow(/a\.ts: featureView 'v': entities: unknown entity 'rider'/);
  });

  it('names the file when a definition in it is invalid', async () => {
    const dir = await repo({ 'broken.ts': DRIVER.replace("'int64' }", "'int64' }").replace("trips: 'int64'", "trips: 'integer'") });
    await expect(loadDefinitions(dir)).rejects.toThrow(/broken\.ts: featureView 'driver_stats': schema\.trips: unknown value type 'integer'/);
  });

  it('says which folder is missing', async () => {
    await expect(loadDefinitions('/nonexistent/larder-repo')).rejects.toThrow(/definitions folder '\/nonexistent\/larder-repo' does not exist/);
  });
});
