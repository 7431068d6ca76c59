/**
 * Tile merges on Redis by compare-and-set. The server knows a record (its version, `swept`
 * marks and tiles), merges the batch's partials into it with mergePartial, and writes it with
 * commands/casTiles-n.lua only if the record's version is still the one known; records another
 * writer changed meanwhile are read again and merged again. Concurrent writers never lose an
 * event, and Redis, which runs every write of a shard on one core, only stores bytes: merging in
 * a Lua script cost it about 15 µs of CPU per weld reading (bench/push-stream.bench.mjs at 40k
 * readings/s); the merge arithmetic moves to the servers, which scale out.
 *
 * What a server knows of a record is kept (TileCache) after it reads it (all its fields, once:
 * commands/allTiles-n.lua) and after each of its own writes, so a writer alone on its records
 * (the usual case: one server per stream partition, or a single one) writes without reading.
 * Per tile size it keeps the newest tiles only, with the index below which it knows nothing; a
 * batch tile older than that (a late event) or a conflict sends the record back to be read.
 *
 * Old tiles: `swept` holds, per tile size, the greatest cutoff (store.ts tileCutoffs) applied to
 * the record, so no field of that size below it exists. A write whose cutoff is greater deletes
 * the indexes in between by name, or, after a gap of more than RANGE_MAX tiles (an idle record),
 * has the script look at every field. Fields of the batch below the record's marks are dropped
 * (they would be deleted at the next sweep), and the expiry is pushed back when the marks move.
 */
import { endianness } from 'node:os';
import { mergeTile, tileFromBytes } from '../../streaming/partial.js';
import type { TileLayout, TileUpdates } from '../../streaming/tiles.js';
import { OnlineStoreUnavailableError, parseTileField, TILE_SWEEP_MS, tileCutoffs, tilesToWrite, type TileToWrite } from '../store.js';
import { ByteWriter } from '../codec.js';
import type { EntityKey } from '../entity-key.js';
import type { RedisConnection } from './connection.js';

const SWEPT = 'swept';
const VERSION = 'v';
/** Records per script call on a standalone server. */
const KEYS_PER_CALL = 500;
/** Tile indexes deleted by name at most per size; past that the script looks at the fields. */
const RANGE_MAX = 64;
/** Rounds of read, merge and compare-and-set before a merge gives up (only under a storm of writers to the same records). */
const MAX_ROUNDS = 50;
/** Tiles per size a known record keeps (the current one and the one before: events arrive a little out of order). */
const KEEP_TILES = 2;

/** What this server knows of a tile record. */
interface KnownRecord {
  version: number;
  marks: Float64Array | null;
  /** Per size: every tile of that size with an index from here on is in `tiles`, or absent from the record. */
  floor: number[];
  tiles: Map<string, KnownTile>;
}

interface KnownTile {
  size: number;
  index: number;
  tile: Float64Array;
}

/** Known records by Redis key, the oldest learnt dropped past `capacity`. */
export class TileCache {
  private readonly records = new Map<string, KnownRecord>();

  constructor(private readonly capacity = 200_000) {}

  get(key: string): KnownRecord | undefined {
    return this.records.get(key);
  }

  set(key: string, record: KnownRecord): void {
    if (this.records.get(key) === record) return;
    this.records.delete(key);
    this.records.set(key, record);
    if (this.records.size > this.capacity) this.records.delete(this.records.keys().next().value!);
  }

  forget(key: string): void {
    this.records.delete(key);
  }
}

/** A tile record to write: its Redis key and the batch's tiles for it. */
interface Entry {
  key: string;
  fields: TileToWrite[];
}

/** Merges `updates` into the tile records (see the module comment). */
export async function casMergeTiles(connection: RedisConnection, cache: TileCache, keyOf: (key: EntityKey) => string, layout: TileLayout, updates: TileUpdates, nowMs: number): Promise<void> {
  const cutoffs = tileCutoffs(layout, nowMs);
  let pending: Entry[] = tilesToWrite(layout, updates, cutoffs).map((e) => ({ key: keyOf(e.key), fields: e.tiles }));
  const ttl = String(Math.max(1, Math.ceil(layout.retentionMs + TILE_SWEEP_MS)));
  const sizesArg = sizesArgument(layout);
  for (let round = 0; pending.length > 0; round++) {
    if (round === MAX_ROUNDS) throw new OnlineStoreUnavailableError(`online store ${connection.url}: tiles of '${layout.view}': ${pending.length} records kept changing under ${MAX_ROUNDS} attempts to merge them`);
    // Writers that collided back off a little, differently, so one of them gets through.
    if (round > 0) await new Promise((r) => setTimeout(r, Math.random() * 2 * round));
    const known = pending.map((e) => cache.get(e.key));
    const unknown = pending.filter((e, i) => !knows(known[i], e));
    if (unknown.length) {
      const read = await readRecords(connection, layout, unknown);
      const byKey = new Map(unknown.map((e, i) => [e.key, read[i]!]));
      pending.forEach((e, i) => {
        const fresh = byKey.get(e.key);
        if (fresh) {
          known[i] = fresh;
          cache.set(e.key, fresh);
        }
      });
    }
    const writes = pending.map((entry, i) => planWrite(layout, entry, known[i]!, cutoffs));
    pending = await writeRecords(connection, cache, layout, pending, writes, known as KnownRecord[], ttl, sizesArg);
  }
}

