#!/usr/bin/env node
// Prediction benchmark: `larder serve` (its own process) answering POST /predict/{model} for the
// two example models, with local Redis as the online store (a unique key prefix, deleted at the
// end), loaded over loopback by a load generator in another process (bench/lib/http-load.mjs).
// Setup, as a user runs it, in a temp dir: the example definitions, `larder sample-data` (20,000
// reviews, --readings weld readings), apply, backfill, `larder train review_sentiment` and
// `larder train weld_failure`; review_text materialized into Redis; weld readings pushed into the
// store's tiles for --welds welds, one a second for the last hour (pushed forward in time chunk by
// chunk, each judged on its own clock, so every tile of the 1m/10m/1h windows holds data), topped
// up to now before the weld phase so every window is live while it is loaded.
// Three servers: Larder with the serving log on (LARDER_SERVING_LOG=on), Larder with it off, and a
// baseline (node:http + ioredis, its own process) that for a review id does the one HMGET of the
// review's record a prediction needs and answers a small fixed JSON: what this machine allows at
// that rate with one Redis read a request. Before any load every kind of request is checked to
// answer 200 with a prediction (a review's word_counts a 62,000-wide sparse vector).
//
// Phases, each bounded by --duration s (a fixed-rate phase the server cannot keep up with stops at
// --duration + 10 s, what is not answered by then counted as `unanswered`, with the time it waited),
// one request a single entity or text, 2,000 bodies each (review ids all distinct; weld bodies
// cycle over the --welds welds):
//   (a) review by id at a fixed --rate req/s (default 2,000), open loop (PACED): p99 from each
//       request's due time, and the rate achieved; Larder (log on),               target p99 <= 5 ms
//       then the log-off server and the baseline the same way (what the log costs in latency, and
//       what this machine allows at that rate);
//   (b) weld by id at --rate req/s, open loop (log on);                          target p99 <= 5 ms
//   (c) review from raw text ({"inputs":{"text":[...]}}) at --rate req/s (log on): informative
//   (d) review by id, no rate limit, autocannon with 50 connections, the log-on and log-off
//       servers in 3 alternating rounds; throughput ratio log on / log off;           target >= 0.9
// Each phase reports the CPU time the server and the load generator spent per request (/proc);
// before each, the servers are let go idle (a serving log write of the phase before finishes).
// Last, the log-on server's serving log must hold every prediction it answered: its
// larder_predictions_total is read from /metrics, it is stopped with SIGTERM (it writes what is
// pending on close), and the rows of <home>/offline/_serving_log/<model>/date=*/*.parquet are
// counted with DuckDB and compared with it and with the 2xx answers the clients counted (a lower
// bound: autocannon drops answers still in flight when its time is up). Prints one JSON line.
// About 3.5 minutes at the default duration, of which setup about 30 s.
//   REDIS_URL=redis://127.0.0.1:6379 node bench/predict.bench.mjs [--duration 15] [--rate 2000] [--welds 100] [--readings 200000] [--phases a,b,c,d] [--profile DIR]
import { register as registerTsx } from 'tsx/esm/api';
import { register } from 'node:module';
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { combine, cpuSeconds, loadKit, phaseSummary, round } from './lib/http-load.mjs';

