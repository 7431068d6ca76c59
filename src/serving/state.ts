/**
 * The definitions the server serves, and their hot reload. Transforms are code, so definitions
 * come from the repo folder (`config.repoDir`), not from the registry's JSON; the registry says
 * when to load them again. Every few seconds the registry's current version is read, and when its
 * hash differs from the one the served definitions were loaded for, the repo is imported anew
 * (fresh-imports.ts) and swapped in at once: a request holds the `ServedDefinitions` it started
 * with, so requests in flight finish on the old ones.
 *
 * A registry that does not answer changes nothing: the last loaded definitions stay served and
 * `/health` reports the registry. Before any apply the repo's definitions are served as version
 * `unapplied`. When the repo folder is not the applied version (apply ran from another checkout),
 * the repo's definitions are served and `/health` says `inSync: false`.
 */
import { errorMessage } from '../core/errors.js';
import { loadDefinitions } from '../definitions/loader.js';
import type { Definitions } from '../definitions/types.js';
import { hashOf, shortVersion, toCanonical } from '../registry/canonical.js';
import { RegistryUnavailableError, type AppliedVersion, type Registry } from '../registry/registry.js';
import type { Logger } from './errors.js';
import { useGeneration } from './fresh-imports.js';
import { withRegistryTimeout } from './timeout.js';

export const UNAPPLIED = 'unapplied';

export interface ServedDefinitions {
  readonly defs: Definitions;
  /** The registry version they were loaded for: its short version, or `unapplied`. */
  readonly version: string;
  /** The registry hash they were loaded for; null before any apply. */
  readonly registryHash: string | null;
  /** The version of the definitions as loaded from the repo. */
  readonly repoVersion: string;
  /** Whether the repo as loaded is the applied version. */
  readonly inSync: boolean;
  readonly loadedAt: string;
}

export interface RegistryStatus {
  ok: boolean;
  /** Why the last read failed. */
  error?: string;
  checkedAt: string;
}

export interface DefinitionsStateOptions {
  repoDir: string;
  registry: Registry;
  /** How often the registry is read (default 5 s). */
  pollMs?: number;
  /** Bound on one registry read (default 3 s). */
  timeoutMs?: number;
  log: Logger;
  /** Told of every registry read that failed. */
  onRegistryError?: () => void;
}

export class DefinitionsState {
  private servedNow!: ServedDefinitions;
  private statusNow: RegistryStatus = { ok: true, checkedAt: new Date().toISOString() };
  private generation = 0;
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  /** A version whose repo failed to load: not tried again until the registry moves on. */
  private failedHash: string | undefined;
  private lastErrorNow: string | undefined;

  private constructor(private readonly options: DefinitionsStateOptions) {}

  /** Loads the repo once (throws a DefinitionError naming the file when it is broken) and starts polling. */
  static async open(options: DefinitionsStateOptions): Promise<DefinitionsState> {
    const state = new DefinitionsState(options);
    const current = await state.readRegistry();
    state.servedNow = await state.load(current === undefined ? undefined : current);
    state.start();
    return state;
  }

  /** What a request should serve: take it once, at the start of the request. */
  get served(): ServedDefinitions {
    return this.servedNow;
  }

  get registryStatus(): RegistryStatus {
    return this.statusNow;
  }

  /** The last reload that failed, until one succeeds. */
  get lastError(): string | undefined {
    return this.lastErrorNow;
  }

  /** Reads the registry now and reloads when its version moved; what the timer does. */
  refresh(): Promise<void> {
    this.refreshing ??= this.poll().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.refreshing;
  }

  private start(): void {
    const every = this.options.pollMs ?? 5000;
    this.timer = setInterval(() => void this.refresh(), every);
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    const current = await this.readRegistry();
    if (current === undefined) return;
    const hash = current?.hash ?? null;
    if (hash === this.servedNow.registryHash || (hash !== null && hash === this.failedHash)) return;
    try {
      this.servedNow = await this.load(current);
      this.failedHash = undefined;
      this.lastErrorNow = undefined;
    } catch (err) {
      // The old definitions stay served; the error is shown until a later version loads.
      this.failedHash = hash ?? undefined;
      this.lastErrorNow = `reloading the definitions for version ${current ? current.version : UNAPPLIED} failed: ${errorMessage(err).split('\n')[0]}`;
      this.options.log(`larder serve: ${this.lastErrorNow}; still serving version ${this.servedNow.version}`);
    }
  }

  /** The registry's current version; null before any apply, undefined when it did not answer. */
  private async readRegistry(): Promise<AppliedVersion | null | undefined> {
    const { registry } = this.options;
    const timeoutMs = this.options.timeoutMs ?? 3000;
    try {
      const current = await withRegistryTimeout(registry, registry.current(), timeoutMs);
      this.statusNow = { ok: true, checkedAt: new Date().toISOString() };
      return current;
    } catch (err) {
      const wasOk = this.statusNow.ok;
      this.statusNow = { ok: false, error: errorMessage(err).split('\n')[0]!, checkedAt: new Date().toISOString() };
      this.options.onRegistryError?.();
      if (wasOk) this.options.log(`larder serve: ${this.statusNow.error}; serving the definitions loaded last`);
      return undefined;
    }
  }

  /** Imports the repo anew; `current` is the registry version it is loaded for (undefined: unknown). */
  private async load(current: AppliedVersion | null | undefined): Promise<ServedDefinitions> {
    const previous = this.servedNow as ServedDefinitions | undefined;
    this.generation++;
    await useGeneration(this.options.repoDir, this.generation);
    const defs = await loadDefinitions(this.options.repoDir);
    const repoHash = hashOf(toCanonical(defs));
    if (previous && sharesObjects(previous.defs, defs)) {
      this.options.log('larder serve: the definitions came back from the module cache (this runtime loads modules itself); restart the server to serve changed definitions');
    }
    const inSync = current ? current.hash === repoHash : true;
    if (current && !inSync) {
      this.options.log(`larder serve: the repo ${this.options.repoDir} is version ${shortVersion(repoHash)}, not the applied version ${current.version}; serving the repo's definitions`);
    }
    return {
      defs,
      version: current ? current.version : current === null ? UNAPPLIED : shortVersion(repoHash),
      registryHash: current ? current.hash : current === null ? null : repoHash,
      repoVersion: shortVersion(repoHash),
      inSync,
      loadedAt: new Date().toISOString(),
    };
  }
}

/** Whether a reload answered objects of the previous load (modules from the cache). */
function sharesObjects(a: Definitions, b: Definitions): boolean {
  for (const [name, entity] of b.entities) if (a.entities.get(name) === entity) return true;
  for (const [name, source] of b.sources) if (a.sources.get(name) === source) return true;
  return false;
}
