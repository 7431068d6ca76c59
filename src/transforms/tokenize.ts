/**
 * The tokenizer behind every text feature. One char loop, no per-token regex, so a short review
 * tokenizes in a few microseconds. The rules, in order:
 *
 *   1. lower case, then accents folded: each character is decomposed (Unicode NFD) and its
 *      combining marks dropped: "sandália" -> "sandalia", "é" -> "e", "ç" -> "c" (letters without
 *      a decomposition, like "ß" or "ø", stay as they are; already-decomposed text folds the same);
 *   2. a token is a maximal run of letters and digits; everything else (spaces, punctuation,
 *      symbols, emoji, apostrophes, hyphens, "_") separates tokens: "guarda-chuva" -> guarda, chuva;
 *      digits stay in tokens: "34" and "mp3" are tokens;
 *   3. elongation: a letter repeated 3 or more times in a row becomes ONE letter
 *      ("ameeeeei" -> "amei", "kkkk" -> "k"); doubled letters stay ("carro", "leem"); digits are
 *      never squeezed ("1000");
 *   4. tokens shorter than `minLength` (default 1) are dropped, then stop words (none by default).
 */
import { stopWordSet, type StopWordList } from './stopwords.js';

export interface TokenizeOptions {
  /** Stop words to drop: a built-in list, your own set (any spelling: it is folded like tokens), or none (false, the default). */
  stopWords?: StopWordList | false | ReadonlySet<string>;
  /** Tokens shorter than this many characters (after folding) are dropped; default 1. */
  minLength?: number;
}

export type Tokenizer = (text: string | null | undefined) => string[];

// Classes of the characters of lower-cased text.
const UNKNOWN = 0;
const LETTER = 1; // stands for itself
const DIGIT = 2; // a word character that is never squeezed
const FOLDED = 3; // a BMP letter that folds to the one code unit FOLD[c] ("á" -> "a")
const FOLDED_MULTI = 4; // folds to several code units (rare: "ǆ" -> "dz", CJK compatibility ideographs)
const MARK = 5; // combining mark: dropped without ending the token
const SEPARATOR = 6;
const HIGH_SURROGATE = 7; // look at the code point

const CLASS = new Uint8Array(65_536);
const FOLD = new Uint16Array(65_536);
/** Folds of FOLDED_MULTI characters, by code point (BMP or astral). */
const FOLD_MULTI = new Map<number, string>();
for (let c = 0; c < 128; c++) {
  CLASS[c] = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) ? LETTER : c >= 0x30 && c <= 0x39 ? DIGIT : SEPARATOR;
}

const WORD_CHAR = /^[\p{L}\p{N}]$/u;
const MARKS = /\p{M}/gu;

/** The class of a character (a code point), from its fold: its NFD with the marks dropped. */
function classify(codePoint: number): number {
  const ch = String.fromCodePoint(codePoint);
  const fold = ch.normalize('NFD').replace(MARKS, '');
  if (fold === '') return MARK;
  if (![...fold].every((f) => WORD_CHAR.test(f))) return SEPARATOR;
  if (fold === ch) return /\p{L}/u.test(ch) ? LETTER : DIGIT;
  if (fold.length === 1 && codePoint < 0x10000) {
    FOLD[codePoint] = fold.charCodeAt(0);
    return FOLDED;
  }
  FOLD_MULTI.set(codePoint, fold);
  return FOLDED_MULTI;
}

/** The class of a BMP code unit, computed once. */
function classOf(c: number): number {
  let cls = CLASS[c]!;
  if (cls === UNKNOWN) {
    cls = c >= 0xd800 && c <= 0xdbff ? HIGH_SURROGATE : c >= 0xdc00 && c <= 0xdfff ? SEPARATOR : classify(c);
    CLASS[c] = cls;
  }
  return cls;
}

const astralClass = new Map<number, number>();
/** The class of a code point outside the BMP (letters, digits, emoji...), computed once. */
function astralClassOf(codePoint: number): number {
  let cls = astralClass.get(codePoint);
  if (cls === undefined) {
    cls = classify(codePoint);
    astralClass.set(codePoint, cls);
  }
  return cls;
}

// The token being built, as folded code units. One shared buffer: the tokenizer is synchronous.
let buf = new Uint16Array(256);
// Folded tokens by their raw (lower-cased) spelling, so that a folded word is built once, not per
// occurrence. Bounded; cleared when full (it is only a cache: results never depend on it).
const foldedTokens = new Map<string, string>();
const FOLDED_TOKENS_MAX = 100_000;

function push(unit: number, n: number): number {
  if (n === buf.length) grow();
  buf[n] = unit;
  return n + 1;
}

/** Appends a code point's UTF-16 units to the buffer; returns the new length. */
function pushCodePoint(cp: number, n: number): number {
  if (cp < 0x10000) return push(cp, n);
  return push(0xdc00 + ((cp - 0x10000) & 0x3ff), push(0xd800 + ((cp - 0x10000) >> 10), n));
}

/**
 * Calls `emit` with each token of `text` (rules 1-3 above). A token is a slice of the lower-cased
 * text when it is one already (the common case), else its folded spelling from the cache or buffer.
 */
