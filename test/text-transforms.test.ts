import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tokenize, wordFrequency, textStats } from 'larder';
import { fnv1a32 } from '../src/transforms/hash.js';
import { STOP_WORDS } from '../src/transforms/stopwords.js';
import { DefinitionError, InputError } from '../src/core/errors.js';

const REVIEW =
  'Essa sandália é maravilhosa, só que só teve um pequeno probleminha, calço 34 e esse número ficou pequeno, tive que trocar por 35 que ficou perfeito, é muito linda, amei ameeeeei !!!';

const REVIEW_TOKENS = [
  'essa', 'sandalia', 'e', 'maravilhosa', 'so', 'que', 'so', 'teve', 'um', 'pequeno', 'probleminha', 'calco', '34', 'e', 'esse',
  'numero', 'ficou', 'pequeno', 'tive', 'que', 'trocar', 'por', '35', 'que', 'ficou', 'perfeito', 'e', 'muito', 'linda', 'amei', 'amei',
];

describe('tokenize', () => {
  it('lower-cases, folds accents, splits on punctuation, keeps digits and squeezes elongations', () => {
    expect(tokenize(REVIEW)).toEqual(REVIEW_TOKENS);
  });

  it('drops Portuguese stop words when asked, keeping the words that carry meaning', () => {
    expect(tokenize(REVIEW, { stopWords: 'pt' })).toEqual([
      'sandalia', 'maravilhosa', 'pequeno', 'probleminha', 'calco', '34', 'numero', 'ficou', 'pequeno', 'trocar', '35', 'ficou',
      'perfeito', 'linda', 'amei', 'amei',
    ]);
  });

  it('tokenizes English, keeping negations out of the stop words', () => {
    const text = "I didn't like it: the shoes DON'T fit, sooooo disappointed 😡 — returned them in 2024!!";
    expect(tokenize(text)).toEqual(['i', 'didn', 't', 'like', 'it', 'the', 'shoes', 'don', 't', 'fit', 'so', 'disappointed', 'returned', 'them', 'in', '2024']);
    expect(tokenize(text, { stopWords: 'en' })).toEqual(['didn', 'like', 'shoes', 'don', 'fit', 'disappointed', 'returned', '2024']);
    expect(tokenize('Não gostei, not good', { stopWords: 'pt+en' })).toEqual(['nao', 'gostei', 'not', 'good']);
  });

  it('folds composed and decomposed accents alike', () => {
    expect(tokenize('ÁÉÍÓÚ ãõ Ç à')).toEqual(['aeiou', 'ao', 'c', 'a']);
    expect(tokenize('sandália'.normalize('NFD'))).toEqual(['sandalia']);
    expect(tokenize('SANDÁLIA')).toEqual(['sandalia']);
    // A BMP character whose decomposition lies outside the BMP keeps both halves of it.
    expect(tokenize('x\uFACFy')).toEqual(['x\u{2284A}y']);
  });

  it('squeezes a letter repeated 3+ times to one, keeps doubles, never squeezes digits', () => {
    expect(tokenize('ameeeeei kkkkk lindaaa ééé carro leem 1000 zz')).toEqual(['amei', 'k', 'linda', 'e', 'carro', 'leem', '1000', 'zz']);
    // Outside the BMP too: a surrogate pair is one letter.
    expect(tokenize('𝐀𝐀𝐀 𝐀𝐀')).toEqual(['𝐀', '𝐀𝐀']);
  });

  it('splits on symbols, emoji, apostrophes and hyphens', () => {
    expect(tokenize('😍lindaaa😍 guarda-chuva d’água R$199,90 tam_38 #amei')).toEqual(['linda', 'guarda', 'chuva', 'd', 'agua', 'r', '199', '90', 'tam', '38', 'amei']);
  });

  it('gives no tokens for null, undefined, empty or punctuation-only text', () => {
    expect(tokenize(null)).toEqual([]);
    expect(tokenize(undefined)).toEqual([]);
    expect(tokenize('')).toEqual([]);
    expect(tokenize(' !!! ... 😀 ')).toEqual([]);
  });

  it('drops tokens shorter than minLength', () => {
    expect(tokenize('é um 34 bom produto', { minLength: 3 })).toEqual(['bom', 'produto']);
  });

  it('folds a caller-given stop-word set like the tokens', () => {
    expect(tokenize('Essa sandália é LINDA', { stopWords: new Set(['Sandália', 'É']) })).toEqual(['essa', 'linda']);
  });

  it('ships real stop-word lists', () => {
    expect(STOP_WORDS.pt.length).toBeGreaterThanOrEqual(200);
    expect(STOP_WORDS.en.length).toBeGreaterThanOrEqual(140);
    for (const negation of ['não', 'nem', 'nunca', 'sem']) expect(STOP_WORDS.pt).not.toContain(negation);
    for (const negation of ['not', 'no', 'nor', 'never']) expect(STOP_WORDS.en).not.toContain(negation);
  });

  it('only ever yields lower-case, accent-free runs of letters and digits with no letter three times in a row', () => {
    const alphabet = fc.constantFrom(...'aAeéÉçÇõ\u0301 ,.!?-_\'’0123456789ßø😀𝐀日本😍\n\t'.split(/(?:)/u));
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: alphabet, maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 })), (text) => {
        for (const token of tokenize(text)) {
          expect(token).toMatch(/^[\p{L}\p{N}]+$/u);
          expect(token).toBe(token.toLowerCase());
          expect(token).not.toMatch(/(\p{L})\1\1/u);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe('fnv1a32', () => {
  /** FNV-1a over TextEncoder's bytes: an independent reference for the hash the buckets use. */
  const reference = (text: string): number => {
    let h = 0x811c9dc5;
    for (const byte of new TextEncoder().encode(text)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
    return h >>> 0;
  };

  it('matches the published FNV-1a test vectors and the UTF-8 reference', () => {
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
    for (const word of ['sandalia', 'ß', 'ø', 'çã', '𝐀𝐁', '日本', 'x\ud800y']) expect(fnv1a32(word)).toBe(reference(word));
  });
});

describe('wordFrequency', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'larder-vocab-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const VOCABULARY = ['pequeno', 'só', 'que', 'amei', 'ficou', 'Sandália', 'ausente', '34'];

  it('counts vocabulary words into an exact sparse vector, dropping unknown words', () => {
    const wf = wordFrequency({ vocabulary: VOCABULARY });
    expect(wf.size).toBe(8);
    expect(wf(REVIEW)).toEqual({ size: 8, indices: [0, 1, 2, 3, 4, 5, 7], values: [2, 2, 3, 2, 2, 1, 1] });
    // With Portuguese stop words, "só" and "que" are no longer counted.
    expect(wordFrequency({ vocabulary: VOCABULARY }, { stopWords: 'pt' })(REVIEW)).toEqual({ size: 8, indices: [0, 3, 4, 5, 7], values: [2, 2, 2, 1, 1] });
  });

  it('reads a vocabulary file once, relative to baseDir as a path or URL; line number = index', async () => {
    await mkdir(join(dir, 'vocab'), { recursive: true });
    await writeFile(join(dir, 'vocab', 'words.txt'), '\uFEFFpequeno\r\n\r\nAMEI\r\nficou\r\n');
    const fromPath = wordFrequency({ vocabulary: 'vocab/words.txt', baseDir: dir });
    const fromUrl = wordFrequency({ vocabulary: 'vocab/words.txt', baseDir: pathToFileURL(`${dir}/`) });
    const expected = { size: 4, indices: [0, 2, 3], values: [2, 2, 2] };
    expect(fromPath(REVIEW)).toEqual(expected);
    expect(fromUrl(REVIEW)).toEqual(expected);
    // Read once: the function keeps working after the file is gone.
    await rm(join(dir, 'vocab'), { recursive: true });
    expect(fromPath(REVIEW)).toEqual(expected);
  });

  it('names the missing vocabulary file in a one-line DefinitionError', () => {
    const call = () => wordFrequency({ vocabulary: 'missing/words.txt', baseDir: dir });
    expect(call).toThrow(DefinitionError);
    expect(call).toThrow(`wordFrequency: vocabulary file '${join(dir, 'missing/words.txt')}' not found`);
  });

  it('refuses a vocabulary entry that is not one word, naming the line', async () => {
    await writeFile(join(dir, 'phrases.txt'), 'bom\nguarda-chuva\n');
    expect(() => wordFrequency({ vocabulary: join(dir, 'phrases.txt') })).toThrow(/line 2: 'guarda-chuva' is not a single word/);
  });

  it('hashes tokens into buckets: fnv1a32(token) mod buckets, the same vector from any instance', () => {
    const a = wordFrequency({ buckets: 62_000 });
    const b = wordFrequency({ buckets: 62_000 });
    const v = a(REVIEW);
    expect(b(REVIEW)).toEqual(v);
    expect(a(REVIEW)).toEqual(v);
    expect(v.size).toBe(62_000);
    const counts = new Map<number, number>();
    for (const t of REVIEW_TOKENS) counts.set(fnv1a32(t) % 62_000, (counts.get(fnv1a32(t) % 62_000) ?? 0) + 1);
    const indices = [...counts.keys()].sort((x, y) => x - y);
    expect(v.indices).toEqual(indices);
    expect(v.values).toEqual(indices.map((i) => counts.get(i)));
    // Pinned: the vector must not change across machines or releases.
    expect(v.indices.slice(0, 4)).toEqual([1025, 3053, 3448, 5749]);
    expect(v.values.reduce((s, x) => s + x, 0)).toBe(31);
  });

  it('keeps indices ascending and unique, with every token counted once', () => {
    const wf = wordFrequency({ buckets: 97 });
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        const v = wf(text);
        for (let i = 1; i < v.indices.length; i++) expect(v.indices[i]!).toBeGreaterThan(v.indices[i - 1]!);
        expect(v.indices.every((i) => i >= 0 && i < 97)).toBe(true);
        expect(v.values.reduce((s, x) => s + x, 0)).toBe(tokenize(text).length);
      }),
      { numRuns: 300 },
    );
  });

  it('gives an empty vector of the right size for null, undefined or empty text', () => {
    const wf = wordFrequency({ buckets: 100 });
    for (const text of [null, undefined, '', '!!!']) expect(wf(text)).toEqual({ size: 100, indices: [], values: [] });
    expect(wordFrequency({ vocabulary: VOCABULARY })(null)).toEqual({ size: 8, indices: [], values: [] });
  });

  it('rejects bad options and non-text input with one line naming the field', () => {
    expect(() => wordFrequency({ buckets: 0 })).toThrow(/wordFrequency: buckets: expected an integer/);
    expect(() => wordFrequency({ buckets: 1.5 })).toThrow(DefinitionError);
    expect(() => wordFrequency({ vocabulary: [] })).toThrow(/vocabulary is empty/);
    expect(() => wordFrequency({ buckets: 10 })(42 as unknown as string)).toThrow(InputError);
  });
});

