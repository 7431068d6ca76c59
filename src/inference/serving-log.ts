/**
 * The serving log (CONTRACT s.9): every prediction `/predict` answers, with its features, as
 * Parquet in the offline store, for drift reports, audits and future training data:
 *   <offline>/_serving_log/<model>/date=YYYY-MM-DD/<timestamp>-<random>.parquet
 * Hive-partitioned by the UTC date of each row's instant; columns in `servingLogColumns(meta)`.
 *
 * The response path calls `append`, which only queues the rows: no I/O, no await, no throw. A
 * timer writes the queue every `flushMs`, one file per model version (feature list) and date,
 * each whole or not at all (hidden temp name, fsync, rename). Writes are serialised on one DuckDB,
 * in a child process at low priority (converter.ts). When writes fail or fall behind, the queue is bounded: the oldest rows are dropped,
 * counted and logged, so serving never blocks or grows without limit on account of the log.
 * Old `date=` partitions are deleted after the retention period.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, errorMessage } from '../core/errors.js';
import { syncDir, syncFile } from '../core/fsync.js';
import { DAY_MS, utcDate, type EpochMs } from '../core/time.js';
import { duckdbType, parseValueType, type ValueType } from '../core/value-types.js';
import type { ModelFeature, ModelVersionMeta } from '../models/artifact.js';
import { sqlIdent, sqlPath, sqlString } from '../offline/duckdb.js';
import { ParquetConverter } from './converter.js';
import { servingLogDir } from '../offline/layout.js';

export interface ServingLogRow {
  requestId: string;
  at: EpochMs;
  /** Position in the request. */
  row: number;
  /** The join key values the row was predicted for; null for raw inputs. */
  entity: Record<string, string | number> | null;
  features: Record<string, unknown>;
  prediction: number;
  probability: number;
  needsReview: boolean;
}

export interface ServingLogOptions {
  offlineDir: string;
  /** How often pending rows are written; default 1000 ms. */
  flushMs?: number;
  /** Rows held in memory at most; beyond it the oldest are dropped. Default 200,000. */
  maxPendingRows?: number;
  /** Days a `date=` partition is kept; 0 keeps forever. Default LARDER_SERVING_LOG_RETENTION_DAYS, else 1825 (five years). */
  retentionDays?: number;
  /** Where the log reports drops and failed writes (one line each); default stderr. */
  log?: (line: string) => void;
}

export interface ServingLogStats {
  /** Rows durably written. */
  written: number;
  /** Rows dropped: over the pending bound, appended after close, or unwritable. */
  dropped: number;
  /** Rows not written yet (queued or being written). */
  pending: number;
  failedFlushes: number;
}

export const SERVING_LOG_RETENTION_DAYS = 1825;
const RETENTION_SWEEP_MS = 3_600_000;
/** Hidden temp files older than this are leftovers of a crash, not a write in progress. */
const STALE_TEMP_MS = 3_600_000;

// ---------------------------------------------------------------------------------------------
// Layout: the columns of a model version's log files. Drift reports read them the same way.

export interface ServingLogColumn {
  name: string;
  /** DuckDB type in the Parquet file. */
  type: string;
}

export interface ServingLogLayout {
  columns: ServingLogColumn[];
  /** Column of each join key of `meta.joinKeys`, in order. */
  keys: { key: string; column: string }[];
  /** Column of each of `meta.features`, in order. */
  features: { feature: ModelFeature; column: string }[];
}

const FIXED_COLUMNS: ServingLogColumn[] = [
  { name: 'request_id', type: 'VARCHAR' },
  { name: 'event_timestamp', type: 'TIMESTAMPTZ' },
  { name: 'row', type: 'INTEGER' },
  { name: 'model', type: 'VARCHAR' },
  { name: 'model_version', type: 'VARCHAR' },
  { name: 'entity', type: 'VARCHAR' },
];
const OUTCOME_COLUMNS: ServingLogColumn[] = [
  { name: 'prediction', type: 'INTEGER' },
  { name: 'probability', type: 'DOUBLE' },
  { name: 'needs_review', type: 'BOOLEAN' },
];

/**
 * The fixed columns, one VARCHAR per join key, the outcome, then one column per feature typed as
 * the offline store types it. A key or feature whose name is taken already (a feature called
 * `prediction`) is written as `key_<name>` / `feature_<name>`.
 */
