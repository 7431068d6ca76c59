/**
 * `larder dataset --entities FILE --out FILE (--features REF,... | --service NAME) [--full-names]
 * [--timestamp-column C] [--explain]`: a point-in-time training dataset (CONTRACT s.3, s.4).
 */
import { relative } from 'node:path';
import { InputError } from '../core/errors.js';
import { loadDefinitions } from '../definitions/loader.js';
import { explainDataset, writeDataset, type DatasetRequest } from '../offline/dataset.js';
import { configFrom, listFlag, parseFlags, requireFlag } from './args.js';
import type { Command } from './main.js';
import { formatCount } from './progress.js';

export const command: Command = {
  summary: 'writes a point-in-time training dataset (.parquet or .csv) for entity rows',
  usage: 'dataset --entities FILE --out FILE (--features VIEW:FEATURE,... | --service NAME) [--full-names] [--timestamp-column C] [--explain] [--repo DIR]',
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      entities: { type: 'string' },
      out: { type: 'string' },
      features: { type: 'string' },
      service: { type: 'string' },
      'full-names': { type: 'boolean' },
      'timestamp-column': { type: 'string' },
      explain: { type: 'boolean' },
    });
    if (positionals.length > 0) throw new InputError(`larder dataset takes no arguments, got '${positionals[0]}'`);
    const entities = requireFlag(values, 'entities');
    const explain = values.explain === true;
    const out = explain ? values.out : requireFlag(values, 'out');
    const features = listFlag(values.features);
    if (features !== undefined && values.service !== undefined) throw new InputError('give --features or --service, not both');
    if (features === undefined && values.service === undefined) throw new InputError('give --features VIEW:FEATURE,... or --service NAME');
    if (features !== undefined && features.length === 0) throw new InputError('--features: give at least one VIEW:FEATURE');
    if (values['timestamp-column'] === '') throw new InputError('--timestamp-column: give a column name');

    const config = configFrom(values);
    const defs = await loadDefinitions(config.repoDir);
    const request: DatasetRequest = {
      defs,
      offlineDir: config.offlineDir,
      entities,
      features,
      service: values.service,
      fullNames: values['full-names'] === true,
      timestampColumn: values['timestamp-column'],
    };

    if (explain) {
      process.stdout.write(await asFlags(explainDataset(request), entities));
      return 0;
    }
    const live = Boolean(process.stderr.isTTY);
    const started = performance.now();
    const result = await asFlags(
      writeDataset({
        ...request,
        out: out!,
        ...(live && { onProgress: (percent: number) => process.stderr.write(`\rdataset: joining  ${percent.toFixed(0).padStart(3)}%\x1b[K`) }),
      }),
      entities,
    ).finally(() => live && process.stderr.write('\r\x1b[K'));
    const seconds = (performance.now() - started) / 1000;
    process.stdout.write(`wrote ${formatCount(result.rows)} rows to ${relative(process.cwd(), result.file) || result.file} (${seconds.toFixed(1)} s)\n`);
    return 0;
  },
};

/** The library names request fields (`features: ...`); here the flags are what the user typed. */
async function asFlags<T>(work: Promise<T>, entitiesFile: string): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    const message = err.message
      .replace(/^(features|service|out): /, '--$1: ')
      .replace(/^entities: /, `--entities ${entitiesFile}: `)
      .replace(/^entities\./, `--entities ${entitiesFile}: `);
    throw new InputError(message, err.detail);
  }
}
