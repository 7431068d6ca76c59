/**
 * `POST /get-online-features`: the request body (Feast's names) to the library read
 * `getOnlineFeaturesJson`, whose answer is Feast's response as JSON text.
 */
import { InputError } from '../core/errors.js';
import type { Definitions } from '../definitions/types.js';
import { getOnlineFeaturesJson } from '../online/online-features.js';
import type { OnlineStore } from '../online/store.js';
import { notFound } from './errors.js';
import type { OnlineRequestBody } from './schemas.js';

/**
 * Features or a service, not both nor neither (400 naming the field); 404 for a feature service
 * that does not exist (its name is a resource, not a malformed field).
 */
export function checkSelection(defs: Definitions, features: readonly string[] | undefined, name: string | undefined): void {
  const hasFeatures = features !== undefined && features.length > 0;
  if (hasFeatures && name !== undefined) throw new InputError('features: give either features or feature_service, not both');
  if (!hasFeatures && name === undefined) throw new InputError('features: give the features (["view:feature", ...]) or a feature_service');
  if (name === undefined || defs.services.has(name)) return;
  const defined = [...defs.services.keys()];
  throw notFound(`feature_service: no feature service '${name}' (defined: ${defined.join(', ') || 'none'})`, { field: 'feature_service', services: defined });
}

/** The answer's JSON text. */
export async function readOnlineFeaturesJson(defs: Definitions, store: OnlineStore, body: OnlineRequestBody): Promise<string> {
  checkSelection(defs, body.features, body.feature_service);
  return getOnlineFeaturesJson({
    defs,
    store,
    features: body.features,
    service: body.feature_service,
    entities: body.entities,
    fullNames: body.full_feature_names,
  });
}
