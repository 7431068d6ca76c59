/**
 * The binary form of one view's values of one entity, as both online stores keep it:
 *
 *   bytes 0-7    event time, epoch ms, big-endian float64
 *   bytes 8-15   created time, epoch ms, big-endian float64 (-Infinity when the row has none)
 *   bytes 16-19  schema fingerprint of the view (big-endian uint32)
 *   bytes 20-    MessagePack array of the feature values in schema order
 *
 * The header is what the write scripts compare (Redis Lua reads it with `struct.unpack`), so
 * "newer wins" needs no decoding of the values. The fingerprint covers the features' names and
 * types: a value written under another schema (before a breaking apply) reads as absent, never as
 * wrong values, and any write replaces it.
 *
 * Values are standard MessagePack (any client can read them): floats as float64, integers as the
 * smallest int, strings, booleans, bytes as bin, timestamps as epoch ms (float64), and dense and
 * sparse vectors as bins of little-endian typed arrays (compact, decoded without per-element
 * work). Encoding is hand-written into one growing buffer, because materialization encodes
 * hundreds of thousands of rows a second; decoding uses msgpackr.
 */
import { Unpackr } from 'msgpackr';
import { asEpochMs, type EpochMs } from '../core/time.js';
import { parseValueType, type SparseVector, type ValueType } from '../core/value-types.js';

/** A feature value as the online stores hold and return it; timestamps are epoch ms. */
export type OnlineValue = number | bigint | boolean | string | Uint8Array | number[] | SparseVector | null;

export const HEADER_BYTES = 20;

export interface DecodedHeader {
  eventMs: EpochMs;
  createdMs: EpochMs | null;
  fingerprint: number;
}

const unpackr = new Unpackr({ useRecords: false });

/** FNV-1a of `name:type;...` in schema order. */
export function schemaFingerprint(features: readonly { name: string; type: ValueType }[]): number {
  let h = 0x811c9dc5;
  const text = features.map((f) => `${f.name}:${f.type}`).join(';');
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** An append-only byte buffer that grows; `bytes()` is a view of what was written. */
export class ByteWriter {
  buf: Buffer;
  pos = 0;

  constructor(initialSize = 1024) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v, this.pos);
    this.pos += 4;
  }

  f64(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleBE(v, this.pos);
    this.pos += 8;
  }

  raw(bytes: Uint8Array): void {
    this.ensure(bytes.byteLength);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.byteLength;
  }

  bytes(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

// --- MessagePack writing ---------------------------------------------------------------------

function writeNil(w: ByteWriter): void {
  w.u8(0xc0);
}

function writeFloat(w: ByteWriter, v: number): void {
  w.ensure(9);
  w.buf[w.pos] = 0xcb;
  w.buf.writeDoubleBE(v, w.pos + 1);
  w.pos += 9;
}

function writeInt(w: ByteWriter, v: number | bigint): void {
  if (typeof v === 'number' && Number.isInteger(v)) {
    if (v >= 0 && v < 128) return w.u8(v);
    if (v < 0 && v >= -32) return w.u8(v & 0xff);
    if (v >= -2147483648 && v <= 2147483647) {
      w.ensure(5);
      w.buf[w.pos] = 0xd2;
      w.buf.writeInt32BE(v, w.pos + 1);
      w.pos += 5;
      return;
    }
  }
  const big = typeof v === 'bigint' ? v : BigInt(Math.trunc(v));
  w.ensure(9);
  w.buf[w.pos] = 0xd3;
  w.buf.writeBigInt64BE(big, w.pos + 1);
  w.pos += 9;
}

function writeString(w: ByteWriter, s: string): void {
  const n = Buffer.byteLength(s);
  w.ensure(n + 5);
  if (n < 32) w.buf[w.pos++] = 0xa0 | n;
  else if (n < 256) {
    w.buf[w.pos++] = 0xd9;
    w.buf[w.pos++] = n;
  } else if (n < 65536) {
    w.buf[w.pos] = 0xda;
    w.buf.writeUInt16BE(n, w.pos + 1);
    w.pos += 3;
  } else {
    w.buf[w.pos] = 0xdb;
    w.buf.writeUInt32BE(n, w.pos + 1);
    w.pos += 5;
  }
  w.pos += w.buf.write(s, w.pos);
}

function writeBin(w: ByteWriter, bytes: Uint8Array): void {
  const n = bytes.byteLength;
  w.ensure(n + 5);
  if (n < 256) {
    w.buf[w.pos++] = 0xc4;
    w.buf[w.pos++] = n;
  } else if (n < 65536) {
    w.buf[w.pos] = 0xc5;
    w.buf.writeUInt16BE(n, w.pos + 1);
    w.pos += 3;
  } else {
    w.buf[w.pos] = 0xc6;
    w.buf.writeUInt32BE(n, w.pos + 1);
    w.pos += 5;
  }
  w.buf.set(bytes, w.pos);
  w.pos += n;
}

function writeArrayHeader(w: ByteWriter, n: number): void {
  if (n < 16) w.u8(0x90 | n);
  else if (n < 65536) {
    w.ensure(3);
    w.buf[w.pos] = 0xdc;
    w.buf.writeUInt16BE(n, w.pos + 1);
    w.pos += 3;
  } else {
    w.ensure(5);
    w.buf[w.pos] = 0xdd;
    w.buf.writeUInt32BE(n, w.pos + 1);
    w.pos += 5;
  }
}

/** Numbers as a bin of a little-endian typed array; with a null inside, a plain array (nulls kept). */
function writeNumbers(w: ByteWriter, values: ArrayLike<unknown>, element: 'float32' | 'float64' | 'int32'): void {
  const n = values.length;
  let numeric = true;
  for (let i = 0; i < n; i++) {
    if (typeof values[i] !== 'number') {
      numeric = false;
      break;
    }
  }
  if (!numeric) {
    writeArrayHeader(w, n);
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (v === null || v === undefined) writeNil(w);
      else writeFloat(w, Number(v));
    }
    return;
  }
  const typed = element === 'float32' ? new Float32Array(n) : element === 'float64' ? new Float64Array(n) : new Int32Array(n);
  typed.set(values as ArrayLike<number>);
  writeBin(w, new Uint8Array(typed.buffer, 0, typed.byteLength));
}

