/**
 * `larder/sdk`: the thin client for `larder serve` (CONTRACT s.6). No dependency beyond
 * apache-arrow; definition types are imported as types only.
 */
export { LarderClient, DEFAULT_TIMEOUT_MS, DEFAULT_PUSH_BATCH_SIZE, type LarderClientOptions } from './client.js';
export { LarderClientError, LarderHttpError, LarderTimeoutError, LarderConnectionError, LarderPushError } from './errors.js';
export type {
  AnyProjection,
  AnyService,
  AnyView,
  CallOptions,
  CanonicalRepo,
  EntitiesInput,
  FeastFeatureVector,
  FeastOnlineResponse,
  FeatureInput,
  FeatureStatus,
  HealthBody,
  HealthResult,
  HistoricalEntities,
  HistoricalFeaturesRequest,
  JoinKeysOf,
  JsonValue,
  OnlineFeaturesRequest,
  OnlineRow,
  OnlineRowWithStatus,
  PredictInput,
  Prediction,
  PredictResponse,
  PushOptions,
  PushResult,
  PushTarget,
  RegistryResponse,
  ServiceInput,
  SparseVector,
  TsValue,
  TypedRow,
  ValueType,
} from './types.js';
