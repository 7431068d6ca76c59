/**
 * Drift: profiles and PSI on known samples; then the whole path on the weld sample data. Readings
 * generated with drift 0 and drift 1 are backfilled through the example definitions; point-in-time
 * `weld_failure` rows at the label times of the first half stand in for training (profiled), rows
 * of the second half go through the serving log, and the drift report must flag the amplitude
 * features with drift 1 and not with drift 0. Last, `larder drift` end to end on a file registry.
 */
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asEpochMs, formatInstant, parseInstant } from '../src/core/time.js';
import { loadDefinitions } from '../src/definitions/loader.js';
import { renderDriftHtml } from '../src/drift/html.js';
import { PSI_MAJOR, PSI_MODERATE, binValues, profileRows, psi, quantileEdges, type ProfiledFeature } from '../src/drift/profile.js';
import { computeDrift, type DriftReport } from '../src/drift/report.js';
import { ServingLog } from '../src/inference/serving-log.js';
import type { ModelFeature, ModelVersionMeta } from '../src/models/artifact.js';
import { backfill } from '../src/offline/backfill.js';
import { getHistoricalFeatures } from '../src/offline/dataset.js';
import { selectFeatures } from '../src/offline/feature-selection.js';
import { openRegistry } from '../src/registry/open.js';
import { generateSampleData } from '../src/sample-data/index.js';
import { runLarder } from './support/cli.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const cleanups: string[] = [];

afterAll(async () => {
  await Promise.all(cleanups.map((d) => rm(d, { recursive: true, force: true })));
});

/** Seeded standard normal draws (Box-Muller on a small LCG): the same sample on every run. */
function normals(n: number, seed: number, mean = 0, sd = 1): number[] {
  let state = seed >>> 0;
  const uniform = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return Array.from({ length: n }, () => mean + sd * Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform()));
}

describe('profiles and PSI', () => {
  it('gives ~0 for identical distributions and a major shift for a normal moved by one standard deviation', () => {
    const training = normals(5000, 1);
    const edges = quantileEdges(training, 10);
    expect(edges).toHaveLength(9);
    const expected = binValues(edges, training).counts;
    expect(expected.every((c) => c === 500)).toBe(true); // deciles: equally populated bins
    expect(psi(expected, expected)).toBe(0);
    expect(psi(expected, binValues(edges, normals(5000, 2)).counts)).toBeLessThan(PSI_MODERATE / 2);
    expect(psi(expected, binValues(edges, normals(5000, 3, 1)).counts)).toBeGreaterThan(PSI_MAJOR);
    expect(psi(expected, binValues(edges, normals(5000, 3, 0, 2)).counts)).toBeGreaterThan(PSI_MAJOR); // wider, same mean
    expect(psi([1, 0], [0, 1])).toBeCloseTo(2 * (1 - 1e-4) * Math.log(1 / 1e-4), 6); // empty bins: large but finite
    expect(psi([0, 0], [1, 2])).toBeNaN();
  });

  it('bins left-closed at the edges, with missing values apart', () => {
    expect(binValues([1, 2], [0, 1, 1.5, 2, 3, null, Number.NaN])).toEqual({ counts: [1, 2, 2], nulls: 2 });
    expect(binValues([], [5, null])).toEqual({ counts: [1], nulls: 1 });
  });

  it('profiles constant, boolean, empty and sparse features sensibly, and the prediction in fixed bins', () => {
    const features: ProfiledFeature[] = [
      { name: 'constant', type: 'float64' },
      { name: 'flag', type: 'bool' },
      { name: 'missing', type: 'int32' },
      { name: 'words', type: 'sparse(8)' },
      { name: 'text', type: 'string' },
    ];
    const rows = Array.from({ length: 10 }, (_, i) => ({
      constant: 7,
      flag: i < 7,
      missing: null,
      words: i === 9 ? null : { size: 8, indices: [0, 3].slice(0, 1 + (i % 2)), values: [1, 2].slice(0, 1 + (i % 2)) },
      text: 'skipped',
    }));
    const profile = profileRows(features, rows, rows.map((_, i) => i / 10));
    expect(profile.rows).toBe(10);
    expect(profile.features.map((f) => f.name)).toEqual(['constant', 'flag', 'missing', 'words.total', 'words.nonzeros']);
    const [constant, flag, missing, total, nonzeros] = profile.features;
    // A constant: "below it", "it", "above it".
    expect(constant!.edges[0]).toBe(7);
    expect(constant!.edges[1]).toBeGreaterThan(7);
    expect(constant!.edges[1]! - 7).toBeLessThan(1e-12);
    expect(constant!.counts).toEqual([0, 10, 0]);
    expect(psi([...constant!.counts, 0], [...binValues(constant!.edges, [7, 7]).counts, 0])).toBe(0);
    expect(psi([...constant!.counts, 0], [...binValues(constant!.edges, [7.5, 7.5]).counts, 0])).toBeGreaterThan(PSI_MAJOR);
    expect(flag).toMatchObject({ edges: [0, 1], counts: [0, 3, 7], nulls: 0 });
    expect(missing).toEqual({ name: 'missing', edges: [], counts: [0], nulls: 10 });
    expect(total).toMatchObject({ edges: [1, 3], counts: [0, 5, 4], nulls: 1 });
    expect(nonzeros).toMatchObject({ edges: [1, 2], counts: [0, 5, 4], nulls: 1 });
    expect(profile.prediction).toEqual({ name: 'prediction', edges: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], counts: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], nulls: 0 });
  });
});

