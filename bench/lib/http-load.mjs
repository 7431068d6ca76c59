// Shared load machinery of the HTTP benches (bench/http-online.bench.mjs, bench/predict.bench.mjs):
// the two load generators, each run as a script in its own process so that it does not share a
// core's event loop with the bench or the server it loads, and the bookkeeping around them.
//   PACED  fixed-rate, open loop: latency from each request's due time (no coordinated omission);
//          stops at --duration + 10 s even if the server has not answered everything (`unanswered`)
//   LOAD   autocannon, closed loop: the most a server answers with N connections
// Both POST the bodies of a JSON array file (one a request, in turn) to one path and print one
// JSON line of results (requests, rate, non2xx, errors, exact p50/p90/p99/p999/max in ms).
//   const kit = loadKit({ dir, cwd });   // dir: where the generator scripts are written
//   await kit.writeGenerators();
//   const server = await kit.start('name', [script, ...args], env, /serving on (http:\S+)/);
//   const result = await kit.load(url, { path, bodies, connections, rate, duration, paced }, serverPid);
//   ... finally: for (const c of kit.children) if (c.exitCode === null) c.kill('SIGTERM');
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The closed-loop load generator: autocannon in its own process; every response's time kept for exact percentiles. */
export const LOAD = `
import autocannon from ${JSON.stringify(import.meta.resolve('autocannon'))};
import { readFileSync } from 'node:fs';
const cfg = JSON.parse(process.env.LOAD);
const bodies = JSON.parse(readFileSync(cfg.bodies, 'utf8'));
let next = 0;
const samples = new Float64Array(4_000_000);
let n = 0;
const instance = autocannon({
  url: cfg.url + cfg.path,
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  connections: cfg.connections,
  duration: cfg.duration,
  ...(cfg.rate ? { overallRate: cfg.rate } : {}),
  requests: [{ setupRequest: (req) => ({ ...req, body: bodies[next++ % bodies.length] }) }],
}, (err, result) => {
  if (err) { console.error(err); process.exit(1); }
  const sorted = samples.subarray(0, n).sort();
  const at = (p) => (n ? sorted[Math.min(n - 1, Math.floor(p * n))] : null);
  console.log(JSON.stringify({
    requests: result.requests.total, seconds: result.duration, rate: result.requests.total / result.duration,
    non2xx: result.non2xx, errors: result.errors, timeouts: result.timeouts,
    p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: n ? sorted[n - 1] : null,
    autocannonP99: result.latency.p99,
  }));
});
instance.on('response', (_client, _status, _bytes, ms) => { if (n < samples.length) samples[n++] = ms; });
`;

/**
 * The fixed-rate load generator, open loop: request k is due at start + k / rate, whatever the
 * answers before it, and its latency counts from when it was due (a stall delays and counts every
 * request behind it: no coordinated omission). autocannon's `overallRate` is not this: each of its
 * connections sends its per-second quota back to back at the top of every second and then waits,
 * so its "5,000 req/s" is a burst at full speed and its latencies measure the burst's queue.
 * Keep-alive sockets, at most `connections`; a request due while all are busy waits its turn.
 * Requests are prepared bytes and answers are only framed (Content-Length), as autocannon does,
 * so the generator costs less CPU than the servers it loads.
 */
