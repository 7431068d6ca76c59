/**
 * `POST /get-historical-features`: entity rows (JSON columns or an Arrow table) and a selection to
 * the point-in-time dataset of `getHistoricalFeatures`, and the value type of each output column
 * (the JSON answer needs it for sparse vectors).
 */
import type * as arrow from 'apache-arrow';
import type { ValueType } from '../core/value-types.js';
import type { Definitions } from '../definitions/types.js';
import { getHistoricalFeatures } from '../offline/dataset.js';
import { selectFeatures } from '../offline/feature-selection.js';
import { checkSelection } from './online.js';

export interface HistoricalRequest {
  entities: arrow.Table | Readonly<Record<string, readonly unknown[]>>;
  features?: readonly string[] | undefined;
  service?: string | undefined;
  fullNames?: boolean | undefined;
  timestampColumn?: string | undefined;
}

export async function historicalFeatures(defs: Definitions, offlineDir: string, request: HistoricalRequest): Promise<{ table: arrow.Table; types: Map<string, ValueType> }> {
  checkSelection(defs, request.features, request.service);
  const table = await getHistoricalFeatures({
    defs,
    offlineDir,
    entities: request.entities,
    features: request.features,
    service: request.service,
    fullNames: request.fullNames,
    timestampColumn: request.timestampColumn,
  });
  const selection = selectFeatures(defs, request);
  return { table, types: new Map(selection.features.map((f) => [f.output, f.type])) };
}