function readNumbers(value: unknown, element: 'float32' | 'float64' | 'int32'): number[] {
  if (Array.isArray(value)) return value as number[];
  const bytes = value as Uint8Array;
  // A copy, aligned for the typed view (the bin sits at any offset of the payload).
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  const typed = element === 'float32' ? new Float32Array(copy.buffer) : element === 'float64' ? new Float64Array(copy.buffer) : new Int32Array(copy.buffer);
  return Array.from(typed);
}

type Encoder = (w: ByteWriter, value: unknown) => void;
type Decoder = (value: unknown) => OnlineValue;

const toNumberIfSafe = (v: bigint): number | bigint => (v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v);

/** Type errors are the caller's: materialization reads typed columns, pushes validate first. */
function codecOf(type: ValueType): { encode: Encoder; decode: Decoder } {
  const parsed = parseValueType(type);
  const nullable =
    (encode: Encoder): Encoder =>
    (w, v) =>
      v === null || v === undefined ? writeNil(w) : encode(w, v);
  if (parsed.kind === 'dense') {
    return { encode: nullable((w, v) => writeNumbers(w, v as ArrayLike<number>, parsed.element)), decode: (v) => (v === null ? null : readNumbers(v, parsed.element)) };
  }
  if (parsed.kind === 'sparse') {
    const size = parsed.size;
    return {
      encode: nullable((w, v) => {
        const s = v as { indices: ArrayLike<number>; values: ArrayLike<number> };
        writeArrayHeader(w, 2);
        writeNumbers(w, s.indices, 'int32');
        writeNumbers(w, s.values, 'float32');
      }),
      decode: (v) => {
        if (v === null) return null;
        const [indices, values] = v as [unknown, unknown];
        return { size, indices: readNumbers(indices, 'int32'), values: readNumbers(values, 'float32') };
      },
    };
  }
  switch (parsed.type) {
    case 'int32':
    case 'int64':
      return { encode: nullable((w, v) => writeInt(w, v as number | bigint)), decode: (v) => (typeof v === 'bigint' ? toNumberIfSafe(v) : (v as OnlineValue)) };
    case 'float32':
    case 'float64':
    case 'timestamp':
      return { encode: nullable((w, v) => writeFloat(w, Number(v))), decode: (v) => v as OnlineValue };
    case 'bool':
      return { encode: nullable((w, v) => w.u8(v ? 0xc3 : 0xc2)), decode: (v) => v as OnlineValue };
    case 'string':
      return { encode: nullable((w, v) => writeString(w, String(v))), decode: (v) => v as OnlineValue };
    case 'bytes':
      return { encode: nullable((w, v) => writeBin(w, v as Uint8Array)), decode: (v) => (v === null ? null : (v as Uint8Array)) };
  }
}

