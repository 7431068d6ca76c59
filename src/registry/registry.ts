/**
 * The registry: the applied versions of the definitions, a little state beside them, and the
 * registered versions of trained models. One interface, two backends (file.ts, postgres.ts); the
 * decisions (what an apply does, what a model registration accepts) are made here, once, so both
 * behave alike.
 */
import { BreakingChangeError, InputError } from '../core/errors.js';
import { isIdentifier } from '../core/refs.js';
import type { ModelArtifact, ModelVersionMeta, NewModelVersion } from '../models/artifact.js';
import { hashOf, shortVersion, type CanonicalRepo } from './canonical.js';
import { breakingChanges, diffRepos, type RepoDiff } from './diff.js';

export interface AppliedVersion {
  /** Short version shown to users: a prefix of `hash`. */
  version: string;
  /** Full sha256 hex of the canonical JSON. */
  hash: string;
  /** ISO-8601 instant the version was applied. */
  appliedAt: string;
  repo: CanonicalRepo;
}

export interface HistoryEntry {
  version: string;
  hash: string;
  appliedAt: string;
}

export interface ApplyOptions {
  /** Apply even with breaking changes. */
  force?: boolean;
}

export interface ApplyResult {
  version: AppliedVersion;
  diff: RepoDiff;
  /** False when the repo equals the current version and nothing was stored. */
  changed: boolean;
}

export interface Registry {
  /** The registry's location, with no password in it, for messages. */
  readonly url: string;
  current(): Promise<AppliedVersion | null>;
  /**
   * Applies `repo` unless it has breaking changes against the current version and !force (throws a
   * BreakingChangeError naming the first breaking change and saying --force). Serialised against
   * concurrent applies. No-op (same version returned, nothing new stored) when unchanged.
   */
  apply(repo: CanonicalRepo, options?: ApplyOptions): Promise<ApplyResult>;
  /** Every applied version, oldest first. */
  history(): Promise<HistoryEntry[]>;
  /** Small JSON state kept beside the definitions (materialization watermarks...). */
  getState<T>(key: string): Promise<T | undefined>;
  setState(key: string, value: unknown): Promise<void>;
  /** Registers a trained model as the next version of its name ("1", "2", ...), serialised against concurrent registrations; returns its meta. */
  registerModel(model: NewModelVersion): Promise<ModelVersionMeta>;
  /** The registered versions of a model, oldest first (meta only); [] when none. */
  modelVersions(name: string): Promise<ModelVersionMeta[]>;
  /** The newest version's meta, or null: what a server polls to reload models, so it must be cheap (no estimators read). */
  latestModel(name: string): Promise<ModelVersionMeta | null>;
  /** A version with its estimators (default the newest). InputError naming the model (and version) when absent, listing the versions there are. */
  loadModel(name: string, version?: string): Promise<ModelArtifact>;
  /** Names of the models with at least one version, sorted. */
  modelNames(): Promise<string[]>;
  /** Cheap liveness check. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The registry's store did not answer or failed: not the user's input, so the server maps it to
 * 503 rather than 4xx. The message names the registry, never a password.
 */
export class RegistryUnavailableError extends Error {
  override name = 'RegistryUnavailableError';
}

/** What applying `repo` over `current` does: nothing, a new version, or a refusal (thrown). */
export interface ApplyDecision {
  diff: RepoDiff;
  hash: string;
  /** False: the repo is the current version; store nothing. */
  changed: boolean;
}

/**
 * Decides an apply; called by each backend while it holds its lock, against the version it just
 * read. The refusal carries the diff as `detail` so the CLI can show it.
 */
export function decideApply(current: AppliedVersion | null, repo: CanonicalRepo, options: ApplyOptions = {}): ApplyDecision {
  const hash = hashOf(repo);
  const diff = diffRepos(current?.repo ?? null, repo);
  if (current && current.hash === hash) return { diff, hash, changed: false };
  const breaking = breakingChanges(diff);
  if (breaking.length > 0 && !options.force) {
    const more = breaking.length > 1 ? ` (and ${breaking.length - 1} more breaking change${breaking.length > 2 ? 's' : ''})` : '';
    throw new BreakingChangeError(`breaking change refused: ${breaking[0]}${more}; run with --force to apply it anyway`, diff);
  }
  return { diff, hash, changed: true };
}

export const appliedVersion = (hash: string, appliedAt: Date, repo: CanonicalRepo): AppliedVersion => ({
  version: shortVersion(hash),
  hash,
  appliedAt: appliedAt.toISOString(),
  repo,
});

/** Type guard for the diff a BreakingChangeError carries. */
export const isRepoDiff = (v: unknown): v is RepoDiff =>
  typeof v === 'object' && v !== null && Array.isArray((v as { objects?: unknown }).objects);

// ---------------------------------------------------------------------------------------------
// Models: what both backends check before storing, and the errors they give alike.

/** A model name becomes a folder name and a SQL value: an identifier only. */
export function checkModelName(name: string): void {
  if (typeof name !== 'string' || !isIdentifier(name)) {
    throw new InputError(`model name '${name}': expected letters, digits and underscores, not starting with a digit`);
  }
}

/** Versions are "1", "2", ...: anything else could never match, so say so rather than "absent". */
export function checkModelVersion(name: string, version: string): number {
  const n = Number(version);
  // Capped at PostgreSQL's integer: both backends refuse a huge number alike, neither fails in SQL.
  if (!Number.isInteger(n) || n < 1 || n > 2_147_483_647 || String(n) !== version) {
    throw new InputError(`model '${name}': version '${version}' is not a version number (versions are 1, 2, ...)`);
  }
  return n;
}

/**
 * Checks a registration and returns the estimators as the JSON text to store. JSON writes NaN and
 * ±Infinity as null, so such a number would come back as something else: refused, naming where
 * it is. (-0 comes back as 0, which no estimator can tell apart.)
 */
export function checkNewModel(model: NewModelVersion): string {
  const { meta, estimators } = model;
  checkModelName(meta?.name);
  const names = Object.keys(estimators ?? {});
  if (names.length === 0) throw new InputError(`model '${meta.name}': no estimators to register`);
  if (!names.includes(meta.primary)) {
    throw new InputError(`model '${meta.name}': primary estimator '${meta.primary}' is not among its estimators (${names.join(', ')})`);
  }
  checkJsonNumbers(meta, `model '${meta.name}' meta`);
  for (const name of names) checkJsonNumbers(estimators[name], `model '${meta.name}' estimator ${name}`);
  return JSON.stringify(estimators);
}

/** Walks a value about to be written as JSON; throws at the first number JSON cannot keep. */
function checkJsonNumbers(value: unknown, path: string): void {
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new InputError(`${path} is ${value}: JSON cannot store it (it would read back as null)`);
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) checkJsonNumbers(value[i], `${path}[${i}]`);
  } else if (ArrayBuffer.isView(value)) {
    throw new InputError(`${path} is a typed array: JSON would store it as an object; give a plain array (Array.from)`);
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, v] of Object.entries(value)) checkJsonNumbers(v, `${path}.${key}`);
  }
}

/** A loadModel that found nothing: names the model (and version) and what there is instead. */
export function modelAbsent(name: string, version: string | undefined, versions: readonly string[], models: readonly string[]): InputError {
  if (versions.length === 0) {
    const others = models.length ? `registered models: ${models.join(', ')}` : 'no models are registered';
    const asked = version === undefined ? '' : `, so it has no version '${version}'`;
    return new InputError(`model '${name}' is not registered${asked} (${others})`);
  }
  return new InputError(`model '${name}' has no version '${version}' (versions: ${versions.join(', ')})`);
}
