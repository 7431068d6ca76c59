/**
 * The drift report (`larder drift`): a model version's training profile against what it served.
 * Reads the serving log's Parquet for a time window, bins each profiled quantity with the
 * training edges in DuckDB (no rows pass through JavaScript), and scores each by PSI.
 *
 * Which rows count: a feature's values do not depend on the model version that asked for them,
 * so for the features every version's rows count whose log has that feature with the same kind
 * of value (a number, or a sparse vector); a version just deployed is judged on the inputs its
 * predecessors saw too. Predictions do depend on the version: the prediction distribution uses
 * only the rows of the version being reported on.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { InputError } from '../core/errors.js';
import { DAY_MS, formatInstant, utcDate, type EpochMs } from '../core/time.js';
import type { ValueType } from '../core/value-types.js';
import { servingLogLayout } from '../inference/serving-log.js';
import type { ModelVersionMeta } from '../models/artifact.js';
import { openDuckDB, sqlIdent, sqlList, sqlPath, sqlString } from '../offline/duckdb.js';
import { servingLogDir } from '../offline/layout.js';
import { profiledQuantities, psi, psiStatus, type BinnedDistribution, type DriftStatus } from './profile.js';

export interface DriftRequest {
  offlineDir: string;
  meta: ModelVersionMeta;
  /** Start of the serving window; default 7 days before `until`. */
  since?: EpochMs;
  /** End of the serving window (exclusive); default now. */
  until?: EpochMs;
}

/** One side of a comparison: counts per bin (as BinnedDistribution), missing values, and rows. */
export interface DistributionSide {
  counts: number[];
  nulls: number;
  rows: number;
}

export interface QuantityDrift {
  /** `amplitude_mean_1h`, `word_counts.total`, or `prediction`. */
  name: string;
  edges: number[];
  training: DistributionSide;
  serving: DistributionSide;
  /** Over the bins and the missing values; null when a side has no rows. */
  psi: number | null;
  status: DriftStatus;
}

export interface FeatureDrift extends QuantityDrift {
  /** The model feature the quantity is of, and its type. */
  feature: string;
  type: ValueType;
  /** Model versions whose logged rows were compared. */
  versions: string[];
}

export interface PredictionDrift extends QuantityDrift {
  /** Estimated from the training bins' midpoints (the profile keeps no exact mean). */
  trainingMeanProbability: number | null;
  /** Share of training probabilities at or above 0.5. */
  trainingPositiveRate: number | null;
  servingMeanProbability: number | null;
  /** Share of served predictions that were 1. */
  servingPositiveRate: number | null;
  servingReviewRate: number | null;
}

export interface DriftReport {
  model: string;
  version: string;
  featureService: string;
  trainedAt: string;
  datasetFingerprint: string;
  /** Where the training dataset was written. */
  datasetPath: string;
  trainingRows: number;
  /** The serving window, ISO-8601, `until` exclusive. */
  since: string;
  until: string;
  generatedAt: string;
  /** Logged predictions in the window, any version; and by version. */
  servingRows: number;
  servingRowsByVersion: Record<string, number>;
  /** By PSI, highest first; quantities without serving data last. */
  features: FeatureDrift[];
  prediction: PredictionDrift;
  /** What a reader should know: no rows, profile entries that could not be matched... */
  notes: string[];
}

/** A profiled quantity and the SQL of its value in a version's log files. */
interface Quantity {
  distribution: BinnedDistribution;
  feature: string;
  type: ValueType;
  column: string;
  of: 'value' | 'total' | 'nonzeros';
}

interface VersionFiles {
  version: string;
  files: string[];
  rows: number;
}

