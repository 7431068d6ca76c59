#!/usr/bin/env node
// Materialization benchmark: 1M entities x 4 float64 features backfilled into a temp offline
// store, then `materialize` (the library call behind `larder materialize`) into Redis under a
// unique key prefix, deleted afterwards. Two references in the same run, on the same keys and
// encoded values:
// - baseline: a bare ioredis pipelined HSET loop (no compare, no expiry), 4 pipelines of 10k in
//   flight. It is bound by ioredis building one command per row, so it is a client-side figure;
// - floor: a Lua script doing HSET + PEXPIREAT per row (no compare), 500 rows per call as the
//   store sends them, values prepared before the clock starts: what Redis itself needs per row to
//   store a record with its expiry, whatever the write script does on top.
// For each, Redis CPU per row (INFO cpu of the server: other clients' load counts too, so run it
// on a quiet Redis for clean figures) and, for materialize, the time inside the write script per
// row (INFO commandstats) and this process's CPU per row (DuckDB's threads included). Redis runs
// commands on one core: 1e6 / (Redis CPU µs per row) bounds rows/s, and on a 2-core machine this
// process competes with Redis for the other one.
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
  const redisCpu = async () => {
    const info = await redis.info('cpu');
    return (Number(/used_cpu_user:([\d.]+)/.exec(info)[1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)[1])) * 1e6;
  };
  const usecBefore = await scriptUsec();
  let cpuBefore = await redisCpu();
  const clientBefore = process.cpuUsage();
  t = performance.now();
  const result = await materialize({ defs, offlineDir, store, registry, end: now });
  const seconds = (performance.now() - t) / 1000;
  const client = process.cpuUsage(clientBefore);
  const cpuUsPerRow = ((await redisCpu()) - cpuBefore) / ROWS;
  // Time Redis spent in the write script (all EVALSHA on the server, so other clients' too).
  const serverUsPerRow = ((await scriptUsec()) - usecBefore) / ROWS;
  const view = result.views[0];
  if (view.rows !== ROWS || view.written !== ROWS) throw new Error(`expected ${ROWS} rows written, got ${JSON.stringify(view)}`);
  const rate = ROWS / seconds;
  log(`materialize: ${ROWS.toLocaleString('en-US')} rows in ${seconds.toFixed(2)} s (${Math.round(rate).toLocaleString('en-US')} rows/s); Redis CPU ${cpuUsPerRow.toFixed(2)} µs per row, ${serverUsPerRow.toFixed(2)} µs per row in the write script; this process (DuckDB included) ${((client.user + client.system) / ROWS).toFixed(2)} µs CPU per row`);
  await store.close();

  // The same keys and one encoded value (with its expiry) for both references.
  const sample = await redis.scan('0', 'MATCH', `${prefix}*`, 'COUNT', 1000);
  const payload = await redis.hgetBuffer(sample[1][0], 'driver_stats');
  const expiry = Buffer.from(String(Math.ceil(payload.readDoubleBE(0) + 7 * DAY)));

  // Each phase starts from the same database size: Redis grows its key tables as keys come.
  await deletePrefix(redis, prefix);

  // Baseline: plain pipelined HSETs, 4 batches of 10k in flight.
  const basePrefix = `${prefix}baseline:`;
  cpuBefore = await redisCpu();
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
  const baseCpuUsPerRow = ((await redisCpu()) - cpuBefore) / ROWS;
  const baseRate = ROWS / baseSeconds;
  log(`baseline pipelined HSET: ${Math.round(baseRate).toLocaleString('en-US')} rows/s; Redis CPU ${baseCpuUsPerRow.toFixed(2)} µs per row`);

  await deletePrefix(redis, prefix);

  // Floor: HSET + PEXPIREAT per row in Lua, no compare, 500 rows per call, 80 calls in flight.
  const FLOOR_LUA = `local values, pos = ARGV[2], 1
for i = 1, #KEYS do
  local len = struct.unpack('>I4', values, pos)
  local digits = string.byte(values, pos + 4 + len)
  redis.call('HSET', KEYS[i], ARGV[1], string.sub(values, pos + 4, pos + 3 + len))
  redis.call('PEXPIREAT', KEYS[i], string.sub(values, pos + 5 + len, pos + 4 + len + digits))
  pos = pos + 5 + len + digits
end
return #KEYS`;
  const sha = await redis.script('LOAD', FLOOR_LUA);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(payload.length);
  const row = Buffer.concat([length, payload, Buffer.from([expiry.length]), expiry]);
  const calls = [];
  for (let i = 0; i < ROWS; i += 500) {
    const n = Math.min(500, ROWS - i);
    calls.push([sha, n, ...Array.from({ length: n }, (_, j) => `${prefix}floor:{driver_id=${i + j}}`), 'driver_stats', Buffer.concat(Array.from({ length: n }, () => row))]);
  }
  cpuBefore = await redisCpu();
  t = performance.now();
  const floorInflight = [];
  for (const args of calls) {
    floorInflight.push(redis.evalsha(...args));
    if (floorInflight.length >= 80) await floorInflight.shift();
  }
  await Promise.all(floorInflight);
  const floorSeconds = (performance.now() - t) / 1000;
  const floorCpuUsPerRow = ((await redisCpu()) - cpuBefore) / ROWS;
  const floorRate = ROWS / floorSeconds;
  log(`floor HSET + PEXPIREAT in Lua: ${Math.round(floorRate).toLocaleString('en-US')} rows/s; Redis CPU ${floorCpuUsPerRow.toFixed(2)} µs per row`);
  console.log(
    JSON.stringify({
      rows: ROWS,
      seconds: Number(seconds.toFixed(3)),
      rowsPerSecond: Math.round(rate),
      redisCpuUsPerRow: Number(cpuUsPerRow.toFixed(2)),
      redisScriptUsPerRow: Number(serverUsPerRow.toFixed(2)),
      clientCpuUsPerRow: Number(((client.user + client.system) / ROWS).toFixed(2)),
      baselineHsetRowsPerSecond: Math.round(baseRate),
      baselineHsetRedisCpuUsPerRow: Number(baseCpuUsPerRow.toFixed(2)),
      ratioToBaseline: Number((rate / baseRate).toFixed(2)),
      floorRowsPerSecond: Math.round(floorRate),
      floorRedisCpuUsPerRow: Number(floorCpuUsPerRow.toFixed(2)),
      ratioToFloor: Number((rate / floorRate).toFixed(2)),
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
