/** The package `larder`: what feature definitions and library users import. */
export { entity, fileSource, postgresSource, pushSource, featureView, featureService } from './definitions/builders.js';
export type { AggregationInput, AggregationSchema } from './definitions/builders.js';
export type {
  Entity,
  FileSource,
  PostgresSource,
  PushSource,
  Source,
  BatchSource,
  FeatureView,
  FeatureViewProjection,
  FeatureService,
  Definitions,
  Schema,
  AggregationFunction,
} from './definitions/types.js';
export { sparse, type ValueType, type SparseVector, type TsValue } from './core/value-types.js';
export { loadDefinitions } from './definitions/loader.js';
export { loadConfig, type LarderConfig } from './config.js';
export type { FeatureRef } from './core/refs.js';
export type { EpochMs } from './core/time.js';
export { tokenize, wordFrequency, textStats, TEXT_STATS_SCHEMA } from './transforms/index.js';
export type { TokenizeOptions, StopWordList, WordFrequency, WordFrequencyOptions, TextStats } from './transforms/index.js';
export { getHistoricalFeatures, writeDataset, explainDataset, type DatasetRequest } from './offline/dataset.js';
