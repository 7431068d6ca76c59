/**
 * API keys for write endpoints (CONTRACT s.1, s.5): with LARDER_API_KEYS set, a write needs
 * `Authorization: Bearer <key>`: 401 without one, 403 with a wrong one. Keys are compared as
 * sha256 digests with `timingSafeEqual` (fixed length, whatever the key's), against every
 * configured key without stopping at a match, so the time taken says nothing about the keys.
 * Keys are never logged or echoed. Reads stay open.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpError } from './errors.js';

const digest = (key: string): Buffer => createHash('sha256').update(key, 'utf8').digest();

export interface WriteAuth {
  /** Whether keys are configured at all. */
  readonly enabled: boolean;
  /** Throws 401/403 unless the request carries a configured key. */
  check(req: IncomingMessage): void;
}

export function writeAuth(keys: readonly string[]): WriteAuth {
  const digests = keys.filter(Boolean).map(digest);
  return {
    enabled: digests.length > 0,
    check(req) {
      if (digests.length === 0) return;
      const header = req.headers.authorization;
      const m = typeof header === 'string' ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header) : null;
      if (!m) {
        throw new HttpError(401, 'authorization: this endpoint writes and needs an API key (Authorization: Bearer <key>)', { field: 'authorization' }, { 'www-authenticate': 'Bearer realm="larder"' });
      }
      const given = digest(m[1]!);
      let match = 0;
      for (const d of digests) match |= timingSafeEqual(given, d) ? 1 : 0;
      if (!match) throw new HttpError(403, 'authorization: the API key is not valid', { field: 'authorization' });
    },
  };
}
