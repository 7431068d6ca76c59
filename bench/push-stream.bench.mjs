#!/usr/bin/env node
// Streaming push benchmark: the pipeline's 10,000 weld sensors at 10 Hz, 100,000 readings/s, sent
// to `larder serve` (its own process, Redis local, the example definitions: weld_readings into
// weld_sensor_stats, 3 columns x 3 windows) through POST /push in JSON batches of 1,000, by a load
// generator in a third process, open loop: batch k is due at start + k x 10 ms whatever the
// answers before it, and its latency counts from when it was due. At most --connections pushes
// are in flight (default 128): the server answers a push when its group commit is written, so a
// producer keeps many going (with 32, the producer, not the server, capped the rate at ~64k/s).
// A probe in the load process pushes one reading of weld `probe` every 500 ms and polls
// /get-online-features until its count shows it: freshness, from the push's due time to visible.
// At the end the online aggregates of a sample of welds are compared with the recomputation from
// the raw log (the offline rows the pushes appended, through the dataset SQL) at the same instant.
// Targets: 100k readings/s sustained, freshness p99 <= 1 s, online == recomputation. Reports the
// rate, push latency percentiles, freshness, and the CPU the server and Redis spent per reading.
//   REDIS_URL=redis://127.0.0.1:6379 node bench/push-stream.bench.mjs [--duration 60] [--rate 100000] [--sample 200] [--connections 128] [--profile DIR]
import { register as registerTsx } from 'tsx/esm/api';
import { register } from 'node:module';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { cpuSeconds, startChild } from './lib/http-load.mjs';

registerTsx();
register('../bin/resolve-larder.mjs', import.meta.url);

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const DURATION = Number(arg('duration', '60'));
const RATE = Number(arg('rate', '100000'));
const SAMPLE = Number(arg('sample', '200'));
// Pushes in flight at most: with group commit a push waits for its flush, so a producer keeps many going.
const CONNECTIONS = Number(arg('connections', '128'));
const BATCH = 1000;
const SENSORS = 10_000;
const TARGETS = { readingsPerSec: 100_000, freshnessP99Ms: 1000 };
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const prefix = `bench:push-stream:${randomBytes(4).toString('hex')}:`;
const log = (line) => process.stderr.write(`${line}\n`);

const { Redis } = await import('ioredis');
const { loadDefinitions } = await import('../src/definitions/loader.ts');
const { openOnlineStore } = await import('../src/online/open.ts');
const { verifyOnline } = await import('../src/verify/skew.ts');
const { asEpochMs } = await import('../src/core/time.ts');

/**
 * The load generator: batches of BATCH readings of consecutive sensors (the 10,000 sensors take
 * 10 batches per 100 ms tick), each reading stamped when its batch is sent; keep-alive sockets,
 * at most `connections` requests in flight (a batch due while all are busy waits its turn, and
 * its wait counts). Then the probe as described above.
 */