export async function computeDrift(request: DriftRequest): Promise<DriftReport> {
  const { meta, offlineDir } = request;
  const until = request.until ?? (Date.now() as EpochMs);
  const since = request.since ?? ((until - 7 * DAY_MS) as EpochMs);
  if (!(since < until)) throw new InputError(`drift: the window start ${formatInstant(since)} is not before its end ${formatInstant(until)}`);
  const notes: string[] = [];
  const quantities = matchProfile(meta, notes);

  const files = await logFiles(offlineDir, meta.name, since, until);
  const totals = new Map<string, { counts: number[]; nulls: number; rows: number; versions: string[] }>(
    quantities.map((q) => [q.distribution.name, { counts: q.distribution.counts.map(() => 0), nulls: 0, rows: 0, versions: [] }]),
  );
  const prediction = { counts: meta.profile.prediction.counts.map(() => 0), nulls: 0, rows: 0, sumProbability: 0, positives: 0, reviews: 0 };
  const byVersion: Record<string, number> = {};

  if (files.length > 0) {
    const db = await openDuckDB({ memoryLimit: '1GB' });
    try {
      const window = `event_timestamp >= make_timestamptz(${Math.trunc(since) * 1000}) AND event_timestamp < make_timestamptz(${Math.trunc(until) * 1000})`;
      for (const group of await versionsOf(db.connection, files, window)) {
        byVersion[group.version] = group.rows;
        const columns = await columnTypes(db.connection, group.files[0]!);
        const included = quantities.filter((q) => compatible(columns.get(q.column), q.of));
        const ours = group.version === meta.version;
        const counts = await binCounts(db.connection, group.files, window, included, ours ? meta.profile.prediction.edges : null);
        included.forEach((q, i) => {
          const total = totals.get(q.distribution.name)!;
          addInto(total.counts, counts.quantities[i]!.counts);
          total.nulls += counts.quantities[i]!.nulls;
          total.rows += group.rows;
          total.versions.push(group.version);
        });
        if (ours && counts.prediction) {
          addInto(prediction.counts, counts.prediction.counts);
          prediction.nulls += counts.prediction.nulls;
          prediction.rows += group.rows;
          prediction.sumProbability += counts.prediction.sumProbability;
          prediction.positives += counts.prediction.positives;
          prediction.reviews += counts.prediction.reviews;
        }
      }
    } finally {
      db.close();
    }
  }

  const servingRows = Object.values(byVersion).reduce((n, r) => n + r, 0);
  if (servingRows === 0) notes.unshift(`no predictions in the serving log of ${meta.name} since ${formatInstant(since)}`);
  else if (prediction.rows === 0) notes.push(`no predictions of version ${meta.version} in the window: the prediction distribution is not compared`);

  const features = quantities.map((q): FeatureDrift => {
    const serving = totals.get(q.distribution.name)!;
    return {
      ...compare(q.distribution, meta.profile.rows, serving),
      feature: q.feature,
      type: q.type,
      versions: serving.versions.sort(compareVersions),
    };
  });
  features.sort((a, b) => (b.psi ?? -1) - (a.psi ?? -1) || a.name.localeCompare(b.name));

  const p = meta.profile.prediction;
  return {
    model: meta.name,
    version: meta.version,
    featureService: meta.featureService,
    trainedAt: meta.trainedAt,
    datasetFingerprint: meta.datasetFingerprint,
    datasetPath: meta.datasetPath,
    trainingRows: meta.profile.rows,
    since: formatInstant(since),
    until: formatInstant(until),
    generatedAt: formatInstant(Date.now()),
    servingRows,
    servingRowsByVersion: byVersion,
    features,
    prediction: {
      ...compare(p, meta.profile.rows, prediction),
      trainingMeanProbability: binnedMean(p),
      trainingPositiveRate: shareAtOrAbove(p, 0.5),
      servingMeanProbability: prediction.rows > prediction.nulls ? prediction.sumProbability / (prediction.rows - prediction.nulls) : null,
      servingPositiveRate: prediction.rows > 0 ? prediction.positives / prediction.rows : null,
      servingReviewRate: prediction.rows > 0 ? prediction.reviews / prediction.rows : null,
    },
    notes,
  };
}