describe('drift report across model versions', () => {
  it('compares features over every version that logged them alike, sparse vectors by total and non-zeros, predictions of its own version only', async () => {
    const offlineDir = join(await mkdtemp(join(tmpdir(), 'larder-drift-versions-')), 'offline');
    cleanups.push(join(offlineDir, '..'));
    const sparse = (i: number) => ({ size: 32, indices: Array.from({ length: 1 + (i % 5) }, (_, k) => k * 3), values: Array.from({ length: 1 + (i % 5) }, (_, k) => (k + 1) * 0.5) });
    const features: ModelFeature[] = [
      { name: 'x', ref: 'v:x', type: 'float64' },
      { name: 'words', ref: 't:words', type: 'sparse(32)' },
    ];
    const training = Array.from({ length: 400 }, (_, i) => ({ x: i % 100, words: sparse(i) }));
    const base = (version: string, fs: ModelFeature[]): ModelVersionMeta => ({
      name: 'review_model',
      version,
      featureService: 'reviews',
      joinKeys: ['review_id'],
      features: fs,
      definitionsVersion: 'd',
      definitionsHash: 'd',
      datasetFingerprint: 'fp',
      datasetRows: 400,
      split: { trainUntil: '2024-05-01T00:00:00Z', trainRows: 400, testRows: 0 },
      datasetPath: 'dataset.parquet',
      reviewLabels: 0,
      metrics: {},
      primary: 'naive_bayes',
      reviewThreshold: 0.6,
      trainedAt: '2024-05-01T00:00:00Z',
      trainingSeconds: 1,
      registeredAt: '2024-05-01T00:00:00Z',
      profile: profileRows(fs, training, training.map((_, i) => (i % 10) / 10 + 0.05)),
    });
    const v1 = base('1', [{ name: 'x', ref: 'v:x', type: 'float32' }]); // x only, as float32: comparable
    const v2 = base('2', features);
    const v3 = base('3', [{ name: 'x', ref: 'v:x', type: 'string' }]); // x as text: not comparable
    const at = parseInstant('2024-05-02T10:00:00Z');
    const served = (m: ModelVersionMeta, n: number, x: (i: number) => unknown) =>
      Array.from({ length: n }, (_, i) => ({
        requestId: `${m.version}-${i}`,
        at: asEpochMs(at + i),
        row: i,
        entity: { review_id: `r${i}` },
        features: { x: x(i), words: sparse(i * 2) },
        prediction: m.version === '2' ? 1 : 0,
        probability: m.version === '2' ? 0.95 : 0.05,
        needsReview: false,
      }));
    const log = new ServingLog({ offlineDir, flushMs: 60_000, log: () => {} });
    log.append(v1, served(v1, 100, (i) => i % 100));
    log.append(v2, served(v2, 200, (i) => 50 + (i % 100)));
    log.append(v3, served(v3, 50, (i) => `text ${i}`));
    await log.close();

    const report = await computeDrift({ offlineDir, meta: v2, since: parseInstant('2024-05-02T00:00:00Z'), until: parseInstant('2024-05-03T00:00:00Z') });
    expect(report.servingRows).toBe(350);
    expect(report.servingRowsByVersion).toEqual({ '1': 100, '2': 200, '3': 50 });
    const byName = Object.fromEntries(report.features.map((f) => [f.name, f]));
    expect(Object.keys(byName).sort()).toEqual(['words.nonzeros', 'words.total', 'x']);
    expect(byName.x).toMatchObject({ versions: ['1', '2'], serving: { rows: 300 } });
    const xs = [...Array.from({ length: 100 }, (_, i) => i % 100), ...Array.from({ length: 200 }, (_, i) => 50 + (i % 100))];
    expect(byName.x!.serving.counts).toEqual(binValues(byName.x!.edges, xs).counts);
    // The sparse quantities, binned in SQL from the logged structs, as profile.ts bins them in JavaScript.
    const logged = Array.from({ length: 200 }, (_, i) => sparse(i * 2));
    expect(byName['words.total']).toMatchObject({ versions: ['2'], serving: { rows: 200, nulls: 0 } });
    expect(byName['words.total']!.serving.counts).toEqual(binValues(byName['words.total']!.edges, logged.map((s) => s.values.reduce((a, b) => a + b, 0))).counts);
    expect(byName['words.nonzeros']!.serving.counts).toEqual(binValues(byName['words.nonzeros']!.edges, logged.map((s) => s.indices.length)).counts);
    expect(byName['words.nonzeros']!.psi).toBeLessThan(PSI_MODERATE); // i and 2i mod 5 are alike uniform
    // Predictions: version 2's rows only.
    expect(report.prediction).toMatchObject({ serving: { rows: 200, counts: [0, 0, 0, 0, 0, 0, 0, 0, 0, 200], nulls: 0 }, servingPositiveRate: 1, status: 'major' });
    expect(report.prediction.servingMeanProbability).toBeCloseTo(0.95, 9);
    expect(report.prediction.trainingMeanProbability).toBeCloseTo(0.5, 9);
    expect(report.prediction.trainingPositiveRate).toBe(0.5);
  });
});