export function servingLogLayout(meta: Pick<ModelVersionMeta, 'joinKeys' | 'features'>): ServingLogLayout {
  const taken = new Set([...FIXED_COLUMNS, ...OUTCOME_COLUMNS].map((c) => c.name));
  const claim = (name: string, prefix: string): string => {
    let column = taken.has(name) ? `${prefix}_${name}` : name;
    for (let i = 2; taken.has(column); i++) column = `${prefix}_${name}_${i}`;
    taken.add(column);
    return column;
  };
  const keys = meta.joinKeys.map((key) => ({ key, column: claim(key, 'key') }));
  const features = meta.features.map((feature) => ({ feature, column: claim(feature.name, 'feature') }));
  const columns = [
    ...FIXED_COLUMNS,
    ...keys.map((k) => ({ name: k.column, type: 'VARCHAR' })),
    ...OUTCOME_COLUMNS,
    ...features.map((f) => ({ name: f.column, type: duckdbType(f.feature.type) })),
  ];
  return { columns, keys, features };
}

// ---------------------------------------------------------------------------------------------

interface Batch {
  meta: ModelVersionMeta;
  rows: ServingLogRow[];
}

/** Rows of one model version (feature list) and one date: one file. */
interface FileGroup {
  meta: ModelVersionMeta;
  date: string;
  rows: ServingLogRow[];
}


export class ServingLog {
  readonly offlineDir: string;
  readonly retentionDays: number;
  private readonly maxPendingRows: number;
  private readonly log: (line: string) => void;
  private queue: Batch[] = [];
  private queued = 0;
  private inFlight = 0;
  private written = 0;
  private dropped = 0;
  private failedFlushes = 0;
  private droppedUnreported = 0;
  private chain: Promise<void> = Promise.resolve();
  private flushing = false;
  private closed = false;
  /** DuckDB in a niced child process (converter.ts): the conversion never takes the server's core. */
  private readonly converter = new ParquetConverter();
  private readonly flushTimer: NodeJS.Timeout;
  private readonly sweepTimer: NodeJS.Timeout | undefined;

  constructor(options: ServingLogOptions) {
    this.offlineDir = options.offlineDir;
    this.maxPendingRows = options.maxPendingRows ?? 200_000;
    if (!Number.isInteger(this.maxPendingRows) || this.maxPendingRows < 1) throw new InputError(`serving log: maxPendingRows must be a positive integer, got ${this.maxPendingRows}`);
    this.retentionDays = options.retentionDays ?? retentionFromEnv(process.env.LARDER_SERVING_LOG_RETENTION_DAYS);
    if (!(this.retentionDays >= 0)) throw new InputError(`serving log: retentionDays must be 0 (keep forever) or more, got ${this.retentionDays}`);
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    const flushMs = options.flushMs ?? 1000;
    if (!(flushMs > 0)) throw new InputError(`serving log: flushMs must be above 0, got ${flushMs}`);
    // Unref'd: the log never keeps a process alive; close() writes what is left.
    this.flushTimer = setInterval(() => this.flushInBackground(), flushMs);
    this.flushTimer.unref();
    if (this.retentionDays > 0) {
      void this.applyRetention();
      this.sweepTimer = setInterval(() => void this.applyRetention(), RETENTION_SWEEP_MS);
      this.sweepTimer.unref();
    }
  }

  get stats(): ServingLogStats {
    return { written: this.written, dropped: this.dropped, pending: this.queued + this.inFlight, failedFlushes: this.failedFlushes };
  }

  /**
   * Queues the rows of one answer. Synchronous and O(rows): no I/O, never throws. The rows are
   * read when written, so the caller must not change them afterwards.
   */
  append(meta: ModelVersionMeta, rows: readonly ServingLogRow[]): void {
    try {
      if (rows.length === 0) return;
      if (this.closed) {
        this.drop(rows.length);
        return;
      }
      // A row without a valid instant has no partition: dropped here rather than failing a file.
      const valid = rows.filter((r) => Number.isFinite(r?.at));
      this.drop(rows.length - valid.length);
      if (valid.length === 0) return;
      this.queue.push({ meta, rows: valid });
      this.queued += valid.length;
      this.enforceBound();
      // A burst that fills a quarter of the bound is written now rather than at the next tick.
      if (this.queued >= this.maxPendingRows / 4 && !this.flushing) setImmediate(() => this.flushInBackground());
    } catch {
      this.drop(rows?.length ?? 0);
    }
  }

  /** Writes what is pending now (after any write in progress); resolves when it is durable, rejects if some of it could not be written (it stays pending). */
  flush(): Promise<void> {
    const run = this.chain.then(() => this.flushOnce());
    this.chain = run.catch(() => {});
    return run;
  }

