/**
 * `larder quickstart`: the main job on embedded defaults, composed of the commands a user would
 * run by hand — sample data, apply, backfill, materialize, train both models on point-in-time
 * datasets, then serve (until SIGTERM/SIGINT; `--no-serve` stops before serving).
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../core/errors.js';
import { DAY_MS, formatInstant, parseInstant } from '../core/time.js';
import { openDuckDB, sqlIdent, sqlPath } from '../offline/duckdb.js';
import { configFrom, parseFlags } from './args.js';
import type { Command } from './main.js';

const SAMPLE_FILES = ['reviews.parquet', 'weld_readings.parquet', 'weld_labels.parquet'];

export const command: Command = {
  summary: 'the main job on embedded defaults: sample data, apply, backfill, materialize, train, then serve',
  usage: 'quickstart [--fresh] [--reviews N] [--readings N] [--no-serve] [--port N] [--repo DIR]',
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      fresh: { type: 'boolean' },
      'no-serve': { type: 'boolean' },
      port: { type: 'string' },
      reviews: { type: 'string' },
      readings: { type: 'string' },
    });
    if (positionals.length) throw new InputError(`larder quickstart takes no arguments, got '${positionals[0]}'`);
    const config = configFrom(values);
    const repoFlag = typeof values.repo === 'string' ? ['--repo', values.repo] : [];
    const dataDir = join(config.repoDir, 'data');
    const step = (text: string) => process.stdout.write(`\n== ${text}\n`);

    step('1/6 sample data');
    if (values.fresh || !SAMPLE_FILES.every((f) => existsSync(join(dataDir, f)))) {
      const sizes = [
        ...(typeof values.reviews === 'string' ? ['--reviews', values.reviews] : []),
        ...(typeof values.readings === 'string' ? ['--readings', values.readings] : []),
      ];
      await runCommand('sample-data', [...repoFlag, ...sizes]);
    } else {
      process.stdout.write(`using the sample data in ${dataDir} (--fresh writes it anew)\n`);
    }

    step('2/6 apply the definitions');
    await runCommand('apply', repoFlag);

    step('3/6 backfill the offline store');
    const { start, end } = await eventTimeRange(SAMPLE_FILES.map((f) => join(dataDir, f)));
    await runCommand('backfill', [...repoFlag, '--start', formatInstant(start), '--end', formatInstant(end)]);

    step('4/6 materialize the latest values into the online store');
    await runCommand('materialize', [...repoFlag, '--end', new Date().toISOString()]);

    // Each training job builds its point-in-time dataset (label rows at their own times) into the
    // offline store, fits on the earlier period, evaluates on the later one and registers a version.
    step('5/6 train the models on point-in-time datasets');
    for (const model of ['review_sentiment', 'weld_failure']) await runCommand('train', [...repoFlag, model]);

    const port = typeof values.port === 'string' ? values.port : String(config.port);
    const firstReview = await firstValue(join(dataDir, 'reviews.parquet'), 'review_id');
    const weldDataset = await newestDataset(config.offlineDir, 'weld_failure');
    process.stdout.write(
      [
        '',
        `Training datasets, point-in-time correct, in ${join(config.offlineDir, '_datasets')}; look inside with any Parquet reader, e.g. DuckDB:`,
        `  SELECT weld_id, event_timestamp, failed, amplitude_mean_1h, amplitude_stddev_1h FROM '${weldDataset}' LIMIT 5;`,
        'The registered models: larder models review_sentiment',
        '',
        'With the server up, try:',
        `  curl -s localhost:${port}/predict/review_sentiment -H 'content-type: application/json' \\`,
        `    -d '{"inputs": {"text": ["Essa sandália é maravilhosa, super confortável!", "Veio com defeito, o tecido é horrível e a costura soltou. Não comprem!"]}}'`,
        `  curl -s localhost:${port}/predict/review_sentiment -H 'content-type: application/json' -d '{"entities": {"review_id": ["${firstReview}"]}}'`,
        `  curl -s localhost:${port}/review-queue/review_sentiment      # predictions waiting for a reviewer`,
        `  curl -s localhost:${port}/get-online-features -H 'content-type: application/json' \\`,
        `    -d '{"features": ["review_text:text_length", "review_text:word_count", "review_text:exclamation_count"], "entities": {"review_id": ["${firstReview}", "r9999999"]}}'`,
        `  curl -s localhost:${port}/get-historical-features -H 'content-type: application/json' -H 'accept: application/json' \\`,
        `    -d '{"feature_service": "weld_failure", "entities": {"weld_id": ["W0001"], "event_timestamp": ["2024-01-01T12:00:00Z"]}}'`,
        'A weld reading now, then its windows online (the tiles the push updated) and a prediction from them:',
        `  curl -s localhost:${port}/push -H 'content-type: application/json' \\`,
        `    -d '{"push_source_name": "weld_readings", "to": "online_and_offline", "df": {"weld_id": ["W0001"], "event_timestamp": ['"$(date +%s000)"'], "amplitude": [104.2], "temperature": [31.5], "pressure": [71.2]}}'`,
        `  curl -s localhost:${port}/get-online-features -H 'content-type: application/json' \\`,
        `    -d '{"features": ["weld_sensor_stats:amplitude_count_1m", "weld_sensor_stats:amplitude_mean_1m", "weld_sensor_stats:amplitude_max_1h"], "entities": {"weld_id": ["W0001"]}}'`,
        `  curl -s localhost:${port}/predict/weld_failure -H 'content-type: application/json' -d '{"entities": {"weld_id": ["W0001"]}}'`,
        `  curl -s localhost:${port}/health; curl -s localhost:${port}/metrics | head`,
        'Later, drift of what was served against the training data: larder drift --model review_sentiment',
        '',
      ].join('\n'),
    );
    if (values['no-serve']) return 0;

    step('6/6 serve');
    await runCommand('serve', [...repoFlag, '--port', port]);
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
    const union = files.map((f) => `SELECT min(event_timestamp) AS lo, max(event_timestamp) AS hi FROM read_parquet(${sqlPath(f)})`).join(' UNION ALL ');
    const reader = await db.connection.runAndReadAll(`SELECT epoch_ms(min(lo)) AS lo, epoch_ms(max(hi)) AS hi FROM (${union})`);
    const row = reader.getRowObjectsJson()[0] as { lo: string | number; hi: string | number };
    const lo = Number(row.lo);
    const hi = Number(row.hi);
    return { start: parseInstant(Math.floor(lo / DAY_MS) * DAY_MS), end: parseInstant((Math.floor(hi / DAY_MS) + 1) * DAY_MS) };
  } finally {
    db.close();
  }
}

/** The first value of a column of a Parquet file, for the printed examples. */
async function firstValue(file: string, column: string): Promise<string> {
  const db = await openDuckDB();
  try {
    const reader = await db.connection.runAndReadAll(`SELECT CAST(${sqlIdent(column)} AS VARCHAR) AS v FROM read_parquet(${sqlPath(file)}) LIMIT 1`);
    return String(reader.getRowObjectsJson()[0]?.v ?? '');
  } finally {
    db.close();
  }
}

/** The newest training dataset of a model, for the printed example. */
async function newestDataset(offlineDir: string, model: string): Promise<string> {
  const dir = join(offlineDir, '_datasets', model);
  const files = (await readdir(dir)).filter((f) => f.endsWith('.parquet') && !f.startsWith('.')).sort();
  return join(dir, files[files.length - 1] ?? '');
}
