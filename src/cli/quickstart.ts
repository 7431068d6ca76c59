/**
 * `larder quickstart`: the main job on embedded defaults, composed of the commands a user would
 * run by hand — sample data, apply, backfill, then a point-in-time training dataset per model.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../core/errors.js';
import { DAY_MS, formatInstant, parseInstant } from '../core/time.js';
import { openDuckDB, sqlString } from '../offline/duckdb.js';
import { configFrom, parseFlags } from './args.js';
import type { Command } from './main.js';

const SAMPLE_FILES = ['reviews.parquet', 'weld_readings.parquet', 'weld_labels.parquet'];

export const command: Command = {
  summary: 'the main job on embedded defaults: sample data, apply, backfill, training datasets',
  usage: 'quickstart [--fresh] [--reviews N] [--readings N] [--repo DIR]',
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      fresh: { type: 'boolean' },
      reviews: { type: 'string' },
      readings: { type: 'string' },
    });
    if (positionals.length) throw new InputError(`larder quickstart takes no arguments, got '${positionals[0]}'`);
    const config = configFrom(values);
    const repoFlag = typeof values.repo === 'string' ? ['--repo', values.repo] : [];
    const dataDir = join(config.repoDir, 'data');
    const step = (text: string) => process.stdout.write(`\n== ${text}\n`);

    step('1/4 sample data');
    if (values.fresh || !SAMPLE_FILES.every((f) => existsSync(join(dataDir, f)))) {
      const sizes = [
        ...(typeof values.reviews === 'string' ? ['--reviews', values.reviews] : []),
        ...(typeof values.readings === 'string' ? ['--readings', values.readings] : []),
      ];
      await runCommand('sample-data', [...repoFlag, ...sizes]);
    } else {
      process.stdout.write(`using the sample data in ${dataDir} (--fresh writes it anew)\n`);
    }

    step('2/4 apply the definitions');
    await runCommand('apply', repoFlag);

    step('3/4 backfill the offline store');
    const { start, end } = await eventTimeRange(SAMPLE_FILES.map((f) => join(dataDir, f)));
    await runCommand('backfill', [...repoFlag, '--start', formatInstant(start), '--end', formatInstant(end)]);

    step('4/4 point-in-time training datasets');
    const entitiesDir = join(config.home, 'entities');
    const datasetsDir = join(config.home, 'datasets');
    await mkdir(entitiesDir, { recursive: true });
    await mkdir(datasetsDir, { recursive: true });
    // Label rows: each review at its own time with its rating; each weld label at its time.
    const reviewEntities = join(entitiesDir, 'reviews.parquet');
    await copyQuery(`SELECT review_id, event_timestamp, rating FROM read_parquet(${sqlString(join(dataDir, 'reviews.parquet'))}) ORDER BY event_timestamp, review_id`, reviewEntities);
    const reviewDataset = join(datasetsDir, 'review_sentiment.parquet');
    const weldDataset = join(datasetsDir, 'weld_failure.parquet');
    await runCommand('dataset', [...repoFlag, '--entities', reviewEntities, '--service', 'review_sentiment', '--out', reviewDataset]);
    await runCommand('dataset', [...repoFlag, '--entities', join(dataDir, 'weld_labels.parquet'), '--service', 'weld_failure', '--out', weldDataset]);

    process.stdout.write(
      [
        '',
        'Done. Training datasets, point-in-time correct:',
        `  ${reviewDataset}`,
        `  ${weldDataset}`,
        '',
        'Look inside with any Parquet reader, e.g. DuckDB:',
        `  SELECT weld_id, event_timestamp, failed, amplitude_mean_1h, amplitude_stddev_1h FROM '${weldDataset}' LIMIT 5;`,
        '',
        'Try next:',
        `  npx larder plan${repoFlag.length ? ` --repo ${repoFlag[1]}` : ''}`,
        `  npx larder dataset --entities ${reviewEntities} --features review_text:text_length,review_text:word_count --out /tmp/reviews.csv`,
        `  npx larder dataset --entities ${reviewEntities} --service review_sentiment --out /tmp/x.parquet --explain`,
        '',
      ].join('\n'),
    );
    return 0;
  },
};

async function runCommand(name: string, argv: string[]): Promise<void> {
  const { command } = (await import(`./${name}.js`)) as { command: Command };
  const code = await command.run(argv);
  if (typeof code === 'number' && code !== 0) throw new InputError(`quickstart stopped: larder ${name} exited ${code}`);
}

/** The whole days spanning every event in the sample files, so one backfill covers them all. */
async function eventTimeRange(files: string[]): Promise<{ start: ReturnType<typeof parseInstant>; end: ReturnType<typeof parseInstant> }> {
  const db = await openDuckDB();
  try {
    const union = files.map((f) => `SELECT min(event_timestamp) AS lo, max(event_timestamp) AS hi FROM read_parquet(${sqlString(f)})`).join(' UNION ALL ');
    const reader = await db.connection.runAndReadAll(`SELECT epoch_ms(min(lo)) AS lo, epoch_ms(max(hi)) AS hi FROM (${union})`);
    const row = reader.getRowObjectsJson()[0] as { lo: string | number; hi: string | number };
    const lo = Number(row.lo);
    const hi = Number(row.hi);
    return { start: parseInstant(Math.floor(lo / DAY_MS) * DAY_MS), end: parseInstant((Math.floor(hi / DAY_MS) + 1) * DAY_MS) };
  } finally {
    db.close();
  }
}

/** Writes a query's rows to a Parquet file that appears whole or not at all. */
async function copyQuery(sql: string, out: string): Promise<void> {
  const db = await openDuckDB();
  const tmp = `${out}.tmp-${process.pid}`;
  try {
    await db.connection.run(`COPY (${sql}) TO ${sqlString(tmp)} (FORMAT parquet)`);
    const { rename } = await import('node:fs/promises');
    await rename(tmp, out);
  } finally {
    db.close();
  }
}
