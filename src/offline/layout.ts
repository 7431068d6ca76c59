/**
 * The offline store's on-disk layout (CONTRACT s.7):
 *   <offline>/<view>/date=YYYY-MM-DD/*.parquet
 * Hive-partitioned by the UTC date of event_timestamp. Within a partition, backfill owns the one
 * file `data.parquet` (replaced atomically by rename); pushes append `push-*.parquet` files.
 * Folders starting with '.' or '_' are Larder's own (staging, logs) and skipped by Hive readers.
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { DAY_MS, utcDate, type EpochMs } from '../core/time.js';

export const EVENT_TIMESTAMP = 'event_timestamp';
export const CREATED_TIMESTAMP = 'created_timestamp';
export const BACKFILL_FILE = 'data.parquet';

export const viewDir = (offlineDir: string, view: string): string => join(offlineDir, view);
export const partitionDir = (offlineDir: string, view: string, date: string): string => join(offlineDir, view, `date=${date}`);
export const servingLogDir = (offlineDir: string, model: string): string => join(offlineDir, '_serving_log', model);

export interface Partition {
  date: string;
  dir: string;
  files: string[];
}

/** Partitions of a view, oldest first; a missing view folder has none. */
export async function listPartitions(offlineDir: string, view: string): Promise<Partition[]> {
  let names: string[];
  try {
    names = await readdir(viewDir(offlineDir, view));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: Partition[] = [];
  for (const name of names.sort()) {
    const m = /^date=(\d{4}-\d{2}-\d{2})$/.exec(name);
    if (!m) continue;
    const dir = join(viewDir(offlineDir, view), name);
    const files = (await readdir(dir)).filter((f) => f.endsWith('.parquet') && !f.startsWith('.')).sort();
    if (files.length) out.push({ date: m[1]!, dir, files: files.map((f) => join(dir, f)) });
  }
  return out;
}

/** The UTC dates that [start, end) touches. */
export function datesBetween(start: EpochMs, endExclusive: EpochMs): string[] {
  const out: string[] = [];
  if (endExclusive <= start) return out;
  for (let d = Math.floor(start / DAY_MS) * DAY_MS; d < endExclusive; d += DAY_MS) out.push(utcDate(d));
  return out;
}

/** Parquet files of a view whose partition may hold events in [from, to]; `from` null = no lower bound. */
export async function filesBetween(offlineDir: string, view: string, from: EpochMs | null, to: EpochMs): Promise<string[]> {
  const lo = from === null ? '' : utcDate(from);
  const hi = utcDate(to);
  return (await listPartitions(offlineDir, view)).filter((p) => p.date >= lo && p.date <= hi).flatMap((p) => p.files);
}
