/**
 * A prediction (CONTRACT s.5 `POST /predict/{model}`): the model's features for each input row —
 * read from the online store in-process for `entities`, or computed by the views' transforms for
 * raw `inputs` — scored by the model's served estimator (models/score.ts, the function training
 * evaluated it with). One prediction per row, in order. A prediction whose confidence
 * max(p, 1 - p) is below the model's review threshold, or made with a feature missing, is flagged
 * `needs_review`.
 */
import { InputError } from '../core/errors.js';
import type { EpochMs } from '../core/time.js';
import type { Definitions } from '../definitions/types.js';
import { scoreRow } from '../models/score.js';
import { getOnlineFeatures } from '../online/online-features.js';
import type { OnlineStore } from '../online/store.js';
import { checkInputColumns, featuresFromInputs, MAX_INPUT_ROWS } from './inputs.js';
import type { ServedModel } from './served-models.js';

export interface PredictBody {
  /** Join key columns, `{ review_id: ['r1', 'r2'] }`. */
  entities?: unknown;
  /** Raw input columns the views' transforms read, `{ text: ['...'] }`. */
  inputs?: unknown;
}

export interface Prediction {
  prediction: 0 | 1;
  probability: number;
  needs_review: boolean;
  /** The feature values the model was given, by name. */
  features: Record<string, unknown>;
  /** Features that had no value (not online, or outside their max age); present only when some. */
  missing_features?: string[];
}

export interface PredictAnswer {
  model: string;
  version: string;
  request_id: string;
  predictions: Prediction[];
}

export interface PredictOutcome {
  answer: PredictAnswer;
  /** Per prediction, its entity keys (null for raw inputs) and its raw input row (null for entities). */
  entities: (Record<string, string | number> | null)[];
  inputs: (Record<string, unknown> | null)[];
}

export async function predict(
  ctx: { defs: Definitions; store: OnlineStore; now?: EpochMs },
  model: ServedModel,
  body: PredictBody,
  requestId: string,
): Promise<PredictOutcome> {
  const { meta } = model;
  if (body.entities !== undefined && body.inputs !== undefined) throw new InputError('entities: give entities or inputs, not both', { field: 'entities' });
  let rows: Record<string, unknown>[];
  let missing: string[][];
  let entities: (Record<string, string | number> | null)[];
  let inputs: (Record<string, unknown> | null)[];
  if (body.entities !== undefined) {
    const read = await readFeatures(ctx, model, body.entities);
    ({ rows, missing, entities } = read);
    inputs = rows.map(() => null);
  } else if (body.inputs !== undefined) {
    const columns = checkInputColumns(body.inputs);
    const service = ctx.defs.services.get(meta.featureService);
    if (!service) throw new ModelDefinitionsError(`model ${meta.name} version ${meta.version} reads feature service '${meta.featureService}', which the served definitions do not have; retrain it`);
    const computed = featuresFromInputs(ctx.defs, service, columns);
    rows = computed.map((c) => Object.fromEntries(meta.features.map((f) => [f.name, c[f.name] ?? null])));
    missing = rows.map((r) => meta.features.filter((f) => r[f.name] === null).map((f) => f.name));
    entities = rows.map(() => null);
    inputs = Array.from({ length: columns.rows }, (_, r) => Object.fromEntries(Object.entries(columns.columns).map(([k, v]) => [k, v[r]])));
  } else {
    throw new InputError('entities: give entities ({"review_id": ["r1"]}) or raw inputs ({"text": ["..."]})', { field: 'entities' });
  }
  const threshold = meta.reviewThreshold;
  const predictions = rows.map((features, i): Prediction => {
    const { probability, complete } = scoreRow(model.estimator, features);
    const confidence = Math.max(probability, 1 - probability);
    const prediction: Prediction = { prediction: probability >= 0.5 ? 1 : 0, probability, needs_review: !complete || confidence < threshold, features };
    if (missing[i]!.length) prediction.missing_features = missing[i]!;
    return prediction;
  });
  return { answer: { model: meta.name, version: meta.version, request_id: requestId, predictions }, entities, inputs };
}

/** The model's features for entity key columns, from the online store, as rows by feature name. */
async function readFeatures(
  ctx: { defs: Definitions; store: OnlineStore; now?: EpochMs },
  model: ServedModel,
  rawEntities: unknown,
): Promise<{ rows: Record<string, unknown>[]; missing: string[][]; entities: Record<string, string | number>[] }> {
  const { meta } = model;
  if (typeof rawEntities !== 'object' || rawEntities === null || Array.isArray(rawEntities)) throw new InputError('entities: expected an object of join key columns, like {"review_id": ["r1"]}', { field: 'entities' });
  const columns = rawEntities as Record<string, unknown>;
  for (const [name, values] of Object.entries(columns)) {
    if (!Array.isArray(values)) throw new InputError(`entities.${name}: expected an array of key values`, { field: `entities.${name}` });
    if (values.length > MAX_INPUT_ROWS) throw new InputError(`entities.${name}: ${values.length} rows, at most ${MAX_INPUT_ROWS} per request`, { field: `entities.${name}` });
  }
  for (const view of new Set(meta.features.map((f) => f.ref.slice(0, f.ref.indexOf(':'))))) {
    if (!ctx.defs.views.has(view)) throw new ModelDefinitionsError(`model ${meta.name} version ${meta.version} reads view '${view}', which the served definitions do not have; retrain it`);
  }
  const response = await getOnlineFeatures({
    defs: ctx.defs,
    store: ctx.store,
    features: meta.features.map((f) => f.ref),
    entities: columns as Record<string, unknown[]>,
    ...(ctx.now !== undefined && { now: ctx.now }),
  });
  const names = response.metadata.feature_names;
  const keyCount = names.length - meta.features.length;
  const n = response.results[0]?.values.length ?? 0;
  const rows: Record<string, unknown>[] = [];
  const missing: string[][] = [];
  const entities: Record<string, string | number>[] = [];
  for (let i = 0; i < n; i++) {
    const row: Record<string, unknown> = {};
    const absent: string[] = [];
    const keys: Record<string, string | number> = {};
    for (let j = 0; j < keyCount; j++) keys[names[j]!] = response.results[j]!.values[i] as string | number;
    meta.features.forEach((f, k) => {
      const result = response.results[keyCount + k]!;
      row[f.name] = result.values[i] ?? null;
      if (result.statuses[i] !== 'PRESENT') absent.push(f.name);
    });
    rows.push(row);
    missing.push(absent);
    entities.push(keys);
  }
  return { rows, missing, entities };
}

/** A model the served definitions can no longer feed: the operator must retrain it (409). */
export class ModelDefinitionsError extends Error {
  override name = 'ModelDefinitionsError';
}
