#!/usr/bin/env node
// Soak: one `larder serve` (its own process, local Redis under a unique key prefix deleted at the
// end, a file registry, a temp repo) under a mixed load for --duration s (default 600), loopback
// only, to see whether it holds up over time: memory flat, no errors, read p99 within the online
// issue's bounds (1 entity x 20 features: p99 <= 3 ms; 100 entities: p99 <= 15 ms).
// The repo: 10,000 drivers x 2 views x 10 float64 features (as bench/http-online.bench.mjs),
// backfilled from Parquet and materialized; and a push source `sensor_readings` of 1,000 sensors
// feeding an aggregation view (value mean/max/count, temperature mean over 1m and 5m: the longest
// window fills in 5 minutes, so a 10-minute soak reaches its steady state halfway) and a plain
// view of each sensor's last reading (pushed online, and materialized again from the pushed files).
// Concurrently, each bounded in count and time, from processes of their own:
//   reads   POST /get-online-features, 1 entity x 20 features at a fixed --rate (default 2,000
//           req/s), open loop (PACED in bench/lib/http-load.mjs, latency from each request's due
//           time), run as consecutive --window s segments (default 60) so each minute has its own
//           percentiles; plus 100 entities x 20 features at --rate100 (default 20 req/s).
//           2,000 req/s, not the 5,000 of the online issue: at 5,000 the server alone uses about
//           0.45 of a core (82-89 us a request), with the generator and Redis most of these 2
//           cores, and a soak is about drift, not the peak: the other loads (pushes, DuckDB in the
//           materialize and backfill runs, each a fresh process loading TypeScript) and whoever
//           shares the machine need the rest, or their queueing would be all that p99 shows.
//   pushes  POST /push of --push-rate readings/s (default 2,000) in batches of 200, to
//           online_and_offline, open loop (latency from each batch's due time), at most 16 in
//           flight; failures are any non-200 answer, socket error, or batch unanswered at the end.
//   cycles  every --materialize-every s (default 120): a new snapshot of every driver appended to
//           the views' Parquet sources, `larder backfill` of them (child process), then a
//           `larder materialize` (child process, under the bench's LARDER_ONLINE_PREFIX) from the
//           watermark: the new driver rows, and the sensors' pushed rows from the offline store.
//           Each must exit 0.
// Every 5 s: the server's RSS (/proc VmRSS), V8 heap and event-loop delay (its /metrics,
// prom-client's default metrics), Redis used_memory (the whole instance: a neighbour's keys count
// too), the Parquet files in the offline store (pushes add files), the load average.
// Pass flags:
//   memoryFlat       after a warm-up (the first minute; a third of a shorter run): the heap-used
//                    floor (its least value in each minute, what the GC leaves) rises < 1 MB/min
//                    (least squares), and RSS (median of the last minute's samples) is < 10 % above
//                    RSS in the minute after warm-up. Single samples swing by tens of MB between
//                    collections; they are reported too (at the end of warm-up and at the end), with
//                    the least-squares slope over all the samples after warm-up.
//   noErrors         no non-2xx, socket error or unanswered request of any kind, every backfill and
//                    materialize exited 0, /health 200 at the end, no server stderr line containing
//                    "error", larder_store_errors_total 0, no 5xx in the server's request histogram
//   p99WithinBounds  over the whole soak (windows' latency histograms merged, 1 % buckets):
//                    1 x 20 p99 <= 3 ms, 100 x 20 p99 <= 15 ms; each window's own exact p50/p99/p999
//                    are listed, and p99WithinBoundsEveryWindow says whether every window was within.
// Read windows are separate generator processes: ~0.3 s without reads between two windows.
// Prints one JSON line.
//   REDIS_URL=redis://127.0.0.1:6379 node bench/soak.bench.mjs [--duration 600] [--rate 2000] [--push-rate 2000] [--materialize-every 120]
//     [--rate100 20] [--window 60]
import { register as registerTsx } from 'tsx/esm/api';
import { register } from 'node:module';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { cpuSeconds, loadKit, round } from './lib/http-load.mjs';
import { mergeHistograms, PACED_HISTOGRAM, percentileOf } from './lib/paced-histogram.mjs';