  /** Writes what is pending and stops. Rows that cannot be written are counted as dropped. */
  async close(): Promise<void> {
    if (this.closed) return this.chain;
    this.closed = true;
    clearInterval(this.flushTimer);
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    try {
      await this.flush();
    } catch (err) {
      const lost = this.queued;
      this.queue = [];
      this.queued = 0;
      this.drop(lost);
      this.report();
      throw err;
    } finally {
      this.converter.close();
    }
  }

  /** Deletes `date=` partitions older than the retention period under every model; returns the folders removed. */
  async applyRetention(now: number = Date.now()): Promise<string[]> {
    if (this.retentionDays <= 0) return [];
    const cutoff = utcDate(now - this.retentionDays * DAY_MS);
    const root = join(this.offlineDir, '_serving_log');
    const removed: string[] = [];
    try {
      for (const model of await listDirs(root)) {
        if (model.startsWith('.')) continue;
        for (const partition of await listDirs(join(root, model))) {
          const m = /^date=(\d{4}-\d{2}-\d{2})$/.exec(partition);
          if (!m) continue;
          const dir = join(root, model, partition);
          if (m[1]! < cutoff) {
            await rm(dir, { recursive: true, force: true });
            removed.push(dir);
          } else {
            await removeStaleTemps(dir, now);
          }
        }
      }
    } catch (err) {
      this.say(`serving log: retention sweep of ${root} failed: ${errorMessage(err)}`);
    }
    return removed;
  }

  // -------------------------------------------------------------------------------------------

  private flushInBackground(): void {
    if (this.flushing || this.queued === 0) return;
    this.flush().catch(() => {}); // reported by flushOnce; the rows stay pending
  }

  private async flushOnce(): Promise<void> {
    this.report();
    if (this.queue.length === 0) return;
    const batches = this.queue;
    this.queue = [];
    this.inFlight = this.queued;
    this.queued = 0;
    this.flushing = true;
    const failed: Batch[] = [];
    let firstError: unknown;
    try {
      for (const group of groupFiles(batches)) {
        try {
          await this.writeFile(group);
          this.written += group.rows.length;
        } catch (err) {
          firstError ??= err;
          failed.push({ meta: group.meta, rows: group.rows });
        }
        this.inFlight -= group.rows.length;
      }
    } finally {
      this.inFlight = 0;
      this.flushing = false;
    }
    if (failed.length === 0) return;
    // Older than anything appended meanwhile: back to the front, then the bound applies.
    this.queue = [...failed, ...this.queue];
    this.queued += failed.reduce((n, b) => n + b.rows.length, 0);
    this.enforceBound();
    this.failedFlushes++;
    this.say(`serving log: writing to ${join(this.offlineDir, '_serving_log')} failed, ${this.queued} rows kept pending: ${errorMessage(firstError).split('\n')[0]}`);
    this.report();
    throw firstError;
  }

  /** Drops the oldest queued rows beyond the bound (rows being written count towards it). */
  private enforceBound(): void {
    let excess = this.queued + this.inFlight - this.maxPendingRows;
    while (excess > 0 && this.queue.length > 0) {
      const oldest = this.queue[0]!;
      const n = Math.min(excess, oldest.rows.length);
      if (n === oldest.rows.length) this.queue.shift();
      else oldest.rows = oldest.rows.slice(n);
      this.queued -= n;
      excess -= n;
      this.drop(n);
    }
  }

  private drop(n: number): void {
    this.dropped += n;
    this.droppedUnreported += n;
  }

  /** One line for the rows dropped since the last one. */
  private report(): void {
    if (this.droppedUnreported === 0) return;
    this.say(`serving log: dropped ${this.droppedUnreported} prediction rows (at most ${this.maxPendingRows} wait to be written; writes are failing or behind)`);
    this.droppedUnreported = 0;
  }

  private say(line: string): void {
    try {
      this.log(line);
    } catch {
      // A broken logger must not break serving.
    }
  }


