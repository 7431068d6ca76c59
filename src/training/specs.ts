/**
 * The models Larder trains (CONTRACT s.9), as data: which feature service feeds them, where their
 * labels come from, and which estimators are fitted. `larder train <name>` looks them up here.
 */
import type { ModelName } from '../models/artifact.js';

/** Where a model's label rows come from; each becomes (join keys, event_timestamp, label 0/1). */
export type LabelSource =
  /** The batch source of a view, one label per source row: `positive` is a SQL condition on its columns. */
  | { kind: 'view-source'; view: string; positive: string; needs: readonly string[] }
  /** A Parquet/CSV file of the repo (join keys, event_timestamp, a boolean or 0/1 column). */
  | { kind: 'file'; path: string; column: string };

export type EstimatorPlan =
  /** Multinomial Naive Bayes on one sparse count feature (served), logistic regression on it beside. */
  | { kind: 'sparse-text'; feature: string }
  /** Logistic regression on every numeric feature of the service, standardised. */
  | { kind: 'dense-numeric' };

export interface ModelSpec {
  name: ModelName;
  featureService: string;
  labels: LabelSource;
  estimators: EstimatorPlan;
  /** Confidence max(p, 1 - p) below which a prediction waits for a reviewer. */
  reviewThreshold: number;
  description: string;
}

export const MODEL_SPECS: readonly ModelSpec[] = [
  {
    name: 'review_sentiment',
    featureService: 'review_sentiment',
    labels: { kind: 'view-source', view: 'review_text', positive: 'rating >= 4', needs: ['rating'] },
    estimators: { kind: 'sparse-text', feature: 'word_counts' },
    reviewThreshold: 0.7,
    description: 'positive review (rating 4 or 5) from its word counts: multinomial Naive Bayes, logistic regression beside it',
  },
  {
    name: 'weld_failure',
    featureService: 'weld_failure',
    labels: { kind: 'file', path: 'data/weld_labels.parquet', column: 'failed' },
    estimators: { kind: 'dense-numeric' },
    reviewThreshold: 0.7,
    description: 'a weld failing within the label horizon, from windowed sensor aggregates: logistic regression',
  },
];

export function modelSpec(name: string): ModelSpec | undefined {
  return MODEL_SPECS.find((s) => s.name === name);
}
