/**
 * Checks definitions against their sources: every join key, timestamp and (untransformed)
 * feature must be a column of the source. An unreadable source (file not generated yet, database
 * down) is a warning, not an error: `plan` should still show the diff.
 */
import { DefinitionError, errorMessage } from '../core/errors.js';
import { describeSourceColumns } from '../offline/sources.js';
import { joinKeysOf } from './loader.js';
import type { BatchSource, Definitions, FeatureView } from './types.js';

export interface ValidationReport {
  warnings: string[];
}

/** The batch source a view backfills from, if any. */
export const batchSourceOf = (view: FeatureView): BatchSource | undefined =>
  view.source.type === 'push' ? view.source.batchSource : view.source;

export async function validateDefinitions(defs: Definitions): Promise<ValidationReport> {
  const warnings: string[] = [];
  const columnsBySource = new Map<string, Promise<Set<string> | undefined>>();
  const columnsOf = (source: BatchSource): Promise<Set<string> | undefined> => {
    let cached = columnsBySource.get(source.name);
    if (!cached) {
      cached = describeSourceColumns(source, defs.repoDir).then(
        (cols) => new Set(cols.map((c) => c.name)),
        (err) => {
          warnings.push(`source '${source.name}' could not be read, its columns were not checked: ${errorMessage(err).split('\n')[0]}`);
          return undefined;
        },
      );
      columnsBySource.set(source.name, cached);
    }
    return cached;
  };

  for (const view of defs.views.values()) {
    const source = batchSourceOf(view);
    if (view.source.type === 'push') checkPushSchema(view);
    if (!source) continue;
    const columns = await columnsOf(source);
    if (!columns) continue;
    const missing = (what: string, column: string): never => {
      throw new DefinitionError(
        `featureView '${view.name}': ${what} '${column}' is not a column of source '${source.name}' (has ${[...columns].join(', ')})`,
      );
    };
    for (const key of joinKeysOf(view)) if (!columns.has(key)) missing('join key', key);
    if (!columns.has(source.timestampField)) missing('timestampField', source.timestampField);
    if (source.createdTimestampField && !columns.has(source.createdTimestampField)) missing('createdTimestampField', source.createdTimestampField);
    if (view.aggregatedFeatures) {
      for (const f of view.aggregatedFeatures) if (!columns.has(f.column)) missing('aggregation column', f.column);
    } else if (!view.transform) {
      for (const feature of Object.keys(view.schema)) if (!columns.has(feature)) missing('feature', feature);
    }
  }
  return { warnings };
}

const INTEGER_TYPES: readonly string[] = ['int32', 'int64'];

/**
 * A push source must carry the view's join keys, typed as their entities type them: a key of an
 * int64 entity pushed as a string (or a float, a sparse vector...) was taken at plan time and
 * refused on every push, or stored under a key no read finds.
 */
function checkPushSchema(view: FeatureView): void {
  if (view.source.type !== 'push') return;
  const schema = view.source.schema;
  for (const e of view.entities) {
    for (const key of e.joinKeys) {
      // Own keys: `in` took a join key named `constructor` as a column of every schema.
      if (!Object.hasOwn(schema, key)) {
        throw new DefinitionError(`featureView '${view.name}': join key '${key}' is not in the schema of push source '${view.source.name}'`);
      }
      const keyType = e.keyTypes[key];
      const pushed = schema[key] as string;
      const fits = pushed === keyType || (INTEGER_TYPES.includes(pushed) && INTEGER_TYPES.includes(keyType as string));
      if (!fits) {
        throw new DefinitionError(`featureView '${view.name}': join key '${key}' is ${keyType} in entity '${e.name}' but ${pushed} in push source '${view.source.name}'`);
      }
    }
  }
}
