/**
 * Model versions in the registry: one suite run against both backends (a file, and PostgreSQL),
 * then what only the file backend needs (estimators kept out of the registry file, the lock
 * between processes), and `larder models` on both.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { InputError } from '../src/core/errors.js';
import { entity, featureView, fileSource } from '../src/definitions/builders.js';
import type { FeatureView } from '../src/definitions/types.js';
import type { ModelArtifact, ModelVersionMeta, NewModelVersion, SparseFeatureModel } from '../src/models/artifact.js';
import type { NaiveBayesModel } from '../src/models/naive-bayes.js';
import type { LogisticModel } from '../src/models/logistic.js';
import { toCanonical, type CanonicalRepo } from '../src/registry/canonical.js';
import { FileRegistry } from '../src/registry/file.js';
import { openRegistry } from '../src/registry/open.js';
import type { Registry } from '../src/registry/registry.js';
import { runLarder } from './support/cli.js';
import { createTestDatabase } from './support/services.js';
import { registryBackends } from './support/registries.js';

// ---------------------------------------------------------------------------------------------
// A model as a training job would hand it over: seeded, full-precision doubles.

/** mulberry32, two draws per double so every mantissa bit varies. */
function doubles(seed: number, n: number): number[] {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  return Array.from({ length: n }, () => Math.log(((next() >>> 5) * 67108864 + (next() >>> 6) + 1) / 9007199254740993) * 1.7);
}

/** A model whose numbers include the awkward ones: the smallest and largest doubles, 0.1 + 0.2. */
function newModel(seed: number, options: { name?: string; size?: number } = {}): NewModelVersion {
  const size = options.size ?? 200;
  const naiveBayes: NaiveBayesModel = {
    kind: 'multinomial-naive-bayes',
    size,
    alpha: 1,
    logPrior: [Math.log(0.3), Math.log(0.7)],
    logLikelihood: [doubles(seed, size), doubles(seed + 1, size)],
  };
  naiveBayes.logLikelihood[0][0] = -Number.MIN_VALUE;
  naiveBayes.logLikelihood[1][0] = -Number.MAX_VALUE;
  const logistic: LogisticModel = { kind: 'logistic-regression', size, weights: doubles(seed + 2, size), bias: 0.1 + 0.2, l2: 1e-4 };
  const onWords = (model: NaiveBayesModel | LogisticModel): SparseFeatureModel => ({ kind: 'sparse-feature', feature: 'word_counts', model });
  const metrics = (accuracy: number) => ({ rows: 120, positives: 80, accuracy, precision: 0.93, recall: null, auc: 0.1 + 0.2 + accuracy / 10 });
  return {
    meta: {
      name: options.name ?? 'review_sentiment',
      featureService: 'review_sentiment',
      joinKeys: ['review_id'],
      features: [{ name: 'word_counts', ref: 'review_text:word_counts', type: `sparse(${size})` }],
      definitionsVersion: 'a1b2c3d4e5f6',
      definitionsHash: 'a1b2c3d4e5f6'.padEnd(64, '0'),
      datasetFingerprint: `${seed.toString(16).padStart(8, '0')}${'f'.repeat(56)}`,
      datasetRows: 1000 + seed,
      split: { trainUntil: '2024-03-01T00:00:00.000Z', trainRows: 880, testRows: 120 },
      datasetPath: `/offline/_datasets/review_sentiment/${seed}.parquet`,
      reviewLabels: 0,
      metrics: { naive_bayes: metrics(0.912), logistic_regression: metrics(0.875) },
      primary: 'naive_bayes',
      reviewThreshold: 0.6,
      trainedAt: '2024-03-02T10:00:00.000Z',
      trainingSeconds: 12.34,
      profile: {
        rows: 880,
        features: [{ name: 'word_counts.total', edges: [Number.MIN_VALUE, 10, Number.MAX_VALUE], counts: [3, 400, 477, 0], nulls: 0 }],
        prediction: { name: 'prediction', edges: [0.1, 0.2, 0.30000000000000004, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], counts: [1, 2, 3, 4, 5, 6, 7, 8, 9, 835], nulls: 0 },
      },
    },
    estimators: { naive_bayes: onWords(naiveBayes), logistic_regression: onWords(logistic) },
  };
}

