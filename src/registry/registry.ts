/**
 * The registry: the applied versions of the definitions, and a little state beside them. One
 * interface, two backends (file.ts, postgres.ts); the decision what an apply does is made here,
 * once, so both behave alike.
 */
import { BreakingChangeError } from '../core/errors.js';
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
