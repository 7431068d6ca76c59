/**
 * `larder materialize --end T [--start T] [--views a,b]`: the latest offline values into the
 * online store (LARDER_ONLINE), from each view's watermark unless --start is given. The window is
 * (start, end]: rows with start < event time <= end (a first run: event time <= end), so the
 * online values then equal the point-in-time values at T = end; the watermark becomes end.
 */
import { InputError } from '../core/errors.js';
import { formatInstant } from '../core/time.js';
import { loadDefinitions } from '../definitions/loader.js';
import { materialize, type ViewMaterialization } from '../materialize/materialize.js';
import { openOnlineStore } from '../online/open.js';
import { openRegistry } from '../registry/open.js';
import { configFrom, instantFlag, listFlag, parseFlags, requireFlag } from './args.js';
import type { Command } from './main.js';
import { createProgress, formatCount, formatRate, type Progress } from './progress.js';

/** A bulk load keeps Redis busy: each command may wait behind a few batches. */
const COMMAND_TIMEOUT_MS = 60_000;

export const command: Command = {
  summary: 'loads the latest offline values into the online store (incremental from each view\'s watermark)',
  usage:
    'materialize --end T [--start T] [--views a,b] [--repo DIR]\n' +
    '  loads rows with start < event time <= end (start: each view\'s watermark, none on a first run),\n' +
    '  so online values then equal the point-in-time values at end; end becomes the new watermark',
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { start: { type: 'string' }, end: { type: 'string' }, views: { type: 'string' } });
    if (positionals.length > 0) throw new InputError(`larder materialize takes no arguments, got '${positionals[0]}'`);
    requireFlag(values, 'end');
    const end = instantFlag(values, 'end')!;
    const start = instantFlag(values, 'start');
    if (start !== undefined && !(start < end)) throw new InputError(`--end (${formatInstant(end)}) must be after --start (${formatInstant(start)})`);
    const views = listFlag(values.views);
    if (views && views.length === 0) throw new InputError('--views: give at least one view name');

    const config = configFrom(values);
    const defs = await loadDefinitions(config.repoDir);
    const registry = await openRegistry(config.registry);
    const store = await openOnlineStore(config.online, { commandTimeoutMs: COMMAND_TIMEOUT_MS });
    let progress: { view: string; total: number | undefined; bar: Progress } | undefined;
    try {
      await materialize({
        defs,
        offlineDir: config.offlineDir,
        store,
        registry,
        end,
        start,
        views,
        onProgress(view, rows, total) {
          if (progress?.view !== view || (total !== undefined && progress.total === undefined)) {
            progress = { view, total, bar: createProgress(`materialize ${view}`, { ...(total !== undefined && { total }) }) };
          }
          progress.bar.update(rows);
        },
        onViewDone(v) {
          const line = summary(v);
          if (progress?.view === v.name) progress.bar.done(line);
          else process.stdout.write(`${line}\n`);
          progress = undefined;
        },
      });
    } finally {
      await store.close();
      await registry.close();
    }
    return 0;
  },
};

function summary(v: ViewMaterialization): string {
  if (v.skipped) return `materialize ${v.name}: skipped (${v.skipped})`;
  const window = `(${v.start === null ? 'beginning' : formatInstant(v.start)}, ${formatInstant(v.end)}]`;
  if (v.rows === 0) return `materialize ${v.name}: no new rows in ${window}`;
  const stale = v.stale > 0 ? `, ${formatCount(v.stale)} older than online values kept` : '';
  return `materialize ${v.name}: ${formatCount(v.rows)} entities in ${window}: ${formatCount(v.written)} written${stale} in ${v.seconds.toFixed(1)} s (${formatRate(v.rows, v.seconds)})`;
}