/** A one-view repo to apply: the model tests need an apply, not particular definitions. */
function repoOf(ttl: string): CanonicalRepo {
  const review = entity({ name: 'review', joinKeys: ['review_id'], valueType: 'string' });
  const source = fileSource({ name: 'reviews', path: 'data/reviews.parquet', timestampField: 'created_at' });
  const view = featureView({ name: 'review_text', entities: [review], source, ttl, schema: { text_length: 'int32' } }) as unknown as FeatureView;
  return toCanonical({ entities: new Map([[review.name, review]]), sources: new Map([[source.name, source]]), views: new Map([[view.name, view]]), services: new Map(), repoDir: '/nowhere' });
}

const naiveBayesOf = (estimators: ModelArtifact['estimators']): NaiveBayesModel => (estimators.naive_bayes as SparseFeatureModel).model as NaiveBayesModel;

/** The bytes of the doubles: equal only if every value is bit for bit the same. */
const bits = (xs: readonly number[]): Buffer => Buffer.from(Float64Array.from(xs).buffer);

const errorOf = async (work: Promise<unknown>): Promise<Error> => {
  const err = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof Error)) throw new Error('expected the call to fail');
  return err;
};

// ---------------------------------------------------------------------------------------------
// Both backends

let tmp: string;
let database: { url: string; drop(): Promise<void> };

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'larder-model-registry-'));
  database = await createTestDatabase('model_registry');
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
  await database?.drop();
});

const backends = registryBackends(() => ({ tmp, databaseUrl: database.url }));

