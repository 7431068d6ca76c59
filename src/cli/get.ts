/**
 * `larder get --entity key=value[,key=value] [--entity ...] (--features VIEW:FEATURE,... |
 * --service NAME) [--full-names] [--flat]`: online values from LARDER_ONLINE as JSON.
 *
 * Prints Feast's response shape (CONTRACT s.5), or with --flat one object per entity,
 * `[{"driver_id": 1001, "conv_rate": 0.5}]`, the rows the SDK returns.
 */
import { InputError } from '../core/errors.js';
import { loadDefinitions } from '../definitions/loader.js';
import { openOnlineStore } from '../online/open.js';
import { flattenOnlineResponse, getOnlineFeatures } from '../online/online-features.js';
import { configFrom, listFlag, parseFlags } from './args.js';
import type { Command } from './main.js';

export const command: Command = {
  summary: 'prints online feature values of entities as JSON',
  usage: 'get --entity KEY=VALUE[,KEY=VALUE] [--entity ...] (--features VIEW:FEATURE,... | --service NAME) [--full-names] [--flat] [--repo DIR]',
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      entity: { type: 'string', multiple: true },
      features: { type: 'string' },
      service: { type: 'string' },
      'full-names': { type: 'boolean' },
      flat: { type: 'boolean' },
    });
    if (positionals.length > 0) throw new InputError(`larder get takes no arguments, got '${positionals[0]}'`);
    const features = listFlag(values.features);
    if (features !== undefined && values.service !== undefined) throw new InputError('give --features or --service, not both');
    if (features === undefined && values.service === undefined) throw new InputError('give --features VIEW:FEATURE,... or --service NAME');
    if (features !== undefined && features.length === 0) throw new InputError('--features: give at least one VIEW:FEATURE');
    const entities = entityColumns(values.entity ?? []);

    const config = configFrom(values);
    const defs = await loadDefinitions(config.repoDir);
    const store = await openOnlineStore(config.online);
    try {
      const response = await asFlags(getOnlineFeatures({ defs, store, features, service: values.service, entities, fullNames: values['full-names'] === true }));
      process.stdout.write(`${JSON.stringify(values.flat ? flattenOnlineResponse(response) : response, null, 2)}\n`);
    } finally {
      await store.close();
    }
    return 0;
  },
};

/** The library names request fields (`entities.driver_id[2]`); here the user typed flags. */
async function asFlags<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (!(err instanceof InputError)) throw err;
    const message = err.message
      .replace(/^entities\.(\w+)\[(\d+)\]: /, (_: string, key: string, i: string) => `--entity #${Number(i) + 1} ${key}: `)
      .replace(/^entities\.(\w+): /, '--entity $1: ')
      .replace(/^(features|service): /, '--$1: ');
    throw new InputError(message, err.detail);
  }
}

/** `--entity driver_id=1001,customer_id=7` flags as columns: every flag must name the same keys. */
function entityColumns(flags: readonly string[]): Record<string, string[]> {
  if (flags.length === 0) throw new InputError('--entity: give at least one, like --entity driver_id=1001');
  const columns: Record<string, string[]> = {};
  flags.forEach((flag, row) => {
    const pairs = flag.split(',').map((p) => p.trim()).filter(Boolean);
    const seen = new Set<string>();
    for (const pair of pairs) {
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new InputError(`--entity '${flag}': expected KEY=VALUE[,KEY=VALUE]`);
      const key = pair.slice(0, eq).trim();
      if (seen.has(key)) throw new InputError(`--entity '${flag}': '${key}' given twice`);
      seen.add(key);
      if (row === 0) columns[key] = [];
      else if (!columns[key]) throw new InputError(`--entity '${flag}': '${key}' is not in the first --entity (every --entity names the same keys)`);
      columns[key]!.push(pair.slice(eq + 1));
    }
    const missing = Object.keys(columns).filter((k) => !seen.has(k));
    if (missing.length) throw new InputError(`--entity '${flag}': missing ${missing.join(', ')} (every --entity names the same keys)`);
  });
  return columns;
}