registerTsx();
register('../bin/resolve-larder.mjs', import.meta.url);

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const DURATION = Number(arg('duration', '15'));
const RATE = Number(arg('rate', '2000'));
/** Welds whose readings are pushed (the sample's 10 and more modelled on them); weld bodies cycle over them. */
const WELDS = Number(arg('welds', '100'));
const READINGS = Number(arg('readings', '200000'));
const PHASES = new Set(arg('phases', 'a,b,c,d').split(','));
/** --profile DIR: CPU profiles of the two Larder servers (written when they stop) and the baseline, under DIR/{log-on,log-off,baseline}. */
const PROFILE_DIR = arg('profile', undefined);
const profile = (name) => (PROFILE_DIR ? ['--cpu-prof', '--cpu-prof-dir', join(PROFILE_DIR, name)] : []);
const REVIEWS = 20_000; // `larder sample-data`'s default
const BODIES = 2000;
const CONNECTIONS_PACED = 64;
const CONNECTIONS_MAX = 50;
const ROUNDS = 3;
const TARGETS = { p99Ms: 5, rate: RATE, logThroughputRatio: 0.9 };
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = join(ROOT, 'bin', 'larder.mjs');
const prefix = `bench:predict:${randomBytes(4).toString('hex')}:`;
const log = (line) => process.stderr.write(`${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
if (!(DURATION > 0 && RATE > 0 && Number.isInteger(WELDS) && WELDS >= 1 && WELDS <= 1000)) throw new Error('--duration, --rate: positive; --welds: 1 to 1000');

const { DuckDBInstance } = await import('@duckdb/node-api');
const { Redis } = await import('ioredis');
const { loadDefinitions } = await import('../src/definitions/loader.ts');
const { tileLayout } = await import('../src/streaming/tiles.ts');
const { materialize } = await import('../src/materialize/materialize.ts');
const { openOnlineStore } = await import('../src/online/open.ts');
const { FileRegistry } = await import('../src/registry/file.ts');
const { push } = await import('../src/serving/push.ts');
const { PushFileWriter } = await import('../src/serving/push-offline.ts');

/**
 * The baseline: node:http + ioredis; for {"entities":{"review_id":[id]}} the HMGET of the
 * review's record (`<prefix>{review_id=<id>}`, field review_text: src/online/redis/store.ts keyOf,
 * src/online/entity-key.ts), for {"entities":{"weld_id":[id]}} the HMGET of the ~180 tile fields
 * of the weld's tile record a read at now needs (undecoded); then a small fixed JSON (404 when
 * nothing is there).
 */
const BASELINE = `
import http from 'node:http';
import { Redis } from ${JSON.stringify(import.meta.resolve('ioredis'))};
const { prefix, redisUrl, weldTiles } = JSON.parse(process.env.BASELINE);
const redis = new Redis(redisUrl);
// A weld: the HMGET of the tile fields a read at now needs (streaming/tiles.ts tilesToRead), no decoding.
const weldFields = (t) => weldTiles.sizes.flatMap((s) => {
  const out = [];
  for (let i = Math.floor((t - s.maxWindowMs) / s.tileMs); i <= Math.floor(t / s.tileMs); i++) out.push(s.tileMs + ':' + i);
  return out;
});
const escape = (t) => t.replace(/[%{}&=]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
const key = (id) => prefix + '{review_id=' + escape(id) + '}';
const ANSWER = '{"model":"baseline","predictions":[{"prediction":1,"probability":0.9,"needs_review":false}]}';
async function answer(body) {
  const entities = JSON.parse(body).entities;
  if (entities.weld_id) {
    const tiles = await redis.hmgetBuffer(prefix + '{weld_id=' + escape(entities.weld_id[0]) + '}:tiles:weld_sensor_stats:' + weldTiles.fingerprint, ...weldFields(Date.now()));
    return tiles.some(Boolean) ? ANSWER : null;
  }
  const id = entities.review_id[0];
  const [payload] = await redis.hmgetBuffer(key(id), 'review_text');
  return payload ? ANSWER : null;
}
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    answer(Buffer.concat(chunks).toString()).then(
      (out) => {
        if (out === null) { res.writeHead(404, { 'content-type': 'application/json', 'content-length': 2 }); res.end('{}'); return; }
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) }); res.end(out);
      },
      (err) => { res.writeHead(500); res.end(String(err)); },
    );
  });
});
server.listen(0, '127.0.0.1', () => console.log('baseline serving on http://127.0.0.1:' + server.address().port));
process.on('SIGTERM', () => { server.close(); redis.disconnect(); });
`;

const dir = await mkdtemp(join(tmpdir(), 'larder-bench-predict-'));
// The machine's load before anything starts: the phases share it with whatever else runs.
const loadBefore = loadavg().map((x) => Number(x.toFixed(2)));
const redis = new Redis(REDIS_URL);
const { children, start, load, writeGenerators } = loadKit({ dir, cwd: ROOT });
const repo = join(dir, 'repo');
const home = join(dir, 'home');
const offlineDir = join(home, 'offline');
const registryFile = join(home, 'registry.json');
// Every setting a child reads, given here, so none comes from the caller's environment.
const larderEnv = {
  LARDER_REPO: repo,
  LARDER_HOME: home,
  LARDER_OFFLINE: offlineDir,
  LARDER_REGISTRY: `file:${registryFile}`,
  LARDER_ONLINE: REDIS_URL,
  LARDER_ONLINE_PREFIX: prefix,
  LARDER_API_KEYS: '',
  LARDER_HOST: '127.0.0.1',
};

/** `larder <args>` as a user runs it (node bin/larder.mjs), bounded in time; its stdout. */
function larder(...args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, env: { ...process.env, ...larderEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`larder ${args.join(' ')} ${signal ? `killed (${signal})` : `exited ${code}`}: ${err.slice(-2000)}`));
    });
  });
}

/** Rows of a query, as objects, from a throwaway in-memory DuckDB. */
async function query(sql) {
  const db = await DuckDBInstance.create(':memory:');
  const c = await db.connect();
  try {
    return (await c.runAndReadAll(sql)).getRowObjectsJson();
  } finally {
    c.closeSync();
    db.closeSync();
  }
}
const sqlString = (s) => `'${s.replace(/'/g, "''")}'`;

