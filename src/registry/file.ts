/**
 * The file registry: one JSON file `{ format, current, history, state, models }`. Every write
 * replaces the file atomically (temp file in the same folder, fsync, rename), so a reader never
 * sees half a file and needs no lock; every read-modify-write holds the lock file `<path>.lock`.
 *
 * A model's estimators (megabytes for a 62k-word Naive Bayes) stay out of that file, which every
 * apply and setState rewrites: each version is its own file `models/<name>/<version>.json` beside
 * it, written before the registry file lists its meta. A crash between the two leaves a file no
 * version lists; the next registration of that version number overwrites it.
 */
import { access, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { InputError } from '../core/errors.js';
import type { ModelArtifact, ModelVersionMeta, NewModelVersion } from '../models/artifact.js';
import type { CanonicalRepo } from './canonical.js';
import { withLock } from './lock.js';
import {
  appliedVersion,
  checkModelName,
  checkModelVersion,
  checkNewModel,
  decideApply,
  modelAbsent,
  type AppliedVersion,
  type ApplyOptions,
  type ApplyResult,
  type HistoryEntry,
  type Registry,
} from './registry.js';

interface RegistryFile {
  format: 1;
  current: AppliedVersion | null;
  /** Every applied version with its repo, oldest first. */
  history: AppliedVersion[];
  state: Record<string, unknown>;
  /** Registered versions per model name, oldest first: meta only, the estimators are in models/. */
  models: Record<string, ModelVersionMeta[]>;
}

const empty = (): RegistryFile => ({ format: 1, current: null, history: [], state: {}, models: {} });

export class FileRegistry implements Registry {
  readonly url: string;
  private readonly lockPath: string;

  constructor(
    private readonly path: string,
    private readonly options: { lockTimeoutMs?: number } = {},
  ) {
    this.url = `file:${path}`;
    this.lockPath = `${path}.lock`;
  }

  async current(): Promise<AppliedVersion | null> {
    return (await this.read()).current;
  }

  async apply(repo: CanonicalRepo, options: ApplyOptions = {}): Promise<ApplyResult> {
    return this.update<ApplyResult>((file) => {
      const decision = decideApply(file.current, repo, options);
      if (!decision.changed) return { result: { version: file.current!, diff: decision.diff, changed: false } };
      const version = appliedVersion(decision.hash, new Date(), repo);
      const next: RegistryFile = { ...file, current: version, history: [...file.history, version] };
      return { next, result: { version, diff: decision.diff, changed: true } };
    });
  }

  async history(): Promise<HistoryEntry[]> {
    return (await this.read()).history.map(({ version, hash, appliedAt }) => ({ version, hash, appliedAt }));
  }

  async getState<T>(key: string): Promise<T | undefined> {
    return (await this.read()).state[key] as T | undefined;
  }

  async setState(key: string, value: unknown): Promise<void> {
    const json = JSON.stringify(value);
    if (json === undefined) throw new InputError(`registry state '${key}': value is not JSON`);
    await this.update((file) => ({ next: { ...file, state: { ...file.state, [key]: JSON.parse(json) } }, result: undefined }));
  }

  async registerModel(model: NewModelVersion): Promise<ModelVersionMeta> {
    const estimators = checkNewModel(model);
    const { name } = model.meta;
    return this.update(async (file) => {
      // The number is decided under the lock, so the artifact is written under the lock too.
      const versions = versionsOf(file, name);
      const version = String(versions.reduce((max, v) => Math.max(max, Number(v.version)), 0) + 1);
      const meta: ModelVersionMeta = { ...(JSON.parse(JSON.stringify(model.meta)) as NewModelVersion['meta']), version, registeredAt: new Date().toISOString() };
      const path = this.artifactPath(name, version);
      await mkdir(dirname(path), { recursive: true });
      await writeAtomic(path, `{"meta":${JSON.stringify(meta)},"estimators":${estimators}}\n`);
      return { next: { ...file, models: { ...file.models, [name]: [...versions, meta] } }, result: meta };
    });
  }

  async modelVersions(name: string): Promise<ModelVersionMeta[]> {
    checkModelName(name);
    return versionsOf(await this.read(), name);
  }

  async latestModel(name: string): Promise<ModelVersionMeta | null> {
    return (await this.modelVersions(name)).at(-1) ?? null;
  }

  async loadModel(name: string, version?: string): Promise<ModelArtifact> {
    checkModelName(name);
    if (version !== undefined) checkModelVersion(name, version);
    const file = await this.read();
    const versions = versionsOf(file, name);
    const meta = version === undefined ? versions.at(-1) : versions.find((v) => v.version === version);
    if (!meta) throw modelAbsent(name, version, versions.map((v) => v.version), modelNamesOf(file));
    const path = this.artifactPath(name, meta.version);
    let artifact: Partial<ModelArtifact>;
    try {
      artifact = JSON.parse(await readFile(path, 'utf8')) as Partial<ModelArtifact>;
    } catch (err) {
      throw new InputError(`model '${name}' version ${meta.version}: artifact '${path}': ${(err as Error).message}`);
    }
    // Only a registry file restored from elsewhere could list a version another artifact now holds.
    if (artifact.meta?.version !== meta.version || artifact.meta.registeredAt !== meta.registeredAt || typeof artifact.estimators !== 'object') {
      throw new InputError(`model '${name}' version ${meta.version}: artifact '${path}' is not the version the registry lists (registered ${meta.registeredAt})`);
    }
    return { meta, estimators: artifact.estimators! };
  }

  async modelNames(): Promise<string[]> {
    return modelNamesOf(await this.read());
  }

  async ping(): Promise<void> {
    try {
      await access(this.path);
    } catch (err) {
      // No file yet is a fresh registry; the folder must still be reachable to create it.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new InputError(`registry file '${this.path}': ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {}

  /** `<registry file's folder>/models/<name>/<version>.json`; names are identifiers, safe in paths. */
  private artifactPath(name: string, version: string): string {
    return join(dirname(this.path), 'models', name, `${version}.json`);
  }

  /** Read-modify-write under the lock; `next` absent means nothing to write. */
  private async update<T>(change: (file: RegistryFile) => { next?: RegistryFile; result: T } | Promise<{ next?: RegistryFile; result: T }>): Promise<T> {
    await mkdir(dirname(this.path), { recursive: true });
    return withLock(this.lockPath, async () => {
      const { next, result } = await change(await this.read());
      if (next) await writeAtomic(this.path, `${JSON.stringify(next, null, 2)}\n`);
      return result;
    }, { ...(this.options.lockTimeoutMs !== undefined && { timeoutMs: this.options.lockTimeoutMs }) });
  }

  private async read(): Promise<RegistryFile> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return empty();
      throw new InputError(`registry file '${this.path}': ${(err as Error).message}`);
    }
    let parsed: Partial<RegistryFile>;
    try {
      parsed = JSON.parse(text) as Partial<RegistryFile>;
    } catch (err) {
      throw new InputError(`registry file '${this.path}': not valid JSON (${(err as Error).message})`);
    }
    if (parsed?.format !== 1 || !Array.isArray(parsed.history) || typeof parsed.state !== 'object' || parsed.state === null) {
      throw new InputError(`registry file '${this.path}': not a Larder registry (expected format 1 with history and state)`);
    }
    // Files written before models were registered have no `models`.
    if (parsed.models !== undefined && (typeof parsed.models !== 'object' || parsed.models === null || Array.isArray(parsed.models))) {
      throw new InputError(`registry file '${this.path}': 'models' is not an object of model versions`);
    }
    return { format: 1, current: parsed.current ?? null, history: parsed.history, state: parsed.state, models: parsed.models ?? {} };
  }
}

/** Own properties only: `constructor` is an identifier, and a fine model name. */
const versionsOf = (file: RegistryFile, name: string): ModelVersionMeta[] => (Object.hasOwn(file.models, name) ? file.models[name]! : []);

const modelNamesOf = (file: RegistryFile): string[] =>
  Object.keys(file.models)
    .filter((name) => file.models[name]!.length > 0)
    .sort();

/** Replaces `path` whole: a reader sees the old file or the new one, never a mix. */
export async function writeAtomic(path: string, text: string): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  // Make the rename itself durable; not every platform can fsync a folder.
  try {
    const d = await open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    // best effort
  }
}
