/**
 * Tile merges on Redis by compare-and-set: read the records (their version, `swept` marks and
 * the batch's fields: commands/readTiles-n.lua, 500 records a call; one HMGET per record on a
 * Cluster), merge the partials here with
 * mergePartial, and write each record with commands/casTiles-n.lua only if its version is still
 * the one read; records another writer changed meanwhile are read and merged again. Concurrent
 * writers never lose an event, and Redis, which runs every write of a shard on one core, only
 * reads and stores bytes: merging in a Lua script cost it about 15 µs of CPU per weld reading
 * (bench/push-stream.bench.mjs at 40k readings/s), this design 6-11 µs, and the merge moves to
 * the servers, which scale out.
 *
 * Old tiles: `swept` holds, per tile size, the greatest cutoff (store.ts tileCutoffs) applied to
 * the record, so no field of that size below it exists. A write whose cutoff is greater deletes
 * the indexes in between by name, or, after a gap of more than RANGE_MAX tiles (an idle record),
 * has the script look at every field. Fields of the batch below the record's marks are dropped
 * (they would be deleted at the next sweep), and the expiry is pushed back when the marks move.
 */
import { endianness } from 'node:os';
import { mergePartial, PARTIAL_SLOTS, tileFromBytes } from '../../streaming/partial.js';
import type { TileLayout, TileUpdates } from '../../streaming/tiles.js';
import { checkTileField, OnlineStoreUnavailableError, TILE_SWEEP_MS, tileCutoffs } from '../store.js';
import { ByteWriter } from '../codec.js';
import type { EntityKey } from '../entity-key.js';
import type { RedisConnection } from './connection.js';

const SWEPT = 'swept';

/** Records per script call on a standalone server. */
const KEYS_PER_CALL = 500;
/** Tile indexes deleted by name at most per size; past that the script looks at the fields. */
const RANGE_MAX = 64;
/** Rounds of read, merge and compare-and-set before a merge gives up (only under a storm of writers to the same records). */
const MAX_ROUNDS = 50;

interface Entry {
  key: string;
  fields: { name: string; size: number; index: number; tile: Float64Array }[];
}

/** Merges `updates` into the tile records (see the module comment). */
export async function casMergeTiles(connection: RedisConnection, keyOf: (key: EntityKey) => string, layout: TileLayout, updates: TileUpdates, nowMs: number): Promise<void> {
  const cutoffs = tileCutoffs(layout, nowMs);
  let pending = entriesOf(layout, updates, cutoffs, keyOf);
  const ttl = String(Math.max(1, Math.ceil(layout.retentionMs + TILE_SWEEP_MS)));
  const sizesArg = sizesArgument(layout);
  for (let round = 0; pending.length > 0; round++) {
    if (round === MAX_ROUNDS) throw new OnlineStoreUnavailableError(`online store ${connection.url}: tiles of '${layout.view}': ${pending.length} records kept changing under ${MAX_ROUNDS} attempts to merge them`);
    // Writers that collided back off a little, differently, so one of them gets through.
    if (round > 0) await new Promise((r) => setTimeout(r, Math.random() * 2 * round));
    const stored = await readRecords(connection, pending);
    const writes = pending.map((entry, i) => planWrite(layout, entry, stored[i]!, cutoffs));
    pending = await writeRecords(connection, pending, writes, ttl, sizesArg);
  }
}

/** Per entity, the batch's fields still inside the cutoffs; each field name checked once. */
function entriesOf(layout: TileLayout, updates: TileUpdates, cutoffs: readonly number[], keyOf: (key: EntityKey) => string): Entry[] {
  const parsed = new Map<string, [size: number, index: number]>();
  const entries: Entry[] = [];
  for (const [entityKey, fields] of updates) {
    const entry: Entry = { key: keyOf(entityKey), fields: [] };
    for (const [name, tile] of fields) {
      let field = parsed.get(name);
      if (!field || tile.length !== layout.sizes[field[0]]!.columns.length * PARTIAL_SLOTS) parsed.set(name, (field = checkTileField(layout, name, tile)));
      const [size, index] = field;
      if (index >= cutoffs[size]!) entry.fields.push({ name, size, index, tile });
    }
    if (entry.fields.length) entries.push(entry);
  }
  return entries;
}

