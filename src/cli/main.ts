/**
 * `larder <command>`: dispatches to one module per command. Any error prints one line naming
 * what is at fault and exits non-zero; LARDER_DEBUG=1 adds the stack.
 */
import { LarderError, errorMessage } from '../core/errors.js';

export interface Command {
  /** One line for `larder help`. */
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number | void>;
}

const COMMANDS: Record<string, () => Promise<Command>> = {
  plan: async () => (await import('./plan.js')).command,
  apply: async () => (await import('./apply.js')).command,
  backfill: async () => (await import('./backfill.js')).command,
  dataset: async () => (await import('./dataset.js')).command,
  materialize: async () => (await import('./materialize.js')).command,
  get: async () => (await import('./get.js')).command,
  serve: async () => (await import('./serve.js')).command,
  verify: async () => (await import('./verify.js')).command,
  drift: async () => (await import('./drift.js')).command,
  train: async () => (await import('./train.js')).command,
  models: async () => (await import('./models.js')).command,
  'sample-data': async () => (await import('./sample-data.js')).command,
  quickstart: async () => (await import('./quickstart.js')).command,
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    await printHelp();
    return name ? 0 : 1;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`larder: unknown command '${name}' (try: ${Object.keys(COMMANDS).join(', ')})\n`);
    return 2;
  }
  try {
    const command = await load();
    if (rest.includes('--help') || rest.includes('-h')) {
      process.stdout.write(`usage: larder ${command.usage}\n${command.summary}\n`);
      return 0;
    }
    const code = await command.run(rest);
    return typeof code === 'number' ? code : 0;
  } catch (err) {
    const line = errorMessage(err).split('\n')[0];
    process.stderr.write(`larder ${name}: ${line}\n`);
    if (process.env.LARDER_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return err instanceof LarderError ? 1 : 70;
  }
}

async function printHelp(): Promise<void> {
  const lines = ['usage: larder <command> [options]', '', 'commands:'];
  for (const [name, load] of Object.entries(COMMANDS)) {
    const c = await load();
    lines.push(`  ${name.padEnd(12)} ${c.summary}`);
  }
  lines.push('', 'environment: LARDER_REPO LARDER_HOME LARDER_REGISTRY LARDER_OFFLINE LARDER_ONLINE LARDER_PORT LARDER_API_KEYS');
  process.stdout.write(`${lines.join('\n')}\n`);
}
