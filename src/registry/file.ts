/**
 * The file registry: one JSON file `{ format, current, history, state }`. Every write replaces
 * the file atomically (temp file in the same folder, fsync, rename), so a reader never sees half
 * a file and needs no lock; every read-modify-write holds the lock file `<path>.lock`.
 */
import { access, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { InputError } from '../core/errors.js';
import type { CanonicalRepo } from './canonical.js';
import { withLock } from './lock.js';
import { appliedVersion, decideApply, type AppliedVersion, type ApplyOptions, type ApplyResult, type HistoryEntry, type Registry } from './registry.js';

interface RegistryFile {
  format: 1;
  current: AppliedVersion | null;
  /** Every applied version with its repo, oldest first. */
  history: AppliedVersion[];
  state: Record<string, unknown>;
}

const empty = (): RegistryFile => ({ format: 1, current: null, history: [], state: {} });

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

  async ping(): Promise<void> {
    try {
      await access(this.path);
    } catch (err) {
      // No file yet is a fresh registry; the folder must still be reachable to create it.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new InputError(`registry file '${this.path}': ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {}

  /** Read-modify-write under the lock; `next` absent means nothing to write. */
  private async update<T>(change: (file: RegistryFile) => { next?: RegistryFile; result: T }): Promise<T> {
    await mkdir(dirname(this.path), { recursive: true });
    return withLock(this.lockPath, async () => {
      const { next, result } = change(await this.read());
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
    return { format: 1, current: parsed.current ?? null, history: parsed.history, state: parsed.state };
  }
}

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