describe('textStats', () => {
  it('measures the review', () => {
    const s = textStats(REVIEW);
    expect(s).toMatchObject({ text_length: 181, word_count: 31, exclamation_count: 3, digit_count: 4 });
    const letters = [...REVIEW].filter((c) => /\p{L}/u.test(c)).length;
    expect(s.uppercase_ratio).toBeCloseTo(1 / letters, 12);
  });

  it('counts code points, cased letters and exclamations', () => {
    expect(textStats('OLÁ Mundo 😀!')).toEqual({ text_length: 12, word_count: 2, exclamation_count: 1, uppercase_ratio: 0.5, digit_count: 0 });
    expect(textStats('PÉSSIMO!!! 0 de 10')).toEqual({ text_length: 18, word_count: 4, exclamation_count: 3, uppercase_ratio: 7 / 9, digit_count: 3 });
    expect(textStats('123 日本')).toMatchObject({ uppercase_ratio: 0, word_count: 2 });
  });

  it('gives zeros for no text', () => {
    const zeros = { text_length: 0, word_count: 0, exclamation_count: 0, uppercase_ratio: 0, digit_count: 0 };
    expect(textStats(null)).toEqual(zeros);
    expect(textStats(undefined)).toEqual(zeros);
    expect(textStats('')).toEqual(zeros);
  });

  it('counts words exactly as tokenize splits them', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'binary', maxLength: 60 })), (text) => {
        expect(textStats(text).word_count).toBe(tokenize(text).length);
      }),
      { numRuns: 500 },
    );
  });
});