/** The profile's distributions, matched to the model's features and their log columns. */
function matchProfile(meta: ModelVersionMeta, notes: string[]): Quantity[] {
  const layout = servingLogLayout(meta);
  const byName = new Map<string, Omit<Quantity, 'distribution'>>();
  for (const { feature, column } of layout.features) {
    for (const q of profiledQuantities(feature)) byName.set(q.name, { feature: feature.name, type: feature.type, column, of: q.of });
  }
  const out: Quantity[] = [];
  for (const distribution of meta.profile.features) {
    const match = byName.get(distribution.name);
    if (match) out.push({ distribution, ...match });
    else notes.push(`profiled '${distribution.name}' is not a feature of ${meta.name} version ${meta.version}: not compared`);
  }
  return out;
}

function compare(training: BinnedDistribution, trainingRows: number, serving: { counts: number[]; nulls: number; rows: number }): QuantityDrift {
  const value = psi([...training.counts, training.nulls], [...serving.counts, serving.nulls]);
  return {
    name: training.name,
    edges: [...training.edges],
    training: { counts: [...training.counts], nulls: training.nulls, rows: trainingRows },
    serving: { counts: serving.counts, nulls: serving.nulls, rows: serving.rows },
    psi: Number.isNaN(value) ? null : value,
    status: psiStatus(value),
  };
}

