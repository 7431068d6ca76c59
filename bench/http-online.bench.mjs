#!/usr/bin/env node
// HTTP online read benchmark: `larder serve` (its own process) answering POST /get-online-features
// for 2 views x 10 float64 features of 10,000 drivers materialized into local Redis (unique key
// prefix, deleted at the end), loaded over loopback by a load generator in a third process.
// Baseline in the same run: a minimal node:http + ioredis server (its own process) doing the same
// HMGET per entity, decoding the same values and writing the same Feast JSON by hand; its answers
// are checked equal to Larder's before any load.
//
// First, unloaded latency (one request at a time). Then phases, each bounded by --duration s:
//   (a) 1 entity x 20 features at a fixed 5,000 req/s, open loop (PACED in bench/lib/http-load.mjs):
//       p99 from each request's due time, and the rate achieved;                   target p99 <= 3 ms
//   (b) 100 entities x 20 features a request at a fixed --rate100 req/s (default 100, i.e.
//       10,000 entity reads/s), open loop: p99;                                    target p99 <= 15 ms
//   (a) and (b) load the baseline the same way too: what this machine allows at that rate.
//   (c) 1 entity x 20 features, no rate limit, autocannon with 50 connections, Larder and the
//       baseline in alternating rounds; throughput ratio Larder / baseline;         target >= 0.6
// Each phase also reports the CPU time the server and the load generator spent per request
// (from /proc): on a shared 2-core machine, a neighbour's load shows there, not in the rate.
// Latency percentiles are exact (every response timed, in fractions of a ms); for (c) autocannon's
// own p99 (whole milliseconds) is reported beside. Prints one JSON line.
// --profile DIR writes CPU profiles of both servers (the baseline's under DIR/baseline).
//   REDIS_URL=redis://127.0.0.1:6379 node bench/http-online.bench.mjs [--duration 15] [--rate100 100] [--phases a,b,c] [--profile DIR]
import { register as registerTsx } from 'tsx/esm/api';
import { register } from 'node:module';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { combine, loadKit, phaseSummary, round } from './lib/http-load.mjs';

registerTsx();
register('../bin/resolve-larder.mjs', import.meta.url);

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const DURATION = Number(arg('duration', '15'));
const RATE = 5000;
const RATE_100 = Number(arg('rate100', '100'));
const PROFILE_DIR = arg('profile', undefined);
/** Phases to run (default all); with --profile, one phase alone gives a profile of that load. */
const PHASES = new Set(arg('phases', 'a,b,c').split(','));
const ENTITIES = 10_000;
const TARGETS = { p99Ms: 3, p99Ms100: 15, throughputRatio: 0.6 };
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const prefix = `bench:http-online:${randomBytes(4).toString('hex')}:`;
const log = (line) => process.stderr.write(`${line}\n`);

const { DuckDBInstance } = await import('@duckdb/node-api');
const { Redis } = await import('ioredis');
const { loadDefinitions } = await import('../src/definitions/loader.ts');
const { backfill } = await import('../src/offline/backfill.ts');
const { materialize } = await import('../src/materialize/materialize.ts');
const { openOnlineStore } = await import('../src/online/open.ts');
const { FileRegistry } = await import('../src/registry/file.ts');

const tenFeatures = (p) => Array.from({ length: 10 }, (_, i) => `${p}_${i}`);
const VIEWS = [
  { name: 'driver_hourly', ttl: '1d', ttlMs: 86_400_000, features: tenFeatures('h') },
  { name: 'driver_daily', ttl: '7d', ttlMs: 7 * 86_400_000, features: tenFeatures('d') },
];
const FEATURES = VIEWS.flatMap((v) => v.features.map((f) => `${v.name}:${f}`));