const LOAD = `
import http from 'node:http';
const cfg = JSON.parse(process.env.LOAD);
const url = new URL(cfg.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: cfg.connections });
const batches = Math.floor((cfg.rate * cfg.duration) / cfg.batch);
const latency = new Float64Array(batches);
let done = 0, failed = 0, firstError = '';
const t0 = performance.now() + 200;
const wall0 = Date.now() + 200;
const ids = Array.from({ length: cfg.sensors }, (_, i) => JSON.stringify('w-' + String(i + 1).padStart(5, '0')));

function body(k) {
  const from = (k * cfg.batch) % cfg.sensors;
  const at = wall0 + (k * cfg.batch * 1000) / cfg.rate;
  let weld = '', ts = '', amp = '', temp = '', pres = '';
  for (let i = 0; i < cfg.batch; i++) {
    const s = (from + i) % cfg.sensors;
    const sep = i ? ',' : '';
    weld += sep + ids[s];
    ts += sep + Math.floor(at);
    amp += sep + (0.4 + ((s * 7 + k) % 100) / 500);
    temp += sep + (40 + ((s + k) % 30) / 3);
    pres += sep + (70 + ((s * 3 + k) % 50) / 10);
  }
  return '{"push_source_name":"weld_readings","to":"online_and_offline","df":{"weld_id":[' + weld + '],"event_timestamp":[' + ts + '],"amplitude":[' + amp + '],"temperature":[' + temp + '],"pressure":[' + pres + ']}}';
}

function post(path, text) {
  return new Promise((resolve) => {
    const req = http.request({ host: url.hostname, port: url.port, path, method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
    });
    req.on('error', (err) => resolve({ status: 0, text: String(err) }));
    req.end(text);
  });
}

const dueAt = (k) => t0 + (k * cfg.batch * 1000) / cfg.rate;
let sent = 0;
function send(k) {
  post('/push', body(k)).then((r) => {
    latency[k] = performance.now() - dueAt(k);
    if (r.status !== 200) { failed++; firstError ||= r.status + ' ' + r.text.slice(0, 300); }
    if (++done === batches) finish();
  });
}

// The probe: one reading of weld 'probe' every 500 ms, then poll its count until it shows.
const fresh = [];
let probes = 0;
async function probe() {
  while (performance.now() < t0 + cfg.duration * 1000) {
    const k = ++probes;
    const due = performance.now();
    const r = await post('/push', JSON.stringify({ push_source_name: 'weld_readings', to: 'online_and_offline', df: { weld_id: ['probe'], event_timestamp: [Date.now()], amplitude: [k], temperature: [1], pressure: [1] } }));
    if (r.status === 200) {
      for (;;) {
        const q = await post('/get-online-features', JSON.stringify({ features: ['weld_sensor_stats:amplitude_count_1h'], entities: { weld_id: ['probe'] } }));
        const count = q.status === 200 ? JSON.parse(q.text).results[1].values[0] : null;
        if (count >= k) { fresh.push(performance.now() - due); break; }
        if (performance.now() - due > 10_000) { fresh.push(Infinity); break; }
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    const next = due + 500;
    await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
  }
}

let probing;
function finish() {
  const seconds = (performance.now() - t0) / 1000;
  probing.then(() => {
    const at = (xs, p) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))];
    const lat = Array.from(latency).sort((a, b) => a - b);
    const fr = fresh.sort((a, b) => a - b);
    console.log(JSON.stringify({
      batches, readings: batches * cfg.batch, seconds, readingsPerSec: (batches * cfg.batch) / seconds, failed, firstError,
      pushP50Ms: at(lat, 0.5), pushP99Ms: at(lat, 0.99), pushMaxMs: lat[lat.length - 1],
      probes: fr.length, freshnessP50Ms: at(fr, 0.5), freshnessP99Ms: at(fr, 0.99), freshnessMaxMs: fr[fr.length - 1],
      endedAtMs: Date.now(),
    }));
    process.exit(0);
  });
}

setTimeout(() => {
  probing = probe();
  const timer = setInterval(() => {
    const upTo = Math.min(batches, Math.floor(((performance.now() - t0) * cfg.rate) / (cfg.batch * 1000)) + 1);
    while (sent < upTo) send(sent++);
    if (sent >= batches) clearInterval(timer);
  }, 1);
}, Math.max(0, t0 - performance.now()));
`;

const dir = await mkdtemp(join(tmpdir(), 'larder-bench-push-'));
const loadBefore = loadavg().map((x) => Number(x.toFixed(2)));
const redis = new Redis(REDIS_URL);
const children = [];

const start = (name, args, env, ready) => startChild({ children, cwd: ROOT }, name, args, env, ready);

const redisCpu = async () => {
  const info = await redis.info('cpu');
  const get = (k) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)[1]);
  return get('used_cpu_sys') + get('used_cpu_user');
};

const round = (x, d = 1) => (x === null || x === undefined || !Number.isFinite(x) ? x : Number(x.toFixed(d)));

