/**
 * `POST /get-online-features` (the hot path: server.ts serves it without express). A read: needs
 * a key only with LARDER_PROTECT_READS. At most `limits.maxEntities` entity rows and
 * `limits.maxFeatures` feature references, else 400 before the store is asked.
 */
import { bodyKind, parseJsonBody, readBody } from '../body.js';
import { checkLimit, rowsOf, type Handler, type ServingContext } from '../context.js';
import { sendJsonText } from '../errors.js';
import { readOnlineFeaturesJson } from '../online.js';
import { parseOnlineRequest } from '../schemas.js';

export function onlineFeaturesRoute(ctx: ServingContext): Handler {
  return async (req, res) => {
    ctx.auth.checkRead(req);
    bodyKind(req, ['json']);
    const body = parseOnlineRequest(parseJsonBody(await readBody(req, ctx.maxBodyBytes)));
    checkLimit(ctx, 'maxEntities', 'entities', rowsOf(body.entities), 'rows');
    if (body.features) checkLimit(ctx, 'maxFeatures', 'features', body.features.length, 'features');
    sendJsonText(res, 200, await readOnlineFeaturesJson(ctx.state.served.defs, ctx.store, body));
  };
}
