/**
 * Bad definitions, as a feature author meets them: `larder plan` on a broken repo prints one line
 * naming the file or object at fault, exits non-zero, and registers nothing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const BIN = new URL('../bin/larder.mjs', import.meta.url).pathname;
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function repoWith(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'larder-bad-defs-'));
  dirs.push(dir);
  await mkdir(join(dir, 'data'));
  // A CSV source with driver_id, event_timestamp and conv_rate, but no `trips` column.
  await writeFile(join(dir, 'data', 'stats.csv'), 'driver_id,event_timestamp,conv_rate\n1,2024-01-01T00:00:00Z,0.5\n');
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

const plan = (repo: string) =>
  spawnSync(process.execPath, [BIN, 'plan'], { env: { ...process.env, LARDER_REPO: repo, LARDER_HOME: join(repo, '.larder') }, encoding: 'utf8' });

const HEADER = `import { entity, fileSource, featureView } from 'larder';
export const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
const src = fileSource({ name: 'stats_source', path: 'data/stats.csv', timestampField: 'event_timestamp' });
`;

interface BadRepo {
  case: string;
  files: Record<string, string>;
  line: RegExp;
}

describe('larder plan on bad definitions', () => {
  it.each<BadRepo>([
    {
      case: 'duplicate names',
      files: {
        'a.ts': `${HEADER}export const v = featureView({ name: 'driver_stats', entities: [driver], source: src, schema: { conv_rate: 'float64' } });\n`,
        'b.ts': `import { featureView } from 'larder';\nimport { driver } from './a.ts';\nimport { fileSource } from 'larder';\nexport const w = featureView({ name: 'driver_stats', entities: [driver], source: fileSource({ name: 'other', path: 'data/stats.csv', timestampField: 'event_timestamp' }), schema: { conv_rate: 'float64' } });\n`,
      },
      line: /two feature views are named 'driver_stats': in .*a\.ts and .*b\.ts/,
    },
    {
      case: 'unknown entity',
      files: { 'a.ts': `${HEADER}export const v = featureView({ name: 'driver_stats', entities: ['rider'], source: src, schema: { conv_rate: 'float64' } });\n` },
      line: /a\.ts: featureView 'driver_stats': entities: unknown entity 'rider'/,
    },
    {
      case: 'wrong type',
      files: { 'a.ts': `${HEADER}export const v = featureView({ name: 'driver_stats', entities: [driver], source: src, schema: { conv_rate: 'double' as 'float64' } });\n` },
      line: /a\.ts: featureView 'driver_stats': schema\.conv_rate: unknown value type 'double'/,
    },
    {
      case: 'a feature missing from the source',
      files: { 'a.ts': `${HEADER}export const v = featureView({ name: 'driver_stats', entities: [driver], source: src, schema: { conv_rate: 'float64', trips: 'int64' } });\n` },
      line: /featureView 'driver_stats': feature 'trips' is not a column of source 'stats_source'/,
    },
  ])('$case: one line, exit 1, nothing registered', async ({ files, line }) => {
    const repo = await repoWith(files);
    const result = plan(repo);
    expect(result.status).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(line);
    expect(existsSync(join(repo, '.larder', 'registry.json'))).toBe(false);
  });

  it('a good repo plans cleanly, so the failures above are about the definitions', async () => {
    const repo = await repoWith({ 'a.ts': `${HEADER}export const v = featureView({ name: 'driver_stats', entities: [driver], source: src, schema: { conv_rate: 'float64' } });\n` });
    const result = plan(repo);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/\+ featureView driver_stats/);
  });
});
