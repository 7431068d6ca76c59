/**
 * Fresh imports of a definitions folder, for hot reload: ES modules cannot be unloaded, and a
 * second `import()` of a file answers the cached module. A module hook (fresh-imports-hook.mjs)
 * gives every file under the folder a generation query instead; moving the generation on makes
 * the next load import every file of the folder anew, the files they import included (so views
 * and the entities they import from another file stay one set of objects). Files outside the
 * folder (`larder` itself, node_modules) keep their one instance.
 *
 * Old generations stay in memory (nothing unloads a module): one copy of the definitions per
 * applied version, which is small. Under a runner that loads modules itself (vitest), the hook
 * sees nothing and a reload answers the cached modules: state.ts notices and says so.
 */
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { MessageChannel, type MessagePort } from 'node:worker_threads';

let port: MessagePort | undefined;
let nextId = 0;

function hookPort(): MessagePort {
  if (!port) {
    const channel = new MessageChannel();
    register(new URL('./fresh-imports-hook.mjs', import.meta.url), { data: { port: channel.port2 }, transferList: [channel.port2] });
    port = channel.port1;
    port.unref();
  }
  return port;
}

/** From now on, imports of files under `folder` load generation `generation` of them. */
export function useGeneration(folder: string, generation: number): Promise<void> {
  const p = hookPort();
  const href = pathToFileURL(folder).href.replace(/\/?$/, '/');
  const id = ++nextId;
  return new Promise((resolve) => {
    const onMessage = (message: { ack?: number }): void => {
      if (message.ack !== id) return;
      p.off('message', onMessage);
      p.unref();
      resolve();
    };
    p.on('message', onMessage);
    // Listening refs the port; unref'd again once answered, so a server's exit is never held up.
    p.ref();
    p.postMessage({ folder: href, generation, id });
  });
}