function scan(text: string, emit: (token: string) => void): void {
  const s = text.toLowerCase();
  const len = s.length;
  let n = 0; // code units in the buffer
  let start = -1; // where the current token starts in s; -1 = no token
  let contiguous = true; // the token is s.slice(start, i) as it stands
  let last = -1; // the last letter appended (code point); -1 after a digit
  let run = 0; // how many times in a row `last` came
  for (let i = 0; i <= len; i++) {
    const c = i < len ? s.charCodeAt(i) : 0x20;
    let cls = c < 128 ? CLASS[c]! : classOf(c);
    let cp = c;
    let width = 1; // code units of this character in s
    if (cls === HIGH_SURROGATE) {
      const low = i + 1 < len ? s.charCodeAt(i + 1) : 0;
      if (low >= 0xdc00 && low <= 0xdfff) {
        cp = ((c - 0xd800) << 10) + (low - 0xdc00) + 0x10000;
        width = 2;
        cls = astralClassOf(cp);
      } else {
        cls = SEPARATOR;
      }
    }
    if (cls === LETTER || cls === FOLDED) {
      const letter = cls === FOLDED ? FOLD[cp]! : cp;
      if (start < 0) {
        start = i;
        contiguous = true;
        last = -1;
      }
      if (cls === FOLDED) contiguous = false;
      if (letter === last) {
        run++;
        if (run >= 3) {
          // A third copy of a letter: keep one. The second copy is in the buffer already; take it back.
          if (run === 3) n -= letter < 0x10000 ? 1 : 2;
          contiguous = false;
          i += width - 1;
          continue;
        }
      } else {
        last = letter;
        run = 1;
      }
      n = pushCodePoint(letter, n);
    } else if (cls === DIGIT) {
      if (start < 0) {
        start = i;
        contiguous = true;
      }
      last = -1;
      n = pushCodePoint(cp, n);
    } else if (cls === FOLDED_MULTI) {
      if (start < 0) start = i;
      contiguous = false;
      last = -1;
      const fold = FOLD_MULTI.get(cp)!;
      for (let k = 0; k < fold.length; k++) n = push(fold.charCodeAt(k), n);
    } else if (cls === MARK) {
      contiguous = false;
    } else if (start >= 0) {
      emitToken(s, start, i, n, contiguous, emit);
      start = -1;
      n = 0;
    }
    i += width - 1;
  }
}

function emitToken(s: string, start: number, end: number, n: number, contiguous: boolean, emit: (token: string) => void): void {
  if (n === 0) return; // only marks
  const raw = s.slice(start, end);
  if (contiguous) {
    emit(raw);
    return;
  }
  let token = foldedTokens.get(raw);
  if (token === undefined) {
    token = '';
    for (let k = 0; k < n; k++) token += String.fromCharCode(buf[k]!);
    if (foldedTokens.size >= FOLDED_TOKENS_MAX) foldedTokens.clear();
    foldedTokens.set(raw, token);
  }
  emit(token);
}

function grow(): void {
  const bigger = new Uint16Array(buf.length * 2);
  bigger.set(buf);
  buf = bigger;
}

/** Normalises one word as the tokenizer would; the tokens it splits into (usually one). */
export function normalizeWord(word: string): string[] {
  const out: string[] = [];
  scan(word, (t) => out.push(t));
  return out;
}

/**
 * The number of tokens in `text` with no stop words (what tokenize(text).length gives), counted
 * without building them: a token starts where a word character follows a separator.
 */
export function countTokens(text: string): number {
  let count = 0;
  let inToken = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    let cls = c < 128 ? CLASS[c]! : classOf(c);
    if (cls === HIGH_SURROGATE) {
      const low = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (low >= 0xdc00 && low <= 0xdfff) {
        cls = astralClassOf(((c - 0xd800) << 10) + (low - 0xdc00) + 0x10000);
        i++;
      } else cls = SEPARATOR;
    }
    if (cls === MARK) continue;
    if (cls === SEPARATOR) inToken = false;
    else if (!inToken) {
      inToken = true;
      count++;
    }
  }
  return count;
}

/** A tokenizer with its options resolved once: the fast path for row transforms. */
export function createTokenizer(options: TokenizeOptions = {}): Tokenizer {
  const minLength = options.minLength ?? 1;
  if (!Number.isInteger(minLength) || minLength < 1) throw new RangeError(`tokenize: minLength must be a positive integer, got ${minLength}`);
  const stop = resolveStopWords(options.stopWords ?? false);
  if (!stop && minLength === 1) {
    return (text) => {
      const out: string[] = [];
      if (text) scan(text, (token) => out.push(token));
      return out;
    };
  }
  return (text) => {
    const out: string[] = [];
    if (!text) return out;
    scan(text, (token) => {
      if (token.length >= minLength && !(stop && stop.has(token))) out.push(token);
    });
    return out;
  };
}

const folded = new WeakMap<ReadonlySet<string>, ReadonlySet<string>>();

function resolveStopWords(stopWords: StopWordList | false | ReadonlySet<string>): ReadonlySet<string> | undefined {
  if (stopWords === false) return undefined;
  if (typeof stopWords === 'string') return stopWordSet(stopWords);
  if (!(stopWords instanceof Set)) throw new RangeError(`tokenize: stopWords must be 'pt', 'en', 'pt+en', false or a Set`);
  // A caller's set is folded once, so it may be written with accents or capitals.
  let set = folded.get(stopWords);
  if (!set) {
    set = new Set([...stopWords].flatMap(normalizeWord));
    folded.set(stopWords, set);
  }
  return set;
}

const tokenizers = new Map<string, Tokenizer>();

/** Tokens of `text` (see the rules at the top of this file). Null, undefined or '' give []. */
export function tokenize(text: string | null | undefined, options?: TokenizeOptions): string[] {
  if (!options || (options.stopWords === undefined && options.minLength === undefined)) return defaultTokenizer(text);
  if (typeof options.stopWords === 'object') return createTokenizer(options)(text);
  const key = `${options.stopWords ?? false}|${options.minLength ?? 1}`;
  let t = tokenizers.get(key);
  if (!t) {
    t = createTokenizer(options);
    tokenizers.set(key, t);
  }
  return t(text);
}

const defaultTokenizer = createTokenizer();
