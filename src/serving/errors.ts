/**
 * Errors as HTTP answers (CONTRACT s.5): every failure is `{ "error": "...", "detail": ... }` JSON.
 * A user's mistake is a 4xx whose message starts with the field at fault (`entities.driver_id[3]:
 * expected int64, got "abc"`), repeated as `detail.field`; a store that does not answer is 503;
 * anything else is a bug in Larder: 500, logged with its stack, its text not sent.
 */
import type { ServerResponse } from 'node:http';
import { DefinitionError, LarderError } from '../core/errors.js';
import { OnlineStoreUnavailableError } from '../online/store.js';
import { RegistryUnavailableError } from '../registry/registry.js';

/** An error that already knows its status (404, 413, 415, 401, 403, 501...). */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
    readonly detail?: unknown,
    /** Extra response headers (`WWW-Authenticate`, `Allow`). */
    readonly headers?: Readonly<Record<string, string>>,
  ) {
    super(message);
  }
}

/** Writing the offline store failed (disk full, permissions...): a 500, logged, whose message names the files. */
export class OfflineWriteError extends Error {
  override name = 'OfflineWriteError';
}

export const notFound = (message: string, detail?: unknown): HttpError => new HttpError(404, message, detail);

export interface ErrorAnswer {
  status: number;
  body: { error: string; detail?: unknown };
  headers?: Readonly<Record<string, string>>;
  /** A bug: the caller logs it. */
  internal: boolean;
}

/** `entities.driver_id[3]` from `entities.driver_id[3]: expected ...`. */
const FIELD = /^([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*|\[\d+\])*): /;

function withField(message: string, detail: unknown): unknown {
  if (detail !== undefined) return detail;
  const m = FIELD.exec(message);
  return m ? { field: m[1] } : undefined;
}

/** Maps any thrown value to its answer. */
export function errorAnswer(err: unknown): ErrorAnswer {
  if (err instanceof HttpError) {
    const detail = withField(err.message, err.detail);
    return { status: err.status, body: { error: err.message, ...(detail !== undefined && { detail }) }, ...(err.headers && { headers: err.headers }), internal: false };
  }
  if (err instanceof OnlineStoreUnavailableError || err instanceof RegistryUnavailableError) {
    return { status: 503, body: { error: err.message, detail: { store: err instanceof OnlineStoreUnavailableError ? 'online' : 'registry' } }, internal: false };
  }
  // A definition that cannot serve a request is the repo's bug, not the caller's: 500, but its
  // text names the object at fault and holds no secret, so it is sent.
  if (err instanceof OfflineWriteError) return { status: 500, body: { error: err.message, detail: { store: 'offline' } }, internal: true };
  if (err instanceof DefinitionError) return { status: 500, body: { error: err.message }, internal: true };
  if (err instanceof LarderError) {
    const detail = withField(err.message, err.detail);
    return { status: 400, body: { error: err.message, ...(detail !== undefined && { detail }) }, internal: false };
  }
  return { status: 500, body: { error: 'internal error; the server log has the details' }, internal: true };
}

const JSON_TYPE = 'application/json; charset=utf-8';

/** Writes a JSON answer on a bare node:http response (express responses are ones too). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers?: Readonly<Record<string, string>>): void {
  sendJsonText(res, status, JSON.stringify(body), headers);
}

/** As `sendJson`, for a body already JSON text. */
export function sendJsonText(res: ServerResponse, status: number, text: string, headers?: Readonly<Record<string, string>>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const length = Buffer.byteLength(text);
  res.writeHead(status, headers ? { ...headers, 'content-type': JSON_TYPE, 'content-length': length } : { 'content-type': JSON_TYPE, 'content-length': length });
  res.end(text);
}

export type Logger = (line: string) => void;

/** Answers an error; bugs are logged with their stack (never the request body). */
export function sendError(res: ServerResponse, err: unknown, log: Logger, where: string): number {
  const answer = errorAnswer(err);
  if (answer.internal) log(`${where}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  sendJson(res, answer.status, answer.body, answer.headers);
  return answer.status;
}