/** Waits until the processes use (almost) no CPU for a moment, at most `maxMs`: a serving log write or GC of the phase before is done. */
async function quiesce(pids, maxMs = 8000) {
  const until = Date.now() + maxMs;
  let last = await Promise.all(pids.map(cpuSeconds));
  let calm = 0;
  while (Date.now() < until && calm < 600) {
    await sleep(200);
    const now = await Promise.all(pids.map(cpuSeconds));
    const busy = now.some((c, i) => c !== null && last[i] !== null && c - last[i] > 0.02);
    last = now;
    calm = busy ? 0 : calm + 200;
  }
}

/** 2xx answers the clients counted, per model, from the log-on server (sanity, unloaded, warm-up and phases). */
const answeredOn = { review_sentiment: 0, weld_failure: 0 };
const ok2xx = (r) => Math.max(0, r.requests - r.non2xx - (r.unanswered ?? 0));
let store;
let files;

try {
  // --- the example repo: sample data, apply, backfill, train -------------------------------
  log(`setting up in ${dir}: sample data (${REVIEWS} reviews, ${READINGS} readings), apply, backfill, train`);
  const began = performance.now();
  await cp(join(ROOT, 'feature-definitions'), repo, { recursive: true, filter: (src) => !/[\\/](\.larder|data)$/.test(src) });
  await larder('sample-data', '--readings', String(READINGS));
  await larder('apply');
  // The sample's range: reviews over 60 days from 2024-01-01, readings over its first day.
  await larder('backfill', '--start', '2023-12-31T00:00:00Z', '--end', '2024-03-05T00:00:00Z');
  await larder('train', 'review_sentiment');
  await larder('train', 'weld_failure');

  // --- online: review_text materialized, weld readings pushed into tiles, under the prefix -----
  const defs = await loadDefinitions(repo);
  const registry = new FileRegistry(registryFile);
  store = await openOnlineStore(REDIS_URL, { prefix, commandTimeoutMs: 30_000 });
  files = new PushFileWriter(offlineDir);
  const wordCounts = (await registry.latestModel('review_sentiment'))?.features.find((f) => f.name === 'word_counts');
  if (wordCounts?.type !== 'sparse(62000)') throw new Error(`review_sentiment: expected a word_counts feature of sparse(62000), got ${JSON.stringify(wordCounts)}`);
  const materialized = await materialize({ defs, offlineDir, store, registry, end: Date.now(), views: ['review_text'] });
  await registry.close();
  log(`materialized review_text: ${JSON.stringify(materialized.views.map((v) => ({ rows: v.rows, written: v.written })))}`);

  // Values of the pushed readings: the sample's own, per sample weld in time order; pushed weld j
  // replays sample weld j mod 10 from an offset of its own.
  const sampleRows = await query(
    `SELECT weld_id, amplitude, temperature, pressure FROM read_parquet(${sqlString(join(repo, 'data', 'weld_readings.parquet'))}) ORDER BY weld_id, event_timestamp, sensor_id`,
  );
  const bySampleWeld = new Map();
  for (const r of sampleRows) {
    let list = bySampleWeld.get(r.weld_id);
    if (!list) bySampleWeld.set(r.weld_id, (list = []));
    list.push(r);
  }
  const sampleWelds = [...bySampleWeld.values()];
  const weldIds = Array.from({ length: WELDS }, (_, j) => `W${String(j + 1).padStart(4, '0')}`);
  /** Pushes one reading a second for every weld, for the seconds (from, to], online only, judged on `clock`. */
  async function pushSeconds(from, to, clock) {
    const df = { weld_id: [], event_timestamp: [], amplitude: [], temperature: [], pressure: [] };
    for (let s = from + 1; s <= to; s++) {
      weldIds.forEach((weld, j) => {
        const readings = sampleWelds[j % sampleWelds.length];
        const r = readings[(s + j * 997) % readings.length];
        df.weld_id.push(weld);
        df.event_timestamp.push(s * 1000 + (j % 1000)); // spread within the second
        df.amplitude.push(r.amplitude);
        df.temperature.push(r.temperature);
        df.pressure.push(r.pressure);
      });
    }
    if (df.weld_id.length === 0) return { rows: 0, late: 0 };
    const result = await push({ defs, store, files, clock: () => clock }, { pushSource: 'weld_readings', to: 'online', df });
    return { rows: result.rows, late: result.late.reduce((n, l) => n + l.rows, 0) };
  }
  let pushedUpTo = Math.floor(Date.now() / 1000) - 3600;
  /** Readings up to now, a minute of pushes at a time, each on the clock of its last second. */
  async function pushUntilNow() {
    let rows = 0;
    let late = 0;
    for (let now = Math.floor(Date.now() / 1000); pushedUpTo < now; now = Math.floor(Date.now() / 1000)) {
      const to = Math.min(now, pushedUpTo + 60);
      const r = await pushSeconds(pushedUpTo, to, to * 1000 + 999);
      rows += r.rows;
      late += r.late;
      pushedUpTo = to;
    }
    return { rows, late };
  }
  const pushed = await pushUntilNow();
  if (pushed.late) throw new Error(`weld readings: ${pushed.late} of ${pushed.rows} pushed too late to update tiles`);
  log(`pushed ${pushed.rows} weld readings (${WELDS} welds, one a second over the last hour); setup took ${round((performance.now() - began) / 1000, 1)} s`);

  // --- request bodies ---------------------------------------------------------------------
  const reviewIds = Array.from({ length: BODIES }, (_, r) => `r${String(((r * 7919) % REVIEWS) + 1).padStart(7, '0')}`);
  const texts = new Map(
    (await query(`SELECT review_id, text FROM read_parquet(${sqlString(join(repo, 'data', 'reviews.parquet'))}) WHERE review_id IN (${reviewIds.map(sqlString).join(', ')})`)).map((r) => [
      r.review_id,
      r.text,
    ]),
  );
  if (texts.size !== BODIES) throw new Error(`reviews.parquet: found ${texts.size} of ${BODIES} review texts`);
  const bodyFile = async (name, list) => {
    const file = join(dir, `bodies-${name}.json`);
    await writeFile(file, JSON.stringify(list.map((b) => JSON.stringify(b))));
    return file;
  };
  const bodies = {
    review: await bodyFile('review', reviewIds.map((id) => ({ entities: { review_id: [id] } }))),
    weld: await bodyFile('weld', Array.from({ length: BODIES }, (_, r) => ({ entities: { weld_id: [weldIds[(r * 37) % WELDS]] } }))),
    text: await bodyFile('text', reviewIds.map((id) => ({ inputs: { text: [texts.get(id)] } }))),
  };
  const KINDS = {
    review: { path: '/predict/review_sentiment', model: 'review_sentiment', bodies: bodies.review },
    weld: { path: '/predict/weld_failure', model: 'weld_failure', bodies: bodies.weld },
    text: { path: '/predict/review_sentiment', model: 'review_sentiment', bodies: bodies.text },
  };

  // --- the servers --------------------------------------------------------------------------
  await writeFile(join(dir, 'baseline.mjs'), BASELINE);
  const weldLayout = tileLayout(defs.views.get('weld_sensor_stats'));
  const weldTileSpec = { fingerprint: weldLayout.fingerprint, sizes: weldLayout.sizes.map((s) => ({ tileMs: s.tileMs, maxWindowMs: s.maxWindowMs })) };
  await writeGenerators();
  const ready = /Larder serving on (http:\/\/127\.0\.0\.1:\d+)/;
  const on = await start('larder serve (serving log on)', [...profile('log-on'), BIN, 'serve', '--port', '0'], { ...larderEnv, LARDER_SERVING_LOG: 'on' }, ready);
  const off = await start('larder serve (serving log off)', [...profile('log-off'), BIN, 'serve', '--port', '0'], { ...larderEnv, LARDER_SERVING_LOG: 'off' }, ready);
  const baseline = await start('baseline', [...profile('baseline'), join(dir, 'baseline.mjs')], { BASELINE: JSON.stringify({ prefix, redisUrl: REDIS_URL, weldTiles: weldTileSpec }) }, /baseline serving on (http:\/\/127\.0\.0\.1:\d+)/);
  const onUrl = on.match[1];
  const offUrl = off.match[1];
  const baselineUrl = baseline.match[1];
  // What the log-on server says after it started (a serving log that drops or fails says so).
  let onStderr = '';
  on.child.stderr.on('data', (d) => (onStderr += d));
  const pids = [on.child.pid, off.child.pid, baseline.child.pid];

  async function post(url, path, body) {
    const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const text = await res.text();
    if (url === onUrl && res.status >= 200 && res.status < 300) answeredOn[path.slice('/predict/'.length)]++;
    return { status: res.status, text };
  }

  // --- sanity: every kind of request answers a prediction, on every server ----------------
  const listOf = async (file) => JSON.parse(await readFile(file, 'utf8'));
  const sanity = {};
  for (const [kind, k] of Object.entries(KINDS)) {
    const list = await listOf(k.bodies);
    let flagged = 0;
    const sample = 100;
    for (let i = 0; i < sample; i++) {
      for (const url of i === 0 ? [onUrl, offUrl] : [onUrl]) {
        const { status, text } = await post(url, k.path, list[i]);
        if (status !== 200) throw new Error(`${kind}: ${url}${k.path} answered ${status}: ${text.slice(0, 400)}`);
        const json = JSON.parse(text);
        const p = json.predictions?.[0];
        if (json.model !== k.model || json.predictions.length !== 1 || !(p.prediction === 0 || p.prediction === 1) || !Number.isFinite(p.probability)) {
          throw new Error(`${kind}: not one prediction of ${k.model}: ${text.slice(0, 400)}`);
        }
        if (p.missing_features) throw new Error(`${kind}: features missing: ${p.missing_features.join(', ')} (${list[i]})`);
        if (kind !== 'weld') {
          const wc = p.features.word_counts;
          if (!wc || !Array.isArray(wc.indices) || wc.indices.length === 0 || wc.indices.length !== wc.values.length || Math.max(...wc.indices) >= 62_000) {
            throw new Error(`${kind}: word_counts is not a sparse vector of the 62,000 buckets: ${JSON.stringify(wc).slice(0, 200)}`);
          }
        } else if (!(p.features.amplitude_count_1m > 0 && p.features.amplitude_count_1h > 0)) {
          throw new Error(`weld: windows not live: ${JSON.stringify(p.features).slice(0, 300)}`);
        }
        if (url === onUrl && p.needs_review) flagged++;
      }
    }
    sanity[kind] = { checked: sample, needsReviewFraction: round(flagged / sample, 2) };
  }
  // The same review by id and from its text: the same features (the transform backfill ran).
  {
    const [byId, byText] = [JSON.parse((await post(onUrl, KINDS.review.path, (await listOf(bodies.review))[0])).text), JSON.parse((await post(onUrl, KINDS.text.path, (await listOf(bodies.text))[0])).text)];
    if (JSON.stringify(byId.predictions[0].features) !== JSON.stringify(byText.predictions[0].features)) throw new Error('review by id and from its text: different features');
  }
  for (const body of (await listOf(bodies.review)).slice(0, 20)) {
    const { status, text } = await post(baselineUrl, KINDS.review.path, body);
    if (status !== 200) throw new Error(`baseline answered ${status} for ${body}: the record key is not the one Larder reads (${text})`);
  }
  log(`sanity: ${JSON.stringify(sanity)}`);

  /** Unloaded latency: one request after another from this process (fetch, keep-alive). */
  async function sequential(url, kind, count = 200) {
    const list = await listOf(KINDS[kind].bodies);
    const times = [];
    for (let i = 0; i < count + 20; i++) {
      const t = performance.now();
      const { status } = await post(url, KINDS[kind].path, list[i % list.length]);
      if (status !== 200) throw new Error(`unloaded ${kind}: ${status}`);
      if (i >= 20) times.push(performance.now() - t);
    }
    times.sort((x, y) => x - y);
    return { p50Ms: round(times[Math.floor(count / 2)]), p99Ms: round(times[Math.floor(count * 0.99)]) };
  }
  const unloaded = {
    review: await sequential(onUrl, 'review'),
    reviewBaseline: await sequential(baselineUrl, 'review'),
    weld: await sequential(onUrl, 'weld'),
    text: await sequential(onUrl, 'text'),
  };
  log(`unloaded, one request at a time: ${JSON.stringify(unloaded)}`);

  /** A load of one kind; answers of the log-on server are counted for the serving log check. */
  async function run(url, kind, options, pid) {
    const k = KINDS[kind];
    const result = await load(url, { path: k.path, bodies: k.bodies, ...options }, pid);
    if (url === onUrl) answeredOn[k.model] += ok2xx(result);
    return result;
  }
  const paced = (url, kind, pid, duration = DURATION) => run(url, kind, { connections: CONNECTIONS_PACED, rate: RATE, duration, paced: true }, pid);

  log('warming up the servers');
  for (const kind of ['review', 'weld', 'text']) await run(onUrl, kind, { connections: 20, duration: 2 });
  await run(offUrl, 'review', { connections: 20, duration: 2 });
  await run(baselineUrl, 'review', { connections: 20, duration: 2 });

  let a;
  let aOff;
  let aBaseline;
  let b;
  let bBaseline;
  let c;
  let dOn;
  let dOff;
  if (PHASES.has('a')) {
    log(`(a) review by id at ${RATE} req/s for ${DURATION} s`);
    await quiesce(pids);
    a = await paced(onUrl, 'review', on.child.pid);
    log(`    Larder:   ${JSON.stringify(phaseSummary(a))}`);
    await quiesce(pids);
    aOff = await paced(offUrl, 'review', off.child.pid);
    log(`    log off:  ${JSON.stringify(phaseSummary(aOff))}`);
    await quiesce(pids);
    aBaseline = await paced(baselineUrl, 'review', baseline.child.pid);
    log(`    baseline: ${JSON.stringify(phaseSummary(aBaseline))}`);
  }
  if (PHASES.has('b')) {
    // Readings up to now, so the 1-minute window is live throughout.
    const topUp = await pushUntilNow();
    log(`(b) weld by id at ${RATE} req/s for ${DURATION} s (pushed ${topUp.rows} more readings, up to now)`);
    await quiesce(pids);
    b = await paced(onUrl, 'weld', on.child.pid);
    log(`    Larder:   ${JSON.stringify(phaseSummary(b))}`);
    await quiesce(pids);
    bBaseline = await paced(baselineUrl, 'weld', baseline.child.pid);
    log(`    baseline: ${JSON.stringify(phaseSummary(bBaseline))}`);
  }
  if (PHASES.has('c')) {
    log(`(c) review from raw text at ${RATE} req/s for ${DURATION} s`);
    await quiesce(pids);
    c = await paced(onUrl, 'text', on.child.pid);
    log(`    Larder:   ${JSON.stringify(phaseSummary(c))}`);
  }
  if (PHASES.has('d')) {
    // Alternating rounds, so both servers see the same machine: a neighbour's load comes and goes.
    const each = Math.max(2, Math.round(DURATION / ROUNDS));
    log(`(d) max throughput, review by id, ${CONNECTIONS_MAX} connections: ${ROUNDS} rounds of ${each} s each, serving log on and off alternating`);
    const onRounds = [];
    const offRounds = [];
    for (let r = 0; r < ROUNDS; r++) {
      await quiesce(pids);
      onRounds.push(await run(onUrl, 'review', { connections: CONNECTIONS_MAX, duration: each }, on.child.pid));
      // The log-on server's write of that round finishes before the log-off round starts.
      await quiesce(pids);
      offRounds.push(await run(offUrl, 'review', { connections: CONNECTIONS_MAX, duration: each }, off.child.pid));
      log(`    round ${r + 1}: log on ${round(onRounds[r].rate, 0)} req/s, log off ${round(offRounds[r].rate, 0)} req/s`);
    }
    dOn = combine(onRounds);
    dOff = combine(offRounds);
    log(`    log on:  ${JSON.stringify(phaseSummary(dOn))}`);
    log(`    log off: ${JSON.stringify(phaseSummary(dOff))}`);
  }

  // --- the serving log: every prediction the log-on server answered ------------------------
  const metrics = await (await fetch(`${onUrl}/metrics`)).text();
  const predictedByServer = { review_sentiment: 0, weld_failure: 0 };
  for (const m of metrics.matchAll(/^larder_predictions_total\{([^}]*)\} (\S+)$/gm)) {
    const model = /model="([^"]+)"/.exec(m[1])?.[1];
    if (model in predictedByServer) predictedByServer[model] += Number(m[2]);
  }
  log('stopping the log-on server (SIGTERM): it writes what its serving log holds');
  const stopped = await new Promise((resolve) => {
    const timer = setTimeout(() => {
      on.child.kill('SIGKILL');
      resolve({ code: null, signal: 'SIGKILL (did not stop within 60 s)' });
    }, 60_000);
    on.child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
    on.child.kill('SIGTERM');
  });
  const logged = {};
  const loggedDistinctRequests = {};
  for (const model of Object.keys(predictedByServer)) {
    const glob = join(offlineDir, '_serving_log', model, 'date=*', '*.parquet');
    try {
      const [row] = await query(`SELECT count(*)::INTEGER AS n, count(DISTINCT request_id)::INTEGER AS requests FROM read_parquet(${sqlString(glob)})`);
      logged[model] = row.n;
      loggedDistinctRequests[model] = row.requests;
    } catch (err) {
      if (!/No files found/i.test(String(err))) throw err;
      logged[model] = 0;
      loggedDistinctRequests[model] = 0;
    }
  }
  const logComplete = Object.keys(logged).every((m) => logged[m] === predictedByServer[m] && loggedDistinctRequests[m] === logged[m] && logged[m] >= answeredOn[m]);
  const servingLog = {
    rows: logged,
    distinctRequests: loggedDistinctRequests,
    predictedByServer,
    answered2xxByClients: answeredOn,
    serverExit: stopped,
    serverSaid: onStderr.split('\n').filter((l) => /serving log|error|fail/i.test(l)).slice(0, 10),
  };
  log(`serving log: ${JSON.stringify(servingLog)}`);

  const ratio = dOn && dOff ? dOn.rate / dOff.rate : null;
  const fixedRatePass = (r) => (r ? r.p99 <= TARGETS.p99Ms && r.rate >= RATE * 0.98 && r.non2xx === 0 && r.errors === 0 && !r.unanswered : null);
  const ran = [a, aOff, aBaseline, b, bBaseline, c, dOn, dOff].filter(Boolean);
  const clean = ran.every((r) => r.non2xx === 0 && r.errors === 0 && !r.unanswered);
  const pass = {
    reviewById: fixedRatePass(a),
    weldById: fixedRatePass(b),
    logThroughput: ratio !== null ? ratio >= TARGETS.logThroughputRatio : null,
    servingLogComplete: logComplete,
  };
  console.log(
    JSON.stringify({
      reviews: REVIEWS,
      wordBuckets: 62_000,
      welds: WELDS,
      bodies: BODIES,
      machine: { cores: cpus().length, loadAverageBefore: loadBefore, loadAverageAfter: loadavg().map((x) => Number(x.toFixed(2))) },
      durationSec: DURATION,
      sanity,
      unloaded,
      reviewById: a ? { ...phaseSummary(a), targetRate: RATE } : null,
      // The same load on the log-off server: what of (a)'s latency the serving log's writes cost.
      reviewByIdLogOff: aOff ? { ...phaseSummary(aOff), targetRate: RATE, informative: true } : null,
      reviewByIdBaseline: aBaseline ? { ...phaseSummary(aBaseline), targetRate: RATE } : null,
      weldById: b ? { ...phaseSummary(b), targetRate: RATE } : null,
      // The same HMGET of ~180 tiles a request, undecoded, and a fixed answer: what this machine allows.
      weldByIdBaseline: bBaseline ? { ...phaseSummary(bBaseline), targetRate: RATE } : null,
      reviewFromText: c ? { ...phaseSummary(c), targetRate: RATE, informative: true, meetsP99Target: fixedRatePass(c) } : null,
      maxThroughputLogOn: dOn ? phaseSummary(dOn) : null,
      maxThroughputLogOff: dOff ? phaseSummary(dOff) : null,
      throughputRatioLogOnOff: round(ratio, 3),
      // Log-off CPU per request over log-on's: the same ratio, less sensitive to a busy machine.
      cpuEfficiencyRatioLogOnOff: dOn && dOff && dOn.serverCpuUsPerRequest ? round(dOff.serverCpuUsPerRequest / dOn.serverCpuUsPerRequest, 3) : null,
      servingLog,
      servingLogComplete: logComplete,
      targets: TARGETS,
      clean,
      pass: { ...pass, all: clean && pass.reviewById === true && pass.weldById === true && pass.logThroughput === true && pass.servingLogComplete === true },
    }),
  );
} finally {
  files?.close();
  await store?.close().catch(() => {});
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  // Bounded wait for them to go before their folder does.
  await Promise.race([Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : null))), sleep(10_000)]);
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
  redis.disconnect();
  await rm(dir, { recursive: true, force: true });
}
