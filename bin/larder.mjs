#!/usr/bin/env node
// The `larder` command. Runs the TypeScript sources through tsx (no build step, like the
// definitions it loads) and maps `import ... from 'larder'` in any definitions folder to this
// package, so a repo outside this checkout needs no install of its own.
import { register as registerTsx } from 'tsx/esm/api';
import { register } from 'node:module';

registerTsx();
register('./resolve-larder.mjs', import.meta.url);
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