registerTsx();
register('../bin/resolve-larder.mjs', import.meta.url);

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const number = (name, fallback, min) => {
  const n = Number(arg(name, fallback));
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name}: expected a number >= ${min}, got ${arg(name, fallback)}`);
  return n;
};
const DURATION = number('duration', '600', 10);
const RATE = number('rate', '2000', 1);
const RATE_100 = number('rate100', '20', 0);
const PUSH_RATE = number('push-rate', '2000', 0);
const MATERIALIZE_EVERY = number('materialize-every', '120', 5);
const WINDOW = number('window', '60', 5);
const SAMPLE_MS = 5000;
/** Memory is judged from here on: the first minute (a third of a shorter run) is warm-up. */
const WARMUP_SEC = Math.min(60, DURATION / 3);
const ENTITIES = 10_000;
const SENSORS = 1000;
const PUSH_BATCH = 200;
const PUSH_CONNECTIONS = 16;
/** A backfill or materialize child still running after this is stopped and counts as failed. */
const CHILD_TIMEOUT_MS = 300_000;
const TARGETS = { p99Ms1x20: 3, p99Ms100x20: 15, heapSlopeMBPerMin: 1, rssGrowthPct: 10 };
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
if (!/^redis:\/\/(127\.0\.0\.1|localhost)(:\d+)?(\/\d+)?$/.test(REDIS_URL)) throw new Error(`REDIS_URL: loopback only, got ${REDIS_URL}`);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const LARDER = join(ROOT, 'bin', 'larder.mjs');
const prefix = `bench:soak:${randomBytes(4).toString('hex')}:`;
const log = (line) => process.stderr.write(`${line}\n`);
const DAY_MS = 86_400_000;
const iso = (ms) => new Date(ms).toISOString();
const mb = (bytes) => (bytes === null || bytes === undefined ? null : round(bytes / 1048576, 1));

const { DuckDBInstance } = await import('@duckdb/node-api');
const { Redis } = await import('ioredis');

const tenFeatures = (p) => Array.from({ length: 10 }, (_, i) => `${p}_${i}`);
const VIEWS = [
  { name: 'driver_hourly', ttl: '1d', features: tenFeatures('h') },
  { name: 'driver_daily', ttl: '7d', features: tenFeatures('d') },
];
const FEATURES = VIEWS.flatMap((v) => v.features.map((f) => `${v.name}:${f}`));

const DRIVERS_TS = `import { entity, featureView, fileSource } from 'larder';
export const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
${VIEWS.map(
  (v) => `export const ${v.name} = featureView({
  name: '${v.name}', entities: [driver], ttl: '${v.ttl}',
  source: fileSource({ name: '${v.name}_source', path: 'data/${v.name}.parquet', timestampField: 'event_timestamp' }),
  schema: { ${v.features.map((f) => `${f}: 'float64'`).join(', ')} },
});`,
).join('\n')}
`;

const SENSORS_TS = `import { entity, featureView, pushSource } from 'larder';
export const sensor = entity({ name: 'sensor', joinKeys: ['sensor_id'], valueType: 'string' });
/** Live readings, pushed; no batch history. */
export const sensorReadings = pushSource({
  name: 'sensor_readings',
  schema: { sensor_id: 'string', value: 'float64', temperature: 'float64' },
  timestampField: 'event_timestamp',
});
export const sensor_stats = featureView({
  name: 'sensor_stats', entities: [sensor], source: sensorReadings,
  aggregations: [
    { column: 'value', functions: ['mean', 'max', 'count'], windows: ['1m', '5m'] },
    { column: 'temperature', functions: ['mean'], windows: ['1m', '5m'] },
  ],
});
/** Each sensor's last reading: online from the pushes, offline in the pushed files. */
export const sensor_latest = featureView({
  name: 'sensor_latest', entities: [sensor], source: sensorReadings, ttl: '1h',
  schema: { value: 'float64', temperature: 'float64' },
});
`;

/**
 * The push producer: batches of PUSH_BATCH readings of consecutive sensors, each reading stamped
 * with its batch's due time; batch k is due at start + k x batch / rate whatever the answers before
 * it (open loop), its latency counts from then; keep-alive sockets, at most `connections` pushes in
 * flight. Bounded: floor(rate x duration / batch) batches, and it stops at duration + 30 s with
 * whatever is not answered counted as unanswered. Per-window (`window` s, by due time) figures.
 */
const PUSH = `
import http from 'node:http';
const cfg = JSON.parse(process.env.PUSH);
const url = new URL(cfg.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: cfg.connections });
const batches = Math.floor((cfg.rate * cfg.duration) / cfg.batch);
const latency = new Float64Array(batches).fill(NaN);
const ok = new Uint8Array(batches);
let done = 0, failed = 0, lateRows = 0, firstError = '', sent = 0;
const t0 = performance.now() + 200;
const wall0 = Date.now() + 200;
const ids = Array.from({ length: cfg.sensors }, (_, i) => JSON.stringify('s-' + String(i).padStart(4, '0')));
const dueAt = (k) => t0 + (k * cfg.batch * 1000) / cfg.rate;

function body(k) {
  const from = (k * cfg.batch) % cfg.sensors;
  const at = Math.floor(wall0 + (k * cfg.batch * 1000) / cfg.rate);
  let id = '', ts = '', value = '', temp = '';
  for (let i = 0; i < cfg.batch; i++) {
    const s = (from + i) % cfg.sensors;
    const sep = i ? ',' : '';
    id += sep + ids[s];
    ts += sep + at;
    value += sep + (20 + ((s * 7 + k) % 100) / 10);
    temp += sep + (40 + ((s + k) % 30) / 3);
  }
  return '{"push_source_name":"sensor_readings","to":"online_and_offline","df":{"sensor_id":[' + id + '],"event_timestamp":[' + ts + '],"value":[' + value + '],"temperature":[' + temp + ']}}';
}

