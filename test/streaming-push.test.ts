/**
 * Streaming aggregations end to end, on both online stores: random readings pushed out of order,
 * in batches and by concurrent pushers, fold into tiles; the online values at an instant equal
 * the point-in-time dataset at that instant (the skew audit finds nothing); events later than the
 * view's allowed lateness are counted, kept offline and left out online, and the audit reports
 * the skew that makes; so does a push that reached only the online store.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadDefinitions } from '../src/definitions/loader.js';
import type { Definitions } from '../src/definitions/types.js';
import { openOnlineStore } from '../src/online/open.js';
import type { OnlineStore } from '../src/online/store.js';
import { push } from '../src/serving/push.js';
import { PushFileWriter } from '../src/serving/push-offline.js';
import { asEpochMs } from '../src/core/time.js';
import { verifyOnline } from '../src/verify/skew.js';
import { TileIngest } from '../src/streaming/ingest.js';
import { listPartitions } from '../src/offline/layout.js';
import { deleteRedisPrefix, redisUrl, uniquePrefix } from './support/services.js';

const DEFINITIONS = `import { entity, featureView, pushSource } from 'larder';
export const weld = entity({ name: 'weld', joinKeys: ['weld_id'], valueType: 'string' });
export const readings = pushSource({
  name: 'readings', timestampField: 'event_timestamp',
  schema: { weld_id: 'string', amplitude: 'float32', temperature: 'float64' },
});
export const weldStats = featureView({
  name: 'weld_stats', entities: [weld], source: readings, allowedLateness: '2m',
  aggregations: [
    { column: 'amplitude', functions: ['mean', 'stddev', 'min', 'max', 'count', 'sum', 'last'], windows: ['1m', '10m'] },
    { column: 'temperature', functions: ['max', 'count'], windows: ['10m'], tile: '30s' },
  ],
});
`;

let seed = 11;
const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;

interface Reading {
  weld_id: string;
  event_timestamp: number;
  amplitude: number | null;
  temperature: number;
}

/** Readings of a few welds over the last `spanMs` before `now`, in random order. */
function readings(count: number, now: number, spanMs: number): Reading[] {
  return Array.from({ length: count }, () => ({
    weld_id: `w${Math.floor(random() * 6)}`,
    event_timestamp: Math.floor(now - random() * spanMs),
    amplitude: random() < 0.05 ? null : Math.round((random() - 0.3) * 1e6) / 1e3,
    temperature: 20 + random() * 60,
  }));
}

const columns = (rows: readonly Reading[]) => ({
  weld_id: rows.map((r) => r.weld_id),
  event_timestamp: rows.map((r) => r.event_timestamp),
  amplitude: rows.map((r) => r.amplitude),
  temperature: rows.map((r) => r.temperature),
});

