/**
 * The model building blocks of the review use case: multinomial Naive Bayes and logistic
 * regression on sparse word counts, and the held-out metrics. Naive Bayes learns the generated Portuguese reviews (positive
 * when rating >= 4) through the example definitions' own `wordFrequency` transform, trained on the
 * earlier reviews and judged on the later ones; its probabilities match the formula on a case
 * small enough to work by hand; AUC equals its pairwise definition on random scores with ties.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { auc, binaryMetrics } from '../src/models/metrics.js';
import { fitLogistic, predictLogistic } from '../src/models/logistic.js';
import { fitNaiveBayes, predictNaiveBayes } from '../src/models/naive-bayes.js';
import type { SparseVector } from '../src/models/sparse.js';
import { generateReviews } from '../src/sample-data/reviews.js';
import { wordFrequency } from '../src/transforms/index.js';

const vector = (size: number, entries: [number, number][]): SparseVector => ({ size, indices: entries.map((e) => e[0]), values: entries.map((e) => e[1]) });

describe('multinomial naive bayes', () => {
  it('gives the probabilities of the formula on a case worked by hand', () => {
    // Two words. Class 1 saw word 0 three times, class 0 saw word 1 twice and word 0 once.
    const model = fitNaiveBayes([vector(2, [[0, 3]]), vector(2, [[0, 1], [1, 2]])], [1, 0], { size: 2, alpha: 1 });
    // θ1 = ((3+1)/(3+2), (0+1)/(3+2)) = (0.8, 0.2); θ0 = ((1+1)/(3+2), (2+1)/(3+2)) = (0.4, 0.6); priors 1/2.
    const p = predictNaiveBayes(model, vector(2, [[0, 2], [1, 1]]));
    const l1 = 2 * Math.log(0.8) + Math.log(0.2);
    const l0 = 2 * Math.log(0.4) + Math.log(0.6);
    expect(p).toBeCloseTo(Math.exp(l1) / (Math.exp(l1) + Math.exp(l0)), 12);
    // A very long text stays a probability (no underflow to 0/0).
    const long = predictNaiveBayes(model, vector(2, [[0, 5000]]));
    expect(long).toBeGreaterThan(0.99);
    expect(Number.isFinite(long)).toBe(true);
  });

  it('refuses rows it cannot use, naming them', () => {
    expect(() => fitNaiveBayes([vector(3, [[1, 1]])], [2], { size: 3 })).toThrow('label of row 0 must be 0 or 1, got 2');
    expect(() => fitNaiveBayes([vector(3, [[1, -1]])], [1], { size: 3 })).toThrow(/row 0 has a negative or missing count -1/);
    expect(() => fitNaiveBayes([vector(4, [[1, 1]])], [1], { size: 3 })).toThrow('row 0: a sparse vector of size 4, the model takes size 3');
    const model = fitNaiveBayes([vector(3, [[1, 1]])], [1], { size: 3 });
    expect(() => predictNaiveBayes(model, vector(3, [[2, 1], [1, 1]]))).toThrow(/indices must be ascending/);
  });

  it('learns review sentiment from word counts: trained on earlier reviews, judged on later ones', () => {
    const reviews = [...generateReviews({ seed: 7, count: 6000, start: Date.UTC(2026, 0, 1), days: 120 })];
    const counts = wordFrequency({ buckets: 62_000 });
    const rows = reviews.map((r) => counts(r.text) as SparseVector);
    const labels = reviews.map((r) => (r.rating >= 4 ? 1 : 0));
    // A split by time: the later fifth is never seen in training.
    const cut = Math.floor(reviews.length * 0.8);
    expect(reviews[cut - 1]!.event_timestamp).toBeLessThanOrEqual(reviews[cut]!.event_timestamp);
    const model = fitNaiveBayes(rows.slice(0, cut), labels.slice(0, cut), { size: 62_000 });
    const scores = rows.slice(cut).map((row) => predictNaiveBayes(model, row));
    const metrics = binaryMetrics(labels.slice(cut), scores);
    // Measured: accuracy 0.82, AUC 0.91, precision 0.81, recall 0.97 (the data is seeded). 9% of
    // the generated texts were written for the mirrored rating, which no model reads right.
    expect(metrics.accuracy).toBeGreaterThan(0.78);
    expect(metrics.auc!).toBeGreaterThan(0.88);
    expect(metrics.precision!).toBeGreaterThan(0.78);
    expect(metrics.recall!).toBeGreaterThan(0.9);
    // Better than always saying "positive".
    expect(metrics.accuracy).toBeGreaterThan(metrics.positives / metrics.rows + 0.05);
  });
});

describe('logistic regression', () => {
  const reviews = [...generateReviews({ seed: 7, count: 6000, start: Date.UTC(2026, 0, 1), days: 120 })];
  const counts = wordFrequency({ buckets: 62_000 });
  const rows = reviews.map((r) => counts(r.text) as SparseVector);
  const labels = reviews.map((r) => (r.rating >= 4 ? 1 : 0));
  const cut = Math.floor(reviews.length * 0.8);

  it('learns review sentiment from the same sparse counts, reproducibly', () => {
    const model = fitLogistic(rows.slice(0, cut), labels.slice(0, cut), { size: 62_000, seed: 3 });
    const metrics = binaryMetrics(labels.slice(cut), rows.slice(cut).map((row) => predictLogistic(model, row)));
    // Measured: accuracy 0.88, AUC 0.93 (Naive Bayes: 0.82, 0.91).
    expect(metrics.accuracy).toBeGreaterThan(0.85);
    expect(metrics.auc!).toBeGreaterThan(0.9);
    const again = fitLogistic(rows.slice(0, cut), labels.slice(0, cut), { size: 62_000, seed: 3 });
    expect(again.weights).toEqual(model.weights);
  });

  it('separates a separable toy problem, and refuses bad labels', () => {
    const toy = [vector(3, [[0, 1]]), vector(3, [[1, 1]]), vector(3, [[0, 2], [2, 1]]), vector(3, [[1, 2], [2, 1]])];
    const model = fitLogistic(toy, [1, 0, 1, 0], { size: 3, epochs: 200 });
    expect(predictLogistic(model, vector(3, [[0, 1]]))).toBeGreaterThan(0.9);
    expect(predictLogistic(model, vector(3, [[1, 1]]))).toBeLessThan(0.1);
    expect(() => fitLogistic(toy, [1, 0, 1, 7], { size: 3 })).toThrow('label of row 3 must be 0 or 1, got 7');
  });
});

describe('binary metrics', () => {
  it('counts accuracy, precision and recall at the threshold', () => {
    const m = binaryMetrics([1, 1, 0, 0, 1], [0.9, 0.4, 0.6, 0.1, 0.5]);
    // Predicted positive: 0.9, 0.6, 0.5 -> tp 2, fp 1; fn 1 (0.4); tn 1.
    expect(m).toMatchObject({ rows: 5, positives: 3, accuracy: 3 / 5, precision: 2 / 3, recall: 2 / 3 });
    expect(binaryMetrics([0, 0], [0.1, 0.2])).toMatchObject({ precision: null, recall: null, auc: null });
  });

  it('computes AUC as the share of positive-negative pairs ordered right, ties counting half', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 6 })), { minLength: 1, maxLength: 60 }), (pairs) => {
        const labels = pairs.map((p) => p[0]);
        const scores = pairs.map((p) => p[1] / 6);
        let good = 0;
        let total = 0;
        for (let i = 0; i < pairs.length; i++) {
          for (let j = 0; j < pairs.length; j++) {
            if (labels[i] !== 1 || labels[j] !== 0) continue;
            total++;
            good += scores[i]! > scores[j]! ? 1 : scores[i] === scores[j] ? 0.5 : 0;
          }
        }
        const got = auc(labels, scores);
        if (total === 0) expect(got).toBeNull();
        else expect(got).toBeCloseTo(good / total, 12);
      }),
      { numRuns: 300 },
    );
  });
});
