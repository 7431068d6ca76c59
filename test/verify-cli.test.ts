/**
 * `larder verify` on the example definitions after a push scenario: weld readings pushed for a
 * few minutes of pipeline, then the audit in a child process finds online and offline equal (exit
 * 0, a table of features); a reading that reached only the online store makes it exit 1 and name
 * the weld. Bad flags give one line and exit 1.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDefinitions } from '../src/definitions/loader.js';
import type { Definitions } from '../src/definitions/types.js';
import { openOnlineStore } from '../src/online/open.js';
import { push } from '../src/serving/push.js';
import { PushFileWriter } from '../src/serving/push-offline.js';
import { runLarder } from './support/cli.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const REPO = join(ROOT, 'feature-definitions');

let dir: string;
let defs: Definitions;

const larder = (...args: string[]) =>
  runLarder(['verify', ...args], { cwd: dir, env: { LARDER_REPO: REPO, LARDER_HOME: dir, LARDER_ONLINE: `embedded:${join(dir, 'online')}`, LARDER_OFFLINE: join(dir, 'offline') } });

/** Pushes readings of welds w-0001..w-0020, one every second for the last `seconds`, to `to`. */
async function pushReadings(seconds: number, to: 'online' | 'online_and_offline', only?: string): Promise<void> {
  const store = await openOnlineStore(`embedded:${join(dir, 'online')}`);
  const files = new PushFileWriter(join(dir, 'offline'));
  try {
    const now = Date.now();
    const welds = only ? [only] : Array.from({ length: 20 }, (_, i) => `w-${String(i + 1).padStart(4, '0')}`);
    const rows = welds.flatMap((weld, w) => Array.from({ length: seconds }, (_, s) => ({ weld, at: now - s * 1000 - w * 37, x: (w * 31 + s * 7) % 100 })));
    await push(
      { defs, store, files },
      {
        pushSource: 'weld_readings',
        to,
        df: {
          weld_id: rows.map((r) => r.weld),
          event_timestamp: rows.map((r) => r.at),
          amplitude: rows.map((r) => 0.5 + r.x / 1000),
          temperature: rows.map((r) => 40 + r.x / 10),
          pressure: rows.map((r) => 70 + r.x / 50),
        },
      },
    );
  } finally {
    files.close();
    await store.close();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'larder-verify-'));
  defs = await loadDefinitions(REPO);
  await pushReadings(180, 'online_and_offline');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('larder verify', () => {
  it('finds the example weld aggregates equal online and offline after a push scenario', async () => {
    const r = await larder('--views', 'weld_sensor_stats', '--sample', '20');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^verify at \S+: weld_sensor_stats \(20 entities\)\n/);
    expect(r.stdout).toMatch(/^weld_sensor_stats:amplitude_mean_1m\s+20\s+0$/m);
    expect(r.stdout).toMatch(/no mismatches\n$/);
  });

  it('exits 1 and names the weld when a reading reached only the online store', async () => {
    await pushReadings(1, 'online', 'w-0007');
    const r = await larder('--views', 'weld_sensor_stats', '--sample', '20');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^weld_sensor_stats:amplitude_count_1m\s+20\s+1$/m);
    expect(r.stdout).toContain('weld_sensor_stats:amplitude_count_1m {"weld_id":"w-0007"}');
    expect(r.stdout).toMatch(/\d+ mismatched values\n$/);
  });

  it('refuses bad flags with one line', async () => {
    const views = await larder('--views', 'nope');
    expect(views.code).toBe(1);
    expect(views.stderr).toMatch(/^larder verify: --views: no feature view 'nope' \(defined: .*weld_sensor_stats.*\)\n$/);
    const sample = await larder('--sample', '0');
    expect(sample.code).toBe(1);
    expect(sample.stderr).toBe("larder verify: --sample: expected a whole number above 0, got '0'\n");
  });
});