/** Encodes and decodes the values of one view; built once per view. */
export class ViewCodec {
  readonly fingerprint: number;
  private readonly encoders: Encoder[];
  private readonly decoders: Decoder[];

  constructor(readonly features: readonly { name: string; type: ValueType }[]) {
    this.fingerprint = schemaFingerprint(features);
    const codecs = features.map((f) => codecOf(f.type));
    this.encoders = codecs.map((c) => c.encode);
    this.decoders = codecs.map((c) => c.decode);
  }

  /** Appends one payload (header, then the values in schema order) to `w`. */
  encodeInto(w: ByteWriter, eventMs: number, createdMs: number | null, values: readonly unknown[]): void {
    w.ensure(HEADER_BYTES);
    w.buf.writeDoubleBE(eventMs, w.pos);
    w.buf.writeDoubleBE(createdMs ?? -Infinity, w.pos + 8);
    w.buf.writeUInt32BE(this.fingerprint, w.pos + 16);
    w.pos += HEADER_BYTES;
    writeArrayHeader(w, this.encoders.length);
    for (let i = 0; i < this.encoders.length; i++) this.encoders[i]!(w, values[i]);
  }

  /** One payload as its own buffer. */
  encode(eventMs: number, createdMs: number | null, values: readonly unknown[]): Buffer {
    const w = new ByteWriter(HEADER_BYTES + 16 * this.encoders.length);
    this.encodeInto(w, eventMs, createdMs, values);
    return w.bytes();
  }

  /** The values of a payload, or null when it was written under another schema. */
  decode(payload: Uint8Array): { header: DecodedHeader; values: OnlineValue[] } | null {
    const header = decodeHeader(payload);
    if (header.fingerprint !== this.fingerprint) return null;
    const raw = unpackr.unpack(payload.subarray(HEADER_BYTES)) as unknown[];
    const values = new Array<OnlineValue>(this.decoders.length);
    for (let i = 0; i < values.length; i++) values[i] = i < raw.length ? this.decoders[i]!(raw[i] ?? null) : null;
    return { header, values };
  }
}

export function decodeHeader(payload: Uint8Array): DecodedHeader {
  if (payload.byteLength < HEADER_BYTES) throw new Error(`online value of ${payload.byteLength} bytes is shorter than its ${HEADER_BYTES}-byte header`);
  const view = new DataView(payload.buffer, payload.byteOffset, HEADER_BYTES);
  const created = view.getFloat64(8);
  return { eventMs: asEpochMs(view.getFloat64(0)), createdMs: created === -Infinity ? null : asEpochMs(created), fingerprint: view.getUint32(16) };
}

/** "a is newer than b": by event time, then created time; equal pairs are not newer (the stored row stays). */
export const isNewer = (a: { eventMs: number; createdMs: number | null }, b: { eventMs: number; createdMs: number | null }): boolean =>
  a.eventMs > b.eventMs || (a.eventMs === b.eventMs && (a.createdMs ?? -Infinity) > (b.createdMs ?? -Infinity));

/** MessagePack of small structures (the embedded store's records). */
export function packRecord(expiresAt: number | null, views: Readonly<Record<string, Uint8Array>>): Buffer {
  const w = new ByteWriter(64);
  const names = Object.keys(views);
  writeArrayHeader(w, 2);
  if (expiresAt === null) writeNil(w);
  else writeFloat(w, expiresAt);
  // A map of view name -> payload bin.
  if (names.length < 16) w.u8(0x80 | names.length);
  else {
    w.ensure(3);
    w.buf[w.pos] = 0xde;
    w.buf.writeUInt16BE(names.length, w.pos + 1);
    w.pos += 3;
  }
  for (const name of names) {
    writeString(w, name);
    writeBin(w, views[name]!);
  }
  return w.bytes();
}

export function unpackRecord(bytes: Uint8Array): [expiresAt: number | null, views: Record<string, Uint8Array>] {
  return unpackr.unpack(bytes) as [number | null, Record<string, Uint8Array>];
}