export const PACED = `
import net from 'node:net';
import { readFileSync } from 'node:fs';
const cfg = JSON.parse(process.env.LOAD);
const target = new URL(cfg.url);
const requests = JSON.parse(readFileSync(cfg.bodies, 'utf8')).map((b) =>
  Buffer.from('POST ' + cfg.path + ' HTTP/1.1\\r\\nHost: ' + target.host + '\\r\\nContent-Type: application/json\\r\\nContent-Length: ' + Buffer.byteLength(b) + '\\r\\n\\r\\n' + b));
const total = Math.floor(cfg.rate * cfg.duration);
const latency = new Float64Array(total);
const waiting = [];
const idle = [];
let sent = 0, done = 0, non2xx = 0, errors = 0, resent = 0, t0 = 0;
const dueAt = (k) => t0 + (k * 1000) / cfg.rate;

const answered = new Uint8Array(total);

function finish(k, ok) {
  latency[k] = ok ? performance.now() - dueAt(k) : NaN;
  answered[k] = 1;
  if (++done < total) return;
  const seconds = (performance.now() - t0) / 1000;
  report(seconds, total / seconds, {});
}

function report(seconds, rate, extra) {
  const sorted = latency.filter((x) => !Number.isNaN(x)).sort();
  const at = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  console.log(JSON.stringify({ requests: total, seconds, rate, non2xx, errors, resent, ...extra, p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: sorted[sorted.length - 1], autocannonP99: null }));
  process.exit(0);
}

// Bounded in time: a server that cannot keep up would otherwise keep the run going until the
// last request is answered. At the deadline, --duration + 10 s after the first request was due,
// every request not answered yet counts with the time it has waited so far (a lower bound on its
// latency) and as 'unanswered'; the rate is then of the answered ones.
function deadline() {
  const now = performance.now();
  let unanswered = 0;
  for (let k = 0; k < total; k++) {
    if (answered[k]) continue;
    latency[k] = now - dueAt(k);
    unanswered++;
  }
  const seconds = (now - t0) / 1000;
  report(seconds, done / seconds, { unanswered });
}

function connection() {
  const socket = net.connect(Number(target.port), target.hostname);
  socket.setNoDelay(true);
  const c = { socket, k: -1, head: '', body: -1, dead: false };
  socket.on('data', (chunk) => {
    let at = 0;
    while (at < chunk.length && !c.dead) {
      if (c.body < 0) {
        // Headers: read up to the blank line, then how long the body is.
        const text = c.head + chunk.toString('latin1', at, Math.min(chunk.length, at + 2048));
        const end = text.indexOf('\\r\\n\\r\\n');
        if (end < 0) { c.head = text; at = chunk.length; continue; }
        const headers = text.slice(0, end);
        const length = /content-length: *(\\d+)/i.exec(headers);
        if (!length) {
          // The server closing a socket it found idle (Node answers 408 then): not an answer to
          // the request on it, which goes out again on another socket.
          retire(c);
          return;
        }
        if (headers.slice(9, 12) !== '200') non2xx++;
        c.body = Number(length[1]);
        at += end + 4 - c.head.length;
        c.head = '';
      }
      const take = Math.min(c.body, chunk.length - at);
      c.body -= take;
      at += take;
      if (c.body === 0) {
        c.body = -1;
        const k = c.k;
        c.k = -1;
        finish(k, true);
        next(c);
      }
    }
  });
  socket.on('error', () => {});
  socket.on('close', () => retire(c));
  return c;
}

/** A socket the server closed: its request, if any, goes again; a new socket takes its place. */
function retire(c) {
  if (c.dead) return;
  c.dead = true;
  c.socket.destroy();
  const at = idle.indexOf(c);
  if (at >= 0) idle.splice(at, 1);
  idle.push(connection());
  if (c.k >= 0) {
    const k = c.k;
    c.k = -1;
    resent++;
    due(k);
  }
}

// Sockets are taken in turn (first idle first), so none sits idle long enough to be closed.
function next(c) {
  const k = waiting.shift();
  if (k === undefined) idle.push(c);
  else send(c, k);
}

function send(c, k) {
  c.k = k;
  c.socket.write(requests[k % requests.length]);
}

function due(k) {
  const c = idle.shift();
  if (c) send(c, k);
  else waiting.push(k);
}

for (let i = 0; i < cfg.connections; i++) idle.push(connection());
setTimeout(() => {
  t0 = performance.now();
  setTimeout(deadline, (cfg.duration + 10) * 1000);
  // Every millisecond, what has fallen due since: at 5,000 req/s, five requests a tick.
  const timer = setInterval(() => {
    const upTo = Math.min(total, Math.floor(((performance.now() - t0) * cfg.rate) / 1000) + 1);
    while (sent < upTo) due(sent++);
    if (sent >= total) clearInterval(timer);
  }, 1);
}, 200);
`;

/** CPU seconds a process has used (user + system), from /proc; null where there is no /proc. */
export async function cpuSeconds(pid) {
  try {
    const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return null;
  }
}

