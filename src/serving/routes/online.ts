/** `POST /get-online-features` (the hot path: server.ts serves it without express). */
import { bodyKind, parseJsonBody, readBody } from '../body.js';
import type { Handler, ServingContext } from '../context.js';
import { sendJsonText } from '../errors.js';
import { readOnlineFeaturesJson } from '../online.js';
import { parseOnlineRequest } from '../schemas.js';

export function onlineFeaturesRoute(ctx: ServingContext): Handler {
  return async (req, res) => {
    bodyKind(req, ['json']);
    const body = parseOnlineRequest(parseJsonBody(await readBody(req, ctx.maxBodyBytes)));
    sendJsonText(res, 200, await readOnlineFeaturesJson(ctx.state.served.defs, ctx.store, body));
  };
}