describe.each(backends)('$name registry: models', (backend) => {
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

  it('numbers versions 1, 2, 3 per model, lists them oldest first, and names the models sorted', async () => {
    const registry = await open();
    expect(await registry.modelNames()).toEqual([]);
    expect(await registry.modelVersions('review_sentiment')).toEqual([]);
    expect(await registry.latestModel('review_sentiment')).toBeNull();

    const before = Date.now();
    const registered: ModelVersionMeta[] = [];
    for (const seed of [1, 2, 3]) registered.push(await registry.registerModel(newModel(seed)));
    const weld = await registry.registerModel(newModel(9, { name: 'weld_failure' }));
    expect(registered.map((m) => m.version)).toEqual(['1', '2', '3']);
    expect(weld.version).toBe('1');
    const times = registered.map((m) => Date.parse(m.registeredAt));
    expect(times[0]).toBeGreaterThanOrEqual(before - 1000);
    expect([...times].sort((x, y) => x - y)).toEqual(times);
    const { meta } = newModel(2);
    expect(registered[1]).toEqual({ ...meta, version: '2', registeredAt: registered[1]!.registeredAt });

    const other = await open();
    expect(await other.modelVersions('review_sentiment')).toEqual(registered);
    expect(await other.latestModel('review_sentiment')).toEqual(registered[2]);
    expect(await other.latestModel('weld_failure')).toEqual(weld);
    expect(await other.modelNames()).toEqual(['review_sentiment', 'weld_failure']);
  });

  it('loads a version with its estimators bit for bit, the newest by default', async () => {
    const registry = await open();
    const first = newModel(11, { size: 62_000 });
    const second = newModel(12, { size: 62_000 });
    const v1 = await registry.registerModel(first);
    const v2 = await registry.registerModel(second);

    const newest = await (await open()).loadModel('review_sentiment');
    expect(newest.meta).toEqual(v2);
    const older = await registry.loadModel('review_sentiment', '1');
    expect(older.meta).toEqual(v1);
    expect(older.meta.profile.features[0]!.edges).toEqual([Number.MIN_VALUE, 10, Number.MAX_VALUE]);

    for (const [loaded, given] of [
      [older, first],
      [newest, second],
    ] as const) {
      expect(Object.keys(loaded.estimators).sort()).toEqual(['logistic_regression', 'naive_bayes']);
      const nb = naiveBayesOf(loaded.estimators);
      const givenNb = naiveBayesOf(given.estimators);
      expect(nb.logLikelihood[0]).toHaveLength(62_000);
      expect(bits(nb.logLikelihood[0]).equals(bits(givenNb.logLikelihood[0]))).toBe(true);
      expect(bits(nb.logLikelihood[1]).equals(bits(givenNb.logLikelihood[1]))).toBe(true);
      expect(bits(nb.logPrior).equals(bits(givenNb.logPrior))).toBe(true);
      expect(loaded.estimators).toEqual(given.estimators);
    }
    // Different seeds: the test would pass on a mix-up only by accident.
    expect(bits(naiveBayesOf(newest.estimators).logLikelihood[0]).equals(bits(naiveBayesOf(first.estimators).logLikelihood[0]))).toBe(false);
  });

  it('names the model and version it cannot load, and the versions there are', async () => {
    const registry = await open();
    const none = await errorOf(registry.loadModel('review_sentiment'));
    expect(none).toBeInstanceOf(InputError);
    expect(none.message).toBe("model 'review_sentiment' is not registered (no models are registered)");

    await registry.registerModel(newModel(1));
    await registry.registerModel(newModel(2));
    const version = await errorOf(registry.loadModel('review_sentiment', '7'));
    expect(version).toBeInstanceOf(InputError);
    expect(version.message).toBe("model 'review_sentiment' has no version '7' (versions: 1, 2)");
    const model = await errorOf(registry.loadModel('weld_failure', '1'));
    expect(model).toBeInstanceOf(InputError);
    expect(model.message).toBe("model 'weld_failure' is not registered, so it has no version '1' (registered models: review_sentiment)");
    const garbled = await errorOf(registry.loadModel('review_sentiment', 'v2'));
    expect(garbled).toBeInstanceOf(InputError);
    expect(garbled.message).toContain("version 'v2' is not a version number");
  });

  it('refuses a bad name, a primary that is not an estimator, and numbers JSON cannot keep, storing nothing', async () => {
    const registry = await open();
    const badName = await errorOf(registry.registerModel(newModel(1, { name: 'review-sentiment' })));
    expect(badName).toBeInstanceOf(InputError);
    expect(badName.message).toContain("model name 'review-sentiment'");
    expect((await errorOf(registry.modelVersions('../etc'))).message).toContain("model name '../etc'");

    const noPrimary = newModel(1);
    noPrimary.meta.primary = 'random_forest';
    expect((await errorOf(registry.registerModel(noPrimary))).message).toBe(
      "model 'review_sentiment': primary estimator 'random_forest' is not among its estimators (naive_bayes, logistic_regression)",
    );

    const infinite = newModel(1);
    naiveBayesOf(infinite.estimators).logLikelihood[1][17] = -Infinity;
    const err = await errorOf(registry.registerModel(infinite));
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toContain("model 'review_sentiment' estimator naive_bayes.model.logLikelihood[1][17] is -Infinity");
    const nan = newModel(1);
    nan.meta.metrics.naive_bayes!.accuracy = NaN;
    expect((await errorOf(registry.registerModel(nan))).message).toContain("model 'review_sentiment' meta.metrics.naive_bayes.accuracy is NaN");

    expect(await registry.modelNames()).toEqual([]);
    expect((await registry.registerModel(newModel(1))).version).toBe('1');
  });

  it('gives concurrent registrations from separate instances distinct consecutive versions, losing none', async () => {
    const seeds = [21, 22, 23, 24, 25, 26];
    // Six instances, each its own connection pool or lock queue.
    const instances = await Promise.all(seeds.map(() => open()));
    const results = await Promise.all(seeds.map((seed, i) => instances[i]!.registerModel(newModel(seed))));
    expect(results.map((m) => Number(m.version)).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
    const versions = await instances[0]!.modelVersions('review_sentiment');
    expect(versions.map((m) => m.version)).toEqual(['1', '2', '3', '4', '5', '6']);
    expect(new Set(versions.map((m) => m.datasetFingerprint))).toEqual(new Set(seeds.map((s) => newModel(s).meta.datasetFingerprint)));
    // Each version's estimators are those of the registration that got its number.
    for (const meta of versions) {
      const seed = meta.datasetRows - 1000;
      const loaded = await instances[1]!.loadModel('review_sentiment', meta.version);
      expect(loaded.estimators).toEqual(newModel(seed).estimators);
    }
  });

  it('keeps the models across applies and state writes', async () => {
    const registry = await open();
    await registry.setState('watermark:x', { end: 1 });
    const v1 = await registry.registerModel(newModel(1));
    await registry.setState('watermark:x', { end: 2 });
    const v2 = await registry.registerModel(newModel(2));
    await registry.apply(repoOf('1h'));
    await registry.setState('watermark:y', { end: 3 });
    await registry.apply(repoOf('2h'));
    const other = await open();
    expect(await other.modelVersions('review_sentiment')).toEqual([v1, v2]);
    expect(await other.history()).toHaveLength(2);
    expect(await other.getState('watermark:x')).toEqual({ end: 2 });
  });

  it('lists models and their versions with `larder models`', async () => {
    const registry = await open();
    const empty = await runLarder(['models'], { cwd: tmp, env: { LARDER_REGISTRY: url } });
    expect(empty).toMatchObject({ code: 0, stderr: '' });
    expect(empty.stdout).toContain('no models registered');

    const metas = [];
    for (const seed of [1, 2, 3]) metas.push(await registry.registerModel(newModel(seed)));
    await registry.registerModel(newModel(9, { name: 'weld_failure' }));

    const all = await runLarder(['models'], { cwd: tmp, env: { LARDER_REGISTRY: url } });
    expect(all).toMatchObject({ code: 0, stderr: '' });
    const lines = all.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^model\s+version\s+trained\s+took\s+primary\s+accuracy\s+auc$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/))).toEqual([
      ['review_sentiment', '3', '2024-03-02T10:00:00.000Z', '12.3s', 'naive_bayes', '0.912', '0.391'],
      ['weld_failure', '1', '2024-03-02T10:00:00.000Z', '12.3s', 'naive_bayes', '0.912', '0.391'],
    ]);

    const one = await runLarder(['models', 'review_sentiment'], { cwd: tmp, env: { LARDER_REGISTRY: url } });
    expect(one).toMatchObject({ code: 0, stderr: '' });
    const rows = one.stdout.trimEnd().split('\n');
    expect(rows[0]).toBe('model review_sentiment: 3 versions');
    expect(rows).toHaveLength(5);
    metas.forEach((meta, i) => {
      const row = rows[i + 2]!.trim();
      expect(row.split(/\s+/).slice(0, 6)).toEqual([meta.version, meta.registeredAt, 'review_sentiment', 'a1b2c3d4e5f6', meta.datasetFingerprint.slice(0, 12), String(meta.datasetRows)]);
      expect(row).toContain('naive_bayes* accuracy 0.912 precision 0.930 recall - auc 0.391; logistic_regression accuracy 0.875 precision 0.930 recall - auc 0.388');
    });

    const absent = await runLarder(['models', 'churn'], { cwd: tmp, env: { LARDER_REGISTRY: url } });
    expect(absent.code).toBe(1);
    expect(absent.stderr).toBe("larder models: model 'churn' is not registered (registered models: review_sentiment, weld_failure)\n");
  });
});

