/**
 * `POST /get-historical-features`: JSON `{ entities, features | feature_service, full_feature_names,
 * timestamp_column }`, or an Arrow IPC stream of entity rows with the same fields in the query
 * (`features=a:b,c:d`). Answers an Arrow IPC stream, or `{ "df": { col: [...] } }` when the client
 * asks for JSON (`Accept: application/json`) and not for Arrow. A read: needs a key only with
 * LARDER_PROTECT_READS. At most `limits.maxDatasetRows` entity rows and `limits.maxFeatures`
 * feature references, else 400 before any file is read.
 */
import { tableToIPC } from 'apache-arrow';
import type { IncomingMessage } from 'node:http';
import { jsonColumns, readArrowBody } from '../arrow-columns.js';
import { ARROW_STREAM, bodyKind, parseJsonBody, readBody } from '../body.js';
import { checkLimit, queryOf, rowsOf, type Handler, type ServingContext } from '../context.js';
import { sendJson } from '../errors.js';
import { historicalFeatures, type HistoricalRequest } from '../historical.js';
import { historicalQuerySchema, historicalRequestSchema, parseWith } from '../schemas.js';

const wantsJson = (req: IncomingMessage): boolean => {
  const accept = (req.headers.accept ?? '').toLowerCase();
  return /\bapplication\/(json|[\w.+-]*\+json)\b/.test(accept) && !accept.includes('application/vnd.apache.arrow');
};

export function historicalRoute(ctx: ServingContext): Handler {
  return async (req, res) => {
    ctx.auth.checkRead(req);
    const kind = bodyKind(req, ['json', 'arrow']);
    const raw = await readBody(req, ctx.maxBodyBytes);
    let request: HistoricalRequest;
    if (kind === 'json') {
      const body = parseWith(historicalRequestSchema, parseJsonBody(raw));
      checkLimit(ctx, 'maxDatasetRows', 'entities', rowsOf(body.entities), 'rows');
      if (body.features) checkLimit(ctx, 'maxFeatures', 'features', body.features.length, 'features');
      request = { entities: body.entities, features: body.features, service: body.feature_service, fullNames: body.full_feature_names, timestampColumn: body.timestamp_column };
    } else {
      const query = parseWith(historicalQuerySchema, queryOf(req), 'query');
      if (query.features) checkLimit(ctx, 'maxFeatures', 'query.features', query.features.length, 'features');
      const entities = readArrowBody(raw);
      checkLimit(ctx, 'maxDatasetRows', 'body', entities.numRows, 'entity rows');
      request = { entities, features: query.features, service: query.feature_service, fullNames: query.full_feature_names, timestampColumn: query.timestamp_column };
    }
    const defs = ctx.state.served.defs;
    const { table, types } = await ctx.datasets.run(() => historicalFeatures(defs, ctx.offlineDir, request));
    if (wantsJson(req)) {
      sendJson(res, 200, { df: jsonColumns(table, types) });
      return;
    }
    const bytes = tableToIPC(table, 'stream');
    res.writeHead(200, { 'content-type': ARROW_STREAM, 'content-length': bytes.byteLength });
    res.end(bytes);
  };
}
