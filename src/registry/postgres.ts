/**
 * The PostgreSQL registry: every applied version is a row (kept for audit, never updated), state
 * is a key/value table. Tables are created on first use under an advisory lock, and applies are
 * serialised by a transaction-scoped advisory lock, so any number of processes may apply at once.
 */
import pg from 'pg';
import { InputError, LarderError } from '../core/errors.js';
import { redactUrl, shortVersion, type CanonicalRepo } from './canonical.js';
import { RegistryUnavailableError, appliedVersion, decideApply, type AppliedVersion, type ApplyOptions, type ApplyResult, type HistoryEntry, type Registry } from './registry.js';

/** Advisory lock keys: one namespace for Larder's registry, one key per purpose. */
const LOCK_NAMESPACE = 0x4c617264; // 'Lard'
const LOCK_SCHEMA = 1;
const LOCK_APPLY = 2;

const SCHEMA_SQL = [
  `CREATE TABLE IF NOT EXISTS larder_registry_versions (
     id bigserial PRIMARY KEY,
     version text NOT NULL,
     hash text NOT NULL,
     applied_at timestamptz NOT NULL,
     forced boolean NOT NULL DEFAULT false,
     repo jsonb NOT NULL
   )`,
  `CREATE INDEX IF NOT EXISTS larder_registry_versions_hash ON larder_registry_versions (hash)`,
  `CREATE TABLE IF NOT EXISTS larder_registry_state (
     key text PRIMARY KEY,
     value jsonb NOT NULL,
     updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
   )`,
];

interface VersionRow {
  version: string;
  hash: string;
  applied_at: Date;
  repo: CanonicalRepo;
}

const PING_TIMEOUT_MS = 5000;

export class PostgresRegistry implements Registry {
  readonly url: string;
  private readonly pool: pg.Pool;
  private ready: Promise<void> | undefined;

  constructor(connectionString: string) {
    this.url = redactUrl(connectionString);
    this.pool = new pg.Pool({ connectionString, max: 4, connectionTimeoutMillis: 10_000, idleTimeoutMillis: 10_000 });
    // An idle client losing its server must not crash the process; the next query reports it.
    this.pool.on('error', () => undefined);
  }

  async current(): Promise<AppliedVersion | null> {
    return this.run(async (client) => {
      const { rows } = await client.query<VersionRow>('SELECT version, hash, applied_at, repo FROM larder_registry_versions ORDER BY id DESC LIMIT 1');
      return rows[0] ? toVersion(rows[0]) : null;
    });
  }

  async apply(repo: CanonicalRepo, options: ApplyOptions = {}): Promise<ApplyResult> {
    return this.run((client) =>
      transaction(client, async () => {
        await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_NAMESPACE, LOCK_APPLY]);
        const { rows } = await client.query<VersionRow>('SELECT version, hash, applied_at, repo FROM larder_registry_versions ORDER BY id DESC LIMIT 1');
        const current = rows[0] ? toVersion(rows[0]) : null;
        const decision = decideApply(current, repo, options);
        if (!decision.changed) return { version: current!, diff: decision.diff, changed: false };
        // clock_timestamp(), not now(): now() is when the transaction began, before the lock wait.
        const inserted = await client.query<{ applied_at: Date }>(
          `INSERT INTO larder_registry_versions (version, hash, applied_at, forced, repo)
           VALUES ($1, $2, clock_timestamp(), $3, $4::jsonb) RETURNING applied_at`,
          [shortVersion(decision.hash), decision.hash, options.force === true, JSON.stringify(repo)],
        );
        return { version: appliedVersion(decision.hash, inserted.rows[0]!.applied_at, repo), diff: decision.diff, changed: true };
      }),
    );
  }

  async history(): Promise<HistoryEntry[]> {
    return this.run(async (client) => {
      const { rows } = await client.query<Omit<VersionRow, 'repo'>>('SELECT version, hash, applied_at FROM larder_registry_versions ORDER BY id');
      return rows.map((r) => ({ version: r.version, hash: r.hash, appliedAt: r.applied_at.toISOString() }));
    });
  }

  async getState<T>(key: string): Promise<T | undefined> {
    return this.run(async (client) => {
      const { rows } = await client.query<{ value: T }>('SELECT value FROM larder_registry_state WHERE key = $1', [key]);
      return rows[0]?.value;
    });
  }

  async setState(key: string, value: unknown): Promise<void> {
    const json = JSON.stringify(value);
    if (json === undefined) throw new InputError(`registry state '${key}': value is not JSON`);
    await this.run((client) =>
      client.query(
        `INSERT INTO larder_registry_state (key, value, updated_at) VALUES ($1, $2::jsonb, clock_timestamp())
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at`,
        [key, json],
      ),
    );
  }

  async ping(): Promise<void> {
    let client: pg.PoolClient | undefined;
    try {
      client = await this.pool.connect();
      // pg reads query_timeout per query too; its types only declare it per client.
      await client.query({ text: 'SELECT 1', query_timeout: PING_TIMEOUT_MS } as pg.QueryConfig);
    } catch (err) {
      throw this.failure(err);
    } finally {
      client?.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  /** Runs `fn` on a pooled client once the tables exist; failures name the registry. */
  private async run<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw this.failure(err);
    }
    let broken = false;
    try {
      this.ready ??= ensureSchema(client).catch((err: unknown) => {
        this.ready = undefined;
        throw err;
      });
      await this.ready;
      return await fn(client);
    } catch (err) {
      if (err instanceof LarderError) throw err;
      broken = true;
      throw this.failure(err);
    } finally {
      client.release(broken);
    }
  }

  /** One line naming the registry (never its password); a LarderError passes unchanged. */
  private failure(err: unknown): Error {
    if (err instanceof LarderError) return err;
    return new RegistryUnavailableError(`registry ${this.url}: ${describeFailure(err)}`);
  }
}

/** pg and net errors: an AggregateError (several addresses tried) has no message of its own. */
function describeFailure(err: unknown): string {
  const e = err as { message?: string; code?: string; errors?: unknown[] };
  const inner = !e?.message && Array.isArray(e?.errors) && e.errors.length ? (e.errors[0] as { message?: string; code?: string }) : e;
  const message = (inner?.message || inner?.code || String(err)).split('\n')[0]!;
  return inner?.code && !message.includes(inner.code) && !/^\d/.test(inner.code) ? `${message} (${inner.code})` : message;
}

async function ensureSchema(client: pg.PoolClient): Promise<void> {
  // Two processes creating the same table at once can fail on the catalog; the lock orders them.
  await transaction(client, async () => {
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_NAMESPACE, LOCK_SCHEMA]);
    for (const sql of SCHEMA_SQL) await client.query(sql);
  });
}

async function transaction<T>(client: pg.PoolClient, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

const toVersion = (row: VersionRow): AppliedVersion => ({
  version: row.version,
  hash: row.hash,
  appliedAt: row.applied_at.toISOString(),
  repo: row.repo,
});