/** The baseline: node:http + ioredis, the same HMGET per entity, the same values decoded, Feast's JSON by hand. */
const BASELINE = `
import http from 'node:http';
import { Redis } from ${JSON.stringify(import.meta.resolve('ioredis'))};
import { Unpackr } from ${JSON.stringify(import.meta.resolve('msgpackr'))};
const { prefix, redisUrl, views } = JSON.parse(process.env.BASELINE);
const redis = new Redis(redisUrl);
const unpackr = new Unpackr({ useRecords: false });
const fields = views.map((v) => v.name);
const names = ['driver_id', ...views.flatMap((v) => v.features)];
const head = '{"metadata":{"feature_names":' + JSON.stringify(names) + '},"results":[';
const key = (id) => prefix + '{driver_id=' + id + '}';
async function answer(body) {
  const ids = JSON.parse(body).entities.driver_id;
  let replies;
  if (ids.length === 1) replies = [await redis.hmgetBuffer(key(ids[0]), ...fields)];
  else {
    const p = redis.pipeline();
    for (const id of ids) p.hmgetBuffer(key(id), ...fields);
    replies = (await p.exec()).map(([err, r]) => { if (err) throw err; return r; });
  }
  const now = Date.now();
  const none = '"1970-01-01T00:00:00Z"';
  let out = head + '{"values":' + JSON.stringify(ids) + ',"statuses":[' + ids.map(() => '"PRESENT"').join(',') + '],"event_timestamps":[' + ids.map(() => none).join(',') + ']}';
  views.forEach((view, j) => {
    const decoded = replies.map((r) => {
      const payload = r[j];
      if (!payload) return null;
      const eventMs = payload.readDoubleBE(0);
      return { values: unpackr.unpack(payload.subarray(20)), ts: JSON.stringify(new Date(eventMs).toISOString()), fresh: eventMs >= now - view.ttlMs };
    });
    view.features.forEach((_, f) => {
      let values = '', statuses = '', times = '';
      decoded.forEach((d, i) => {
        const sep = i ? ',' : '';
        values += sep + (d && d.fresh ? JSON.stringify(d.values[f]) : 'null');
        statuses += sep + (d ? (d.fresh ? '"PRESENT"' : '"OUTSIDE_MAX_AGE"') : '"NOT_FOUND"');
        times += sep + (d ? d.ts : none);
      });
      out += ',{"values":[' + values + '],"statuses":[' + statuses + '],"event_timestamps":[' + times + ']}';
    });
  });
  return out + ']}';
}
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    answer(Buffer.concat(chunks).toString()).then(
      (out) => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }); res.end(out); },
      (err) => { res.writeHead(500); res.end(String(err)); },
    );
  });
});
server.listen(0, '127.0.0.1', () => console.log('baseline serving on http://127.0.0.1:' + server.address().port));
process.on('SIGTERM', () => { server.close(); redis.disconnect(); });
`;

const dir = await mkdtemp(join(tmpdir(), 'larder-bench-http-'));
// The machine's load before anything starts: the phases share it with whatever else runs.
const loadBefore = loadavg().map((x) => Number(x.toFixed(2)));
const redis = new Redis(REDIS_URL);
// The load generators (PACED: fixed rate, open loop; LOAD: autocannon) and child processes: bench/lib/http-load.mjs.
const { children, start, load: loadPath, writeGenerators } = loadKit({ dir, cwd: ROOT });
const PATH = '/get-online-features';
const load = (url, options, serverPid) => loadPath(url, { path: PATH, ...options }, serverPid);

