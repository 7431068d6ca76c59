/** `larder sample-data`: writes the seeded example datasets (reviews, weld readings and labels) as Parquet. */
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { InputError } from '../core/errors.js';
import { generateSampleData, SAMPLE_DEFAULTS, type SampleDataResult, type SampleDataset } from '../sample-data/index.js';
import { configFrom, instantFlag, listFlag, parseFlags } from './args.js';
import type { Command } from './main.js';
import { createProgress, formatCount, type Progress } from './progress.js';

const OPTIONS = {
  out: { type: 'string' },
  seed: { type: 'string' },
  start: { type: 'string' },
  reviews: { type: 'string' },
  days: { type: 'string' },
  readings: { type: 'string' },
  welds: { type: 'string' },
  sensors: { type: 'string' },
  hours: { type: 'string' },
  drift: { type: 'string' },
  only: { type: 'string' },
} as const;

/** A numeric flag: undefined when absent, else a finite number (an integer when asked). */
function numberFlag(values: Record<string, unknown>, name: string, integer: boolean): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const text = String(v).replace(/_/g, '');
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new InputError(`--${name}: expected ${integer ? 'an integer' : 'a number'}, got '${String(v)}'`);
  }
  return n;
}

export const command: Command = {
  summary: 'write seeded sample data (reviews, weld readings and labels) as Parquet',
  usage:
    'sample-data [--out DIR] [--seed 42] [--start 2024-01-01T00:00:00Z] [--reviews 20000] [--days 60] ' +
    '[--readings 200000] [--welds N] [--sensors 10] [--hours 24] [--drift 0..1] [--only reviews,welds]',
  async run(argv) {
    const { values } = parseFlags(argv, OPTIONS);
    const config = configFrom(values);
    const only = listFlag(values.only);
    for (const d of only ?? []) {
      if (d !== 'reviews' && d !== 'welds') throw new InputError(`--only: expected reviews and/or welds, got '${d}'`);
    }
    const start = instantFlag(values, 'start');
    const outDir = values.out ?? join(config.repoDir, 'data');
    const bars = new Map<string, Progress>();
    const began = performance.now();
    let result: SampleDataResult;
    try {
      result = await generateSampleData({
        outDir,
        ...(start !== undefined && { start }),
        ...defined({
          seed: numberFlag(values, 'seed', true),
          reviews: numberFlag(values, 'reviews', true),
          days: numberFlag(values, 'days', false),
          readings: numberFlag(values, 'readings', true),
          welds: numberFlag(values, 'welds', true),
          sensors: numberFlag(values, 'sensors', true),
          hours: numberFlag(values, 'hours', false),
          drift: numberFlag(values, 'drift', false),
        }),
        ...(only && { datasets: only as SampleDataset[] }),
        onProgress(file, rows, total) {
          let bar = bars.get(file);
          if (!bar) {
            // Only the live line: the summary below names every file once.
            bar = createProgress(`sample-data ${file}`, { total, out: discard });
            bars.set(file, bar);
          }
          bar.update(rows);
        },
      });
    } finally {
      for (const bar of bars.values()) bar.done(''); // clears the live line, also on an error
    }
    const lines = Object.entries(result.files).map(([key, file]) => `wrote ${file} (${formatCount(result.counts[key] ?? 0)} rows)`);
    const layout = result.weldLayout;
    if (layout) {
      lines.push(
        `welds: ${layout.welds} x ${layout.sensorsPerWeld} sensors over ${layout.hours} h, each sensor a 1 s burst at 10 Hz every ${(layout.periodMs / 1000).toFixed(1)} s; ` +
          `${layout.failures} failure${layout.failures === 1 ? '' : 's'}, ${formatCount(layout.positiveLabels)} of ${formatCount(layout.labels)} labels failed`,
      );
    }
    lines.push(`seed ${values.seed ?? SAMPLE_DEFAULTS.seed}, ${((performance.now() - began) / 1000).toFixed(1)} s`);
    process.stdout.write(`${lines.join('\n')}\n`);
  },
};

const discard = new Writable({ write: (_chunk, _encoding, done) => done() });

const defined = <T extends Record<string, unknown>>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
