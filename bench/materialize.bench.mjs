#!/usr/bin/env node
// Materialization benchmark: 1M entities x 4 float64 features backfilled into a temp offline
// store, then `materialize` (the library call behind `larder materialize`) into Redis under a
// unique key prefix, deleted afterwards. Baseline in the same run: the same (key, value) pairs
// written by a bare ioredis pipelined HSET loop (no compare, no expiry, values encoded already).
// Also reports the time Redis spent in the write script per row (INFO commandstats), the bound
// on a single Redis core.
// Target: at least 300,000 rows/s. Prints one JSON line.
//   REDIS_URL=redis://127.0.0.1:6379 node bench/materialize.bench.mjs [--rows N]
import { register as registerTsx } from 'tsx/esm/api';
import { register } from 'node:module';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

registerTsx();
register('../bin/resolve-larder.mjs', import.meta.url);

const rowsArg = process.argv.indexOf('--rows');
const ROWS = rowsArg > 0 ? Number(process.argv[rowsArg + 1]) : 1_000_000;
const TARGET = 300_000;
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `bench:materialize:${randomBytes(4).toString('hex')}:`;

const { DuckDBInstance } = await import('@duckdb/node-api');
const { Redis } = await import('ioredis');
const { loadDefinitions } = await import('../src/definitions/loader.ts');
const { backfill } = await import('../src/offline/backfill.ts');
const { materialize } = await import('../src/materialize/materialize.ts');
const { openOnlineStore } = await import('../src/online/open.ts');
const { FileRegistry } = await import('../src/registry/file.ts');

const dir = await mkdtemp(join(tmpdir(), 'larder-bench-materialize-'));
const redis = new Redis(REDIS_URL);
const log = (line) => process.stderr.write(`${line}\n`);
const now = Date.now();
const DAY = 86_400_000;
try {
  await mkdir(join(dir, 'data'));
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  await c.run(`COPY (
    SELECT i::BIGINT AS driver_id,
           make_timestamptz((${now - DAY}::BIGINT + (hash(i) % ${DAY - 60_000})::BIGINT) * 1000) AS event_timestamp,
           make_timestamptz(${now}::BIGINT * 1000) AS created,
           random() AS conv_rate, random() AS acc_rate, random() * 100 AS avg_trip_km, random() * 5 AS rating
    FROM range(${ROWS}) t(i)) TO '${join(dir, 'data', 'stats.parquet')}' (FORMAT parquet)`);
  c.closeSync();
  db.closeSync();
  await writeFile(
    join(dir, 'drivers.ts'),
    `import { entity, featureView, fileSource } from 'larder';
export const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
export const driverStats = featureView({
  name: 'driver_stats', entities: [driver], ttl: '7d',
  source: fileSource({ name: 'stats', path: 'data/stats.parquet', timestampField: 'event_timestamp', createdTimestampField: 'created' }),
  schema: { conv_rate: 'float64', acc_rate: 'float64', avg_trip_km: 'float64', rating: 'float64' },
});
`,
  );
  const defs = await loadDefinitions(dir);
  const offlineDir = join(dir, 'offline');
  let t = performance.now();
  await backfill({ defs, offlineDir, start: now - 2 * DAY, end: now + DAY });
  log(`backfilled ${ROWS.toLocaleString('en-US')} rows in ${((performance.now() - t) / 1000).toFixed(1)} s`);

  const store = await openOnlineStore(REDIS_URL, { prefix, commandTimeoutMs: 60_000 });
  const registry = new FileRegistry(join(dir, 'registry.json'));
  const scriptUsec = async () => Number(/cmdstat_evalsha:calls=\d+,usec=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0);
  const usecBefore = await scriptUsec();
  t = performance.now();
  const result = await materialize({ defs, offlineDir, store, registry, end: now });
  const seconds = (performance.now() - t) / 1000;
  // Time Redis spent in the write script (all EVALSHA on the server, so other clients' too).
  const serverUsPerRow = ((await scriptUsec()) - usecBefore) / ROWS;
  const view = result.views[0];
  if (view.rows !== ROWS || view.written !== ROWS) throw new Error(`expected ${ROWS} rows written, got ${JSON.stringify(view)}`);
  const rate = ROWS / seconds;
  log(`materialize: ${ROWS.toLocaleString('en-US')} rows in ${seconds.toFixed(2)} s (${Math.round(rate).toLocaleString('en-US')} rows/s); Redis spent ${serverUsPerRow.toFixed(2)} µs per row in the write script`);
  await store.close();

  // Baseline: the same keys and encoded values through plain pipelined HSETs, 4 batches of 10k in flight.
  const sample = await redis.scan('0', 'MATCH', `${prefix}*`, 'COUNT', 1000);
  const payload = await redis.hgetBuffer(sample[1][0], 'driver_stats');
  const basePrefix = `${prefix}baseline:`;
  t = performance.now();
  const inflight = [];
  for (let i = 0; i < ROWS; i += 10_000) {
    const p = redis.pipeline();
    for (let j = i; j < Math.min(ROWS, i + 10_000); j++) p.hset(`${basePrefix}{driver_id=${j}}`, 'driver_stats', payload);
    inflight.push(p.exec());
    if (inflight.length >= 4) await inflight.shift();
  }
  await Promise.all(inflight);
  const baseSeconds = (performance.now() - t) / 1000;
  const baseRate = ROWS / baseSeconds;
  log(`baseline pipelined HSET: ${Math.round(baseRate).toLocaleString('en-US')} rows/s`);
  console.log(
    JSON.stringify({
      rows: ROWS,
      seconds: Number(seconds.toFixed(3)),
      rowsPerSecond: Math.round(rate),
      redisScriptUsPerRow: Number(serverUsPerRow.toFixed(2)),
      baselineHsetRowsPerSecond: Math.round(baseRate),
      ratioToBaseline: Number((rate / baseRate).toFixed(2)),
      target: TARGET,
      pass: rate >= TARGET,
    }),
  );
} finally {
  await deletePrefix(redis, prefix);
  redis.disconnect();
  await rm(dir, { recursive: true, force: true });
}

async function deletePrefix(client, p) {
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${p}*`, 'COUNT', 10_000);
    cursor = next;
    if (keys.length) await client.unlink(...keys);
  } while (cursor !== '0');
}
