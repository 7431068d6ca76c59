/** `--views a,b` resolved against the definitions: each name once, in the order given. */
import { InputError } from '../core/errors.js';
import type { Definitions, FeatureView } from './types.js';

export function viewsNamed(defs: Definitions, names: readonly string[]): FeatureView[] {
  return [...new Set(names)].map((name) => {
    const view = defs.views.get(name);
    if (!view) throw new InputError(`--views: unknown view '${name}' (defined: ${[...defs.views.keys()].sort().join(', ') || 'none'})`);
    return view;
  });
}
