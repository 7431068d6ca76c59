/**
 * Binary classification metrics of a held-out set: accuracy, precision and recall at a threshold,
 * and the area under the ROC curve (threshold-free: the probability that a random positive scores
 * above a random negative, ties counting half, computed from ranks in O(n log n)).
 */
export interface BinaryMetrics {
  rows: number;
  positives: number;
  accuracy: number;
  /** Null when nothing was predicted positive. */
  precision: number | null;
  /** Null when there are no positives. */
  recall: number | null;
  /** Null when one of the classes is absent. */
  auc: number | null;
}

export function binaryMetrics(labels: ArrayLike<number>, scores: ArrayLike<number>, threshold = 0.5): BinaryMetrics {
  const n = labels.length;
  if (scores.length !== n) throw new Error(`metrics: ${n} labels but ${scores.length} scores`);
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  for (let i = 0; i < n; i++) {
    const positive = labels[i] === 1;
    const predicted = scores[i]! >= threshold;
    if (positive && predicted) tp++;
    else if (positive) fn++;
    else if (predicted) fp++;
    else tn++;
  }
  return {
    rows: n,
    positives: tp + fn,
    accuracy: n ? (tp + tn) / n : 0,
    precision: tp + fp ? tp / (tp + fp) : null,
    recall: tp + fn ? tp / (tp + fn) : null,
    auc: auc(labels, scores),
  };
}

/** Mann-Whitney U over ranks (average ranks for ties), divided by positives × negatives. */
export function auc(labels: ArrayLike<number>, scores: ArrayLike<number>): number | null {
  const n = labels.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  let rankSumPositives = 0;
  let positives = 0;
  for (let start = 0; start < n; ) {
    let end = start;
    while (end + 1 < n && scores[order[end + 1]!] === scores[order[start]!]) end++;
    const averageRank = (start + end) / 2 + 1;
    for (let k = start; k <= end; k++) {
      if (labels[order[k]!] === 1) {
        rankSumPositives += averageRank;
        positives++;
      }
    }
    start = end + 1;
  }
  const negatives = n - positives;
  if (positives === 0 || negatives === 0) return null;
  return (rankSumPositives - (positives * (positives + 1)) / 2) / (positives * negatives);
}
