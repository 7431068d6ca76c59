/**
 * `POST /push`: JSON `{ push_source_name, df, to }`, or an Arrow IPC stream with
 * `?push_source_name=...&to=...`. Needs an API key when keys are set. At most
 * `limits.maxPushRows` rows, else 400 with nothing written.
 */
import { arrowColumns, readArrowBody } from '../arrow-columns.js';
import { bodyKind, parseJsonBody, readBody } from '../body.js';
import { checkLimit, queryOf, rowsOf, type Handler, type ServingContext } from '../context.js';
import { sendJson } from '../errors.js';
import { push, type PushRequest } from '../push.js';
import { parsePushRequest, parseWith, pushQuerySchema } from '../schemas.js';

export function pushRoute(ctx: ServingContext): Handler {
  return async (req, res) => {
    ctx.auth.check(req);
    const kind = bodyKind(req, ['json', 'arrow']);
    const raw = await readBody(req, ctx.maxBodyBytes);
    let request: PushRequest;
    if (kind === 'json') {
      const body = parsePushRequest(parseJsonBody(raw));
      checkLimit(ctx, 'maxPushRows', 'df', rowsOf(body.df), 'rows', 'push');
      request = { pushSource: body.push_source_name, df: body.df, to: body.to ?? 'online' };
    } else {
      const query = parseWith(pushQuerySchema, queryOf(req), 'query');
      const table = readArrowBody(raw);
      checkLimit(ctx, 'maxPushRows', 'body', table.numRows, 'rows', 'push');
      request = { pushSource: query.push_source_name, df: arrowColumns(table), to: query.to ?? 'online' };
    }
    const result = await push({ defs: ctx.state.served.defs, store: ctx.store, files: ctx.files, ingest: ctx.ingest }, request);
    ctx.metrics.pushed(request.pushSource, request.to, result.rows);
    for (const { view, rows } of result.late) if (rows) ctx.metrics.lateEvents.inc({ view }, rows);
    sendJson(res, 200, result);
  };
}