/** Whether `record` tells every batch tile of `entry` (present or absent). */
const knows = (record: KnownRecord | undefined, entry: Entry): boolean => !!record && entry.fields.every((f) => f.index >= record.floor[f.size]!);

/** Reads whole records (every field): what the server then knows of each. */
async function readRecords(connection: RedisConnection, layout: TileLayout, entries: readonly Entry[]): Promise<KnownRecord[]> {
  const client = connection.client;
  let replies: Buffer[][];
  if (connection.cluster) {
    replies = (await Promise.all(entries.map((e) => client.hgetallBuffer(e.key)))).map((record) => Object.entries(record).flatMap(([k, v]) => [Buffer.from(k, 'latin1'), v]));
  } else {
    const calls: Promise<Buffer[][]>[] = [];
    for (let start = 0; start < entries.length; start += KEYS_PER_CALL) {
      const part = entries.slice(start, start + KEYS_PER_CALL);
      calls.push(client.larderAllTilesBuffer(part.length, ...part.map((e) => e.key)));
    }
    replies = (await Promise.all(calls)).flat();
  }
  return replies.map((flat) => knownFrom(layout, flat));
}

/** A record as HGETALL gives it (name, value, ...), as known: its newest tiles per size. */
function knownFrom(layout: TileLayout, flat: readonly Buffer[]): KnownRecord {
  let version = -1;
  let marks: Float64Array | null = null;
  const tiles = new Map<string, KnownTile>();
  for (let k = 0; k + 1 < flat.length; k += 2) {
    const name = flat[k]!.toString('latin1');
    const value = flat[k + 1]!;
    if (name === VERSION) version = Number(value.toString('latin1'));
    else if (name === SWEPT) marks = tileFromBytes(value);
    else {
      const field = parseTileField(layout, name);
      // A field of another layout's sizes cannot be in a record named by this layout's fingerprint.
      if (field) tiles.set(name, { size: field[0], index: field[1], tile: tileFromBytes(value) });
    }
  }
  // Everything is known for now; after a write only the newest tiles are kept (`written`).
  return { version, marks, floor: layout.sizes.map(() => -Infinity), tiles };
}

const NONE: string[] = [];

interface Write {
  version: number;
  /** 1: swept (PEXPIRE); 2: the script looks at every field, deleting below `keep`. */
  flags: number;
  keep: ArrayLike<number>;
  /** The fields to set, merged (into the known tile, in place) already. */
  sets: { name: string; tile: Float64Array }[];
  /** `swept`, when the marks moved. */
  swept: Float64Array | null;
  deletes: string[];
}

/**
 * What to write to one record: its merged tiles, the tiles that fell out, its new marks. Merges
 * into `known`'s tiles in place: a write that fails makes the caller forget the record.
 */
function planWrite(layout: TileLayout, entry: Entry, known: KnownRecord, cutoffs: readonly number[]): Write | null {
  const marks = known.marks;
  let moved = !marks;
  let scan = false;
  const deletes: string[] = [];
  // The marks stay (the usual case between sweeps), or move up to the cutoffs.
  let keep: ArrayLike<number> = marks ?? cutoffs;
  if (marks && cutoffs.some((cut, j) => cut > marks[j]!)) {
    keep = cutoffs.map((cut, j) => {
      const mark = marks[j]!;
      if (mark >= cut) return mark;
      moved = true;
      if (cut - mark > RANGE_MAX) scan = true;
      else for (let index = mark; index < cut; index++) deletes.push(`${layout.sizes[j]!.tileMs}:${index}`);
      return cut;
    });
  }
  const sets: Write['sets'] = [];
  for (const field of entry.fields) {
    if (field.index < keep[field.size]!) continue;
    const stored = known.tiles.get(field.name);
    if (stored) {
      mergeTile(stored.tile, field.tile);
      sets.push({ name: field.name, tile: stored.tile });
    } else {
      const tile = Float64Array.from(field.tile);
      known.tiles.set(field.name, { size: field.size, index: field.index, tile });
      sets.push({ name: field.name, tile });
    }
  }
  // Nothing to merge (all below the marks): the record stays as it is.
  if (sets.length === 0) return null;
  return { version: known.version, flags: (moved ? 1 : 0) | (scan ? 2 : 0), keep, sets, swept: moved ? Float64Array.from(keep) : null, deletes: scan ? NONE : deletes };
}

