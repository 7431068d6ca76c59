/**
 * `GET /health`: 200 only when every store answers (CONTRACT s.5), each asked with a time bound;
 * else 503 naming what failed. Reads go on being served meanwhile, from the definitions loaded last.
 */
import { errorMessage } from '../../core/errors.js';
import type { Handler, ServingContext } from '../context.js';
import { sendJson } from '../errors.js';
import { withTimeout } from '../timeout.js';

type Check = { ok: true } | { ok: false; error: string };

async function check(work: () => Promise<void>, timeoutMs: number, what: string): Promise<Check> {
  try {
    await withTimeout(work(), timeoutMs, () => new Error(`${what} did not answer within ${timeoutMs} ms`));
    return { ok: true };
  } catch (err) {
    return { ok: false, error: errorMessage(err).split('\n')[0]! };
  }
}

export function healthRoute(ctx: ServingContext): Handler {
  return async (_req, res) => {
    const [online, registry] = await Promise.all([
      check(() => ctx.store.ping(), ctx.storeTimeoutMs, `online store ${ctx.store.url}`),
      // A ping, then a read of the current version (what hot reload needs; a corrupt registry file answers pings).
      check(
        async () => {
          await ctx.registry.ping();
          await ctx.state.refresh();
          const status = ctx.state.registryStatus;
          if (!status.ok) throw new Error(status.error);
        },
        ctx.storeTimeoutMs,
        `registry ${ctx.registry.url}`,
      ),
    ]);
    if (!online.ok) ctx.metrics.storeError('online');
    if (!registry.ok) ctx.metrics.storeError('registry');
    const served = ctx.state.served;
    const ok = online.ok && registry.ok;
    const errors = [online, registry].flatMap((c) => (c.ok ? [] : [c.error]));
    sendJson(res, ok ? 200 : 503, {
      status: ok ? 'ok' : 'unavailable',
      online: online.ok ? 'ok' : 'unavailable',
      registry: registry.ok ? 'ok' : 'unavailable',
      version: served.version,
      definitions: {
        version: served.version,
        repoVersion: served.repoVersion,
        inSync: served.inSync,
        loadedAt: served.loadedAt,
        ...(ctx.state.lastError !== undefined && { error: ctx.state.lastError }),
      },
      ...(!ok && { error: errors.join('; '), detail: { online: online.ok ? 'ok' : online.error, registry: registry.ok ? 'ok' : registry.error } }),
    });
  };
}