function post(text) {
  return new Promise((resolve) => {
    const req = http.request({ host: url.hostname, port: url.port, path: '/push', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
      res.on('error', (err) => resolve({ status: 0, text: String(err) }));
    });
    req.setTimeout(30_000, () => req.destroy(new Error('no answer in 30 s')));
    req.on('error', (err) => resolve({ status: 0, text: String(err) }));
    req.end(text);
  });
}

function send(k) {
  post(body(k)).then((r) => {
    latency[k] = performance.now() - dueAt(k);
    if (r.status === 200) {
      ok[k] = 1;
      try { for (const l of JSON.parse(r.text).late ?? []) lateRows += l.rows; } catch {}
    } else {
      failed++;
      firstError ||= r.status + ' ' + r.text.slice(0, 300);
    }
    if (++done === batches) finish(0);
  });
}

function stats(xs) {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  const at = (p) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * s.length))] : null);
  return { p50Ms: at(0.5), p99Ms: at(0.99), maxMs: s.length ? s[s.length - 1] : null };
}

function finish(unanswered) {
  const seconds = (performance.now() - t0) / 1000;
  const perBatch = (cfg.window * cfg.rate) / cfg.batch;
  const windows = [];
  for (let w = 0; w * perBatch < batches; w++) {
    const from = Math.floor(w * perBatch), to = Math.min(batches, Math.floor((w + 1) * perBatch));
    let bad = 0;
    for (let k = from; k < to; k++) if (!ok[k]) bad++;
    windows.push({ window: w, batches: to - from, failed: bad, ...stats(Array.from(latency.subarray(from, to))) });
  }
  console.log(JSON.stringify({
    batches, readings: batches * cfg.batch, seconds, readingsPerSec: (ok.reduce((a, x) => a + x, 0) * cfg.batch) / seconds,
    failed, unanswered, lateRows, firstError, ...stats(Array.from(latency)), windows,
  }));
  process.exit(0);
}

setTimeout(() => {
  let unanswered = 0;
  const now = performance.now();
  for (let k = 0; k < batches; k++) if (Number.isNaN(latency[k])) { latency[k] = now - dueAt(k); unanswered++; }
  finish(unanswered);
}, (cfg.duration + 30) * 1000 + 200);

