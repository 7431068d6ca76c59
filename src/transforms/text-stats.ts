/**
 * Cheap text features beside the word counts. Definitions, so that training and serving agree:
 *   text_length       Unicode code points (an emoji counts 1)
 *   word_count        tokens, as tokenize() splits them with no stop words
 *   exclamation_count '!' characters
 *   uppercase_ratio   upper-case letters / letters that have a case (0 when there are none)
 *   digit_count       decimal digits 0-9
 * Null, undefined or empty text gives zeros.
 */
import { InputError } from '../core/errors.js';
import { countTokens } from './tokenize.js';

export interface TextStats {
  text_length: number;
  word_count: number;
  exclamation_count: number;
  uppercase_ratio: number;
  digit_count: number;
}

/** The feature types of textStats(), to spread into a view's schema. */
export const TEXT_STATS_SCHEMA = Object.freeze({
  text_length: 'int32',
  word_count: 'int32',
  exclamation_count: 'int32',
  uppercase_ratio: 'float32',
  digit_count: 'int32',
} as const);

export function textStats(text: string | null | undefined): TextStats {
  if (text != null && typeof text !== 'string') throw new InputError(`textStats: expected text (a string), got ${typeof text}`);
  if (!text) return { text_length: 0, word_count: 0, exclamation_count: 0, uppercase_ratio: 0, digit_count: 0 };
  let length = 0;
  let exclamations = 0;
  let digits = 0;
  let upper = 0;
  let cased = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    length++;
    if (c < 128) {
      if (c === 0x21) exclamations++;
      else if (c >= 0x30 && c <= 0x39) digits++;
      else if (c >= 0x41 && c <= 0x5a) {
        upper++;
        cased++;
      } else if (c >= 0x61 && c <= 0x7a) cased++;
      continue;
    }
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) i++; // one code point; astral letters are not counted as cased
      continue;
    }
    const kind = caseOf(c);
    if (kind !== UNCASED) {
      cased++;
      if (kind === UPPER) upper++;
    }
  }
  return {
    text_length: length,
    word_count: countTokens(text),
    exclamation_count: exclamations,
    uppercase_ratio: cased === 0 ? 0 : upper / cased,
    digit_count: digits,
  };
}

const UNCASED = 1;
const LOWER = 2;
const UPPER = 3;
const CASE = new Uint8Array(65_536); // 0 = not looked at yet

/** Whether a BMP code unit is an upper-case letter, a lower-case one, or has no case; cached. */
function caseOf(c: number): number {
  let kind = CASE[c]!;
  if (kind === 0) {
    const ch = String.fromCharCode(c);
    const lower = ch.toLowerCase();
    kind = lower === ch.toUpperCase() ? UNCASED : ch === lower ? LOWER : UPPER;
    CASE[c] = kind;
  }
  return kind;
}
