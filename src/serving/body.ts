/**
 * Request bodies: read whole with a size limit (413 past it), and told apart by content type:
 * JSON, or an Arrow IPC stream (`application/vnd.apache.arrow.stream`). Anything else is 415.
 *
 * JSON is also read without a content type, and under `application/x-www-form-urlencoded` and
 * `text/plain`: `curl -d '{...}'` (Feast's documented calls) sends the first, `fetch` with a string
 * body the second, and a Feast client must work unchanged.
 */
import type { IncomingMessage } from 'node:http';
import { HttpError } from './errors.js';
import { InputError } from '../core/errors.js';

export const ARROW_STREAM = 'application/vnd.apache.arrow.stream';
const ARROW_FILE = 'application/vnd.apache.arrow.file';
export const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;

/** A body past the limit is read on (and dropped) up to this many times the limit, so the client gets the 413. */
const DRAIN_FACTOR = 4;

export type BodyKind = 'json' | 'arrow';

const JSON_TYPES = new Set(['', 'application/json', 'application/x-www-form-urlencoded', 'text/plain']);

/** The kind of body a request carries; 415 naming what the endpoint takes. */
export function bodyKind(req: IncomingMessage, accepted: readonly BodyKind[]): BodyKind {
  const header = req.headers['content-type'];
  const type = header === undefined ? '' : header.split(';', 1)[0]!.trim().toLowerCase();
  if (accepted.includes('json') && (JSON_TYPES.has(type) || type.endsWith('+json'))) return 'json';
  if (accepted.includes('arrow') && (type === ARROW_STREAM || type === ARROW_FILE)) return 'arrow';
  const takes = accepted.map((k) => (k === 'json' ? 'application/json' : ARROW_STREAM)).join(' or ');
  throw new HttpError(415, `content-type: '${type}' is not accepted here (send ${takes})`, { field: 'content-type', accepted: takes });
}

const tooLarge = (maxBytes: number): HttpError =>
  new HttpError(413, `body: larger than the limit of ${maxBytes} bytes`, { field: 'body', limit: maxBytes }, { connection: 'close' });

/** The whole body; rejects with 413 past `maxBytes`. */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (declared > maxBytes * DRAIN_FACTOR) return Promise.reject(tooLarge(maxBytes));
  return new Promise((resolve, reject) => {
    let chunks: Buffer[] | undefined = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        chunks = undefined;
        // Dropped as it comes; a client sending on and on is cut off.
        if (size > maxBytes * DRAIN_FACTOR) {
          reject(tooLarge(maxBytes));
          req.destroy();
        }
        return;
      }
      chunks!.push(chunk);
    });
    req.on('end', () => {
      if (!chunks) reject(tooLarge(maxBytes));
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    });
    req.on('error', reject);
  });
}

/** A JSON body as a value; 400 when it is not JSON. */
export function parseJsonBody(body: Buffer): unknown {
  if (body.length === 0) throw new InputError('body: empty; expected a JSON object');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new InputError(`body: not valid JSON (${(err as Error).message})`);
  }
}