setTimeout(() => {
  if (batches === 0) return finish(0);
  const timer = setInterval(() => {
    const upTo = Math.min(batches, Math.floor(((performance.now() - t0) * cfg.rate) / (cfg.batch * 1000)) + 1);
    while (sent < upTo) send(sent++);
    if (sent >= batches) clearInterval(timer);
  }, 2);
}, Math.max(0, t0 - performance.now()));
`;

const dir = await mkdtemp(join(tmpdir(), 'larder-bench-soak-'));
const loadBefore = loadavg().map((x) => Number(x.toFixed(2)));
const redis = new Redis(REDIS_URL);
const { children, start, load: loadPath, writeGenerators } = loadKit({ dir, cwd: ROOT });
const load = (url, options) => loadPath(url, { path: '/get-online-features', ...options });
const repo = join(dir, 'repo');
const home = join(dir, 'home');
const offlineDir = join(home, 'offline');
const larderEnv = { LARDER_REPO: repo, LARDER_HOME: home, LARDER_ONLINE: REDIS_URL, LARDER_ONLINE_PREFIX: prefix, LARDER_REGISTRY: `file:${join(home, 'registry.json')}`, LARDER_API_KEYS: '' };

/** Set when the bench is ending (or failed): no new child, load window or cycle starts. */
let stopping = false;
const timers = [];

/** A child process to completion: exit code, seconds, output; stopped (SIGKILL) after `timeoutMs`. */
function run(name, args, timeoutMs = CHILD_TIMEOUT_MS) {
  if (stopping) return Promise.resolve({ exitCode: 'not started: stopping', seconds: 0, out: '', err: '' });
  return new Promise((resolve) => {
    const began = performance.now();
    const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...larderEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const seconds = round((performance.now() - began) / 1000, 2);
      if (code !== 0) log(`    ${name} exited ${code ?? signal}: ${(err || out).trim().slice(-600)}`);
      resolve({ exitCode: code ?? signal, seconds, out, err });
    });
  });
}

/** Driver snapshots: the initial one (event times spread over ~17 minutes, 10 minutes ago) and one per cycle. */
const snapshots = [];
async function writeDriverSources(c) {
  const rows = snapshots.map((s, g) => `(${s.at}, ${s.stepMs}, ${g})`).join(', ');
  for (const view of VIEWS) {
    await c.run(`COPY (
      SELECT i::BIGINT AS driver_id, make_timestamptz((g.t_ms - (i % 1000) * g.step) * 1000) AS event_timestamp,
             ${view.features.map((f, k) => `round(random() * 1000, 3) + ${k} + g.gen * 0.0001 AS ${f}`).join(', ')}
      FROM range(${ENTITIES}) t(i), (VALUES ${rows}) g(t_ms, step, gen)) TO '${join(repo, 'data', `${view.name}.parquet`)}' (FORMAT parquet)`);
  }
}

/** Parquet files (and, when `bytes`, their size) under the offline store. */
async function offlineFiles(bytes = false) {
  let names = [];
  try {
    names = (await readdir(offlineDir, { recursive: true })).filter((n) => n.endsWith('.parquet'));
  } catch {
    return { files: 0, bytes: 0 };
  }
  let total = null;
  if (bytes) {
    total = 0;
    for (const n of names) total += await stat(join(offlineDir, n)).then((s) => s.size, () => 0);
  }
  return { files: names.length, bytes: total, pushFiles: names.filter((n) => /push-[^/]*\.parquet$/.test(n)).length };
}

async function prefixKeys() {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    n += keys.length;
  } while (cursor !== '0');
  return n;
}

/** The sum of a metric's samples in Prometheus text whose labels contain every one of `labels`. */
const metricValue = (text, name, ...labels) => {
  let sum = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^(\w+)(\{[^}]*\})? ([-\d.e+]+|NaN)$/.exec(line);
    if (!m || m[1] !== name || !labels.every((l) => (m[2] ?? '').includes(l))) continue;
    sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
};

const leastSquaresSlope = (points) => {
  const n = points.length;
  if (n < 2) return null;
  const mx = points.reduce((a, p) => a + p[0], 0) / n;
  const my = points.reduce((a, p) => a + p[1], 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
  }
  return sxx ? sxy / sxx : null;
};

let server;
try {
  // --- the repo, its data backfilled and materialized, the server -------------------------
  log(`setting up ${ENTITIES} drivers x ${FEATURES.length} features and ${SENSORS} pushed sensors under ${prefix}`);
  await mkdir(join(repo, 'data'), { recursive: true });
  await writeFile(join(repo, 'drivers.ts'), DRIVERS_TS);
  await writeFile(join(repo, 'sensors.ts'), SENSORS_TS);
  const db = await DuckDBInstance.create(':memory:');
  const duck = await db.connect();
  const t0 = Date.now();
  snapshots.push({ at: t0 - 600_000, stepMs: 1000 });
  await writeDriverSources(duck);
  const setup = {};
  const apply = await run('apply', [LARDER, 'apply'], 120_000);
  if (apply.exitCode !== 0) throw new Error(`larder apply exited ${apply.exitCode}`);
  /** One cycle's backfill and materialize, of the snapshots up to `at`. */
  async function cycle(at) {
    const backfill = await run('backfill', [LARDER, 'backfill', '--start', iso(t0 - DAY_MS), '--end', iso(at + 1), '--views', VIEWS.map((v) => v.name).join(',')]);
    const materialize = backfill.exitCode === 0 ? await run('materialize', [LARDER, 'materialize', '--end', iso(at)]) : null;
    // The CLI's lines per view, e.g. "materialize driver_daily: 10,000 entities in (...]: 10,000 written in 0.4 s (...)".
    const views = materialize ? materialize.out.split('\n').filter((l) => /^materialize \w+: .*written/.test(l)) : null;
    return {
      backfill: { exitCode: backfill.exitCode, seconds: backfill.seconds },
      materialize: materialize ? { exitCode: materialize.exitCode, seconds: materialize.seconds, views } : { exitCode: null, skipped: 'backfill failed' },
    };
  }
  setup.first = await cycle(t0);
  if (setup.first.backfill.exitCode !== 0 || setup.first.materialize.exitCode !== 0) throw new Error(`first backfill/materialize failed: ${JSON.stringify(setup.first)}`);
  log(`    first backfill ${setup.first.backfill.seconds} s, materialize ${setup.first.materialize.seconds} s`);

  await writeGenerators();
  // PACED as is, plus a histogram of its latencies: the minutes' percentiles merge into the run's.
  await writeFile(join(dir, 'paced.mjs'), PACED_HISTOGRAM);
  await writeFile(join(dir, 'push.mjs'), PUSH);
  const bodies = async (entities) => {
    const file = join(dir, `bodies-${entities}.json`);
    const list = Array.from({ length: 2000 }, (_, r) =>
      JSON.stringify({ features: FEATURES, entities: { driver_id: Array.from({ length: entities }, (_, i) => (r * 7919 + i * 104729) % ENTITIES) }, full_feature_names: false }),
    );
    await writeFile(file, JSON.stringify(list));
    return file;
  };
  const one = await bodies(1);
  const hundred = await bodies(100);

  server = await start('larder serve', [LARDER, 'serve', '--port', '0'], larderEnv, /Larder serving on (http:\/\/127\.0\.0\.1:\d+)/);
  const url = server.match[1];
  const pid = server.child.pid;
  const stderrLines = [];
  let stderrTail = '';
  server.child.stderr.on('data', (d) => {
    const parts = (stderrTail + d).split('\n');
    stderrTail = parts.pop();
    stderrLines.push(...parts.filter(Boolean));
  });

  // Sanity: drivers served; a pushed reading shows in both sensor views.
  const post = (path, body) => fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
  const check = await (await post('/get-online-features', { features: FEATURES, entities: { driver_id: [42] } })).json();
  if (!check.results?.[1]?.statuses?.every((s) => s === 'PRESENT')) throw new Error(`drivers not served: ${JSON.stringify(check).slice(0, 400)}`);
  const pushed = await post('/push', { push_source_name: 'sensor_readings', to: 'online_and_offline', df: { sensor_id: ['s-probe'], event_timestamp: [Date.now()], value: [1], temperature: [2] } });
  if (pushed.status !== 200) throw new Error(`push refused: ${pushed.status} ${await pushed.text()}`);
  const sensorCheck = await (await post('/get-online-features', { features: ['sensor_stats:value_count_5m', 'sensor_latest:temperature'], entities: { sensor_id: ['s-probe'] } })).json();
  if (sensorCheck.results?.[1]?.values?.[0] !== 1 || sensorCheck.results?.[2]?.values?.[0] !== 2) throw new Error(`pushed reading not served: ${JSON.stringify(sensorCheck).slice(0, 400)}`);
  // Warm-up: a few seconds of the read load, not counted.
  await load(url, { bodies: one, connections: 32, rate: RATE, duration: 3, paced: true });

  // --- the soak -----------------------------------------------------------------------------
  log(`soak for ${DURATION} s: ${RATE} req/s of 1 x 20${RATE_100 ? `, ${RATE_100} req/s of 100 x 20` : ''}, ${PUSH_RATE} readings/s pushed, backfill + materialize every ${MATERIALIZE_EVERY} s`);
  const soakStart = performance.now();
  const elapsed = () => (performance.now() - soakStart) / 1000;
  const cpuStart = await cpuSeconds(pid);

  const samples = [];
  let metricsText = '';
  let readsOver15Before = 0;
  async function sample(last = false) {
    const t = round(elapsed(), 1);
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
    let heapUsed = null;
    let heapTotal = null;
    let external = null;
    let lagMaxMs = null;
    let lagP99Ms = null;
    let readsOver15 = null;
    try {
      metricsText = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
      heapUsed = metricValue(metricsText, 'larder_nodejs_heap_size_used_bytes');
      heapTotal = metricValue(metricsText, 'larder_nodejs_heap_size_total_bytes');
      external = metricValue(metricsText, 'larder_nodejs_external_memory_bytes');
      // Event-loop delay since the last scrape (prom-client resets its monitor on each).
      lagMaxMs = round(metricValue(metricsText, 'larder_nodejs_eventloop_lag_max_seconds') * 1000, 1);
      lagP99Ms = round(metricValue(metricsText, 'larder_nodejs_eventloop_lag_p99_seconds') * 1000, 1);
      // Reads the server itself took more than 15 ms over (its request histogram), since the last sample.
      const route = 'route="/get-online-features"';
      const over = (metricValue(metricsText, 'larder_http_request_duration_seconds_count', route) ?? 0) - (metricValue(metricsText, 'larder_http_request_duration_seconds_bucket', route, 'le="0.015"') ?? 0);
      readsOver15 = samples.length ? over - readsOver15Before : null;
      readsOver15Before = over;
    } catch {}
    const info = await redis.info('memory');
    const redisUsed = Number(/used_memory:(\d+)/.exec(info)?.[1] ?? NaN);
    const minuteMark = last || samples.length % 12 === 0;
    const files = await offlineFiles(minuteMark);
    const s = { t, rssMB: mb(rssKb * 1024), heapUsedMB: mb(heapUsed), heapTotalMB: mb(heapTotal), externalMB: mb(external), redisUsedMB: mb(redisUsed), offlineFiles: files.files, pushFiles: files.pushFiles, lagMaxMs, lagP99Ms, readsOver15, load1: round(loadavg()[0], 2) };
    if (minuteMark) {
      s.offlineMB = mb(files.bytes);
      s.prefixKeys = await prefixKeys();
    }
    samples.push(s);
  }
  await sample();
  let sampling = Promise.resolve();
  const sampler = setInterval(() => {
    if (stopping) return;
    sampling = sampling.then(sample).catch((err) => log(`    sample failed: ${err.message}`));
  }, SAMPLE_MS);
  timers.push(sampler);
  let reported = 0;
  const progress = setInterval(() => {
    const s = samples[samples.length - 1];
    if (s && s.t > reported) {
      reported = s.t;
      log(`  ${Math.round(s.t)} s: RSS ${s.rssMB} MB, heap ${s.heapUsedMB} MB, Redis ${s.redisUsedMB} MB, ${s.offlineFiles} offline files, load ${loadavg()[0].toFixed(2)}`);
    }
  }, WINDOW * 1000);
  timers.push(progress);

  /** Consecutive PACED segments of `WINDOW` s until the soak's time is up: one set of percentiles each. */
  async function reads(name, file, rate, connections) {
    const windows = [];
    while (!stopping) {
      const from = elapsed();
      const left = Math.floor(DURATION - from);
      if (left < 2) break;
      const seconds = Math.min(WINDOW, left);
      const r = await load(url, { bodies: file, connections, rate, duration: seconds, paced: true });
      if (!r.histogram) throw new Error('the read generator printed no histogram');
      windows.push({
        histogram: r.histogram,
        fromSec: round(from, 1), requests: r.requests, ratePerSec: round(r.rate, 0),
        p50Ms: round(r.p50), p99Ms: round(r.p99), p999Ms: round(r.p999), maxMs: round(r.max),
        non2xx: r.non2xx, errors: r.errors, unanswered: r.unanswered ?? 0, resent: r.resent ?? 0,
      });
      const w = windows[windows.length - 1];
      log(`    ${name} from ${w.fromSec} s: ${w.ratePerSec} req/s, p50 ${w.p50Ms} ms, p99 ${w.p99Ms} ms, p999 ${w.p999Ms} ms${w.non2xx || w.errors || w.unanswered ? `, non2xx ${w.non2xx} errors ${w.errors} unanswered ${w.unanswered}` : ''}`);
    }
    return windows;
  }

  function pushes() {
    if (!PUSH_RATE) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const c = spawn(process.execPath, [join(dir, 'push.mjs')], {
        cwd: ROOT,
        env: { ...process.env, PUSH: JSON.stringify({ url, rate: PUSH_RATE, duration: DURATION, batch: PUSH_BATCH, sensors: SENSORS, connections: PUSH_CONNECTIONS, window: WINDOW }) },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(c);
      const watchdog = setTimeout(() => c.kill('SIGKILL'), (DURATION + 60) * 1000);
      let out = '';
      c.stdout.on('data', (d) => (out += d));
      c.on('exit', (code) => {
        clearTimeout(watchdog);
        if (code === 0) resolve(JSON.parse(out.trim().split('\n').pop()));
        else reject(new Error(`push producer exited ${code}: ${out}`));
      });
    });
  }

  /** Backfill + materialize at every MATERIALIZE_EVERY s mark before the end; a cycle that overruns delays the next. */
  async function cycles() {
    const runs = [];
    for (let k = 1; k * MATERIALIZE_EVERY < DURATION; k++) {
      // In steps of at most a second, so that a failing bench does not wait for the next mark.
      while (!stopping && k * MATERIALIZE_EVERY > elapsed()) await new Promise((r) => setTimeout(r, Math.min(1000, (k * MATERIALIZE_EVERY - elapsed()) * 1000)));
      if (stopping || elapsed() >= DURATION) break;
      const at = Date.now();
      snapshots.push({ at, stepMs: 1 });
      await writeDriverSources(duck);
      const fromSec = round(elapsed(), 1);
      const result = await cycle(at);
      runs.push({ fromSec, ...result });
      const m = result.materialize;
      log(`    cycle at ${fromSec} s: backfill ${result.backfill.seconds} s (exit ${result.backfill.exitCode}), materialize ${m.seconds} s (exit ${m.exitCode}) ${JSON.stringify(m.views ?? [])}`);
    }
    return runs;
  }

  const [reads1, reads100, pushResult, cycleRuns] = await Promise.all([
    reads('1x20', one, RATE, 32),
    RATE_100 ? reads('100x20', hundred, RATE_100, 8) : Promise.resolve(null),
    pushes(),
    cycles(),
  ]);
  clearInterval(sampler);
  clearInterval(progress);
  await sampling;
  await sample(true);
  const cpuEnd = await cpuSeconds(pid);
  const soakSeconds = elapsed();

  // --- the end: health, metrics, figures ------------------------------------------------------
  let health = { status: 0, body: null };
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(5000) });
    health = { status: res.status, body: (await res.text()).slice(0, 300) };
  } catch (err) {
    health = { status: 0, body: String(err) };
  }
  const storeErrors = Object.fromEntries(['online', 'registry', 'offline'].map((s) => [s, metricValue(metricsText, 'larder_store_errors_total', `store="${s}"`)]));
  const http5xx = (metricsText.match(/^larder_http_request_duration_seconds_count\{[^}]*status="5\d\d"[^}]*\} (\d+)/gm) ?? []).reduce((a, l) => a + Number(l.split(' ').pop()), 0);
  const errorLines = stderrLines.filter((l) => /error/i.test(l));

  const readSummary = (windows, rate, bound) => {
    if (!windows) return null;
    const sum = (f) => windows.reduce((a, w) => a + f(w), 0);
    const all = mergeHistograms(windows.map((w) => w.histogram));
    const requests = sum((w) => w.requests);
    return {
      targetRate: rate,
      requests,
      non2xx: sum((w) => w.non2xx),
      errors: sum((w) => w.errors),
      unanswered: sum((w) => w.unanswered),
      // Over the whole run: from the windows' histograms merged, within 1 % (rounded up).
      p50Ms: round(percentileOf(all, 0.5)),
      p99Ms: round(percentileOf(all, 0.99)),
      p999Ms: round(percentileOf(all, 0.999)),
      maxMs: Math.max(...windows.map((w) => w.maxMs)),
      p99MsWorstWindow: Math.max(...windows.map((w) => w.p99Ms)),
      windowsOverBound: windows.filter((w) => w.p99Ms > bound).length,
      bound,
      // Each window's own, exact.
      windows: windows.map(({ histogram, ...w }) => w),
    };
  };
  const r1 = readSummary(reads1, RATE, TARGETS.p99Ms1x20);
  const r100 = readSummary(reads100, RATE_100, TARGETS.p99Ms100x20);

  const settled = samples.filter((s) => s.t >= WARMUP_SEC);
  const atWarmup = settled[0] ?? samples[0];
  const atEnd = samples[samples.length - 1];
  const slope = (field) => {
    const points = settled.filter((s) => s[field] !== null && !Number.isNaN(s[field])).map((s) => [s.t / 60, s[field]]);
    return round(leastSquaresSlope(points), 3);
  };
  // Single samples swing with the GC (heap used by tens of MB between two collections, RSS with
  // it): the judged figures are the heap's floor per span (its least value, what the collections
  // leave) and RSS medians over the first and the last span after warm-up.
  const spanSec = Math.min(60, DURATION / 3);
  const floors = [];
  for (const s of settled) {
    if (s.heapUsedMB === null) continue;
    const i = Math.floor((s.t - WARMUP_SEC) / spanSec);
    floors[i] ??= { n: 0, at: null };
    floors[i].n++;
    if (!floors[i].at || s.heapUsedMB < floors[i].at[1]) floors[i].at = [s.t, s.heapUsedMB];
  }
  // A span with less than half its samples (the last, cut short) has no floor to speak of.
  const heapFloors = floors.filter((f) => f && f.n >= spanSec / (SAMPLE_MS / 1000) / 2).map((f) => f.at);
  const heapSlope = slope('heapUsedMB');
  const floorSlope = round(leastSquaresSlope(heapFloors.map(([t, v]) => [t / 60, v])), 3);
  const median = (xs) => {
    const v = xs.filter((x) => x !== null && !Number.isNaN(x)).sort((a, b) => a - b);
    return v.length ? v[Math.floor(v.length / 2)] : null;
  };
  const rssFirst = median(settled.filter((s) => s.t < WARMUP_SEC + spanSec).map((s) => s.rssMB));
  const rssLast = median(samples.filter((s) => s.t > atEnd.t - spanSec).map((s) => s.rssMB));
  const rssGrowthPct = rssFirst ? round(((rssLast - rssFirst) / rssFirst) * 100, 1) : null;
  const memory = {
    warmupSec: round(WARMUP_SEC, 1),
    sampleEverySec: SAMPLE_MS / 1000,
    spanSec: round(spanSec, 1),
    rssMB: {
      atWarmup: atWarmup.rssMB, atEnd: atEnd.rssMB, max: Math.max(...samples.map((s) => s.rssMB)), slopeMBPerMin: slope('rssMB'),
      medianFirstSpan: rssFirst, medianLastSpan: rssLast, growthPct: rssGrowthPct,
    },
    heapUsedMB: {
      atWarmup: atWarmup.heapUsedMB, atEnd: atEnd.heapUsedMB, max: Math.max(...samples.map((s) => s.heapUsedMB ?? 0)), slopeMBPerMin: heapSlope,
      floors: heapFloors, floorSlopeMBPerMin: floorSlope,
    },
    heapTotalMB: { atWarmup: atWarmup.heapTotalMB, atEnd: atEnd.heapTotalMB },
    externalMB: { atWarmup: atWarmup.externalMB, atEnd: atEnd.externalMB, slopeMBPerMin: slope('externalMB') },
    redisUsedMB: { atStart: samples[0].redisUsedMB, atWarmup: atWarmup.redisUsedMB, atEnd: atEnd.redisUsedMB, slopeMBPerMin: slope('redisUsedMB'), note: 'the whole Redis instance' },
    prefixKeys: samples.filter((s) => s.prefixKeys !== undefined).map((s) => [s.t, s.prefixKeys]),
    offlineFiles: { atStart: samples[0].offlineFiles, atEnd: atEnd.offlineFiles, pushFilesAtEnd: atEnd.pushFiles, perMinute: round(((atEnd.offlineFiles - samples[0].offlineFiles) / soakSeconds) * 60, 0) },
    offlineMB: samples.filter((s) => s.offlineMB !== undefined).map((s) => [s.t, s.offlineMB]),
    eventLoopLagMaxMs: Math.max(...samples.map((s) => s.lagMaxMs ?? 0)),
    samplesFields: ['t s', 'RSS MB', 'heap used MB', 'Redis used MB', 'offline files', 'event-loop lag max ms', 'reads over 15 ms in the server', 'load average 1 min'],
    samples: samples.map((s) => [s.t, s.rssMB, s.heapUsedMB, s.redisUsedMB, s.offlineFiles, s.lagMaxMs, s.readsOver15, s.load1]),
  };

  const cycleFailures = cycleRuns.filter((c) => c.backfill.exitCode !== 0 || c.materialize.exitCode !== 0).length;
  const errors = {
    reads1x20: r1 ? r1.non2xx + r1.errors + r1.unanswered : 0,
    reads100x20: r100 ? r100.non2xx + r100.errors + r100.unanswered : 0,
    pushes: pushResult ? pushResult.failed + pushResult.unanswered : 0,
    cycles: cycleFailures,
    healthAtEnd: health.status,
    serverStderrErrorLines: errorLines.length,
    storeErrors,
    http5xx,
  };
  const noErrors =
    errors.reads1x20 === 0 && errors.reads100x20 === 0 && errors.pushes === 0 && cycleFailures === 0 && health.status === 200 && errorLines.length === 0 && Object.values(storeErrors).every((v) => v === 0) && http5xx === 0;
  const memoryFlat = floorSlope !== null && floorSlope < TARGETS.heapSlopeMBPerMin && rssGrowthPct !== null && rssGrowthPct < TARGETS.rssGrowthPct;
  const p99WithinBounds = r1.p99Ms <= TARGETS.p99Ms1x20 && (!r100 || r100.p99Ms <= TARGETS.p99Ms100x20);
  const p99WithinBoundsEveryWindow = r1.windowsOverBound === 0 && (!r100 || r100.windowsOverBound === 0);

  console.log(
    JSON.stringify({
      durationSec: DURATION,
      soakSec: round(soakSeconds, 1),
      windowSec: WINDOW,
      machine: { cores: cpus().length, loadAverageBefore: loadBefore, loadAverageAfter: loadavg().map((x) => Number(x.toFixed(2))) },
      setup: { drivers: ENTITIES, features: FEATURES.length, sensors: SENSORS, firstBackfillSec: setup.first.backfill.seconds, firstMaterializeSec: setup.first.materialize.seconds },
      reads1x20: r1,
      reads100x20: r100,
      pushes: pushResult && {
        targetReadingsPerSec: PUSH_RATE,
        batch: PUSH_BATCH,
        batches: pushResult.batches,
        readings: pushResult.readings,
        readingsPerSec: round(pushResult.readingsPerSec, 0),
        failed: pushResult.failed,
        unanswered: pushResult.unanswered,
        lateRows: pushResult.lateRows,
        firstError: pushResult.firstError || undefined,
        p50Ms: round(pushResult.p50Ms, 1),
        p99Ms: round(pushResult.p99Ms, 1),
        maxMs: round(pushResult.maxMs, 1),
        windows: pushResult.windows.map((w) => ({ ...w, p50Ms: round(w.p50Ms, 1), p99Ms: round(w.p99Ms, 1), maxMs: round(w.maxMs, 1) })),
      },
      cycles: { everySec: MATERIALIZE_EVERY, count: cycleRuns.length, failures: cycleFailures, runs: cycleRuns },
      memory,
      server: {
        cpuCoresAvg: cpuStart !== null && cpuEnd !== null ? round((cpuEnd - cpuStart) / soakSeconds, 3) : null,
        health,
        stderrLines: stderrLines.length,
        stderrErrorLines: errorLines.length,
        stderrErrorSample: errorLines.slice(0, 5).map((l) => l.slice(0, 300)),
        storeErrors,
        http5xx,
        lateEvents: metricValue(metricsText, 'larder_late_events_total'),
        // Of the soak's reads, those the server itself took over 15 ms (beside the generator's latencies: time in the server vs elsewhere).
        readsOver15msInServer: samples.reduce((a, x) => a + (x.readsOver15 ?? 0), 0),
        eventLoopLagMaxMs: memory.eventLoopLagMaxMs,
      },
      errors,
      targets: TARGETS,
      pass: { memoryFlat, noErrors, p99WithinBounds, p99WithinBoundsEveryWindow, all: memoryFlat && noErrors && p99WithinBounds },
    }),
  );
  duck.closeSync();
  db.closeSync();
} finally {
  stopping = true;
  for (const t of timers) clearInterval(t);
  // Everything stopped (the server flushes its pushes on SIGTERM) before the keys go.
  await Promise.all(
    children.map(
      (child) =>
        new Promise((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
          child.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
  redis.disconnect();
  await rm(dir, { recursive: true, force: true });
}
