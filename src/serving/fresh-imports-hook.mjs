// Node module hook (registered by fresh-imports.ts): gives every file under a watched folder a
// `?larder-v=<generation>` query, so after the generation moves on, importing the folder's files
// loads them anew, and the files they import too, instead of the module cache's old instances.
/** Folder URL (with a trailing slash) -> generation. */
const folders = new Map();

export function initialize({ port }) {
  port.on('message', (message) => {
    folders.set(message.folder, message.generation);
    port.postMessage({ ack: message.id });
  });
  port.unref();
}

export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  if (!result.url.startsWith('file:') || result.url.includes('/node_modules/')) return result;
  for (const [folder, generation] of folders) {
    if (!result.url.startsWith(folder)) continue;
    const url = new URL(result.url);
    url.searchParams.set('larder-v', String(generation));
    return { ...result, url: url.href };
  }
  return result;
}
