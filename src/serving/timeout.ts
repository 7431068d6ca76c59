import { RegistryUnavailableError, type Registry } from '../registry/registry.js';

/** Bounds a promise in time: a store that does not answer must give a 503, never a hang. */
export async function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
    // Whatever it settles to later, nobody waits for it any more.
    work.catch(() => {});
  }
}

/** A registry call bounded in time: one that does not answer is a RegistryUnavailableError (503), naming the registry. */
export function withRegistryTimeout<T>(registry: Pick<Registry, 'url'>, work: Promise<T>, ms: number): Promise<T> {
  return withTimeout(work, ms, () => new RegistryUnavailableError(`registry ${registry.url}: did not answer within ${ms} ms`));
}
