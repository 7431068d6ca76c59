/**
 * `GET /registry`: the applied version, `{ version, hash, appliedAt, repo }` with `repo` the
 * canonical JSON the registry stores. Before any apply, version `unapplied` and the canonical JSON
 * of the definitions being served. 503 when the registry does not answer in time. A read: needs a
 * key only with LARDER_PROTECT_READS.
 */
import { toCanonical } from '../../registry/canonical.js';
import { RegistryUnavailableError } from '../../registry/registry.js';
import type { Handler, ServingContext } from '../context.js';
import { sendJson } from '../errors.js';
import { UNAPPLIED } from '../state.js';
import { withRegistryTimeout } from '../timeout.js';

export function registryRoute(ctx: ServingContext): Handler {
  return async (req, res) => {
    ctx.auth.checkRead(req);
    const { registry } = ctx;
    let current;
    try {
      current = await withRegistryTimeout(registry, registry.current(), ctx.storeTimeoutMs);
    } catch (err) {
      // A broken registry file is no fault of the caller's either.
      throw err instanceof RegistryUnavailableError ? err : new RegistryUnavailableError(`registry ${registry.url}: ${(err as Error).message}`);
    }
    if (!current) {
      sendJson(res, 200, { version: UNAPPLIED, hash: null, appliedAt: null, repo: toCanonical(ctx.state.served.defs) });
      return;
    }
    sendJson(res, 200, { version: current.version, hash: current.hash, appliedAt: current.appliedAt, repo: current.repo });
  };
}
