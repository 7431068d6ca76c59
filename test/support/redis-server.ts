/**
 * A `redis-server` of a test's own on a free loopback port, to break on purpose: killed
 * (SIGKILL), frozen (SIGSTOP / SIGCONT) and started again on the same port with the same data
 * (append-only file, fsync'd on every write, in a folder of the test's). Never the shared Redis.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface OwnRedis {
  readonly port: number;
  readonly url: string;
  /** The running process (undefined while stopped). */
  readonly process: ChildProcess | undefined;
  /** Starts the server (again) on the same port and folder; resolves once it answers PING. */
  start(): Promise<void>;
  /** Sends `signal` (default SIGKILL) and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** SIGSTOP: the connections stay open and nothing answers. */
  freeze(): void;
  /** SIGCONT. */
  thaw(): void;
  /** A short-lived client (no retries), for the test's own checks. */
  client(): Promise<Redis>;
}

export async function startRedisServer(options: { dir: string; port?: number }): Promise<OwnRedis> {
  const port = options.port ?? (await freePort());
  let child: ChildProcess | undefined;
  const own: OwnRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    get process() {
      return child;
    },
    async start() {
      if (child) throw new Error(`redis-server on ${port} is running already`);
      child = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--dir', options.dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--daemonize', 'no', '--protected-mode', 'no'],
        { stdio: 'ignore' },
      );
      const started = child;
      started.once('exit', () => {
        if (child === started) child = undefined;
      });
      const deadline = Date.now() + 10_000;
      for (;;) {
        if (started.exitCode !== null || started.signalCode !== null) throw new Error(`redis-server on ${port} exited at start (${started.exitCode ?? started.signalCode})`);
        const ok = await own
          .client()
          .then(async (r) => {
            try {
              return (await r.ping()) === 'PONG';
            } finally {
              r.disconnect();
            }
          })
          .catch(() => false);
        if (ok) return;
        if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer within 10 s`);
        await sleep(50);
      }
    },
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      const running = child;
      if (!running) return;
      if (running.signalCode === 'SIGSTOP' as NodeJS.Signals) running.kill('SIGCONT');
      const exited = running.exitCode !== null || running.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => running.once('exit', () => r()));
      running.kill(signal);
      await Promise.race([exited, sleep(10_000).then(() => Promise.reject(new Error(`redis-server on ${port} did not exit on ${signal}`)))]);
      if (child === running) child = undefined;
    },
    freeze() {
      child?.kill('SIGSTOP');
    },
    thaw() {
      child?.kill('SIGCONT');
    },
    async client() {
      const r = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000, commandTimeout: 2000 });
      r.on('error', () => {});
      await r.connect();
      return r;
    },
  };
  await own.start();
  return own;
}
