/** fsync by path: a file is synced before it is renamed into place, so a power cut cannot leave a renamed but empty file. */
import { open } from 'node:fs/promises';

export async function syncFile(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Syncs a folder's entries (the rename); some filesystems refuse fsync on a folder, and the rename is atomic all the same. */
export async function syncDir(path: string): Promise<void> {
  try {
    await syncFile(path);
  } catch {
    // Nothing more to do: see above.
  }
}
