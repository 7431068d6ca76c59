/**
 * An exclusive lock between processes on one machine: a lock file created with O_EXCL, holding
 * the owner's pid, host and a token. A lock whose process is gone is stale and broken; the owner
 * removes only its own lock. Within one process callers queue in memory instead of polling.
 */
import { link, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { RegistryUnavailableError } from './registry.js';

export interface LockOptions {
  /** Give up after this long (default 30 s). */
  timeoutMs?: number;
}

interface Holder {
  pid: number;
  host: string;
  token: string;
}

/** A lock on another host cannot be checked by pid; after this long it is taken as abandoned. */
const FOREIGN_STALE_MS = 10 * 60_000;
/** A lock file still empty after this long lost its owner between create and write. */
const EMPTY_STALE_MS = 30_000;

const queues = new Map<string, Promise<unknown>>();

/** Runs `fn` holding the lock `lockPath`; in-process callers take turns, other processes wait. */
export async function withLock<T>(lockPath: string, fn: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const previous = queues.get(lockPath) ?? Promise.resolve();
  const run = previous.then(async () => {
    const token = await acquire(lockPath, options.timeoutMs ?? 30_000);
    try {
      return await fn();
    } finally {
      await release(lockPath, token);
    }
  });
  const settled = run.catch(() => undefined);
  queues.set(lockPath, settled);
  void settled.then(() => {
    if (queues.get(lockPath) === settled) queues.delete(lockPath);
  });
  return run;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function acquire(lockPath: string, timeoutMs: number): Promise<string> {
  const holder: Holder = { pid: process.pid, host: hostname(), token: randomBytes(12).toString('hex') };
  const text = JSON.stringify(holder);
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    try {
      const fh = await open(lockPath, 'wx');
      try {
        await fh.writeFile(text);
        await fh.sync();
      } finally {
        await fh.close();
      }
      return text;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const seen = await readHolder(lockPath);
    if (seen && isStale(seen)) {
      await breakStale(lockPath, seen.raw);
      continue;
    }
    if (Date.now() > deadline) {
      const who = seen?.holder ? `pid ${seen.holder.pid} on ${seen.holder.host}` : 'another process';
      throw new RegistryUnavailableError(`${lockPath}: held by ${who} for more than ${Math.round(timeoutMs / 1000)}s; remove it if no larder process is running`);
    }
    await sleep(delay + Math.random() * delay);
    delay = Math.min(delay * 2, 100);
  }
}

interface Seen {
  raw: string;
  holder: Holder | null;
  ageMs: number;
}

async function readHolder(lockPath: string): Promise<Seen | null> {
  try {
    const [raw, info] = await Promise.all([readFile(lockPath, 'utf8'), stat(lockPath)]);
    let holder: Holder | null = null;
    try {
      const parsed = JSON.parse(raw) as Partial<Holder>;
      if (typeof parsed.pid === 'number' && typeof parsed.host === 'string' && typeof parsed.token === 'string') holder = parsed as Holder;
    } catch {
      // Being written right now, or garbage: judged by age below.
    }
    return { raw, holder, ageMs: Date.now() - info.mtimeMs };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isStale(seen: Seen): boolean {
  if (!seen.holder) return seen.ageMs > EMPTY_STALE_MS;
  if (seen.holder.host !== hostname()) return seen.ageMs > FOREIGN_STALE_MS;
  return !pidAlive(seen.holder.pid);
}

/**
 * Removes a stale lock without removing a fresh one that replaced it meanwhile: move it aside
 * atomically, check it is the one judged stale, and put it back if not.
 */
async function breakStale(lockPath: string, staleText: string): Promise<void> {
  const aside = `${lockPath}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await rename(lockPath, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const moved = await readFile(aside, 'utf8').catch(() => staleText);
  if (moved !== staleText) {
    // Someone else's live lock: restore it (link fails if yet another lock appeared meanwhile).
    await link(aside, lockPath).catch(() => undefined);
  }
  await unlink(aside).catch(() => undefined);
}

async function release(lockPath: string, text: string): Promise<void> {
  const current = await readFile(lockPath, 'utf8').catch(() => null);
  if (current === text) await unlink(lockPath).catch(() => undefined);
}
