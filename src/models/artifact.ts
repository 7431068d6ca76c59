/**
 * A trained model as the registry keeps it (CONTRACT s.9): what it was trained on (feature
 * service, definitions version, a fingerprint of the dataset), how well it did on the later
 * period, when it was trained, and the fitted estimators. Versions are "1", "2", ... per model
 * name, assigned by the registry when the model is registered.
 *
 * `ModelVersionMeta` is the small part (listing, tracing, reload checks); `ModelArtifact` adds
 * the estimators (a 62k-word Naive Bayes is two arrays of 62k numbers).
 */
import type { ValueType } from '../core/value-types.js';
import type { DistributionProfile } from '../drift/profile.js';
import type { BinaryMetrics } from './metrics.js';
import type { LogisticModel } from './logistic.js';
import type { NaiveBayesModel } from './naive-bayes.js';

/** Names of the models Larder trains (CONTRACT s.9). */
export type ModelName = string & { readonly __brand?: 'ModelName' };

/** A feature the model reads: its column name in the dataset and in `/predict` answers, and its type. */
export interface ModelFeature {
  /** Output name (`word_counts`), as datasets and online answers name it without full names. */
  name: string;
  /** `view:feature`. */
  ref: string;
  type: ValueType;
}

/**
 * A linear model over dense numeric features, standardised with the training set's mean and
 * standard deviation; a missing value (no events in a window) counts as the mean.
 */
export interface StandardisedLogisticModel {
  kind: 'standardised-logistic-regression';
  /** Feature names in weight order. */
  features: string[];
  means: number[];
  scales: number[];
  model: LogisticModel;
}

/** A model over one sparse feature (`word_counts`). */
export interface SparseFeatureModel {
  kind: 'sparse-feature';
  feature: string;
  model: NaiveBayesModel | LogisticModel;
}

export type Estimator = SparseFeatureModel | StandardisedLogisticModel;

export interface ModelVersionMeta {
  name: ModelName;
  /** "1", "2", ...: assigned by the registry. */
  version: string;
  featureService: string;
  /** Join keys of the service's entities, in order. */
  joinKeys: string[];
  features: ModelFeature[];
  /** The registry version of the definitions the dataset was built from, and its full hash. */
  definitionsVersion: string;
  definitionsHash: string;
  /** sha256 of the training dataset's rows (keys, timestamps, labels, features), in order. */
  datasetFingerprint: string;
  datasetRows: number;
  /** The time split: rows at or before `trainUntil` trained, later rows evaluated. */
  split: { trainUntil: string; trainRows: number; testRows: number };
  /** Where the training dataset was written (Parquet, in the offline store), to trace a prediction to its data. */
  datasetPath: string;
  /** Reviewer labels (from the review queue) that replaced or added training labels. */
  reviewLabels: number;
  /** Held-out metrics per estimator name (`naive_bayes`, `logistic_regression`). */
  metrics: Record<string, BinaryMetrics>;
  /** The estimator `/predict` serves. */
  primary: string;
  /** A prediction whose confidence max(p, 1 - p) is below this is flagged for human review. */
  reviewThreshold: number;
  /** When training finished, ISO-8601, and how long it took. */
  trainedAt: string;
  trainingSeconds: number;
  /** Set by the registry. */
  registeredAt: string;
  /** Distributions of the training rows' features and predicted probabilities, for drift reports. */
  profile: DistributionProfile;
}

export interface ModelArtifact {
  meta: ModelVersionMeta;
  estimators: Record<string, Estimator>;
}

/** What a training job hands the registry: everything but what the registry assigns. */
export interface NewModelVersion {
  meta: Omit<ModelVersionMeta, 'version' | 'registeredAt'>;
  estimators: Record<string, Estimator>;
}
