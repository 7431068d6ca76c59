#!/usr/bin/env node
// `npm run bench [-- name ...]`: runs each benchmark script in its own process, one after another
// (these 2-core machines are noisy; two benches at once would measure each other), collects the
// JSON line each prints last, and writes bench/results/latest.json plus a table for the README.
import { spawn } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { execSync } from 'node:child_process';

const here = new URL('.', import.meta.url);
const only = process.argv.slice(2);
const scripts = (await readdir(here)).filter((f) => f.endsWith('.bench.mjs')).sort();
const selected = only.length ? scripts.filter((s) => only.some((o) => s.startsWith(o))) : scripts;
if (!selected.length) {
  console.error(`bench: nothing matches ${only.join(', ')} (have ${scripts.join(', ')})`);
  process.exit(2);
}

const results = {};
for (const script of selected) {
  console.error(`\n== ${script}`);
  const lines = [];
  const code = await new Promise((resolve) => {
    const child = spawn(process.execPath, [new URL(script, here).pathname], { stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      lines.push(...chunk.toString().split('\n').filter(Boolean));
    });
    child.on('exit', resolve);
  });
  const last = [...lines].reverse().find((l) => l.trim().startsWith('{'));
  results[script.replace('.bench.mjs', '')] = code === 0 && last ? JSON.parse(last) : { error: `exit ${code}` };
}

const commit = (() => {
  try {
    return execSync('git rev-parse --short HEAD', { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
})();
await mkdir(new URL('results/', here), { recursive: true });
const report = { commit, at: new Date().toISOString(), machine: `${(await import('node:os')).cpus().length} cores`, results };
await writeFile(new URL('results/latest.json', here), `${JSON.stringify(report, null, 2)}\n`);
console.log(JSON.stringify(report));
process.exit(Object.values(results).some((r) => r.error) ? 1 : 0);