const backends = [
  {
    name: 'redis',
    async open(): Promise<{ store: OnlineStore; cleanup(): Promise<void> }> {
      const prefix = uniquePrefix('streaming');
      const store = await openOnlineStore(redisUrl(), { prefix });
      return {
        store,
        async cleanup() {
          await store.close();
          await deleteRedisPrefix(prefix);
        },
      };
    },
  },
  {
    name: 'embedded',
    async open(): Promise<{ store: OnlineStore; cleanup(): Promise<void> }> {
      const dir = await mkdtemp(join(tmpdir(), 'larder-streaming-online-'));
      const store = await openOnlineStore(`embedded:${dir}`);
      return {
        store,
        async cleanup() {
          await store.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  },
];

describe.each(backends)('streaming aggregations: $name', (backend) => {
  let dir: string;
  let defs: Definitions;
  let store: OnlineStore;
  let files: PushFileWriter;
  let cleanup: () => Promise<void>;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'larder-streaming-'));
    await mkdir(join(dir, 'repo'));
    await writeFile(join(dir, 'repo', 'welds.ts'), DEFINITIONS);
    defs = await loadDefinitions(join(dir, 'repo'));
    ({ store, cleanup } = await backend.open());
    files = new PushFileWriter(join(dir, 'offline'));
  });
  afterEach(async () => {
    files.close();
    await cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  const offlineDir = () => join(dir, 'offline');
  const getOnlineFeaturesOf = async (features: string[], ids: string[]) => {
    const { getOnlineFeatures } = await import('../src/online/online-features.js');
    const answer = await getOnlineFeatures({ defs, store, features, entities: { weld_id: ids } });
    return { ids, values: answer.results[1]!.values };
  };

  it('serves the same windows online as the point-in-time dataset, after out-of-order batches from concurrent pushers', async () => {
    const now = Date.now();
    const all = readings(600, now, 100_000);
    // Three pushers at once, each sending its share in batches of 50.
    const shares = [0, 1, 2].map((p) => all.filter((_, i) => i % 3 === p));
    const results = await Promise.all(
      shares.map(async (share) => {
        const out = [];
        for (let i = 0; i < share.length; i += 50) out.push(await push({ defs, store, files }, { pushSource: 'readings', df: columns(share.slice(i, i + 50)), to: 'online_and_offline' }));
        return out;
      }),
    );
    expect(results.flat().every((r) => r.late.every((l) => l.rows === 0))).toBe(true);

    const at = asEpochMs(Date.now());
    const report = await verifyOnline({ defs, offlineDir: offlineDir(), store, at, sample: 10 });
    expect(report.views).toEqual([{ view: 'weld_stats', entities: 6 }]);
    expect(report.features.map((f) => [f.feature, f.mismatches])).toEqual(report.features.map((f) => [f.feature, 0]));
    expect(report.mismatches).toBe(0);
    // And the counts are the events' own: every reading with an amplitude in the last 10 minutes.
    const count = report.features.find((f) => f.feature === 'amplitude_count_10m')!;
    expect(count.compared).toBe(6);
  });

  it('serves as last the reading pushed last of several at one event time, as the dataset does', async () => {
    const e = Date.now() - 2000;
    const tied = [1, 2, 3].map((amplitude) => ({ weld_id: 'w9', event_timestamp: e, amplitude, temperature: 30 }));
    await push({ defs, store, files }, { pushSource: 'readings', df: columns(tied), to: 'online_and_offline' });
    const report = await verifyOnline({ defs, offlineDir: offlineDir(), store, at: asEpochMs(Date.now()), sample: 5 });
    expect(report.features.filter((f) => f.feature.startsWith('amplitude_last')).map((f) => f.mismatches)).toEqual([0, 0]);
    const { getOnlineFeatures } = await import('../src/online/online-features.js');
    const online = await getOnlineFeatures({ defs, store, features: ['weld_stats:amplitude_last_1m'], entities: { weld_id: ['w9'] } });
    expect(online.results[1]!.values).toEqual([3]);
  });

  it('commits concurrent pushes together: every event counted, one offline file per flush, each push answered once durable', async () => {
    const ingest = new TileIngest({ store, files, flushMs: 50 });
    const now = Date.now();
    const batches = Array.from({ length: 12 }, () => readings(40, now, 50_000));
    const answered: number[] = [];
    await Promise.all(
      batches.map(async (batch, i) => {
        await push({ defs, store, files, ingest }, { pushSource: 'readings', df: columns(batch), to: 'online_and_offline' });
        answered.push(i);
      }),
    );
    expect(answered).toHaveLength(12);
    const written = (await listPartitions(offlineDir(), 'weld_stats')).flatMap((p) => p.files);
    // Twelve pushes issued at once: one flush (a second one at most, for a straggler).
    expect(written.length).toBeLessThanOrEqual(2);
    const report = await verifyOnline({ defs, offlineDir: offlineDir(), store, at: asEpochMs(Date.now()), sample: 10 });
    expect(report.mismatches).toBe(0);
    await ingest.close();
    await expect(ingest.add(defs.views.get('weld_stats')!, { keys: ['weld_id=w1' as never], eventMs: new Float64Array(1), createdMs: new Float64Array(1), values: [], present: [] }, null)).rejects.toThrow(/closed/);
  });

  it('writes the events waiting under both definitions of a view reloaded within one flush', async () => {
    const ingest = new TileIngest({ store, files, flushMs: 50 });
    // The same definitions loaded again, as the server does on an apply: new view objects.
    await mkdir(join(dir, 'repo2'));
    await writeFile(join(dir, 'repo2', 'welds.ts'), DEFINITIONS);
    const reloaded = await loadDefinitions(join(dir, 'repo2'));
    expect(reloaded.views.get('weld_stats')).not.toBe(defs.views.get('weld_stats'));
    const now = Date.now();
    const before = readings(30, now, 20_000);
    const after = readings(30, now, 20_000);
    await Promise.all([
      push({ defs, store, files, ingest }, { pushSource: 'readings', df: columns(before), to: 'online_and_offline' }),
      push({ defs: reloaded, store, files, ingest }, { pushSource: 'readings', df: columns(after), to: 'online_and_offline' }),
    ]);
    await ingest.close();
    const report = await verifyOnline({ defs, offlineDir: offlineDir(), store, at: asEpochMs(Date.now()), sample: 10 });
    expect(report.mismatches).toBe(0);
    const counted = await getOnlineFeaturesOf(['weld_stats:amplitude_count_10m'], [...new Set([...before, ...after].map((r) => r.weld_id))]);
    const expected = (weld: string) => [...before, ...after].filter((r) => r.weld_id === weld && r.amplitude !== null).length;
    expect(counted.ids.map((w, i) => [w, counted.values[i]])).toEqual(counted.ids.map((w) => [w, expected(w)]));
  });

  it('fails every push of a flush the store refuses, and writes none of their files', async () => {
    // A Redis nobody listens on: a real connection failure.
    const failing = await openOnlineStore('redis://127.0.0.1:1', { commandTimeoutMs: 300 });
    const ingest = new TileIngest({ store: failing, files, flushMs: 20 });
    const now = Date.now();
    const results = await Promise.allSettled([0, 1, 2].map(() => push({ defs, store: failing, files, ingest }, { pushSource: 'readings', df: columns(readings(10, now, 10_000)), to: 'online_and_offline' })));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect(results.every((r) => r.status === 'rejected' && /online store/.test(String(r.reason)))).toBe(true);
    expect((await listPartitions(offlineDir(), 'weld_stats')).flatMap((p) => p.files)).toEqual([]);
    await ingest.close();
    await failing.close();
  });

  it('counts events later than the allowed lateness, keeps them offline only, and the audit shows the skew', async () => {
    const now = Date.now();
    const onTime = readings(100, now, 60_000);
    // 3 to 9 minutes old: past the 2-minute lateness, inside the 10-minute windows.
    const late = readings(20, now - 180_000, 360_000);
    const first = await push({ defs, store, files }, { pushSource: 'readings', df: columns(onTime), to: 'online_and_offline' });
    expect(first.late).toEqual([{ view: 'weld_stats', rows: 0 }]);
    // Pushed online only: the late ones still reach the offline store.
    const result = await push({ defs, store, files }, { pushSource: 'readings', df: columns(late), to: 'online' });
    expect(result.late).toEqual([{ view: 'weld_stats', rows: 20 }]);

    const report = await verifyOnline({ defs, offlineDir: offlineDir(), store, at: asEpochMs(Date.now()), sample: 10 });
    const byFeature = new Map(report.features.map((f) => [f.feature, f.mismatches]));
    // The 10-minute windows miss the late events online; the 1-minute ones never held them.
    expect(byFeature.get('amplitude_count_10m')).toBeGreaterThan(0);
    expect(byFeature.get('amplitude_count_1m')).toBe(0);
    const example = report.features.find((f) => f.feature === 'amplitude_count_10m')!.examples[0]!;
    expect(example.online as number).toBeLessThan(example.offline as number);
  });

  it('reports a push that reached the online store only as a mismatch', async () => {
    const now = Date.now();
    await push({ defs, store, files }, { pushSource: 'readings', df: columns(readings(60, now, 30_000)), to: 'online_and_offline' });
    const clean = await verifyOnline({ defs, offlineDir: offlineDir(), store, at: asEpochMs(Date.now()), sample: 10 });
    expect(clean.mismatches).toBe(0);
    // Skew injected: one more reading of w0, online only.
    await push({ defs, store, files }, { pushSource: 'readings', df: columns([{ weld_id: 'w0', event_timestamp: now - 1000, amplitude: 1, temperature: 99 }]), to: 'online' });
    const skewed = await verifyOnline({ defs, offlineDir: offlineDir(), store, at: asEpochMs(Date.now()), sample: 10 });
    const counts = skewed.features.filter((f) => f.feature.startsWith('amplitude_count'));
    expect(counts.map((f) => f.mismatches)).toEqual([1, 1]);
    expect(counts[0]!.examples[0]!.entity).toEqual({ weld_id: 'w0' });
  });
});
