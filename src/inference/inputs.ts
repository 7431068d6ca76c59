/**
 * Raw inputs to features: `/predict` may be sent the raw fields of a row (a review's text) instead
 * of entity keys; each view of the model's service computes its features from them with its own
 * `transform`, the very function backfill and push run, and the values are rounded to their
 * stored types (float32) as the offline and online stores would hold them.
 */
import { InputError } from '../core/errors.js';
import { parseValueType, type ValueType } from '../core/value-types.js';
import type { Definitions, FeatureService, FeatureView, SourceRow } from '../definitions/types.js';

/** At most this many rows per request: a prediction call, not a batch job. */
export const MAX_INPUT_ROWS = 1000;

export interface InputColumns {
  columns: Readonly<Record<string, readonly unknown[]>>;
  rows: number;
}

/** Checks `inputs` is `{ column: [values...] }` with columns of one length; names the column at fault. */
export function checkInputColumns(inputs: unknown, field = 'inputs'): InputColumns {
  if (typeof inputs !== 'object' || inputs === null || Array.isArray(inputs)) throw new InputError(`${field}: expected an object of columns, like {"text": ["..."]}`, { field });
  const entries = Object.entries(inputs as Record<string, unknown>);
  if (entries.length === 0) throw new InputError(`${field}: give at least one column`, { field });
  let rows = -1;
  for (const [name, values] of entries) {
    if (!Array.isArray(values)) throw new InputError(`${field}.${name}: expected an array of values`, { field: `${field}.${name}` });
    if (rows >= 0 && values.length !== rows) throw new InputError(`${field}.${name}: ${values.length} values, but ${entries[0]![0]} has ${rows}`, { field: `${field}.${name}` });
    rows = values.length;
  }
  if (rows === 0) throw new InputError(`${field}: the columns are empty`, { field });
  if (rows > MAX_INPUT_ROWS) throw new InputError(`${field}: ${rows} rows, at most ${MAX_INPUT_ROWS} per request`, { field });
  return { columns: inputs as Record<string, unknown[]>, rows };
}

/**
 * Per input row, the service's features by output name, computed by the views' transforms. A view
 * without a transform takes its features from input columns of the same names.
 */
export function featuresFromInputs(defs: Definitions, service: FeatureService, inputs: InputColumns): Record<string, unknown>[] {
  const out = Array.from({ length: inputs.rows }, () => ({}) as Record<string, unknown>);
  for (const projection of service.projections) {
    const view = defs.views.get(projection.view.name) ?? projection.view;
    for (let r = 0; r < inputs.rows; r++) {
      const computed = view.transform ? runTransform(view, inputs, r) : inputs.columns;
      for (const feature of projection.features) {
        if (!view.transform && !(feature in inputs.columns)) {
          throw new InputError(`inputs: view '${view.name}' has no transform, so its feature '${feature}' must be an input column or the request must give entities`, { field: 'inputs' });
        }
        const value = view.transform ? computed[feature] : (computed as Record<string, readonly unknown[]>)[feature]![r];
        const where = view.transform ? `inputs: row ${r}: the transform of view '${view.name}' gave feature '${feature}'` : `inputs.${feature}[${r}]`;
        out[r]![feature] = asStored(value, view.schema[feature] as ValueType, where);
      }
    }
  }
  return out;
}

/** Runs a view's transform on input row r, refusing a row that lacks a column the transform reads. */
function runTransform(view: FeatureView, inputs: InputColumns, r: number): Record<string, unknown> {
  const row: SourceRow = {};
  for (const [name, values] of Object.entries(inputs.columns)) row[name] = values[r];
  // The transform is code; which columns it reads shows only when it reads them.
  const guarded = new Proxy(row, {
    get(target, key) {
      if (typeof key === 'string' && !(key in target)) {
        throw new InputError(`inputs: view '${view.name}' computes its features from '${key}', which the request does not give (it gives ${Object.keys(inputs.columns).join(', ')})`, { field: `inputs.${key}` });
      }
      return Reflect.get(target, key);
    },
  });
  try {
    return view.transform!(guarded);
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(`inputs: row ${r}: the transform of view '${view.name}' failed: ${(err as Error).message}`, { field: 'inputs', row: r });
  }
}

/** A computed value as the stores keep it: float32 values rounded, sparse vectors as plain arrays. A value not of its type is refused, naming `where`. */
function asStored(value: unknown, type: ValueType, where: string): unknown {
  if (value === null || value === undefined) return null;
  const parsed = parseValueType(type);
  const refuse = (): never => {
    const shown = JSON.stringify(value) ?? String(value);
    throw new InputError(`${where}: expected ${type}, got ${shown.length > 40 ? `${shown.slice(0, 40)}...` : shown}`, { field: where.startsWith('inputs.') ? where : 'inputs' });
  };
  if (parsed.kind === 'sparse') {
    const v = value as { indices?: unknown; values?: unknown };
    const isList = (x: unknown): x is ArrayLike<number> => Array.isArray(x) || ArrayBuffer.isView(x);
    if (typeof v !== 'object' || !isList(v.indices) || !isList(v.values) || v.indices.length !== v.values.length) return refuse();
    const indices = Array.from(v.indices);
    const values = Array.from(v.values, Math.fround);
    let previous = -1;
    for (const i of indices) if (!Number.isInteger(i) || i <= previous || i >= parsed.size) return refuse();
    else previous = i;
    if (values.some((x) => !Number.isFinite(x))) return refuse();
    return { size: parsed.size, indices, values };
  }
  if (parsed.kind === 'dense') {
    if (!Array.isArray(value) && !ArrayBuffer.isView(value)) return refuse();
    const out = Array.from(value as ArrayLike<unknown>, (x) => (typeof x === 'number' ? x : NaN));
    if (out.some((x) => Number.isNaN(x))) return refuse();
    return out.map(parsed.element === 'float32' ? Math.fround : Number);
  }
  switch (parsed.type) {
    case 'float32':
    case 'float64':
      if (typeof value !== 'number') return refuse();
      return parsed.type === 'float32' ? Math.fround(value) : value;
    case 'int32':
    case 'int64':
      if (typeof value === 'bigint') return value;
      if (typeof value !== 'number' || !Number.isInteger(value)) return refuse();
      return value;
    case 'bool':
      return typeof value === 'boolean' ? value : refuse();
    case 'string':
      return typeof value === 'string' ? value : refuse();
    default:
      return value;
  }
}