/** Per entry: its version (as stored, or null), its `swept` marks, then its fields' bytes. */
async function readRecords(connection: RedisConnection, entries: readonly Entry[]): Promise<(Buffer | null)[][]> {
  const client = connection.client;
  const ask = (e: Entry) => [e.key, 'v', 'swept', ...e.fields.map((f) => f.name)] as const;
  if (connection.cluster) return Promise.all(entries.map((e) => client.hmgetBuffer(...ask(e))));
  // Standalone: one readTiles script call per KEYS_PER_CALL records.
  const calls: Promise<(Buffer | null)[][]>[] = [];
  for (let start = 0; start < entries.length; start += KEYS_PER_CALL) {
    const part = entries.slice(start, start + KEYS_PER_CALL);
    const out = new ByteWriter(part.length * 64);
    for (const e of part) {
      out.ensure(2);
      out.buf.writeUInt16LE(e.fields.length + 2, out.pos);
      out.pos += 2;
      for (const name of ['v', SWEPT, ...e.fields.map((f) => f.name)]) {
        out.ensure(1 + name.length);
        out.buf[out.pos] = name.length;
        out.pos += 1 + out.buf.write(name, out.pos + 1, 'latin1');
      }
    }
    calls.push(client.larderReadTilesBuffer(part.length, ...part.map((e) => e.key), out.bytes()));
  }
  return (await Promise.all(calls)).flat();
}

interface Write {
  version: number;
  /** 1: swept (PEXPIRE); 2: the script looks at every field, deleting below `keep`. */
  flags: number;
  keep: number[];
  /** The fields to set: the batch's tile, merged into the stored bytes when there are some. */
  sets: { name: string; stored: Buffer | null; tile: Float64Array }[];
  /** `swept`, when the marks moved. */
  swept: Float64Array | null;
  deletes: string[];
}

/** What to write to one record: its tiles to merge, the tiles that fell out, its new marks. */
function planWrite(layout: TileLayout, entry: Entry, stored: readonly (Buffer | null)[], cutoffs: readonly number[]): Write | null {
  const version = stored[0] ? Number(stored[0].toString('latin1')) : -1;
  const swept = stored[1];
  const marks = swept ? tileFromBytes(swept) : null;
  let moved = !marks;
  let scan = false;
  const deletes: string[] = [];
  const keep = cutoffs.map((cut, j) => {
    if (!marks) return cut;
    const mark = marks[j]!;
    if (mark >= cut) return mark;
    moved = true;
    if (cut - mark > RANGE_MAX) scan = true;
    else for (let index = mark; index < cut; index++) deletes.push(`${layout.sizes[j]!.tileMs}:${index}`);
    return cut;
  });
  const sets: Write['sets'] = [];
  entry.fields.forEach((field, f) => {
    if (field.index >= keep[field.size]!) sets.push({ name: field.name, stored: stored[f + 2] ?? null, tile: field.tile });
  });
  // Nothing to merge (all below the marks): the record stays as it is.
  if (sets.length === 0) return null;
  return { version, flags: (moved ? 1 : 0) | (scan ? 2 : 0), keep, sets, swept: moved ? Float64Array.from(keep) : null, deletes: scan ? [] : deletes };
}

/** A tile's doubles, and the same memory as bytes: stored tiles are copied in and merged tiles out whole. */
let scratch = new Float64Array(16 * PARTIAL_SLOTS);
let scratchBytes = new Uint8Array(scratch.buffer);
const LITTLE_ENDIAN = endianness() === 'LE';

