/**
 * `POST /predict/{model}` (server.ts serves it without express, like the online read): the body
 * to the library `predict`, the answer as JSON; then, off the response path, every prediction to
 * the serving log (an in-memory append, written in batches) and the flagged ones to the review
 * queue.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { errorMessage } from '../../core/errors.js';
import { asEpochMs } from '../../core/time.js';
import { isIdentifier } from '../../core/refs.js';
import { ModelDefinitionsError, predict, type PredictBody, type PredictOutcome } from '../../inference/predict.js';
import type { NewReviewItem } from '../../inference/review-queue.js';
import { ModelNotFoundError, type ServedModel } from '../../inference/served-models.js';
import { bodyKind, parseJsonBody, readBody } from '../body.js';
import type { Handler, ServingContext } from '../context.js';
import { HttpError, sendJsonText } from '../errors.js';

export const PREDICT_PREFIX = '/predict/';

export function predictRoute(ctx: ServingContext): Handler {
  return async (req, res) => {
    // A read (it writes only logs): a key only with LARDER_PROTECT_READS, asked before anything
    // else, so a caller without one learns nothing of the models.
    ctx.auth.checkRead(req);
    const name = modelName(req);
    bodyKind(req, ['json']);
    const raw = await readBody(req, ctx.maxBodyBytes);
    const body = parseJsonBody(raw);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'body: expected a JSON object with entities or inputs', { field: 'body' });
    let model: ServedModel;
    try {
      model = await ctx.models.get(name);
    } catch (err) {
      if (err instanceof ModelNotFoundError) throw new HttpError(404, err.message, err.detail);
      throw err;
    }
    const at = asEpochMs(Date.now());
    let outcome: PredictOutcome;
    try {
      outcome = await predict({ defs: ctx.state.served.defs, store: ctx.store, now: at }, model, body as PredictBody, randomUUID());
    } catch (err) {
      if (err instanceof ModelDefinitionsError) throw new HttpError(409, err.message, { field: 'model', model: name, version: model.meta.version });
      throw err;
    }
    sendJsonText(res, 200, JSON.stringify(outcome.answer));
    record(ctx, model, outcome, at);
  };
}

/** The serving log and the review queue: neither delays the answer, and neither failing fails it. */
function record(ctx: ServingContext, model: ServedModel, outcome: PredictOutcome, at: ReturnType<typeof asEpochMs>): void {
  const { answer, entities, inputs } = outcome;
  ctx.metrics.predicted(answer.model, answer.version, answer.predictions.length);
  if (ctx.servingLog) {
    ctx.servingLog.append(
      model.meta,
      answer.predictions.map((p, row) => ({
        requestId: answer.request_id,
        at,
        row,
        entity: entities[row]!,
        features: p.features,
        prediction: p.prediction,
        probability: p.probability,
        needsReview: p.needs_review,
      })),
    );
  }
  const flagged: NewReviewItem[] = [];
  answer.predictions.forEach((p, row) => {
    if (!p.needs_review) return;
    flagged.push({ model: answer.model, version: answer.version, requestId: answer.request_id, at, entity: entities[row]!, inputs: inputs[row]!, prediction: p.prediction, probability: p.probability });
  });
  if (flagged.length === 0) return;
  ctx.reviewQueue.enqueue(flagged).then(
    () => ctx.metrics.queuedForReview(answer.model, flagged.length),
    (err: unknown) => {
      ctx.metrics.storeError('online');
      ctx.log(`/predict/${answer.model}: queueing ${flagged.length} prediction(s) for review failed: ${errorMessage(err).split('\n')[0]}`);
    },
  );
}

/** The model name of `/predict/<name>`; 404 for a path that cannot name one. */
function modelName(req: IncomingMessage): string {
  const path = (req.url ?? '').split('?', 1)[0]!;
  const name = path.slice(PREDICT_PREFIX.length);
  if (!isIdentifier(name)) throw new HttpError(404, `model: '${name}' is not a model name (letters, digits and _), in ${path}`, { field: 'model' });
  return name;
}
