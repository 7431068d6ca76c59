/**
 * Word-frequency vectors (bag of words) for the text models: `wordFrequency(options)` returns a
 * function from text to a sparse vector of token counts. Two ways to map a token to an index:
 *
 *   - `{ buckets: n }`: index = fnv1a32(UTF-8 of the token) mod n (see hash.ts). No vocabulary to
 *     keep in sync; distinct words may share a bucket (their counts add up).
 *   - `{ vocabulary }`: a file (one word per line, index = 0-based line number) or an array;
 *     out-of-vocabulary tokens are dropped. The file is read once, when wordFrequency() is called.
 *
 * Tokens come from the tokenizer (tokenize.ts) with `tokenOptions` (default: no stop words).
 * Null, undefined or empty text gives an empty vector of the right size.
 */
import { DefinitionError, InputError } from '../core/errors.js';
import type { SparseVector } from '../core/value-types.js';
import { fnv1a32 } from './hash.js';
import { createTokenizer, type TokenizeOptions } from './tokenize.js';
import { loadVocabularyFile, vocabularyFrom } from './vocabulary.js';

export type WordFrequencyOptions =
  | { buckets: number }
  | {
      /** A file path (one word per line) or the words themselves; index = line number / array index. */
      vocabulary: string | readonly string[];
      /** Folder a relative vocabulary path resolves against: pass `import.meta.dirname` or `new URL('.', import.meta.url)`. Default: the working directory. */
      baseDir?: string | URL;
    };

/** Text to token counts; `size` is the vector size, for `sparse(wf.size)` in a schema. */
export interface WordFrequency {
  (text: string | null | undefined): SparseVector;
  readonly size: number;
}

const MAX_SIZE = 2 ** 31 - 1; // indices are int32 in Parquet and Arrow

export function wordFrequency(options: WordFrequencyOptions, tokenOptions?: TokenizeOptions): WordFrequency {
  const tokenizer = createTokenizer(tokenOptions);
  let size: number;
  let indexOf: (token: string) => number; // -1 = dropped
  if (options && 'buckets' in options) {
    const buckets = options.buckets;
    if (!Number.isInteger(buckets) || buckets < 1 || buckets > MAX_SIZE) {
      throw new DefinitionError(`wordFrequency: buckets: expected an integer from 1 to ${MAX_SIZE}, got ${String(buckets)}`);
    }
    size = buckets;
    indexOf = (token) => fnv1a32(token) % buckets;
  } else if (options && 'vocabulary' in options) {
    const { vocabulary, baseDir } = options;
    const vocab =
      typeof vocabulary === 'string'
        ? loadVocabularyFile(vocabulary, baseDir)
        : Array.isArray(vocabulary)
          ? vocabularyFrom(vocabulary, 'wordFrequency: vocabulary')
          : undefined;
    if (!vocab) throw new DefinitionError('wordFrequency: vocabulary: expected a file path or an array of words');
    if (vocab.size > MAX_SIZE) throw new DefinitionError(`${vocab.origin}: more than ${MAX_SIZE} words`);
    size = vocab.size;
    const index = vocab.index;
    indexOf = (token) => index.get(token) ?? -1;
  } else {
    throw new DefinitionError('wordFrequency: expected { buckets: n } or { vocabulary: path | words }');
  }

  const vectorize = (text: string | null | undefined): SparseVector => {
    if (text != null && typeof text !== 'string') throw new InputError(`wordFrequency: expected text (a string), got ${typeof text}`);
    const tokens = tokenizer(text);
    const ids = new Int32Array(tokens.length);
    let n = 0;
    for (const token of tokens) {
      const i = indexOf(token);
      if (i >= 0) ids[n++] = i;
    }
    const sorted = sortIds(ids, n);
    const indices: number[] = [];
    const values: number[] = [];
    for (let k = 0; k < n; ) {
      const id = sorted[k]!;
      let count = 0;
      while (k < n && sorted[k] === id) {
        k++;
        count++;
      }
      indices.push(id);
      values.push(count);
    }
    return { size, indices, values };
  };
  return Object.assign(vectorize, { size }) as WordFrequency;
}

/** The first n ids in ascending order: insertion sort for the short arrays of a review, else the built-in sort. */
function sortIds(ids: Int32Array, n: number): Int32Array {
  if (n > 48) return ids.subarray(0, n).sort();
  for (let i = 1; i < n; i++) {
    const v = ids[i]!;
    let j = i - 1;
    while (j >= 0 && ids[j]! > v) {
      ids[j + 1] = ids[j]!;
      j--;
    }
    ids[j + 1] = v;
  }
  return ids;
}
