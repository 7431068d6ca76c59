/** `GET /metrics`: the server's Prometheus registry in the text format. */
import type { Handler, ServingContext } from '../context.js';

export function metricsRoute(ctx: ServingContext): Handler {
  return async (_req, res) => {
    const { contentType, body } = await ctx.metrics.text();
    res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
}
