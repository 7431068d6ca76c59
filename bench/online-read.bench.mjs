#!/usr/bin/env node
// Online read benchmark: the in-process library read `getOnlineFeatures` (no HTTP) of 1 entity x
// 20 features from 2 views (10 + 10) against Redis, 10,000 sequential requests after a warm-up;
// p50/p99 in ms. Baseline in the same run: a bare ioredis HMGET of the same key and fields, the
// floor any read path pays. Target: p99 at most 0.5 ms. Prints one JSON line.
//   REDIS_URL=redis://127.0.0.1:6379 node bench/online-read.bench.mjs [--requests N]
import { register as registerTsx } from 'tsx/esm/api';
import { randomBytes } from 'node:crypto';

registerTsx();

const requestsArg = process.argv.indexOf('--requests');
const REQUESTS = requestsArg > 0 ? Number(process.argv[requestsArg + 1]) : 10_000;
const WARMUP = 2_000;
const TARGET_P99_MS = 0.5;
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `bench:online-read:${randomBytes(4).toString('hex')}:`;

const { Redis } = await import('ioredis');
const { entity, featureView, fileSource } = await import('../src/definitions/builders.ts');
const { openOnlineStore } = await import('../src/online/open.ts');
const { getOnlineFeatures } = await import('../src/online/online-features.ts');
const { onlineViewSpec } = await import('../src/online/store.ts');
const { encodeEntityKey } = await import('../src/online/entity-key.ts');

const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
const source = fileSource({ name: 'src', path: 'data/none.parquet', timestampField: 'event_timestamp' });
const tenFeatures = (p) => Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`${p}_${i}`, i % 3 === 0 ? 'int64' : 'float64']));
const a = featureView({ name: 'driver_hourly', entities: [driver], source, ttl: '1d', schema: tenFeatures('h') });
const b = featureView({ name: 'driver_daily', entities: [driver], source, ttl: '7d', schema: tenFeatures('d') });
const defs = { entities: new Map([['driver', driver]]), sources: new Map([['src', source]]), views: new Map([[a.name, a], [b.name, b]]), services: new Map(), repoDir: process.cwd() };
const features = [...Object.keys(a.schema).map((f) => `${a.name}:${f}`), ...Object.keys(b.schema).map((f) => `${b.name}:${f}`)];

const store = await openOnlineStore(REDIS_URL, { prefix });
const redis = new Redis(REDIS_URL);
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
try {
  const now = Date.now();
  const ids = Array.from({ length: 1000 }, (_, i) => 5000 + i);
  for (const view of [a, b]) {
    const spec = onlineViewSpec(view);
    await store.write(spec, ids.map((id) => ({ key: encodeEntityKey(spec.joinKeys, { driver_id: id }), eventMs: now, createdMs: now, values: spec.features.map((f, i) => (f.type === 'int64' ? id + i : id / 7 + i)) })));
  }

  async function measure(fn) {
    for (let i = 0; i < WARMUP; i++) await fn(ids[i % ids.length]);
    const times = new Float64Array(REQUESTS);
    for (let i = 0; i < REQUESTS; i++) {
      const t = process.hrtime.bigint();
      await fn(ids[i % ids.length]);
      times[i] = Number(process.hrtime.bigint() - t) / 1e6;
    }
    const sorted = Array.from(times).sort((x, y) => x - y);
    return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: sorted[sorted.length - 1] };
  }

  let checked = false;
  const library = await measure(async (id) => {
    const response = await getOnlineFeatures({ defs, store, features, entities: { driver_id: [id] } });
    if (!checked) {
      if (response.results.length !== 21 || response.results.slice(1).some((r) => r.statuses[0] !== 'PRESENT')) throw new Error(`unexpected response ${JSON.stringify(response)}`);
      checked = true;
    }
  });
  const key = (id) => `${prefix}{driver_id=${id}}`;
  const baseline = await measure((id) => redis.hmgetBuffer(key(id), a.name, b.name));
  const round = (x) => Number(x.toFixed(4));
  process.stderr.write(`getOnlineFeatures 1 x 20: p50 ${round(library.p50)} ms, p99 ${round(library.p99)} ms; bare HMGET: p50 ${round(baseline.p50)} ms, p99 ${round(baseline.p99)} ms\n`);
  console.log(
    JSON.stringify({
      requests: REQUESTS,
      p50Ms: round(library.p50),
      p99Ms: round(library.p99),
      maxMs: round(library.max),
      baselineHmgetP50Ms: round(baseline.p50),
      baselineHmgetP99Ms: round(baseline.p99),
      p99RatioToBaseline: Number((library.p99 / baseline.p99).toFixed(2)),
      targetP99Ms: TARGET_P99_MS,
      pass: library.p99 <= TARGET_P99_MS,
    }),
  );
} finally {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
  redis.disconnect();
  await store.close();
}