// ---------------------------------------------------------------------------------------------
// File backend only

describe('file registry: models', () => {
  const fileOf = (name: string): string => join(tmp, name, 'registry.json');

  it('keeps estimators out of the registry file: each version is its own file beside it', async () => {
    const path = fileOf('artifacts');
    const registry = new FileRegistry(path);
    await registry.registerModel(newModel(1, { size: 62_000 }));
    await registry.registerModel(newModel(2, { size: 62_000 }));
    const index = await readFile(path, 'utf8');
    expect(index.length).toBeLessThan(20_000);
    expect(index).not.toContain('logLikelihood');
    expect(JSON.parse(index).models.review_sentiment.map((m: ModelVersionMeta) => m.version)).toEqual(['1', '2']);
    const artifact = join(dirname(path), 'models', 'review_sentiment', '2.json');
    expect((await stat(artifact)).size).toBeGreaterThan(1_000_000);
    expect(JSON.parse(await readFile(artifact, 'utf8')).meta.version).toBe('2');
    // An apply rewrites the registry file without the megabytes.
    await registry.setState('watermark:x', { end: 1 });
    expect((await readFile(path, 'utf8')).length).toBeLessThan(20_000);
  });

  it('reads a registry file written before models, and keeps its history and state', async () => {
    const path = fileOf('old-format');
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, JSON.stringify({ format: 1, current: null, history: [], state: { 'watermark:x': { end: 5 } } }));
    const registry = new FileRegistry(path);
    expect(await registry.modelNames()).toEqual([]);
    expect(await registry.latestModel('review_sentiment')).toBeNull();
    await registry.registerModel(newModel(1));
    expect(await registry.getState('watermark:x')).toEqual({ end: 5 });
    expect((await registry.modelVersions('review_sentiment')).map((m) => m.version)).toEqual(['1']);
  });

  it('overwrites an artifact no version lists (a crash before the index was written)', async () => {
    const path = fileOf('orphan');
    const orphan = join(dirname(path), 'models', 'review_sentiment', '1.json');
    await mkdir(dirname(orphan), { recursive: true });
    await writeFile(orphan, '{"meta":{"version":"1"},"estim');
    const registry = new FileRegistry(path);
    const meta = await registry.registerModel(newModel(4));
    expect(meta.version).toBe('1');
    expect((await registry.loadModel('review_sentiment')).estimators).toEqual(newModel(4).estimators);
  });

  it('says which artifact is missing when the registry lists a version whose file is gone', async () => {
    const path = fileOf('missing-artifact');
    const registry = new FileRegistry(path);
    await registry.registerModel(newModel(1));
    const artifact = join(dirname(path), 'models', 'review_sentiment', '1.json');
    await rm(artifact);
    const err = await errorOf(registry.loadModel('review_sentiment'));
    expect(err).toBeInstanceOf(InputError);
    expect(err.message).toContain(`model 'review_sentiment' version 1: artifact '${artifact}'`);
    // Meta needs no artifact.
    expect((await registry.latestModel('review_sentiment'))?.version).toBe('1');
  });

  it('serialises two instances on one path, and two processes, losing no version', async () => {
    const path = fileOf('two-writers');
    const a = new FileRegistry(path);
    const b = new FileRegistry(path);
    const inProcess = await Promise.all([1, 2, 3, 4].map((seed) => (seed % 2 ? a : b).registerModel(newModel(seed))));
    expect(inProcess.map((m) => Number(m.version)).sort()).toEqual([1, 2, 3, 4]);

    const script = join(tmp, 'register-child.mts');
    const registryModule = new URL('../src/registry/file.ts', import.meta.url).href;
    await writeFile(
      script,
      [
        `import { readFileSync } from 'node:fs';`,
        `import { FileRegistry } from ${JSON.stringify(registryModule)};`,
        `const [path, modelsFile, startAt] = process.argv.slice(2);`,
        `const models = JSON.parse(readFileSync(modelsFile, 'utf8'));`,
        `const registry = new FileRegistry(path);`,
        `await new Promise((r) => setTimeout(r, Math.max(0, Number(startAt) - Date.now())));`,
        `for (const model of models) await registry.registerModel(model);`,
      ].join('\n'),
    );
    const seedsOf = (child: number): number[] => [0, 1, 2, 3, 4].map((i) => 100 * child + i);
    const startAt = Date.now() + 2500;
    const outcomes = await Promise.all(
      [1, 2].map(async (child) => {
        const modelsFile = join(tmp, `models-${child}.json`);
        await writeFile(modelsFile, JSON.stringify(seedsOf(child).map((seed) => newModel(seed, { size: 5000 }))));
        return new Promise<{ code: number | null; stderr: string }>((resolveChild) => {
          const p = spawn(process.execPath, ['--import', 'tsx', script, path, modelsFile, String(startAt)], { cwd: process.cwd(), stdio: ['ignore', 'ignore', 'pipe'] });
          let stderr = '';
          p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          p.on('close', (code) => resolveChild({ code, stderr }));
        });
      }),
    );
    expect(outcomes).toEqual([
      { code: 0, stderr: '' },
      { code: 0, stderr: '' },
    ]);
    const versions = await new FileRegistry(path).modelVersions('review_sentiment');
    expect(versions.map((m) => m.version)).toEqual(Array.from({ length: 14 }, (_, i) => String(i + 1)));
    expect(new Set(versions.slice(4).map((m) => m.datasetRows - 1000))).toEqual(new Set([...seedsOf(1), ...seedsOf(2)]));
    for (const meta of versions.slice(4)) {
      const loaded = await a.loadModel('review_sentiment', meta.version);
      expect(loaded.estimators).toEqual(newModel(meta.datasetRows - 1000, { size: 5000 }).estimators);
    }
    expect(existsSync(`${path}.lock`)).toBe(false);
  });
});
