/**
 * The main job as a newcomer runs it: `larder quickstart` on a fresh copy of the example repo,
 * small sizes — sample data, apply, backfill, materialize, train both models, then serve; the
 * server answers a prediction from raw text and stops cleanly on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { openDuckDB, sqlString } from '../src/offline/duckdb.js';
import { LARDER_BIN } from './support/cli.js';

const EXAMPLES = fileURLToPath(new URL('../feature-definitions', import.meta.url));
let dir: string | undefined;

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

it('runs sample data to serving predictions, on embedded defaults', async () => {
  dir = await mkdtemp(join(tmpdir(), 'larder-quickstart-'));
  const repo = join(dir, 'repo');
  await cp(EXAMPLES, repo, { recursive: true, filter: (src) => !/[\\/](\.larder|data)$/.test(src) });
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, LARDER_REPO: repo, LARDER_HOME: join(dir, 'home') };
  delete env.LARDER_ONLINE;
  delete env.LARDER_REGISTRY;
  delete env.LARDER_OFFLINE;
  const child = spawn(process.execPath, [LARDER_BIN, 'quickstart', '--reviews', '3000', '--readings', '40000', '--port', String(port)], { cwd: dir, env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    let health = 0;
    for (const until = Date.now() + 150_000; health !== 200 && Date.now() < until; await new Promise((r) => setTimeout(r, 250))) {
      if (child.exitCode !== null) break;
      health = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.status, () => 0);
    }
    expect(health, `quickstart did not serve; stderr:\n${stderr}`).toBe(200);
    for (const step of ['1/6 sample data', '2/6 apply', '3/6 backfill', '4/6 materialize', '5/6 train', '6/6 serve']) expect(stdout).toContain(step);
    expect(stdout).toMatch(/Registered review_sentiment version 1 /);
    expect(stdout).toMatch(/Registered weld_failure version 1 /);

    // Raw text of one- and five-star reviews of the later period, through the served model.
    const db = await openDuckDB();
    let texts: { text: string; rating: number }[];
    try {
      const file = sqlString(join(repo, 'data', 'reviews.parquet'));
      texts = (await db.connection.runAndReadAll(`(SELECT text, rating FROM read_parquet(${file}) WHERE rating = 1 ORDER BY event_timestamp DESC LIMIT 20) UNION ALL (SELECT text, rating FROM read_parquet(${file}) WHERE rating = 5 ORDER BY event_timestamp DESC LIMIT 20)`)).getRowObjectsJson() as typeof texts;
    } finally {
      db.close();
    }
    const res = await fetch(`http://127.0.0.1:${port}/predict/review_sentiment`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: { text: texts.map((t) => t.text) } }),
    });
    expect(res.status).toBe(200);
    const answer = (await res.json()) as { version: string; predictions: { prediction: number; probability: number }[] };
    expect(answer.version).toBe('1');
    const mean = (rating: number) => {
      const ps = answer.predictions.filter((_, i) => texts[i]!.rating === rating).map((p) => p.probability);
      return ps.reduce((a, b) => a + b, 0) / ps.length;
    };
    expect(answer.predictions).toHaveLength(40);
    // Quality is pinned in predict.test.ts; here, that the served model tells the two apart.
    expect(mean(5)).toBeGreaterThan(mean(1));
  } finally {
    child.kill('SIGTERM');
  }
  expect(await exited).toBe(0);
}, 200_000);
