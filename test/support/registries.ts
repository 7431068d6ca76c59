/** The two registry backends, each able to give the URL of an empty registry, for suites run against both. */
import { join } from 'node:path';
import pg from 'pg';

export interface RegistryBackend {
  name: string;
  /** A URL of an empty registry. */
  fresh(): Promise<string>;
}

/**
 * `where()` is read when a registry is asked for (the temp folder and the test database are made
 * in beforeAll): the file backend gives a new nested folder under `tmp` each time, the PostgreSQL
 * one drops Larder's tables in `databaseUrl` (the registry creates them on first use).
 */
export function registryBackends(where: () => { tmp: string; databaseUrl: string }): RegistryBackend[] {
  let fileCounter = 0;
  return [
    {
      name: 'file',
      fresh: async () => `file:${join(where().tmp, `r${++fileCounter}`, 'nested', 'registry.json')}`,
    },
    {
      name: 'postgres',
      async fresh() {
        const { databaseUrl } = where();
        const c = new pg.Client({ connectionString: databaseUrl });
        await c.connect();
        await c.query('DROP TABLE IF EXISTS larder_models, larder_registry_versions, larder_registry_state');
        await c.end();
        return databaseUrl;
      },
    },
  ];
}
