/**
 * `larder serve [--port N] [--host H]`: the HTTP feature server (CONTRACT s.5) on LARDER_PORT
 * (default 6566). SIGTERM or SIGINT: stop accepting, finish requests in flight, close the stores,
 * exit 0.
 *
 * Beyond CONTRACT s.1: LARDER_HOST (default 127.0.0.1, as `feast serve`; 0.0.0.0 in a container),
 * LARDER_ONLINE_PREFIX (the online store's key prefix, default `larder:`) and LARDER_RELOAD_MS (how
 * often the registry is read for a new version, default 5000).
 */
import { InputError } from '../core/errors.js';
import { startServer } from '../serving/server.js';
import { configFrom, parseFlags } from './args.js';
import type { Command } from './main.js';

export const command: Command = {
  summary: 'the HTTP feature server: online features, push, historical features, health, metrics',
  usage: 'serve [--port N] [--host H] [--repo DIR]',
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { port: { type: 'string' }, host: { type: 'string' } });
    if (positionals.length) throw new InputError(`larder serve takes no arguments, got '${positionals[0]}'`);
    const config = configFrom(values);
    const reload = process.env.LARDER_RELOAD_MS;
    const reloadIntervalMs = reload === undefined ? undefined : Number(reload);
    if (reloadIntervalMs !== undefined && !(Number.isFinite(reloadIntervalMs) && reloadIntervalMs >= 100)) {
      throw new InputError(`LARDER_RELOAD_MS: expected milliseconds, at least 100, got '${reload}'`);
    }
    const server = await startServer({
      config,
      host: values.host ?? process.env.LARDER_HOST ?? '127.0.0.1',
      ...(process.env.LARDER_ONLINE_PREFIX !== undefined && { onlinePrefix: process.env.LARDER_ONLINE_PREFIX }),
      ...(reloadIntervalMs !== undefined && { reloadIntervalMs }),
    });
    const { store, registry, state } = server.context;
    process.stdout.write(`Larder serving on ${server.url} (online: ${store.url}, registry: ${registry.url})\n`);
    process.stdout.write(`definitions: version ${state.served.version} from ${config.repoDir}\n`);
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', resolve);
      process.once('SIGINT', resolve);
    });
    process.stdout.write(`Larder stopping (${signal}): finishing requests in flight\n`);
    await server.close();
    return 0;
  },
};
