/**
 * FNV-1a, 32 bits, over the UTF-8 bytes of a string: tiny, fast, and the same on every machine,
 * so a hashed word-frequency vector never depends on where it was computed.
 * Offset basis 2166136261, prime 16777619; fnv1a32('') = 0x811c9dc5, fnv1a32('a') = 0xe40c292c.
 */
const OFFSET_BASIS = 0x811c9dc5;
const PRIME = 0x01000193;

/** The unsigned 32-bit FNV-1a hash of the UTF-8 encoding of `text` (unpaired surrogates as U+FFFD). */
export function fnv1a32(text: string): number {
  let h = OFFSET_BASIS;
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      h = Math.imul(h ^ c, PRIME);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const low = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && low >= 0xdc00 && low <= 0xdfff) {
        c = ((c - 0xd800) << 10) + (low - 0xdc00) + 0x10000;
        i++;
      } else {
        c = 0xfffd; // what TextEncoder writes for a lone surrogate
      }
    }
    if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >> 6)), PRIME);
    } else if (c < 0x10000) {
      h = Math.imul(h ^ (0xe0 | (c >> 12)), PRIME);
      h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), PRIME);
    } else {
      h = Math.imul(h ^ (0xf0 | (c >> 18)), PRIME);
      h = Math.imul(h ^ (0x80 | ((c >> 12) & 0x3f)), PRIME);
      h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), PRIME);
    }
    h = Math.imul(h ^ (0x80 | (c & 0x3f)), PRIME);
  }
  return h >>> 0;
}