// ---------------------------------------------------------------------------------------------
// The weld sample: generated, backfilled with the example definitions, joined point in time.

/**
 * 40 welds with one sensor each over 8 h: enough label rows (18 per weld per half) that sampling
 * noise stays far below the thresholds. The span is centred on the daily temperature peak
 * (15:00 UTC), so the temperature cycle, which also moves amplitude a little, looks the same in
 * both halves; with drift 0 the halves then differ only by chance.
 */
const SAMPLE = { readings: 60_000, welds: 40, sensors: 1, hours: 8, start: '2024-01-01T11:00:00Z' };
const START = parseInstant(SAMPLE.start);
const MIDDLE = asEpochMs(START + (SAMPLE.hours / 2) * 3_600_000);
const END = asEpochMs(START + SAMPLE.hours * 3_600_000);

interface Scenario {
  dir: string;
  offlineDir: string;
  meta: ModelVersionMeta;
  report: DriftReport;
  /** The served rows' PSI of amplitude_mean_1h computed in JavaScript, to check the SQL binning against. */
  jsPsi: number;
}

/** A stand-in scorer (the trainer is not under test): failure signatures raise amplitude variance. */
const probability = (row: Record<string, unknown>): number => {
  const sd = row.amplitude_stddev_10m;
  return typeof sd === 'number' ? 1 / (1 + Math.exp(-(sd - 3))) : 0.5;
};

