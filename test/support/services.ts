/** Per-test-file PostgreSQL databases and per-test Redis key prefixes, on the real servers. */
import { inject } from 'vitest';
import pg from 'pg';
import { randomBytes } from 'node:crypto';

export const databaseUrl = (): string => inject('databaseUrl');
export const redisUrl = (): string => inject('redisUrl');

/** Creates a fresh database for one test file; returns its URL and a drop function. */
export async function createTestDatabase(label: string): Promise<{ url: string; drop(): Promise<void> }> {
  const base = new URL(databaseUrl());
  const name = `larder_${label.replace(/\W/g, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base.toString() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(base.toString());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: base.toString() });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export const uniquePrefix = (label: string): string => `test:${label}:${randomBytes(4).toString('hex')}:`;

/** Deletes every Redis key under `prefix` (a test's own keys; never the whole database). */
export async function deleteRedisPrefix(prefix: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const admin = new Redis(redisUrl());
  try {
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await admin.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    admin.disconnect();
  }
}