/** After a write: the new version and marks, and per size only the newest tiles, above a raised floor. */
function written(layout: TileLayout, known: KnownRecord, w: Write): void {
  known.version = w.version < 0 ? 1 : w.version + 1;
  if (w.swept) known.marks = w.swept;
  for (const name of w.deletes) known.tiles.delete(name);
  const sizes = layout.sizes.length;
  const newest = new Array<number>(sizes).fill(-Infinity);
  for (const t of known.tiles.values()) if (t.index > newest[t.size]!) newest[t.size] = t.index;
  let prune = false;
  for (let j = 0; j < sizes; j++) {
    const floor = Math.max(known.floor[j]!, newest[j]! - KEEP_TILES + 1, w.keep[j]!);
    if (floor !== known.floor[j]) {
      known.floor[j] = floor;
      prune = true;
    }
  }
  if (prune) for (const [name, t] of known.tiles) if (t.index < known.floor[t.size]!) known.tiles.delete(name);
}

/** A tile's doubles as little-endian bytes, copied whole where the machine is little-endian. */
const LITTLE_ENDIAN = endianness() === 'LE';
function writeTile(out: ByteWriter, tile: Float64Array): void {
  const bytes = tile.length * 8;
  out.ensure(bytes);
  if (LITTLE_ENDIAN) out.buf.set(new Uint8Array(tile.buffer, tile.byteOffset, bytes), out.pos);
  else for (let k = 0; k < tile.length; k++) out.buf.writeDoubleLE(tile[k]!, out.pos + 8 * k);
  out.pos += bytes;
}

/** One field to set: its name's length and name, its value's length and the tile's bytes. */
function writeField(out: ByteWriter, name: string, tile: Float64Array): void {
  out.ensure(5 + name.length);
  out.buf[out.pos] = name.length;
  out.pos += 1 + out.buf.write(name, out.pos + 1, 'latin1');
  out.buf.writeUInt32LE(tile.length * 8, out.pos);
  out.pos += 4;
  writeTile(out, tile);
}

/** Sends the compare-and-set writes; the entries whose records changed since they were known. */
async function writeRecords(
  connection: RedisConnection,
  cache: TileCache,
  layout: TileLayout,
  entries: readonly Entry[],
  writes: readonly (Write | null)[],
  known: readonly KnownRecord[],
  ttl: string,
  sizesArg: Buffer,
): Promise<Entry[]> {
  const client = connection.client;
  const out = new ByteWriter(1024);
  const encode = (w: Write): void => {
    out.ensure(13 + 8 * w.keep.length);
    out.buf.writeDoubleLE(w.version, out.pos);
    out.buf[out.pos + 8] = w.flags;
    out.pos += 9;
    if (w.flags & 2) {
      for (let j = 0; j < w.keep.length; j++) {
        out.buf.writeDoubleLE(w.keep[j]!, out.pos);
        out.pos += 8;
      }
    }
    out.buf.writeUInt16LE(w.sets.length + (w.swept ? 1 : 0), out.pos);
    out.buf.writeUInt16LE(w.deletes.length, out.pos + 2);
    out.pos += 4;
    for (const { name, tile } of w.sets) writeField(out, name, tile);
    if (w.swept) writeField(out, SWEPT, w.swept);
    for (const name of w.deletes) {
      out.ensure(1 + name.length);
      out.buf[out.pos] = name.length;
      out.pos += 1 + out.buf.write(name, out.pos + 1, 'latin1');
    }
  };
  const conflicted: Entry[] = [];
  type Sent = { entry: Entry; write: Write; record: KnownRecord };
  const settle = (these: readonly Sent[], positions: readonly number[]): void => {
    const failed = new Set(positions);
    these.forEach(({ entry, write, record }, i) => {
      if (failed.has(i + 1) || write.flags & 2) {
        // Changed by another writer (or swept by the script looking at every field): known no more.
        cache.forget(entry.key);
        if (failed.has(i + 1)) conflicted.push(entry);
      } else {
        written(layout, record, write);
        cache.set(entry.key, record);
      }
    });
  };
  const calls: Promise<void>[] = [];
  const batches: Sent[][] = [];
  let current: Sent[] = [];
  entries.forEach((entry, i) => {
    const write = writes[i];
    if (!write) return;
    current.push({ entry, write, record: known[i]! });
    if (connection.cluster || current.length === KEYS_PER_CALL) {
      batches.push(current);
      current = [];
    }
  });
  if (current.length) batches.push(current);
  for (const batch of batches) {
    const from = out.pos;
    for (const { write } of batch) encode(write);
    const blob = out.buf.subarray(from, out.pos);
    const keys = batch.map(({ entry }) => entry.key);
    const call = connection.cluster ? client.larderCasTiles1(keys[0]!, ttl, sizesArg, Buffer.from(blob)) : client.larderCasTiles(keys.length, ...keys, ttl, sizesArg, blob);
    calls.push(call.then((positions) => settle(batch, positions)));
  }
  try {
    await Promise.all(calls);
  } catch (err) {
    // A write whose answer never came: what it did is unknown.
    for (const batch of batches) for (const { entry } of batch) cache.forget(entry.key);
    throw err;
  }
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