/** A child process (pushed onto `children`); resolves once its output matches `ready`, with the match. */
export function startChild({ children, cwd }, name, args, env, ready) {
  const child = spawn(process.execPath, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${out}`)), 60_000);
    const on = (d) => {
      out += d;
      const m = ready.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, match: m });
      }
    };
    child.stdout.on('data', on);
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => reject(new Error(`${name} exited ${code}: ${out}`)));
  });
}

/**
 * Starting servers and loading them: `dir` holds the generator scripts (writeGenerators), `cwd`
 * is every child's working directory; every child started is in `children`, for the caller to stop.
 */
export function loadKit({ dir, cwd }) {
  const children = [];

  const start = (name, args, env, ready) => startChild({ children, cwd }, name, args, env, ready);


  /**
   * One load phase against `url` + `path` (POST, the bodies of the JSON array in file `bodies`, one
   * a request in turn): the JSON the load generator prints, plus the CPU time the server
   * (`serverPid`) and the load generator used per request, so a client-bound or shared machine shows.
   */
  function load(url, { path, bodies, connections, rate, duration, paced = false }, serverPid) {
    return new Promise((resolve, reject) => {
      if (typeof path !== 'string' || !path.startsWith('/')) throw new Error(`load: a request path is needed, got ${path}`);
      const script = join(dir, paced ? 'paced.mjs' : 'load.mjs');
      const c = spawn(process.execPath, [script], { cwd, env: { ...process.env, LOAD: JSON.stringify({ url, path, bodies, connections, rate, duration }) }, stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(c);
      // A backstop: a generator still running well past its duration (PACED stops itself at
      // duration + 10 s, autocannon at its duration) is stopped and the phase fails.
      const limitMs = ((duration ?? 10) + 30) * 1000;
      const watchdog = setTimeout(() => c.kill('SIGKILL'), limitMs);
      const before = serverPid ? cpuSeconds(serverPid) : Promise.resolve(null);
      let loadCpu = null;
      const sampler = setInterval(() => void cpuSeconds(c.pid).then((s) => (loadCpu = s ?? loadCpu)), 200);
      let out = '';
      c.stdout.on('data', (d) => (out += d));
      c.on('exit', async (code, signal) => {
        clearInterval(sampler);
        clearTimeout(watchdog);
        if (code !== 0) return reject(new Error(`load generator ${signal === 'SIGKILL' ? `stopped after ${limitMs / 1000} s` : `exited ${code}`}: ${out}`));
        const result = JSON.parse(out.trim().split('\n').pop());
        const [start, end] = [await before, serverPid ? await cpuSeconds(serverPid) : null];
        result.serverCpuUsPerRequest = start !== null && end !== null ? ((end - start) * 1e6) / result.requests : null;
        result.loadCpuUsPerRequest = loadCpu !== null ? (loadCpu * 1e6) / result.requests : null;
        resolve(result);
      });
    });
  }

  /** Writes the two generator scripts into `dir` (before any `load`). */
  async function writeGenerators() {
    await writeFile(join(dir, 'load.mjs'), LOAD);
    await writeFile(join(dir, 'paced.mjs'), PACED);
  }

  return { children, start, load, writeGenerators };
}

/** Rounds of one load as one: rates over the summed time, the worst round's percentiles, CPU over the summed requests. */
export function combine(results) {
  const sum = (f) => results.reduce((a, r) => a + (f(r) ?? 0), 0);
  const worst = (f) => Math.max(...results.map(f));
  const requests = sum((r) => r.requests);
  const cpu = (f) => (results.every((r) => f(r) !== null) ? sum((r) => f(r) * r.requests) / requests : null);
  return {
    requests,
    seconds: sum((r) => r.seconds),
    rate: requests / sum((r) => r.seconds),
    non2xx: sum((r) => r.non2xx),
    errors: sum((r) => r.errors),
    p50: worst((r) => r.p50),
    p90: worst((r) => r.p90),
    p99: worst((r) => r.p99),
    p999: worst((r) => r.p999),
    max: worst((r) => r.max),
    autocannonP99: worst((r) => r.autocannonP99),
    serverCpuUsPerRequest: cpu((r) => r.serverCpuUsPerRequest),
    loadCpuUsPerRequest: cpu((r) => r.loadCpuUsPerRequest),
  };
}

export const round = (x, digits = 3) => (x === null || x === undefined ? null : Number(x.toFixed(digits)));
export const phaseSummary = (r) => ({
  requests: r.requests,
  ratePerSec: round(r.rate, 0),
  p50Ms: round(r.p50),
  p99Ms: round(r.p99),
  p999Ms: round(r.p999),
  maxMs: round(r.max),
  autocannonP99Ms: r.autocannonP99,
  serverCpuUsPerRequest: round(r.serverCpuUsPerRequest, 1),
  loadCpuUsPerRequest: round(r.loadCpuUsPerRequest, 1),
  non2xx: r.non2xx,
  errors: r.errors,
  ...(r.resent !== undefined && { resent: r.resent }),
  ...(r.unanswered !== undefined && { unanswered: r.unanswered }),
});

