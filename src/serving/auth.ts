/**
 * API keys (CONTRACT s.1, s.5): with LARDER_API_KEYS set, a write needs
 * `Authorization: Bearer <key>`: 401 without one, 403 with a wrong one. With LARDER_PROTECT_READS
 * as well, so do reads (/get-online-features, /get-historical-features, /predict, GET
 * /review-queue, /registry); /health and /metrics stay open for probes. Keys are compared as
 * sha256 digests with `timingSafeEqual` (fixed length, whatever the key's), against every
 * configured key without stopping at a match, so the time taken says nothing about the keys.
 *
 * A key is only taken from the Authorization header (never the query string, which ends up in
 * access logs), and is never logged or echoed: the 401 and 403 answers are fixed texts.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { InputError } from '../core/errors.js';
import { HttpError } from './errors.js';

const digest = (key: string): Buffer => createHash('sha256').update(key, 'utf8').digest();

export interface ApiAuth {
  /** Whether keys are configured at all. */
  readonly enabled: boolean;
  /** Whether reads need a key too (LARDER_PROTECT_READS). */
  readonly protectReads: boolean;
  /** For a write: throws 401/403 unless the request carries a configured key (when keys are set). */
  check(req: IncomingMessage): void;
  /** For a read: as `check` when reads are protected, else nothing. */
  checkRead(req: IncomingMessage): void;
}

export interface ApiAuthOptions {
  /** Reads need a key too; refused (InputError) without keys, rather than leaving reads open. */
  protectReads?: boolean;
}

const CHALLENGE = { 'www-authenticate': 'Bearer realm="larder"' } as const;

export function apiAuth(keys: readonly string[], options: ApiAuthOptions = {}): ApiAuth {
  const digests = keys.filter(Boolean).map(digest);
  const protectReads = options.protectReads === true;
  if (protectReads && digests.length === 0) {
    throw new InputError('LARDER_PROTECT_READS: reads cannot need a key when no key is set; set LARDER_API_KEYS too (or LARDER_PROTECT_READS=false)');
  }
  const verify = (req: IncomingMessage, what: string): void => {
    if (digests.length === 0) return;
    const header = req.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header) : null;
    if (!m) throw new HttpError(401, `authorization: this endpoint ${what} and needs an API key (Authorization: Bearer <key>)`, { field: 'authorization' }, CHALLENGE);
    const given = digest(m[1]!);
    let match = 0;
    for (const d of digests) match |= timingSafeEqual(given, d) ? 1 : 0;
    if (!match) throw new HttpError(403, 'authorization: the API key is not valid', { field: 'authorization' });
  };
  return {
    enabled: digests.length > 0,
    protectReads,
    check: (req) => verify(req, 'writes'),
    checkRead: protectReads ? (req) => verify(req, 'reads (LARDER_PROTECT_READS is on)') : () => {},
  };
}