  /** One Parquet file: rows as JSON lines, converted by DuckDB to a hidden file, synced, renamed into place. */
  private async writeFile(group: FileGroup): Promise<void> {
    const { meta, date, rows } = group;
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(meta.name)) throw new Error(`model name '${meta.name}' cannot be a folder name`);
    const layout = layoutOf(meta);
    const dir = join(servingLogDir(this.offlineDir, meta.name), `date=${date}`);
    const name = `${fileStamp(Date.now())}-${randomBytes(6).toString('hex')}.parquet`;
    const lines = join(dir, `.${name}.ndjson`);
    const partial = join(dir, `.${name}.partial`);
    await mkdir(dir, { recursive: true });
    try {
      await writeJsonLines(lines, rows, (row) => jsonRow(meta, layout, row));
      const converter = this.converter;
      const columns = layout.columns.map((c, i) => `c${i}: ${sqlString(jsonType(c))}`).join(', ');
      const select = layout.columns.map((c, i) => `${fromJson(c, `c${i}`)} AS ${sqlIdent(c.name)}`).join(', ');
      await converter.run(
        `COPY (SELECT ${select} FROM read_json(${sqlPath(lines)}, format = 'newline_delimited', columns = {${columns}})) TO ${sqlString(partial)} (FORMAT parquet, COMPRESSION zstd)`,
      );
      await syncFile(partial);
      await rename(partial, join(dir, name));
      await syncDir(dir);
    } finally {
      await rm(lines, { force: true });
      await rm(partial, { force: true });
    }
  }
}

function retentionFromEnv(text: string | undefined): number {
  if (text === undefined || text.trim() === '') return SERVING_LOG_RETENTION_DAYS;
  const days = Number(text);
  if (!Number.isInteger(days) || days < 0) throw new InputError(`LARDER_SERVING_LOG_RETENTION_DAYS: expected a whole number of days (0 keeps forever), got '${text}'`);
  return days;
}

/** Batches -> one group per model version, feature list and UTC date, rows in arrival order. */
const layouts = new WeakMap<ModelVersionMeta, ServingLogLayout>();

/** servingLogLayout, once per model version. */
function layoutOf(meta: ModelVersionMeta): ServingLogLayout {
  let layout = layouts.get(meta);
  if (!layout) layouts.set(meta, (layout = servingLogLayout(meta)));
  return layout;
}

const schemaKeys = new WeakMap<ModelVersionMeta, string>();

/** What decides a file's columns, once per model version (a flush holds one batch per request). */
function schemaKey(meta: ModelVersionMeta): string {
  let key = schemaKeys.get(meta);
  if (key === undefined) {
    key = JSON.stringify([meta.name, meta.version, meta.joinKeys, meta.features.map((f) => [f.name, f.type])]);
    schemaKeys.set(meta, key);
  }
  return key;
}

function groupFiles(batches: readonly Batch[]): FileGroup[] {
  // By schema, then by UTC day number: a flush holds one batch per request (20,000 in 10 s at
  // 2,000 req/s), and a string key per row cost the event loop ~40 ms a flush.
  const groups = new Map<string, Map<number, FileGroup>>();
  const out: FileGroup[] = [];
  let lastMeta: ModelVersionMeta | undefined;
  let days: Map<number, FileGroup> | undefined;
  for (const batch of batches) {
    if (batch.meta !== lastMeta) {
      lastMeta = batch.meta;
      const schema = schemaKey(batch.meta);
      days = groups.get(schema);
      if (!days) groups.set(schema, (days = new Map()));
    }
    for (const row of batch.rows) {
      const day = Math.floor(row.at / DAY_MS);
      let group = days!.get(day);
      if (!group) {
        group = { meta: batch.meta, date: utcDate(day * DAY_MS), rows: [] };
        days!.set(day, group);
        out.push(group);
      }
      group.rows.push(row);
    }
  }
  return out;
}

/** `20240101T101500123Z`: sorts by time. */
const fileStamp = (ms: number): string => new Date(ms).toISOString().replace(/[-:.]/g, '');

// ---------------------------------------------------------------------------------------------
// Rows as JSON lines, each value made to fit its column (a value that does not fit is null, so
// one bad row cannot fail a file forever).

/** Types read from the JSON: times and bytes travel as text and are converted in the SELECT. */
function jsonType(column: ServingLogColumn): string {
  if (column.name === 'event_timestamp') return 'BIGINT';
  if (column.type === 'TIMESTAMPTZ' || column.type === 'BLOB') return 'VARCHAR';
  return column.type;
}

function fromJson(column: ServingLogColumn, name: string): string {
  if (column.name === 'event_timestamp') return `make_timestamptz(${name} * 1000)`;
  if (column.type === 'TIMESTAMPTZ') return `CAST(${name} AS TIMESTAMPTZ)`;
  if (column.type === 'BLOB') return `from_base64(${name})`;
  return name;
}

