/**
 * A training job (`larder train <model>`): label rows → a point-in-time dataset of the model's
 * feature service, written into the offline store → a split by time (train on the past, evaluate
 * on the later period) → the estimators of the model's spec → held-out metrics, a distribution
 * profile for drift reports → the registry, as the model's next version.
 *
 * Labels a reviewer posted back from the review queue replace the source's label of the same
 * entity, and raw-input ones (a review's text without id) become rows of their own, their
 * features computed by the views' transforms.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../core/errors.js';
import { formatInstant, type EpochMs } from '../core/time.js';
import { parseValueType } from '../core/value-types.js';
import type { Definitions } from '../definitions/types.js';
import { profileRows } from '../drift/profile.js';
import { featuresFromInputs } from '../inference/inputs.js';
import { readLabels } from '../inference/labels.js';
import type { Estimator, ModelFeature, ModelVersionMeta, NewModelVersion } from '../models/artifact.js';
import { fitLogistic } from '../models/logistic.js';
import { binaryMetrics, type BinaryMetrics } from '../models/metrics.js';
import { fitNaiveBayes } from '../models/naive-bayes.js';
import { numberOf, scoreRow, sparseOf } from '../models/score.js';
import type { SparseVector } from '../models/sparse.js';
import { openDuckDB, sqlIdent, sqlPath } from '../offline/duckdb.js';
import { writeDataset } from '../offline/dataset.js';
import { hashOf, shortVersion, toCanonical } from '../registry/canonical.js';
import type { Registry } from '../registry/registry.js';
import { writeLabelRows } from './label-rows.js';
import type { ModelSpec } from './specs.js';

export interface TrainOptions {
  defs: Definitions;
  registry: Registry;
  offlineDir: string;
  spec: ModelSpec;
  /** A label file (join keys, event_timestamp, label) instead of the spec's labels. */
  labelsFile?: string | undefined;
  /** Rows at or before this instant train, later ones evaluate (default: the last `testFraction` of rows by time evaluate). */
  trainUntil?: EpochMs | undefined;
  /** Default 0.2. */
  testFraction?: number | undefined;
  /** Told what the job is doing. */
  progress?: ((line: string) => void) | undefined;
}

export interface TrainResult {
  meta: ModelVersionMeta;
  /** The estimators' metrics are in meta; the model as registered. */
  model: NewModelVersion;
}

/** A dataset row as the estimators see it. */
export interface TrainingRow {
  at: number;
  label: 0 | 1;
  features: Record<string, unknown>;
}