try {
  // --- a repo, its data, backfilled and materialized into Redis under the prefix -----------
  log(`setting up ${ENTITIES} entities x ${FEATURES.length} features under ${prefix}`);
  await mkdir(join(dir, 'repo', 'data'), { recursive: true });
  const repo = join(dir, 'repo');
  const home = join(dir, 'home');
  const now = Date.now();
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  for (const view of VIEWS) {
    await c.run(`COPY (
      SELECT i::BIGINT AS driver_id, make_timestamptz((${now - 600_000}::BIGINT - (i % 1000) * 1000) * 1000) AS event_timestamp,
             ${view.features.map((f, k) => `round(random() * 1000, 3) + ${k} AS ${f}`).join(', ')}
      FROM range(${ENTITIES}) t(i)) TO '${join(repo, 'data', `${view.name}.parquet`)}' (FORMAT parquet)`);
  }
  c.closeSync();
  db.closeSync();
  await writeFile(
    join(repo, 'drivers.ts'),
    `import { entity, featureView, fileSource } from 'larder';
export const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
${VIEWS.map(
  (v) => `export const ${v.name} = featureView({
  name: '${v.name}', entities: [driver], ttl: '${v.ttl}',
  source: fileSource({ name: '${v.name}_source', path: 'data/${v.name}.parquet', timestampField: 'event_timestamp' }),
  schema: { ${v.features.map((f) => `${f}: 'float64'`).join(', ')} },
});`,
).join('\n')}
`,
  );
  const defs = await loadDefinitions(repo);
  const offlineDir = join(home, 'offline');
  await backfill({ defs, offlineDir, start: now - 86_400_000, end: now });
  const store = await openOnlineStore(REDIS_URL, { prefix, commandTimeoutMs: 30_000 });
  await materialize({ defs, offlineDir, store, registry: new FileRegistry(join(home, 'registry.json')), end: now });
  await store.close();

  await writeFile(join(dir, 'baseline.mjs'), BASELINE);
  await writeGenerators();
  const bodies = (entities) => {
    const file = join(dir, `bodies-${entities}.json`);
    const list = Array.from({ length: 2000 }, (_, r) =>
      JSON.stringify({ features: FEATURES, entities: { driver_id: Array.from({ length: entities }, (_, i) => (r * 7919 + i * 104729) % ENTITIES) }, full_feature_names: false }),
    );
    return writeFile(file, JSON.stringify(list)).then(() => file);
  };
  const one = await bodies(1);
  const hundred = await bodies(100);

  // --- the two servers ----------------------------------------------------------------------
  const serveArgs = [...(PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR] : []), join(ROOT, 'bin', 'larder.mjs'), 'serve', '--port', '0'];
  const larder = await start(
    'larder serve',
    serveArgs,
    { LARDER_REPO: repo, LARDER_HOME: home, LARDER_ONLINE: REDIS_URL, LARDER_ONLINE_PREFIX: prefix, LARDER_REGISTRY: `file:${join(home, 'registry.json')}`, LARDER_API_KEYS: '' },
    /Larder serving on (http:\/\/127\.0\.0\.1:\d+)/,
  );
  const baseline = await start('baseline', [...(PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', join(PROFILE_DIR, 'baseline')] : []), join(dir, 'baseline.mjs')], { BASELINE: JSON.stringify({ prefix, redisUrl: REDIS_URL, views: VIEWS }) }, /baseline serving on (http:\/\/127\.0\.0\.1:\d+)/);
  const larderUrl = larder.match[1];
  const baselineUrl = baseline.match[1];

  // Same answers, so the comparison is of the same work.
  for (const ids of [[42], [1, 2, 3, 99_999]]) {
    const body = JSON.stringify({ features: FEATURES, entities: { driver_id: ids } });
    const [a, b] = await Promise.all([larderUrl, baselineUrl].map((u) => fetch(`${u}/get-online-features`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then((r) => r.text())));
    if (a !== b) throw new Error(`the baseline answers differently from Larder:\n${a.slice(0, 400)}\n${b.slice(0, 400)}`);
    if (!a.includes('"PRESENT"')) throw new Error(`no values served: ${a.slice(0, 400)}`);
  }

  /** Unloaded latency: requests one after another from this process (fetch, keep-alive). */
  async function sequential(url, file, count = 300) {
    const list = JSON.parse(await readFile(file, 'utf8'));
    const times = [];
    for (let i = 0; i < count + 50; i++) {
      const began = performance.now();
      const res = await fetch(`${url}/get-online-features`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: list[i % list.length] });
      await res.arrayBuffer();
      if (i >= 50) times.push(performance.now() - began);
    }
    times.sort((x, y) => x - y);
    return { p50Ms: round(times[Math.floor(count / 2)]), p99Ms: round(times[Math.floor(count * 0.99)]) };
  }
  const unloaded = {
    larder1: await sequential(larderUrl, one),
    baseline1: await sequential(baselineUrl, one),
    larder100: await sequential(larderUrl, hundred),
    baseline100: await sequential(baselineUrl, hundred),
  };
  log(`unloaded, one request at a time: ${JSON.stringify(unloaded)}`);

  const warm = (url) => load(url, { bodies: one, connections: 20, duration: 3 });
  log('warming up both servers');
  await warm(larderUrl);
  await warm(baselineUrl);

  let a;
  let b;
  let cLarder;
  let cBaseline;
  // (a) and (b) also load the baseline the same way: what this machine allows at that rate.
  let aBaseline;
  let bBaseline;
  if (PHASES.has('a')) {
    log(`(a) 1 entity x 20 features at ${RATE} req/s for ${DURATION} s`);
    a = await load(larderUrl, { bodies: one, connections: 64, rate: RATE, duration: DURATION, paced: true }, larder.child.pid);
    log(`    Larder:   ${JSON.stringify(phaseSummary(a))}`);
    aBaseline = await load(baselineUrl, { bodies: one, connections: 64, rate: RATE, duration: DURATION, paced: true }, baseline.child.pid);
    log(`    baseline: ${JSON.stringify(phaseSummary(aBaseline))}`);
  }
  if (PHASES.has('b')) {
    log(`(b) 100 entities x 20 features at ${RATE_100} req/s for ${DURATION} s`);
    await load(larderUrl, { bodies: hundred, connections: 32, rate: RATE_100, duration: 2, paced: true });
    b = await load(larderUrl, { bodies: hundred, connections: 32, rate: RATE_100, duration: DURATION, paced: true }, larder.child.pid);
    log(`    Larder:   ${JSON.stringify(phaseSummary(b))}`);
    await load(baselineUrl, { bodies: hundred, connections: 32, rate: RATE_100, duration: 2, paced: true });
    bBaseline = await load(baselineUrl, { bodies: hundred, connections: 32, rate: RATE_100, duration: DURATION, paced: true }, baseline.child.pid);
    log(`    baseline: ${JSON.stringify(phaseSummary(bBaseline))}`);
  }
  if (PHASES.has('c')) {
    // Alternating rounds, so both servers see the same machine: a neighbour's load comes and goes.
    const rounds = 3;
    const each = Math.max(2, Math.round(DURATION / rounds));
    log(`(c) max throughput, 1 entity, 50 connections: ${rounds} rounds of ${each} s each, Larder and baseline alternating`);
    const larderRounds = [];
    const baselineRounds = [];
    for (let r = 0; r < rounds; r++) {
      larderRounds.push(await load(larderUrl, { bodies: one, connections: 50, duration: each }, larder.child.pid));
      baselineRounds.push(await load(baselineUrl, { bodies: one, connections: 50, duration: each }, baseline.child.pid));
      log(`    round ${r + 1}: Larder ${round(larderRounds[r].rate, 0)} req/s, baseline ${round(baselineRounds[r].rate, 0)} req/s`);
    }
    cLarder = combine(larderRounds);
    cBaseline = combine(baselineRounds);
    log(`    Larder:   ${JSON.stringify(phaseSummary(cLarder))}`);
    log(`    baseline: ${JSON.stringify(phaseSummary(cBaseline))}`);
  }

  const ratio = cLarder && cBaseline ? cLarder.rate / cBaseline.rate : null;
  const ran = [a, aBaseline, b, bBaseline, cLarder, cBaseline].filter(Boolean);
  const clean = ran.every((r) => r.non2xx === 0 && r.errors === 0);
  const pass = {
    a: a ? a.p99 <= TARGETS.p99Ms && a.rate >= RATE * 0.98 : null,
    b: b ? b.p99 <= TARGETS.p99Ms100 : null,
    c: ratio !== null ? ratio >= TARGETS.throughputRatio : null,
  };
  console.log(
    JSON.stringify({
      entities: ENTITIES,
      features: FEATURES.length,
      machine: { cores: cpus().length, loadAverageBefore: loadBefore, loadAverageAfter: loadavg().map((x) => Number(x.toFixed(2))) },
      durationSec: DURATION,
      unloaded,
      fixedRate1x20: a ? { ...phaseSummary(a), targetRate: RATE } : null,
      fixedRate1x20Baseline: aBaseline ? phaseSummary(aBaseline) : null,
      fixedRate100x20: b ? { ...phaseSummary(b), targetRate: RATE_100 } : null,
      fixedRate100x20Baseline: bBaseline ? phaseSummary(bBaseline) : null,
      maxThroughputLarder: cLarder ? phaseSummary(cLarder) : null,
      maxThroughputBaseline: cBaseline ? phaseSummary(cBaseline) : null,
      throughputRatio: round(ratio, 3),
      // Baseline CPU per request over Larder's: the same ratio, less sensitive to a busy machine.
      cpuEfficiencyRatio: cLarder && cBaseline && cLarder.serverCpuUsPerRequest ? round(cBaseline.serverCpuUsPerRequest / cLarder.serverCpuUsPerRequest, 3) : null,
      targets: TARGETS,
      clean,
      pass: { ...pass, all: clean && pass.a === true && pass.b === true && pass.c === true },
    }),
  );
} finally {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
  redis.disconnect();
  await rm(dir, { recursive: true, force: true });
}
