/**
 * Which features a dataset (or an online read) asks for: `view:feature` references or a feature
 * service, resolved against the definitions into one request per view, with the output column
 * name of every feature (CONTRACT s.3: bare, or `view__feature` with full names).
 */
import { InputError } from '../core/errors.js';
import { outputName, parseFeatureRef, type ParsedFeatureRef } from '../core/refs.js';
import type { ValueType } from '../core/value-types.js';
import type { Definitions, FeatureView } from '../definitions/types.js';

export interface SelectedFeature {
  view: string;
  feature: string;
  /** The column name in the output. */
  output: string;
  type: ValueType;
}

export interface ViewRequest {
  view: FeatureView;
  /** This view's features, in request order. */
  features: SelectedFeature[];
}

export interface FeatureSelection {
  /** One entry per view, in order of first mention. */
  views: ViewRequest[];
  /** Every feature in request order: the order of the output columns. */
  features: SelectedFeature[];
  fullNames: boolean;
}

export interface SelectionRequest {
  /** `view:feature` references. */
  features?: readonly string[] | undefined;
  /** A feature service name; exclusive with `features`. */
  service?: string | undefined;
  fullNames?: boolean | undefined;
}

const FULL_NAMES_HINT = 'ask for full names (--full-names, or "full_feature_names": true)';

const listOf = (names: Iterable<string>): string => [...names].join(', ') || 'none';

/** Resolves references or a service into per-view requests; every user mistake is an InputError. */
export function selectFeatures(defs: Definitions, request: SelectionRequest): FeatureSelection {
  const fullNames = request.fullNames ?? false;
  const hasFeatures = request.features !== undefined && request.features.length > 0;
  if (hasFeatures && request.service !== undefined) throw new InputError('give either features or a feature service, not both');
  if (!hasFeatures && request.service === undefined) throw new InputError('give the features (view:feature,...) or a feature service');

  let refs: ParsedFeatureRef[];
  if (request.service !== undefined) {
    const service = defs.services.get(request.service);
    if (!service) throw new InputError(`service: no feature service '${request.service}' (defined: ${listOf(defs.services.keys())})`);
    refs = service.projections.flatMap((p) => p.features.map((feature) => ({ view: p.view.name, feature })));
  } else {
    refs = request.features!.map((ref) => {
      try {
        return parseFeatureRef(ref);
      } catch (err) {
        throw new InputError(`features: ${(err as Error).message}`);
      }
    });
  }

  const views = new Map<string, ViewRequest>();
  const features: SelectedFeature[] = [];
  const seen = new Set<string>();
  for (const ref of refs) {
    const view = defs.views.get(ref.view);
    if (!view) throw new InputError(`features: no feature view '${ref.view}' (defined: ${listOf(defs.views.keys())})`);
    const type = view.schema[ref.feature];
    if (type === undefined) throw new InputError(`features: feature view '${ref.view}' has no feature '${ref.feature}' (has ${listOf(Object.keys(view.schema))})`);
    const key = `${ref.view}:${ref.feature}`;
    if (seen.has(key)) throw new InputError(`features: '${key}' is asked for twice`);
    seen.add(key);
    const selected: SelectedFeature = { view: ref.view, feature: ref.feature, output: outputName(ref, fullNames), type };
    features.push(selected);
    if (!views.has(view.name)) views.set(view.name, { view, features: [] });
    views.get(view.name)!.features.push(selected);
  }

  // DuckDB (and so the output file) compares column names without case.
  const byOutput = new Map<string, SelectedFeature>();
  for (const f of features) {
    const other = byOutput.get(f.output.toLowerCase());
    if (other) throw new InputError(`features: '${f.output}' is a feature of both '${other.view}' and '${f.view}'; ${FULL_NAMES_HINT}`);
    byOutput.set(f.output.toLowerCase(), f);
  }
  return { views: [...views.values()], features, fullNames };
}

/** An output feature column may not shadow an input column of the entity rows. */
export function checkAgainstInputColumns(selection: FeatureSelection, inputColumns: readonly string[]): void {
  const inputs = new Set(inputColumns.map((c) => c.toLowerCase()));
  for (const f of selection.features) {
    if (!inputs.has(f.output.toLowerCase())) continue;
    const hint = selection.fullNames ? 'rename that column' : FULL_NAMES_HINT;
    throw new InputError(`features: '${f.view}:${f.feature}' would be named '${f.output}', like a column of the entity rows; ${hint}`);
  }
}