/** Writes `tile` merged into `stored` (or `tile` alone) as little-endian doubles at `out`'s position. */
function writeMerged(out: ByteWriter, stored: Buffer | null, tile: Float64Array): void {
  const n = tile.length;
  const bytes = n * 8;
  if (stored && stored.length !== bytes) throw new Error(`tile record: a stored tile of ${stored.length} bytes where ${bytes} were expected`);
  out.ensure(bytes);
  if (!LITTLE_ENDIAN) {
    const merged = stored ? tileFromBytes(stored) : Float64Array.from(tile);
    if (stored) for (let c = 0; c < n; c += PARTIAL_SLOTS) mergePartial(merged, c, tile, c);
    for (let k = 0; k < n; k++) out.buf.writeDoubleLE(merged[k]!, out.pos + 8 * k);
  } else if (!stored) {
    out.buf.set(new Uint8Array(tile.buffer, tile.byteOffset, bytes), out.pos);
  } else {
    if (n > scratch.length) {
      scratch = new Float64Array(n);
      scratchBytes = new Uint8Array(scratch.buffer);
    }
    scratchBytes.set(stored);
    for (let c = 0; c < n; c += PARTIAL_SLOTS) mergePartial(scratch, c, tile, c);
    out.buf.set(scratchBytes.subarray(0, bytes), out.pos);
  }
  out.pos += bytes;
}

/** Sends the compare-and-set writes; the entries whose records changed since they were read. */
async function writeRecords(connection: RedisConnection, entries: readonly Entry[], writes: readonly (Write | null)[], ttl: string, sizesArg: Buffer): Promise<Entry[]> {
  const client = connection.client;
  const out = new ByteWriter(1024);
  const encode = (w: Write): void => {
    out.ensure(13 + 8 * w.keep.length);
    out.buf.writeDoubleLE(w.version, out.pos);
    out.buf[out.pos + 8] = w.flags;
    out.pos += 9;
    if (w.flags & 2) for (const k of w.keep) {
      out.buf.writeDoubleLE(k, out.pos);
      out.pos += 8;
    }
    out.buf.writeUInt16LE(w.sets.length + (w.swept ? 1 : 0), out.pos);
    out.buf.writeUInt16LE(w.deletes.length, out.pos + 2);
    out.pos += 4;
    for (const { name, stored, tile } of w.sets) {
      out.ensure(5 + name.length);
      out.buf[out.pos] = name.length;
      out.pos += 1 + out.buf.write(name, out.pos + 1, 'latin1');
      out.buf.writeUInt32LE(tile.length * 8, out.pos);
      out.pos += 4;
      writeMerged(out, stored, tile);
    }
    if (w.swept) {
      out.ensure(6 + SWEPT.length);
      out.buf[out.pos] = SWEPT.length;
      out.pos += 1 + out.buf.write(SWEPT, out.pos + 1, 'latin1');
      out.buf.writeUInt32LE(w.swept.length * 8, out.pos);
      out.pos += 4;
      writeMerged(out, null, w.swept);
    }
    for (const name of w.deletes) {
      out.ensure(1 + name.length);
      out.buf[out.pos] = name.length;
      out.pos += 1 + out.buf.write(name, out.pos + 1, 'latin1');
    }
  };
  const conflicted: Entry[] = [];
  const calls: Promise<void>[] = [];
  if (connection.cluster) {
    entries.forEach((entry, i) => {
      const w = writes[i];
      if (!w) return;
      const from = out.pos;
      encode(w);
      const blob = Buffer.from(out.buf.subarray(from, out.pos));
      calls.push(client.larderCasTiles1(entry.key, ttl, sizesArg, blob).then((c) => void (c.length && conflicted.push(entry))));
    });
  } else {
    let keys: string[] = [];
    let batch: Entry[] = [];
    let from = out.pos;
    const flush = (): void => {
      if (!keys.length) return;
      const these = batch;
      calls.push(client.larderCasTiles(keys.length, ...keys, ttl, sizesArg, out.buf.subarray(from, out.pos)).then((c) => c.forEach((p) => conflicted.push(these[p - 1]!))));
      keys = [];
      batch = [];
      from = out.pos;
    };
    entries.forEach((entry, i) => {
      const w = writes[i];
      if (!w) return;
      keys.push(entry.key);
      batch.push(entry);
      encode(w);
      if (keys.length === KEYS_PER_CALL) flush();
    });
    flush();
  }
  await Promise.all(calls);
  return conflicted;
}

/** ARGV[2] of the script: the sizes' field prefixes. */
function sizesArgument(layout: TileLayout): Buffer {
  const parts = [Buffer.from([layout.sizes.length])];
  for (const s of layout.sizes) {
    const prefix = Buffer.from(String(s.tileMs), 'latin1');
    parts.push(Buffer.from([prefix.length]), prefix);
  }
  return Buffer.concat(parts);
}
