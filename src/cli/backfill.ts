/** `larder backfill --start T --end T [--views a,b]`: batch sources into the Parquet offline store. */
import { InputError } from '../core/errors.js';
import { formatInstant } from '../core/time.js';
import { loadDefinitions } from '../definitions/loader.js';
import { backfill } from '../offline/backfill.js';
import { configFrom, instantFlag, listFlag, parseFlags, requireFlag } from './args.js';
import type { Command } from './main.js';
import { createProgress, formatCount, type Progress } from './progress.js';

export const command: Command = {
  summary: 'computes feature rows with event time in [start, end) from the batch sources into the offline store',
  usage: 'backfill --start T --end T [--views a,b] [--repo DIR]',
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { start: { type: 'string' }, end: { type: 'string' }, views: { type: 'string' } });
    if (positionals.length > 0) throw new InputError(`larder backfill takes no arguments, got '${positionals[0]}'`);
    requireFlag(values, 'start');
    requireFlag(values, 'end');
    const start = instantFlag(values, 'start')!;
    const end = instantFlag(values, 'end')!;
    if (!(start < end)) throw new InputError(`--end (${formatInstant(end)}) must be after --start (${formatInstant(start)})`);
    const views = listFlag(values.views);
    if (views && views.length === 0) throw new InputError('--views: give at least one view name');

    const config = configFrom(values);
    const defs = await loadDefinitions(config.repoDir);
    let progress: { view: string; bar: Progress } | undefined;
    await backfill({
      defs,
      offlineDir: config.offlineDir,
      start,
      end,
      ...(views && { views }),
      onProgress(view, rows) {
        if (progress?.view !== view) progress = { view, bar: createProgress(`backfill ${view}`) };
        progress.bar.update(rows);
      },
      onViewDone(v) {
        const line = v.skipped
          ? `backfill ${v.name}: skipped (${v.skipped})`
          : `backfill ${v.name}: ${formatCount(v.rows)} rows into ${v.partitions} partition${v.partitions === 1 ? '' : 's'} (${v.seconds.toFixed(1)} s)` +
            (v.droppedRows > 0 ? `; ${formatCount(v.droppedRows)} source rows dropped (null event time or join key)` : '');
        if (progress?.view === v.name) progress.bar.done(line);
        else process.stdout.write(`${line}\n`);
        progress = undefined;
      },
    });
    return 0;
  },
};
