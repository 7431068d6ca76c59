/**
 * The PostgreSQL registry: every applied version is a row (kept for audit, never updated), state
 * is a key/value table, and every registered model version is a row of larder_models. Tables are
 * created on first use under an advisory lock, and applies and model registrations are serialised
 * by transaction-scoped advisory locks, so any number of processes may write at once.
 */
import pg from 'pg';
import { InputError, LarderError } from '../core/errors.js';
import type { ModelArtifact, ModelVersionMeta, NewModelVersion } from '../models/artifact.js';
import { redactUrl, shortVersion, type CanonicalRepo } from './canonical.js';
import {
  RegistryUnavailableError,
  appliedVersion,
  checkModelName,
  checkModelVersion,
  checkNewModel,
  decideApply,
  modelAbsent,
  type AppliedVersion,
  type ApplyOptions,
  type ApplyResult,
  type HistoryEntry,
  type Registry,
} from './registry.js';

/** Advisory lock keys: one namespace for Larder's registry, one key per purpose. */
const LOCK_NAMESPACE = 0x4c617264; // 'Lard'
const LOCK_SCHEMA = 1;
const LOCK_APPLY = 2;
const LOCK_MODEL = 3;

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
  // meta is jsonb without version and registered_at, which the columns hold. The estimators are
  // bytea holding the JSON text the registry was given, the same bytes as the file backend's
  // artifact: SQL never looks inside them, and jsonb would convert each of a Naive Bayes' 124k
  // numbers to numeric and back on every write and load; bytea stores the text verbatim
  // (compressed, and out of line when large, so a query of meta alone never reads it).
  `CREATE TABLE IF NOT EXISTS larder_models (
     name text NOT NULL,
     version integer NOT NULL,
     meta jsonb NOT NULL,
     estimators bytea NOT NULL,
     registered_at timestamptz NOT NULL DEFAULT clock_timestamp(),
     PRIMARY KEY (name, version)
   )`,
];

interface VersionRow {
  version: string;
  hash: string;
  applied_at: Date;
  repo: CanonicalRepo;
}

interface ModelRow {
  version: number;
  meta: Omit<ModelVersionMeta, 'version' | 'registeredAt'>;
  registered_at: Date;
}

const PING_TIMEOUT_MS = 5000;

/** Default bound on every statement of the registry (reads, applies, lock waits, model loads). */
export const DEFAULT_QUERY_TIMEOUT_MS = 10_000;
/** The client's own bound comes this much after the server's, for a server that cannot even cancel. */
const CLIENT_TIMEOUT_SLACK_MS = 2000;

export interface PostgresRegistryOptions {
  /**
   * Bound on each statement (default 10 s): PostgreSQL's `statement_timeout` (the server cancels
   * the statement, a lock wait included), and pg's `query_timeout` a little later (the client gives
   * up on a server or network that does not answer at all, and drops the connection). Either way
   * the call fails with RegistryUnavailableError rather than hang.
   */
  queryTimeoutMs?: number;
}

export class PostgresRegistry implements Registry {
  readonly url: string;
  private readonly pool: pg.Pool;
  private ready: Promise<void> | undefined;

  constructor(connectionString: string, options: PostgresRegistryOptions = {}) {
    this.url = redactUrl(connectionString);
    const timeoutMs = options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) throw new InputError(`registry: queryTimeoutMs must be a whole number of ms, at least 1, got ${timeoutMs}`);
    this.pool = new pg.Pool({
      connectionString,
      max: 4,
      connectionTimeoutMillis: 10_000,
      idleTimeoutMillis: 10_000,
      statement_timeout: timeoutMs,
      query_timeout: timeoutMs + CLIENT_TIMEOUT_SLACK_MS,
    });
    // An idle client losing its server must not crash the process; the next query reports it.
    this.pool.on('error', () => undefined);
    // Nor may a checked-out client's: its query fails with the error, and run() discards it.
    this.pool.on('connect', (client) => client.on('error', () => undefined));
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

  async registerModel(model: NewModelVersion): Promise<ModelVersionMeta> {
    const estimators = Buffer.from(checkNewModel(model), 'utf8');
    const { name } = model.meta;
    return this.run((client) =>
      transaction(client, async () => {
        await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_NAMESPACE, LOCK_MODEL]);
        // registered_at defaults to clock_timestamp(): the time of the insert, after the lock wait.
        const { rows } = await client.query<ModelRow>(
          `INSERT INTO larder_models (name, version, meta, estimators)
           SELECT $1, COALESCE(max(version), 0) + 1, $2::jsonb, $3 FROM larder_models WHERE name = $1
           RETURNING version, meta, registered_at`,
          [name, JSON.stringify(model.meta), estimators],
        );
        return toModelMeta(rows[0]!);
      }),
    );
  }

  async modelVersions(name: string): Promise<ModelVersionMeta[]> {
    checkModelName(name);
    return this.run(async (client) => {
      const { rows } = await client.query<ModelRow>('SELECT version, meta, registered_at FROM larder_models WHERE name = $1 ORDER BY version', [name]);
      return rows.map(toModelMeta);
    });
  }

  async latestModel(name: string): Promise<ModelVersionMeta | null> {
    checkModelName(name);
    return this.run(async (client) => {
      const { rows } = await client.query<ModelRow>('SELECT version, meta, registered_at FROM larder_models WHERE name = $1 ORDER BY version DESC LIMIT 1', [name]);
      return rows[0] ? toModelMeta(rows[0]) : null;
    });
  }

  async loadModel(name: string, version?: string): Promise<ModelArtifact> {
    checkModelName(name);
    const wanted = version === undefined ? null : checkModelVersion(name, version);
    return this.run(async (client) => {
      const { rows } = await client.query<ModelRow & { estimators: Buffer }>(
        `SELECT version, meta, registered_at, estimators FROM larder_models
         WHERE name = $1 AND ($2::int IS NULL OR version = $2) ORDER BY version DESC LIMIT 1`,
        [name, wanted],
      );
      const row = rows[0];
      if (!row) {
        const versions = await client.query<{ version: number }>('SELECT version FROM larder_models WHERE name = $1 ORDER BY version', [name]);
        const names = versions.rows.length ? [] : await modelNames(client);
        throw modelAbsent(name, version, versions.rows.map((r) => String(r.version)), names);
      }
      return { meta: toModelMeta(row), estimators: JSON.parse(row.estimators.toString('utf8')) as ModelArtifact['estimators'] };
    });
  }

  async modelNames(): Promise<string[]> {
    return this.run(modelNames);
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

/** Sorted by code point, as the file backend sorts them. */
async function modelNames(client: pg.PoolClient): Promise<string[]> {
  const { rows } = await client.query<{ name: string }>('SELECT name FROM larder_models GROUP BY name ORDER BY name COLLATE "C"');
  return rows.map((r) => r.name);
}

const toModelMeta = (row: ModelRow): ModelVersionMeta => ({ ...row.meta, version: String(row.version), registeredAt: row.registered_at.toISOString() });

const toVersion = (row: VersionRow): AppliedVersion => ({
  version: row.version,
  hash: row.hash,
  appliedAt: row.applied_at.toISOString(),
  repo: row.repo,
});