async function scenario(drift: number): Promise<Scenario> {
  const dir = await mkdtemp(join(tmpdir(), `larder-drift-${drift}-`));
  cleanups.push(dir);
  const repo = join(dir, 'repo');
  await mkdir(repo);
  await copyFile(join(ROOT, 'feature-definitions', 'welds.ts'), join(repo, 'welds.ts'));
  const sample = await generateSampleData({ outDir: join(repo, 'data'), datasets: ['welds'], drift, ...SAMPLE });
  const defs = await loadDefinitions(repo);
  const offlineDir = join(dir, 'offline');
  await backfill({ defs, offlineDir, start: START, end: END });

  const table = await getHistoricalFeatures({ defs, offlineDir, entities: sample.files.weld_labels!, service: 'weld_failure' });
  const rows = table.toArray().map((r) => r.toJSON() as Record<string, unknown>);
  const at = (r: Record<string, unknown>) => Number(r.event_timestamp);
  const training = rows.filter((r) => at(r) < MIDDLE);
  const served = rows.filter((r) => at(r) >= MIDDLE);

  const features: ModelFeature[] = selectFeatures(defs, { service: 'weld_failure' }).features.map((f) => ({ name: f.output, ref: `${f.view}:${f.feature}`, type: f.type }));
  const profile = profileRows(features, training, training.map(probability));
  const meta: ModelVersionMeta = {
    name: 'weld_failure',
    version: '1',
    featureService: 'weld_failure',
    joinKeys: ['weld_id'],
    features,
    definitionsVersion: 'test',
    definitionsHash: 'test',
    datasetFingerprint: `sample-drift-${drift}`,
    datasetRows: training.length,
    split: { trainUntil: formatInstant(MIDDLE), trainRows: training.length, testRows: 0 },
    datasetPath: 'dataset.parquet',
    reviewLabels: 0,
    metrics: {},
    primary: 'logistic_regression',
    reviewThreshold: 0.6,
    trainedAt: formatInstant(MIDDLE),
    trainingSeconds: 1,
    registeredAt: formatInstant(MIDDLE),
    profile,
  };

  const log = new ServingLog({ offlineDir, flushMs: 60_000, log: () => {} });
  log.append(
    meta,
    served.map((r, i) => {
      const p = probability(r);
      return {
        requestId: `req-${i}`,
        at: asEpochMs(at(r)),
        row: 0,
        entity: { weld_id: String(r.weld_id) },
        features: Object.fromEntries(features.map((f) => [f.name, r[f.name]])),
        prediction: p >= 0.5 ? 1 : 0,
        probability: p,
        needsReview: Math.max(p, 1 - p) < 0.6,
      };
    }),
  );
  await log.close();
  expect(log.stats).toMatchObject({ written: served.length, dropped: 0 });

  const report = await computeDrift({ offlineDir, meta, since: MIDDLE, until: asEpochMs(END + 3_600_000) });
  expect(report.servingRows).toBe(served.length);
  const d = profile.features.find((f) => f.name === 'amplitude_mean_1h')!;
  const actual = binValues(d.edges, served.map((r) => r.amplitude_mean_1h as number | null));
  return { dir, offlineDir, meta, report, jsPsi: psi([...d.counts, d.nulls], [...actual.counts, actual.nulls]) };
}

/** Amplitude features whose distribution drift changes: counts are set by the sampling schedule alone. */
const AMPLITUDE = /^amplitude_(mean|stddev|min|max)_/;

