/** Row-level text transforms: pure functions shared by backfill, push and prediction. */
export { tokenize, createTokenizer, normalizeWord, type TokenizeOptions, type Tokenizer } from './tokenize.js';
export { STOP_WORDS, stopWordSet, type StopWordList } from './stopwords.js';
export { wordFrequency, type WordFrequency, type WordFrequencyOptions } from './word-frequency.js';
export { textStats, TEXT_STATS_SCHEMA, type TextStats } from './text-stats.js';
export { fnv1a32 } from './hash.js';
