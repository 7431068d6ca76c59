// PACED (bench/lib/http-load.mjs), unchanged but for one more field in the JSON line it prints:
// `histogram`, its latencies counted in buckets 1 % wide ({ bucket: count }, bucket b holding
// latencies in (0.001 x 1.01^(b-1), 0.001 x 1.01^b] ms). Runs one after another (a soak's minutes)
// then give exact percentiles each and, merged, percentiles over all of them within 1 % (rounded up).
//   await kit.writeGenerators();
//   await writeFile(join(dir, 'paced.mjs'), PACED_HISTOGRAM);   // kit.load(..., { paced: true }) now runs it
//   const all = mergeHistograms(results.map((r) => r.histogram));
//   percentileOf(all, 0.99);
import { PACED } from './http-load.mjs';

const ANCHOR = 'console.log(JSON.stringify({ requests: total,';
if (!PACED.includes(ANCHOR)) throw new Error('paced-histogram: PACED in bench/lib/http-load.mjs no longer prints its line as expected; update ANCHOR');

export const PACED_HISTOGRAM = `${PACED.replace(ANCHOR, 'console.log(JSON.stringify({ histogram: histogramOf(sorted), requests: total,')}
function histogramOf(sorted) {
  const h = {};
  for (const x of sorted) {
    const b = x <= 0.001 ? 0 : Math.ceil(Math.log(x / 0.001) / Math.log(1.01));
    h[b] = (h[b] ?? 0) + 1;
  }
  return h;
}
`;

/** The upper edge of bucket `b`, in ms. */
export const bucketUpperMs = (b) => 0.001 * 1.01 ** b;

/** Histograms (as PACED_HISTOGRAM prints them) summed. */
export function mergeHistograms(histograms) {
  const out = {};
  for (const h of histograms) for (const [b, n] of Object.entries(h ?? {})) out[b] = (out[b] ?? 0) + n;
  return out;
}

/** The p-quantile (0-1) of a histogram, as its bucket's upper edge (ms); null when empty. */
export function percentileOf(histogram, p) {
  const buckets = Object.entries(histogram).map(([b, n]) => [Number(b), n]).sort((x, y) => x[0] - y[0]);
  const total = buckets.reduce((a, [, n]) => a + n, 0);
  if (!total) return null;
  // The same rank PACED takes: floor(p x n), counted from 0.
  const rank = Math.min(total - 1, Math.floor(p * total));
  let seen = 0;
  for (const [b, n] of buckets) {
    seen += n;
    if (seen > rank) return bucketUpperMs(b);
  }
  return bucketUpperMs(buckets[buckets.length - 1][0]);
}