try {
  const home = join(dir, 'home');
  const repo = join(ROOT, 'feature-definitions');
  const env = { LARDER_REPO: repo, LARDER_HOME: home, LARDER_ONLINE: REDIS_URL, LARDER_ONLINE_PREFIX: prefix, LARDER_API_KEYS: '' };
  const larder = await start('larder serve', [...(arg('profile') ? ['--cpu-prof', '--cpu-prof-dir', arg('profile')] : []), join(ROOT, 'bin', 'larder.mjs'), 'serve', '--port', '0'], env, /Larder serving on (http:\/\/127\.0\.0\.1:\d+)/);
  const url = larder.match[1];
  await writeFile(join(dir, 'load.mjs'), LOAD);
  log(`pushing ${RATE} readings/s of ${SENSORS} sensors in batches of ${BATCH} for ${DURATION} s to ${url}`);

  const [serverBefore, redisBefore] = [await cpuSeconds(larder.child.pid), await redisCpu()];
  const result = await new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [join(dir, 'load.mjs')], { cwd: ROOT, env: { ...process.env, LOAD: JSON.stringify({ url, rate: RATE, duration: DURATION, batch: BATCH, sensors: SENSORS, connections: CONNECTIONS }) }, stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(c);
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`load exited ${code}: ${out}`))));
  });
  const [serverAfter, redisAfter] = [await cpuSeconds(larder.child.pid), await redisCpu()];
  log(`load: ${JSON.stringify(result)}`);

  // Online at one instant against the recomputation from the raw log, for a sample of welds.
  log(`comparing ${SAMPLE} welds online with the recomputation from the offline log`);
  const defs = await loadDefinitions(repo);
  const store = await openOnlineStore(REDIS_URL, { prefix });
  const at = asEpochMs(Date.now());
  const began = performance.now();
  const report = await verifyOnline({ defs, offlineDir: join(home, 'offline'), store, views: ['weld_sensor_stats'], sample: SAMPLE, at });
  const verifySeconds = (performance.now() - began) / 1000;
  await store.close();
  const mismatched = report.features.filter((f) => f.mismatches > 0).map((f) => ({ feature: f.feature, mismatches: f.mismatches, example: f.examples[0] }));

  const readings = result.readings;
  const output = {
    sensors: SENSORS,
    batch: BATCH,
    targetRate: RATE,
    durationSec: DURATION,
    machine: { cores: cpus().length, loadAverageBefore: loadBefore, loadAverageAfter: loadavg().map((x) => Number(x.toFixed(2))) },
    readings,
    readingsPerSec: round(result.readingsPerSec, 0),
    failedPushes: result.failed,
    firstError: result.firstError || undefined,
    pushP50Ms: round(result.pushP50Ms),
    pushP99Ms: round(result.pushP99Ms),
    pushMaxMs: round(result.pushMaxMs),
    freshnessProbes: result.probes,
    freshnessP50Ms: round(result.freshnessP50Ms),
    freshnessP99Ms: round(result.freshnessP99Ms),
    serverCpuUsPerReading: round(((serverAfter - serverBefore) * 1e6) / readings, 2),
    redisCpuUsPerReading: round(((redisAfter - redisBefore) * 1e6) / readings, 2),
    verify: { welds: report.views[0]?.entities ?? 0, features: report.features.length, mismatches: report.mismatches, seconds: round(verifySeconds), mismatched: mismatched.slice(0, 5) },
    targets: TARGETS,
    pass: {
      rate: result.readingsPerSec >= TARGETS.readingsPerSec * 0.98 && result.failed === 0,
      freshness: result.freshnessP99Ms <= TARGETS.freshnessP99Ms,
      consistent: report.mismatches === 0 && (report.views[0]?.entities ?? 0) > 0,
    },
  };
  output.pass.all = output.pass.rate && output.pass.freshness && output.pass.consistent;
  console.log(JSON.stringify(output));
} finally {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
  redis.disconnect();
  await new Promise((r) => setTimeout(r, 500));
  await rm(dir, { recursive: true, force: true });
}
