/**
 * What `plan` and `apply` share (Feast's repo_operations): load the definitions, validate them,
 * and turn them into the canonical repo the registry stores.
 */
import { loadDefinitions } from '../definitions/loader.js';
import { validateDefinitions } from '../definitions/validate.js';
import { toCanonical, type CanonicalRepo } from './canonical.js';

export interface LoadedRepo {
  repo: CanonicalRepo;
  /** Things validation could not check (an unreadable source...): shown, not fatal. */
  warnings: string[];
}

export async function loadCanonicalRepo(repoDir: string): Promise<LoadedRepo> {
  const defs = await loadDefinitions(repoDir);
  const { warnings } = await validateDefinitions(defs);
  return { repo: toCanonical(defs), warnings };
}