export async function trainModel(options: TrainOptions): Promise<TrainResult> {
  const { defs, registry, spec } = options;
  const say = options.progress ?? (() => undefined);
  const started = performance.now();
  const definitionsHash = hashOf(toCanonical(defs));
  const current = await registry.current();
  if (!current) throw new InputError(`train ${spec.name}: no definitions are applied yet; run larder apply first`);
  if (current.hash !== definitionsHash) {
    throw new InputError(`train ${spec.name}: the definitions in ${defs.repoDir} are not the applied version ${current.version}; run larder apply so the model can be traced to them`);
  }
  const service = defs.services.get(spec.featureService);
  if (!service) throw new InputError(`train ${spec.name}: the definitions have no feature service '${spec.featureService}'`);
  const features: ModelFeature[] = service.projections.flatMap((p) => p.features.map((name) => ({ name, ref: `${p.view.name}:${name}`, type: p.view.schema[name]! })));
  const joinKeys = [...new Set(service.projections.flatMap((p) => p.view.entities.flatMap((e) => e.joinKeys)))];

  const datasetDir = join(options.offlineDir, '_datasets', spec.name);
  await mkdir(datasetDir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const labelFile = join(datasetDir, `.labels-${process.pid}-${randomBytes(4).toString('hex')}.parquet`);
  const datasetPath = join(datasetDir, `${stamp}-${randomBytes(3).toString('hex')}.parquet`);
  const db = await openDuckDB();
  let rows: TrainingRow[];
  let fingerprint: string;
  let reviewLabels: number;
  try {
    const labelled = await writeLabelRows(db.connection, { defs, source: spec.labels, joinKeys, out: labelFile, override: options.labelsFile });
    if (labelled.rows === 0) throw new InputError(`train ${spec.name}: no label rows (the labels are empty, or none has keys, a time and a label)`);
    say(`labels: ${labelled.rows} rows, ${labelled.positives} positive`);
    await writeDataset({ defs, offlineDir: options.offlineDir, entities: labelFile, service: spec.featureService, out: datasetPath });
    say(`dataset: ${datasetPath}`);
    const reviewed = await readLabels(options.offlineDir, spec.name);
    ({ rows, fingerprint, reviewLabels } = await readTrainingRows(db.connection, { datasetPath, joinKeys, features, reviewed, defs, service }));
  } finally {
    db.close();
    await rm(labelFile, { force: true });
  }

  const split = splitByTime(rows, options.trainUntil, options.testFraction ?? 0.2, spec.name);
  say(`split at ${formatInstant(split.trainUntil)}: ${split.train.length} rows train, ${split.test.length} evaluate`);
  const { estimators, primary } = fit(spec, features, split.train);
  const metrics: Record<string, BinaryMetrics> = {};
  for (const [name, estimator] of Object.entries(estimators)) {
    metrics[name] = binaryMetrics(
      split.test.map((r) => r.label),
      split.test.map((r) => scoreRow(estimator, r.features).probability),
    );
  }
  const trainScores = split.train.map((r) => scoreRow(estimators[primary]!, r.features).probability);
  const profile = profileRows(features, split.train.map((r) => r.features), trainScores);
  const model: NewModelVersion = {
    meta: {
      name: spec.name,
      featureService: spec.featureService,
      joinKeys,
      features,
      definitionsVersion: shortVersion(definitionsHash),
      definitionsHash,
      datasetFingerprint: fingerprint,
      datasetRows: rows.length,
      datasetPath,
      reviewLabels,
      split: { trainUntil: formatInstant(split.trainUntil), trainRows: split.train.length, testRows: split.test.length },
      metrics,
      primary,
      reviewThreshold: spec.reviewThreshold,
      trainedAt: new Date().toISOString(),
      trainingSeconds: Math.round((performance.now() - started) / 10) / 100,
      profile,
    },
    estimators,
  };
  const meta = await registry.registerModel(model);
  return { meta, model };
}

/**
 * Reads the dataset into rows in its order and fingerprints them: sha256 over each row's keys,
 * time, label and features, so two datasets with the same rows have the same fingerprint.
 */
async function readTrainingRows(
  connection: Parameters<typeof writeLabelRows>[0],
  input: {
    datasetPath: string;
    joinKeys: readonly string[];
    features: readonly ModelFeature[];
    reviewed: Awaited<ReturnType<typeof readLabels>>;
    defs: Definitions;
    service: NonNullable<ReturnType<Definitions['services']['get']>>;
  },
): Promise<{ rows: TrainingRow[]; fingerprint: string; reviewLabels: number }> {
  const { joinKeys, features } = input;
  const columns = [...joinKeys.map(sqlIdent), 'epoch_ms(event_timestamp) AS "__at"', 'label', ...features.map((f) => sqlIdent(f.name))];
  const reader = await connection.runAndReadAll(`SELECT ${columns.join(', ')} FROM read_parquet(${sqlPath(input.datasetPath)})`);
  const raw = reader.getRowObjectsJson() as Record<string, unknown>[];
  const keyOf = (entity: Record<string, unknown>): string => JSON.stringify(joinKeys.map((k) => String(entity[k])));
  // A reviewer's label of an entity replaces the source's label of that entity.
  const byEntity = new Map<string, 0 | 1>();
  const fromInputs: typeof input.reviewed = [];
  for (const l of input.reviewed) {
    if (l.entity && joinKeys.every((k) => l.entity![k] !== undefined)) byEntity.set(keyOf(l.entity), l.label);
    else if (l.inputs) fromInputs.push(l);
  }
  let reviewLabels = 0;
  const hash = createHash('sha256');
  const rows: TrainingRow[] = raw.map((r) => {
    const reviewed = byEntity.get(keyOf(r));
    if (reviewed !== undefined) reviewLabels++;
    const label = (reviewed ?? Number(r.label)) as 0 | 1;
    const values: Record<string, unknown> = {};
    for (const f of features) values[f.name] = r[f.name] ?? null;
    const at = Number(r.__at);
    hash.update(JSON.stringify([joinKeys.map((k) => r[k]), at, label, features.map((f) => values[f.name])]));
    hash.update('\n');
    return { at, label, features: values };
  });
  for (const l of fromInputs) {
    const columns = Object.fromEntries(Object.entries(l.inputs!).map(([k, v]) => [k, [v]]));
    const [computed] = featuresFromInputs(input.defs, input.service, { columns, rows: 1 });
    const values = Object.fromEntries(features.map((f) => [f.name, computed![f.name] ?? null]));
    hash.update(JSON.stringify([null, l.at, l.label, features.map((f) => values[f.name])]));
    hash.update('\n');
    rows.push({ at: l.at, label: l.label, features: values });
    reviewLabels++;
  }
  return { rows, fingerprint: hash.digest('hex'), reviewLabels };
}

/** Rows at or before `trainUntil` train, later ones evaluate; by default the last fraction of times evaluates. */
export function splitByTime(rows: readonly TrainingRow[], trainUntil: number | undefined, testFraction: number, model: string): { train: TrainingRow[]; test: TrainingRow[]; trainUntil: number } {
  if (!(testFraction > 0 && testFraction < 1)) throw new InputError(`--test-fraction: expected a number between 0 and 1, got ${testFraction}`);
  const sorted = [...rows].sort((a, b) => a.at - b.at);
  const until = trainUntil ?? sorted[Math.max(0, Math.ceil(sorted.length * (1 - testFraction)) - 1)]!.at;
  const train = sorted.filter((r) => r.at <= until);
  const test = sorted.filter((r) => r.at > until);
  const classes = new Set(train.map((r) => r.label));
  if (train.length === 0 || test.length === 0) {
    throw new InputError(`train ${model}: the split at ${formatInstant(until)} leaves ${train.length} rows to train and ${test.length} to evaluate; choose another --until`);
  }
  if (classes.size < 2) throw new InputError(`train ${model}: the rows up to ${formatInstant(until)} all have label ${[...classes][0]}; a model needs both classes to learn from`);
  return { train, test, trainUntil: until };
}

/** The spec's estimators, fitted on the training rows; which one serves. */
function fit(spec: ModelSpec, features: readonly ModelFeature[], train: readonly TrainingRow[]): { estimators: Record<string, Estimator>; primary: string } {
  const labels = train.map((r) => r.label);
  if (spec.estimators.kind === 'sparse-text') {
    const name = spec.estimators.feature;
    const feature = features.find((f) => f.name === name);
    const parsed = feature && parseValueType(feature.type);
    if (!parsed || parsed.kind !== 'sparse') throw new InputError(`train ${spec.name}: the service has no sparse feature '${name}'`);
    const vectors: SparseVector[] = train.map((r) => sparseOf(r.features[name], parsed.size, name) ?? { size: parsed.size, indices: [], values: [] });
    return {
      estimators: {
        naive_bayes: { kind: 'sparse-feature', feature: name, model: fitNaiveBayes(vectors, labels, { size: parsed.size }) },
        logistic_regression: { kind: 'sparse-feature', feature: name, model: fitLogistic(vectors, labels, { size: parsed.size, epochs: 8, l2: 1e-4 }) },
      },
      primary: 'naive_bayes',
    };
  }
  const numeric = features.filter((f) => {
    const p = parseValueType(f.type);
    return p.kind === 'scalar' && ['int32', 'int64', 'float32', 'float64', 'bool'].includes(p.type);
  });
  if (numeric.length === 0) throw new InputError(`train ${spec.name}: the service has no numeric feature`);
  const means: number[] = [];
  const scales: number[] = [];
  for (const f of numeric) {
    const xs = train.map((r) => numberOf(r.features[f.name], f.name)).filter((x): x is number => x !== null);
    const mean = xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
    const variance = xs.length > 1 ? xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (xs.length - 1) : 0;
    means.push(mean);
    // A constant feature keeps scale 1: it then contributes a constant the bias absorbs.
    scales.push(variance > 0 ? Math.sqrt(variance) : 1);
  }
  const vectors: SparseVector[] = train.map((r) => {
    const values = numeric.map((f, j) => {
      const x = numberOf(r.features[f.name], f.name);
      return x === null ? 0 : (x - means[j]!) / scales[j]!;
    });
    return { size: numeric.length, indices: numeric.map((_, j) => j), values };
  });
  const model = fitLogistic(vectors, labels, { size: numeric.length, epochs: 40, learningRate: 0.01, l2: 1e-3 });
  return {
    estimators: { logistic_regression: { kind: 'standardised-logistic-regression', features: numeric.map((f) => f.name), means, scales, model } },
    primary: 'logistic_regression',
  };
}