function jsonRow(meta: ModelVersionMeta, layout: ServingLogLayout, row: ServingLogRow): string {
  const entity = row.entity ?? null;
  const values: unknown[] = [
    String(row.requestId),
    Math.trunc(row.at),
    toInteger(row.row, 32),
    meta.name,
    meta.version,
    entity === null ? null : JSON.stringify(entity),
    ...layout.keys.map((k) => {
      const v = entity?.[k.key];
      return v === undefined || v === null ? null : String(v);
    }),
    toInteger(row.prediction, 32),
    toFloat(row.probability),
    typeof row.needsReview === 'boolean' ? row.needsReview : null,
    ...layout.features.map((f) => toColumnValue(f.feature.type, row.features?.[f.feature.name])),
  ];
  const object: Record<string, unknown> = {};
  values.forEach((v, i) => (object[`c${i}`] = v));
  return JSON.stringify(object);
}

function toColumnValue(type: ValueType, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  const parsed = parseValueType(type);
  switch (parsed.kind) {
    case 'sparse': {
      const v = value as { indices?: Iterable<unknown>; values?: Iterable<unknown> };
      if (!isIterable(v.indices) || !isIterable(v.values)) return null;
      const indices = Array.from(v.indices, (i) => toInteger(i, 32));
      const values = Array.from(v.values, toFloat);
      return indices.length === values.length && !indices.includes(null) ? { indices, values } : null;
    }
    case 'dense':
      return isIterable(value) && typeof value !== 'string' ? Array.from(value, toFloat) : null;
    case 'scalar':
      switch (parsed.type) {
        case 'int32':
          return toInteger(value, 32);
        case 'int64':
          return toInteger(value, 64);
        case 'float32':
        case 'float64':
          return toFloat(value);
        case 'bool':
          return typeof value === 'boolean' ? value : value === 0 || value === 1 ? value === 1 : null;
        case 'string':
          return typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'bigint' ? String(value) : null;
        case 'timestamp': {
          const ms = value instanceof Date ? value.getTime() : typeof value === 'number' ? value : typeof value === 'string' ? Date.parse(value) : Number.NaN;
          return Number.isFinite(ms) ? new Date(ms).toISOString() : null;
        }
        case 'bytes':
          if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
          return typeof value === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(value) ? value : null; // JSON carries bytes as base64
      }
  }
}

const isIterable = (v: unknown): v is Iterable<unknown> => v !== null && v !== undefined && typeof (v as Iterable<unknown>)[Symbol.iterator] === 'function';

function toFloat(value: unknown): number | null {
  const n = typeof value === 'number' ? value : typeof value === 'bigint' ? Number(value) : typeof value === 'boolean' ? Number(value) : Number.NaN;
  return Number.isFinite(n) ? n : null;
}

function toInteger(value: unknown, bits: 32 | 64): number | string | null {
  if (typeof value === 'bigint') {
    const fits = bits === 32 ? value >= -(2n ** 31n) && value < 2n ** 31n : value >= -(2n ** 63n) && value < 2n ** 63n;
    return fits ? (bits === 64 ? value.toString() : Number(value)) : null;
  }
  const n = toFloat(value);
  if (n === null || !Number.isInteger(n)) return null;
  if (bits === 32 && (n < -(2 ** 31) || n >= 2 ** 31)) return null;
  return Number.isSafeInteger(n) || bits === 64 ? n : null;
}

/** Writes the rows' JSON lines in ~1 MB pieces (one string of 200k rows could exceed V8's limit). */
/** Rows serialised between two yields to the event loop: the log shares it with the requests it logs. */
const ROWS_PER_SLICE = 25;

async function writeJsonLines<T>(file: string, rows: readonly T[], line: (row: T) => string): Promise<void> {
  const handle = await open(file, 'w');
  try {
    let piece = '';
    for (let i = 0; i < rows.length; i++) {
      piece += `${line(rows[i]!)}\n`;
      if ((i + 1) % ROWS_PER_SLICE === 0) {
        // A flush of 10 s of predictions serialised at once held requests for 100+ ms.
        if (piece.length >= 1 << 16) {
          await handle.write(piece);
          piece = '';
        } else {
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
    }
    if (piece) await handle.write(piece);
  } finally {
    await handle.close();
  }
}

async function listDirs(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw err;
  }
}

/** Removes hidden temp files a crashed writer left in a partition (never one being written). */
async function removeStaleTemps(dir: string, now: number): Promise<void> {
  for (const name of await readdir(dir)) {
    if (!name.startsWith('.') || !/\.(partial|ndjson)$/.test(name)) continue;
    const file = join(dir, name);
    const info = await stat(file).catch(() => null);
    if (info && now - info.mtimeMs > STALE_TEMP_MS) await rm(file, { force: true });
  }
}
