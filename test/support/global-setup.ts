/**
 * Integration tests talk to a real PostgreSQL and Redis: from DATABASE_URL / REDIS_URL, else
 * containers started by testcontainers when a Docker engine answers, else the run stops at once
 * saying how to provide them. Nothing is mocked and nothing is skipped.
 */
import type { TestProject } from 'vitest/node';

const HOW = [
  'Larder integration tests need PostgreSQL and Redis.',
  'Either export DATABASE_URL=postgres://postgres@127.0.0.1:5432/test and REDIS_URL=redis://127.0.0.1:6379',
  '(bash .ci/run starts local servers and does this), or run a Docker engine so testcontainers can start postgres:16 and redis:7.',
].join('\n');

let stop: (() => Promise<void>) | undefined;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let databaseUrl = process.env.DATABASE_URL;
  let redisUrl = process.env.REDIS_URL;
  if (!databaseUrl || !redisUrl) {
    const started = await startContainers().catch((err: Error) => {
      throw new Error(`${HOW}\n(testcontainers: ${err.message.split('\n')[0]})`);
    });
    databaseUrl ??= started.databaseUrl;
    redisUrl ??= started.redisUrl;
    stop = started.stop;
  }
  await checkServices(databaseUrl, redisUrl);
  project.provide('databaseUrl', databaseUrl);
  project.provide('redisUrl', redisUrl);
  return async () => {
    await stop?.();
  };
}

async function startContainers(): Promise<{ databaseUrl: string; redisUrl: string; stop(): Promise<void> }> {
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const { RedisContainer } = await import('@testcontainers/redis');
  const [pg, redis] = await Promise.all([new PostgreSqlContainer('postgres:16').start(), new RedisContainer('redis:7').start()]);
  return {
    databaseUrl: pg.getConnectionUri(),
    redisUrl: redis.getConnectionUrl(),
    async stop() {
      await Promise.all([pg.stop(), redis.stop()]);
    },
  };
}

async function checkServices(databaseUrl: string, redisUrl: string): Promise<void> {
  const pg = await import('pg');
  const client = new pg.default.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    await client.query('select 1');
  } catch (err) {
    throw new Error(`${HOW}\n(PostgreSQL at ${databaseUrl} did not answer: ${(err as Error).message})`);
  } finally {
    await client.end().catch(() => {});
  }
  const { Redis } = await import('ioredis');
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5000, retryStrategy: () => null });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    throw new Error(`${HOW}\n(Redis at ${redisUrl} did not answer: ${(err as Error).message})`);
  } finally {
    redis.disconnect();
  }
}

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    redisUrl: string;
  }
}
