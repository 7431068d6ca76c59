// Module resolution hook for definitions folders, wherever they live:
// - `larder` and `larder/sdk` always mean this package, one instance of it;
// - a definitions file and the .ts files it imports are ES modules. Without this, tsx treats a
//   relative `.ts` import in a folder with no `"type": "module"` package.json as CommonJS, and
//   `require('larder')` there cannot see this hook.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = new URL('../', import.meta.url);
const TARGETS = { larder: 'src/index.ts', 'larder/sdk': 'sdk/index.ts' };

const isTsModule = (url) => url.startsWith('file:') && /\.ts$/.test(new URL(url).pathname) && !url.includes('/node_modules/');

function relativeTs(specifier, parentURL) {
  if (!parentURL || !isTsModule(parentURL) || !/^\.\.?\//.test(specifier)) return undefined;
  const base = specifier.replace(/\.js$/, '.ts');
  for (const candidate of [base, `${base}.ts`, `${base}/index.ts`]) {
    const url = new URL(candidate, parentURL);
    if (/\.ts$/.test(url.pathname) && existsSync(fileURLToPath(url))) return url.href;
  }
  return undefined;
}

export async function resolve(specifier, context, next) {
  const target = TARGETS[specifier];
  if (target) return { url: new URL(target, root).href, shortCircuit: true, format: 'module' };
  const local = relativeTs(specifier, context.parentURL);
  if (local) return { url: local, shortCircuit: true, format: 'module' };
  const result = await next(specifier, context);
  if (isTsModule(result.url)) return { ...result, format: 'module' };
  return result;
}