/** Parquet files of the model's log in partitions the window touches. */
async function logFiles(offlineDir: string, model: string, since: EpochMs, until: EpochMs): Promise<string[]> {
  const root = servingLogDir(offlineDir, model);
  const [lo, hi] = [utcDate(since), utcDate(until - 1)];
  let partitions: string[];
  try {
    partitions = await readdir(root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const files: string[] = [];
  for (const name of partitions.sort()) {
    const m = /^date=(\d{4}-\d{2}-\d{2})$/.exec(name);
    if (!m || m[1]! < lo || m[1]! > hi) continue;
    for (const file of (await readdir(join(root, name))).sort()) {
      if (file.endsWith('.parquet') && !file.startsWith('.')) files.push(join(root, name, file));
    }
  }
  return files;
}

/** Rows in the window by model version, and the files holding them (all of one version share a layout). */
async function versionsOf(connection: DuckDBConnection, files: readonly string[], window: string): Promise<VersionFiles[]> {
  const reader = await connection.runAndReadAll(
    `SELECT model_version, list(DISTINCT filename ORDER BY filename) AS files, count(*) AS n FROM read_parquet(${sqlList(files)}, union_by_name = true, filename = true) WHERE ${window} GROUP BY 1 ORDER BY 1`,
  );
  return reader.getRowObjectsJS().map((r) => ({ version: String(r.model_version), files: (r.files as string[]).map(String), rows: Number(r.n) }));
}

async function columnTypes(connection: DuckDBConnection, file: string): Promise<Map<string, string>> {
  const rows = (await connection.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${sqlPath(file)})`)).getRowObjectsJS();
  return new Map(rows.map((r) => [String(r.column_name), String(r.column_type)]));
}

const NUMERIC_SQL = /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|BOOLEAN|DECIMAL\(\d+,\s*\d+\))$/;

/** Whether a logged column holds what the profile binned: a number, or a sparse vector. */
function compatible(sqlType: string | undefined, of: Quantity['of']): boolean {
  if (sqlType === undefined) return false;
  if (of === 'value') return NUMERIC_SQL.test(sqlType);
  return /^STRUCT\(/.test(sqlType) && /\bindices\b/.test(sqlType) && /"?values"?\s/.test(sqlType);
}

/** The SQL value of a quantity, as the profile computed it in profile.ts (`quantityOf`). */
function valueSql(q: Quantity): string {
  const c = sqlIdent(q.column);
  switch (q.of) {
    case 'value':
      return `CAST(${c} AS DOUBLE)`;
    case 'total':
      return `CASE WHEN ${c} IS NULL OR ${c}."values" IS NULL THEN NULL ELSE coalesce(list_sum(CAST(${c}."values" AS DOUBLE[])), 0) END`;
    case 'nonzeros':
      return `CASE WHEN ${c} IS NULL OR ${c}.indices IS NULL THEN NULL ELSE len(${c}.indices) END`;
  }
}

/** `count(*) FILTER` per bin of the edges (bins as BinnedDistribution), then the nulls. */
function binAggregates(value: string, edges: readonly number[]): string[] {
  const e = edges.map((x) => `CAST(${sqlString(String(x))} AS DOUBLE)`);
  const bins: string[] = [];
  for (let i = 0; i <= e.length; i++) {
    const lower = i === 0 ? null : `${value} >= ${e[i - 1]}`;
    const upper = i === e.length ? null : `${value} < ${e[i]}`;
    bins.push(`count(*) FILTER (WHERE ${[lower, upper].filter(Boolean).join(' AND ') || `${value} IS NOT NULL`})`);
  }
  bins.push(`count(*) FILTER (WHERE ${value} IS NULL)`);
  return bins;
}

interface BinCounts {
  quantities: { counts: number[]; nulls: number }[];
  prediction: { counts: number[]; nulls: number; sumProbability: number; positives: number; reviews: number } | null;
}

/** One scan of a version's files: every quantity's bins, and the prediction's when asked. */
async function binCounts(connection: DuckDBConnection, files: readonly string[], window: string, quantities: readonly Quantity[], predictionEdges: readonly number[] | null): Promise<BinCounts> {
  const selects: string[] = [];
  for (const q of quantities) selects.push(...binAggregates(valueSql(q), q.distribution.edges));
  if (predictionEdges) {
    selects.push(...binAggregates('probability', predictionEdges));
    selects.push('coalesce(sum(probability), 0)', 'count(*) FILTER (WHERE prediction = 1)', 'count(*) FILTER (WHERE needs_review)');
  }
  if (selects.length === 0) return { quantities: [], prediction: null };
  const sql = `SELECT ${selects.map((s, i) => `${s} AS a${i}`).join(', ')} FROM read_parquet(${sqlList(files)}, union_by_name = true) WHERE ${window}`;
  const row = (await connection.runAndReadAll(sql)).getRows()[0]!.map(Number);
  let at = 0;
  const take = (n: number) => row.slice(at, (at += n));
  const out: BinCounts = { quantities: [], prediction: null };
  for (const q of quantities) {
    const counts = take(q.distribution.edges.length + 1);
    out.quantities.push({ counts, nulls: take(1)[0]! });
  }
  if (predictionEdges) {
    const counts = take(predictionEdges.length + 1);
    const [nulls, sumProbability, positives, reviews] = take(4) as [number, number, number, number];
    out.prediction = { counts, nulls, sumProbability, positives, reviews };
  }
  return out;
}

function addInto(into: number[], more: readonly number[]): void {
  more.forEach((v, i) => (into[i] = (into[i] ?? 0) + v));
}

/** Mean of a probability distribution from its bins' midpoints (the outer bins clamp to [0, 1]). */
function binnedMean(d: BinnedDistribution): number | null {
  const total = d.counts.reduce((s, c) => s + c, 0);
  if (total === 0) return null;
  const bounds = [0, ...d.edges, 1];
  return d.counts.reduce((s, c, i) => s + c * ((bounds[i]! + bounds[i + 1]!) / 2), 0) / total;
}

/** Share of values in bins starting at or above `x` (exact when `x` is an edge). */
function shareAtOrAbove(d: BinnedDistribution, x: number): number | null {
  const total = d.counts.reduce((s, c) => s + c, 0);
  if (total === 0) return null;
  return d.counts.reduce((s, c, i) => (i > 0 && d.edges[i - 1]! >= x ? s + c : s), 0) / total;
}

const compareVersions = (a: string, b: string): number => Number(a) - Number(b) || a.localeCompare(b);
