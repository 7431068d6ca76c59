#!/usr/bin/env node
// Backfill benchmark: 1M Portuguese-ish reviews into word-frequency vectors (62,000 hashed
// buckets) plus text statistics, through `larder backfill` in a child process, as a user runs it.
// Target: at most 30 s for 1M rows. Prints one JSON line: rows, seconds, rows/s, partitions.
//   node bench/backfill.bench.mjs [--rows N]
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';

const root = fileURLToPath(new URL('..', import.meta.url));
const rowsArg = process.argv.indexOf('--rows');
const ROWS = rowsArg > 0 ? Number(process.argv[rowsArg + 1]) : 1_000_000;
const TARGET_SECONDS = 30;

const WORDS = `adorei amei gostei odiei comprei chegou entrega rapida demorou atrasou produto sandalia vestido
camisa calca tenis bolsa blusa saia jaqueta casaco sapato bota chinelo tamanho pequeno grande apertado
largo confortavel lindo linda bonito feio qualidade otima otimo boa bom ruim pessima pessimo material
tecido costura cor azul preto branco vermelho rosa verde veio errado certo recomendo nao recomendo
voltarei comprar novamente preco barato caro vale pena super muito pouco nada tudo perfeito perfeita
igual foto diferente descricao site loja atendimento troca devolucao defeito rasgado manchado
embalagem caixa prazo antes depois dias semana correio frete gratis caiu bem serviu ficou folgado
justo macio duro leve pesado elegante basico moderno estiloso verao inverno festa trabalho presente
filha filho marido esposa mae amiga adorou achei parece acho melhor pior nunca sempre mais menos`
  .split(/\s+/)
  .filter(Boolean);

const dir = await mkdtemp(join(tmpdir(), 'larder-bench-backfill-'));
try {
  await mkdir(join(dir, 'data'));
  const genStarted = performance.now();
  await generateReviews(join(dir, 'data', 'reviews.parquet'), ROWS);
  process.stderr.write(`generated ${ROWS.toLocaleString('en-US')} reviews in ${((performance.now() - genStarted) / 1000).toFixed(1)} s\n`);
  await writeFile(
    join(dir, 'reviews.ts'),
    `import { entity, featureView, fileSource, sparse, textStats, wordFrequency } from 'larder';
export const review = entity({ name: 'review', joinKeys: ['review_id'], valueType: 'string' });
const reviews = fileSource({ name: 'reviews', path: 'data/reviews.parquet', timestampField: 'event_timestamp', createdTimestampField: 'created' });
const wordCounts = wordFrequency({ buckets: 62000 });
export const reviewText = featureView({
  name: 'review_text',
  entities: [review],
  source: reviews,
  schema: { word_counts: sparse(62000), text_length: 'int32', word_count: 'int32', exclamation_count: 'int32', uppercase_ratio: 'float32', digit_count: 'int32' },
  transform: (row) => ({ word_counts: wordCounts(row.text), ...textStats(row.text) }),
});
`,
  );
  const env = { ...process.env, LARDER_HOME: join(dir, '.larder') };
  const started = performance.now();
  const { code, stdout, stderr } = await run(process.execPath, [join(root, 'bin', 'larder.mjs'), 'backfill', '--repo', dir, '--start', '2020-01-01', '--end', '2030-01-01'], env);
  const seconds = (performance.now() - started) / 1000;
  if (code !== 0) throw new Error(`larder backfill exited ${code}: ${stderr.trim() || stdout.trim()}`);
  process.stderr.write(stdout);
  const m = /review_text: ([\d,]+) rows into (\d+) partitions/.exec(stdout);
  const written = m ? Number(m[1].replace(/,/g, '')) : NaN;
  if (written !== ROWS) throw new Error(`expected ${ROWS} rows written, the command reported: ${stdout.trim()}`);
  console.log(
    JSON.stringify({
      bench: 'backfill',
      rows: written,
      partitions: Number(m[2]),
      seconds: Number(seconds.toFixed(2)),
      rows_per_s: Math.round(written / seconds),
      target_seconds: TARGET_SECONDS,
      ok: seconds <= TARGET_SECONDS,
    }),
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}

/** Reviews over one year: 8 to 40 words from phrases of a small Portuguese vocabulary, some with '!' or capitals. */
async function generateReviews(path, rows) {
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    const words = WORDS.map((w) => `'${w}'`).join(', ');
    // 4,000 phrases of 4-12 words; a review strings 2-4 of them together, so texts vary widely.
    await connection.run(`CREATE TABLE phrases AS
      SELECT p AS id, array_to_string(list_transform(range(4 + (hash(p) % 9)::INTEGER), j -> ([${words}])[1 + (hash(p * 131 + j) % ${WORDS.length})::INTEGER]), ' ') AS phrase
      FROM range(4000) t(p)`);
    await connection.run(`COPY (
      SELECT 'r' || lpad(i::VARCHAR, 8, '0') AS review_id,
             'sku' || (hash(i * 7) % 20000)::VARCHAR AS sku,
             1 + (hash(i * 3) % 5)::INTEGER AS rating,
             CASE hash(i * 5) % 7 WHEN 0 THEN upper(p1.phrase) || '!!' ELSE p1.phrase END || ' ' || p2.phrase ||
               CASE WHEN hash(i * 11) % 2 = 0 THEN ' ' || p3.phrase ELSE '' END ||
               CASE WHEN hash(i * 13) % 3 = 0 THEN ', ' || p4.phrase || '!' ELSE '.' END AS text,
             TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_milliseconds((i * 31536000000 // ${rows})::BIGINT) AS event_timestamp,
             TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_milliseconds((i * 31536000000 // ${rows})::BIGINT + 60000) AS created
      FROM range(${rows}) t(i)
      JOIN phrases p1 ON p1.id = hash(i) % 4000
      JOIN phrases p2 ON p2.id = hash(i + 1) % 4000
      JOIN phrases p3 ON p3.id = hash(i + 2) % 4000
      JOIN phrases p4 ON p4.id = hash(i + 3) % 4000
      ORDER BY i
    ) TO '${path}' (FORMAT parquet, COMPRESSION zstd)`);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

function run(command, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
