/** Opens the registry a LARDER_REGISTRY URL names: `file:<path>` or `postgres://...`. */
import { InputError } from '../core/errors.js';
import { fileRegistryPath } from '../config.js';
import { FileRegistry } from './file.js';
import { PostgresRegistry } from './postgres.js';
import { redactUrl } from './canonical.js';
import type { Registry } from './registry.js';

export async function openRegistry(url: string): Promise<Registry> {
  if (url.startsWith('file:')) return new FileRegistry(fileRegistryPath(url));
  if (/^postgres(ql)?:\/\//.test(url)) return new PostgresRegistry(url);
  throw new InputError(`LARDER_REGISTRY: expected file:<path> or postgres://..., got '${redactUrl(url)}'`);
}
