/** Runs `larder` as users do: `node bin/larder.mjs <args>` in a child process, with its output. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const LARDER_BIN = fileURLToPath(new URL('../../bin/larder.mjs', import.meta.url));

export function runLarder(args: readonly string[], options: { cwd: string; env: Record<string, string> }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [LARDER_BIN, ...args], { cwd: options.cwd, env: { ...process.env, ...options.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
