// Module resolution hook: `larder` and `larder/sdk` always mean this package, one instance; and a
// definitions file is an ES module wherever it lives (a folder with no package.json would
// otherwise make Node treat its .ts files as CommonJS).
const root = new URL('../', import.meta.url);
const TARGETS = { larder: 'src/index.ts', 'larder/sdk': 'sdk/index.ts' };

export async function resolve(specifier, context, next) {
  const target = TARGETS[specifier];
  if (target) return { url: new URL(target, root).href, shortCircuit: true, format: 'module' };
  const result = await next(specifier, context);
  if (/\.ts$/.test(result.url) && !result.url.includes('/node_modules/')) return { ...result, format: 'module' };
  return result;
}
