/**
 * A fixed vocabulary for word-frequency vectors: one word per line, the word's index is its line
 * number (0-based), the vector's size is the number of lines. Each entry is normalised like a
 * token (lower case, accents folded, elongations squeezed), so "Sandália" in the file matches
 * "sandalia" in text. A blank line keeps its index and matches nothing; when two lines normalise
 * to the same word, the first one's index wins. An entry that is not a single token (a phrase,
 * "guarda-chuva") could never match, so it is an error that names the line.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DefinitionError } from '../core/errors.js';
import { normalizeWord } from './tokenize.js';

export interface Vocabulary {
  /** Number of entries (lines): the size of the vectors. */
  readonly size: number;
  /** Normalised word -> index. */
  readonly index: ReadonlyMap<string, number>;
  /** Where the words came from, for messages. */
  readonly origin: string;
}

/** Builds a vocabulary from words, `origin` naming them in errors. */
export function vocabularyFrom(words: readonly string[], origin = 'vocabulary'): Vocabulary {
  const index = new Map<string, number>();
  words.forEach((word, i) => {
    const tokens = normalizeWord(word);
    if (tokens.length > 1) {
      throw new DefinitionError(`${origin}: line ${i + 1}: '${word}' is not a single word (the tokenizer splits it into ${tokens.join(', ')})`);
    }
    if (tokens.length === 1 && !index.has(tokens[0]!)) index.set(tokens[0]!, i);
  });
  if (words.length === 0) throw new DefinitionError(`${origin}: the vocabulary is empty`);
  return { size: words.length, index, origin };
}

/** The absolute path of a vocabulary file: relative paths against `baseDir` (a folder path or file: URL), else the working directory. */
export function resolveVocabularyPath(path: string, baseDir?: string | URL): string {
  if (isAbsolute(path)) return path;
  if (baseDir === undefined) return resolve(path);
  const base = baseDir instanceof URL || baseDir.startsWith('file:') ? fileURLToPath(baseDir) : baseDir;
  return resolve(base, path);
}

/** Reads a vocabulary file once (synchronously: this runs when definitions load). */
export function loadVocabularyFile(path: string, baseDir?: string | URL): Vocabulary {
  const file = resolveVocabularyPath(path, baseDir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'not found' : code === 'EISDIR' ? 'is a folder' : (err as Error).message;
    throw new DefinitionError(`wordFrequency: vocabulary file '${file}' ${why}`);
  }
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop(); // the final newline ends a line, it does not start one
  return vocabularyFrom(lines, `vocabulary file '${file}'`);
}
