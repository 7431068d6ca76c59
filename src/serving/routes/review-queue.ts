/**
 * The review queue over HTTP (CONTRACT s.9):
 *
 * - `GET /review-queue/<model>?limit=N` -> `{ model, pending: <queue length>, items: [...] }`, the
 *   oldest N items (default 100), times as epoch ms like the items themselves.
 * - `POST /review-queue/<model>/<id>/label` with `{"label": 1, "reviewer": "ana"}` (label 0/1 or
 *   false/true, reviewer optional) -> `{ label: ReviewLabel }`: the label is in the offline store
 *   and the item gone from the queue. 404 when the item is not queued (never was, or already
 *   labelled), 400 for a bad label, reviewer or field.
 *
 * Plain node handlers: the model and id are read from the end of the request path, so they work
 * whatever router mounts them.
 */
import type { IncomingMessage } from 'node:http';
import { isIdentifier } from '../../core/refs.js';
import { labelReview, ReviewItemNotFoundError } from '../../inference/labels.js';
import type { ReviewQueue } from '../../inference/review-queue.js';
import { bodyKind, parseJsonBody, readBody } from '../body.js';
import { queryOf, type Handler } from '../context.js';
import { HttpError, notFound, sendJson } from '../errors.js';

export const DEFAULT_REVIEW_LIMIT = 100;
export const MAX_REVIEW_LIMIT = 1000;

export interface ReviewQueueListDeps {
  queue: ReviewQueue;
  /** When given, a model it does not know answers 404 rather than an empty queue. */
  knownModel?: (model: string) => boolean | Promise<boolean>;
  /** Largest `limit` taken (default 1000). */
  maxLimit?: number;
}

export interface ReviewLabelDeps {
  queue: ReviewQueue;
  offlineDir: string;
  maxBodyBytes: number;
}

/** The path's segments, decoded; a 400 naming the path when one is not valid percent-encoding. */
function pathSegments(req: IncomingMessage): string[] {
  const url = req.url ?? '';
  const path = url.split('?', 1)[0]!;
  try {
    return path.split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    throw new HttpError(400, `path: '${path}' is not valid percent-encoding`, { field: 'path' });
  }
}

function modelOf(segment: string | undefined): string {
  if (segment === undefined || !isIdentifier(segment)) throw new HttpError(400, `model: '${segment ?? ''}' is not a model name (letters, digits and _)`, { field: 'model' });
  return segment;
}

function limitOf(req: IncomingMessage, maxLimit: number): number {
  const text = queryOf(req).limit;
  if (text === undefined) return Math.min(DEFAULT_REVIEW_LIMIT, maxLimit);
  const limit = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(limit >= 1 && limit <= maxLimit)) throw new HttpError(400, `limit: expected an integer from 1 to ${maxLimit}, got '${text}'`, { field: 'limit', max: maxLimit });
  return limit;
}

/** `GET /review-queue/<model>?limit=N`. */
export function reviewQueueListRoute(deps: ReviewQueueListDeps): Handler {
  const maxLimit = deps.maxLimit ?? MAX_REVIEW_LIMIT;
  return async (req, res) => {
    const segments = pathSegments(req);
    const model = modelOf(segments.at(-1));
    const limit = limitOf(req, maxLimit);
    if (deps.knownModel && !(await deps.knownModel(model))) throw notFound(`model: no model '${model}'`, { field: 'model', model });
    const [pending, items] = await Promise.all([deps.queue.size(model), deps.queue.pending(model, limit)]);
    sendJson(res, 200, { model, pending, items });
  };
}

const LABEL_FIELDS = new Set(['label', 'reviewer']);

/** `POST /review-queue/<model>/<id>/label`. */
export function reviewLabelRoute(deps: ReviewLabelDeps): Handler {
  return async (req, res) => {
    const segments = pathSegments(req);
    if (segments.length < 3 || segments.at(-1) !== 'label') throw notFound(`path: expected /review-queue/<model>/<id>/label`, { field: 'path' });
    const model = modelOf(segments.at(-3));
    const id = segments.at(-2)!;
    bodyKind(req, ['json']);
    const body = parseJsonBody(await readBody(req, deps.maxBodyBytes));
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'body: expected a JSON object like {"label": 1, "reviewer": "ana"}', { field: 'body' });
    // A misspelt field ("lable") would otherwise read as a missing label, or drop the reviewer.
    for (const key of Object.keys(body)) {
      if (!LABEL_FIELDS.has(key)) throw new HttpError(400, `body.${key.slice(0, 40)}: unknown field (expected label, reviewer)`, { field: `body.${key.slice(0, 40)}` });
    }
    const { label, reviewer } = body as { label?: unknown; reviewer?: unknown };
    try {
      sendJson(res, 200, { label: await labelReview(deps.queue, deps.offlineDir, model, id, label, reviewer) });
    } catch (err) {
      if (err instanceof ReviewItemNotFoundError) throw notFound(err.message, err.detail);
      throw err;
    }
  };
}
