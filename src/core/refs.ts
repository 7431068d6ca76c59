/** `view:feature`, the name by which users ask for a feature. */
export type FeatureRef = `${string}:${string}` & { readonly __brand?: 'FeatureRef' };

export interface ParsedFeatureRef {
  view: string;
  feature: string;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Names of views, features, entities and columns: identifiers, so they are safe in SQL and paths. */
export const isIdentifier = (name: string): boolean => NAME.test(name);

export function parseFeatureRef(ref: string): ParsedFeatureRef {
  const parts = ref.split(':');
  if (parts.length !== 2 || !isIdentifier(parts[0]!) || !isIdentifier(parts[1]!)) {
    throw new Error(`'${ref}' is not a feature reference (expected view:feature)`);
  }
  return { view: parts[0]!, feature: parts[1]! };
}

export const featureRef = (view: string, feature: string): FeatureRef => `${view}:${feature}` as FeatureRef;

/** The column name of a feature in a dataset: bare, or `view__feature` with full names. */
export const outputName = (ref: ParsedFeatureRef, fullNames: boolean): string =>
  fullNames ? `${ref.view}__${ref.feature}` : ref.feature;