describe('drift report on the weld sample', () => {
  let drifted: Scenario;
  let steady: Scenario;

  beforeAll(async () => {
    drifted = await scenario(1);
    steady = await scenario(0);
  });

  it('flags the amplitude features when the sample drifts', () => {
    const { report } = drifted;
    const byName = new Map(report.features.map((f) => [f.name, f]));
    expect(byName.get('amplitude_mean_1h')!.psi).toBeGreaterThanOrEqual(PSI_MAJOR);
    expect(byName.get('amplitude_mean_1h')!.status).toBe('major');
    const amplitude = report.features.filter((f) => AMPLITUDE.test(f.name));
    expect(amplitude).toHaveLength(12);
    for (const f of amplitude) expect(f.status, f.name).toBe('major');
    // Sorted by PSI: the top of the table is amplitude.
    expect(report.features[0]!.name).toMatch(AMPLITUDE);
    expect(report.features.map((f) => f.psi)).toEqual([...report.features.map((f) => f.psi)].sort((a, b) => b! - a!));
    // The SQL binning of the serving log agrees with the profile's JavaScript binning.
    expect(byName.get('amplitude_mean_1h')!.psi).toBeCloseTo(drifted.jsPsi, 9);
    expect(report.prediction.serving.rows).toBe(report.servingRows);
    expect(report.prediction.servingMeanProbability).toBeGreaterThan(0);
  });

  it('does not flag amplitude features without drift', () => {
    const amplitude = steady.report.features.filter((f) => f.name.startsWith('amplitude_'));
    expect(amplitude).toHaveLength(15);
    for (const f of amplitude) expect(f.psi!, f.name).toBeLessThan(PSI_MAJOR);
    expect(steady.report.features.find((f) => f.name === 'amplitude_mean_1h')!.psi).toBeCloseTo(steady.jsPsi, 9);
  });

  it('reports temperature and pressure alike either way: drift touches amplitude only', () => {
    const others = (r: DriftReport) => Object.fromEntries(r.features.filter((f) => !f.name.startsWith('amplitude_')).map((f) => [f.name, f.psi]));
    expect(others(drifted.report)).toEqual(others(steady.report));
    expect(Object.keys(others(steady.report))).toHaveLength(24);
  });

  it('renders a self-contained HTML page: every feature, charts, escaped text', () => {
    const report: DriftReport = { ...drifted.report, notes: ['<script>alert("x")</script> & co'] };
    const html = renderDriftHtml(report);
    expect(html).toMatch(/^<!doctype html>/);
    for (const f of report.features) expect(html).toContain(`>${f.name}</a>`);
    expect(html.match(/<svg /g)).toHaveLength(report.features.length + 1); // and the prediction
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co');
    expect(html).not.toContain('<script');
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//); // no external assets
    expect(html).toContain('Dataset fingerprint</dt><dd>sample-drift-1</dd>');
  });

  it('says so when the window holds no predictions', async () => {
    const report = await computeDrift({ offlineDir: drifted.offlineDir, meta: drifted.meta, since: parseInstant('2023-01-01T00:00:00Z'), until: parseInstant('2023-01-08T00:00:00Z') });
    expect(report.servingRows).toBe(0);
    expect(report.notes[0]).toBe('no predictions in the serving log of weld_failure since 2023-01-01T00:00:00.000Z');
    expect(report.features.every((f) => f.psi === null && f.status === 'no-data')).toBe(true);
    expect(renderDriftHtml(report)).toContain('no predictions in the serving log of weld_failure');
  });

  it('larder drift: registry model, serving log, HTML report and a table; one-line errors', async () => {
    const home = join(drifted.dir, 'home');
    const registryUrl = `file:${join(home, 'registry.json')}`;
    const registry = await openRegistry(registryUrl);
    try {
      const { version: _v, registeredAt: _r, ...meta } = drifted.meta;
      await registry.registerModel({ meta, estimators: { logistic_regression: { kind: 'standardised-logistic-regression', features: [], means: [], scales: [], model: { kind: 'logistic-regression', size: 0, weights: [], bias: 0, l2: 0 } } } });
    } finally {
      await registry.close();
    }
    const env = { LARDER_HOME: home, LARDER_REGISTRY: registryUrl, LARDER_OFFLINE: drifted.offlineDir, LARDER_REPO: join(drifted.dir, 'repo') };
    const larder = (...args: string[]) => runLarder(['drift', ...args], { cwd: drifted.dir, env });

    const out = join(drifted.dir, 'report.html');
    const r = await larder('--model', 'weld_failure', '--since', formatInstant(MIDDLE), '--until', formatInstant(END + 3_600_000), '--out', out);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^drift of weld_failure version 1 \(trained .*\), serving .*: \d+ rows\n/);
    expect(r.stdout).toMatch(/^amplitude_mean_1h\s+\d+\.\d{3}\s+major$/m);
    expect(r.stdout).toMatch(/^prediction\s+\d+\.\d{3}\s+\w+/m);
    expect(r.stdout).toMatch(/^12 features with a major shift \(PSI >= 0\.25\)$/m);
    expect(r.stdout.endsWith(`report: ${out}\n`)).toBe(true);
    expect(await readFile(out, 'utf8')).toContain('<svg');
    expect((await readdir(drifted.dir)).filter((f) => f.startsWith('.'))).toEqual([]); // no temp file left

    const empty = await larder('--model', 'weld_failure', '--since', '2023-01-01T00:00:00Z', '--until', '2023-01-02T00:00:00Z');
    expect(empty.code).toBe(0);
    expect(empty.stdout).toContain('no predictions in the serving log of weld_failure since 2023-01-01T00:00:00.000Z\n');
    const written = /report: (.*)\n$/.exec(empty.stdout)![1]!;
    expect(written).toMatch(new RegExp(`^${join(home, 'reports')}/drift-weld_failure-\\d{8}T\\d{6}\\.html$`));
    expect(await readFile(written, 'utf8')).toContain('no predictions in the serving log');

    const unknown = await larder('--model', 'nope');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe("larder drift: model 'nope' is not registered (registered models: weld_failure)\n");
    const version = await larder('--model', 'weld_failure', '--version', '7');
    expect(version.code).toBe(1);
    expect(version.stderr).toBe("larder drift: model 'weld_failure' has no version '7' (versions: 1)\n");
    const since = await larder('--model', 'weld_failure', '--since', 'yesterday');
    expect(since.code).toBe(1);
    expect(since.stderr).toBe("larder drift: --since: expected an ISO-8601 instant like 2024-01-01T00:00:00Z, got 'yesterday'\n");
    const missing = await larder();
    expect(missing.stderr).toBe('larder drift: --model is required\n');
  });
});
