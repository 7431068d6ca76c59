/**
 * The drift report as one self-contained HTML page: no scripts, no external assets, so it can be
 * mailed, archived or opened from disk. A header, the features by PSI, then for the prediction
 * and each feature an inline SVG of training and serving proportions per bin.
 */
import type { DriftStatus } from './profile.js';
import type { DriftReport, FeatureDrift, QuantityDrift } from './report.js';

const STATUS_COLOUR: Record<DriftStatus, string> = { ok: '#2e7d32', moderate: '#ed8c00', major: '#c62828', 'no-data': '#757575' };
const TRAINING_COLOUR = '#5b7fa6';
const SERVING_COLOUR = '#e07b39';

export function renderDriftHtml(report: DriftReport): string {
  const title = `Drift report: ${report.model} version ${report.version}`;
  const sections = [header(report), notes(report.notes), predictionSummary(report), featureTable(report.features), charts(report)];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${esc(title)}</h1>
${sections.filter(Boolean).join('\n')}
</body>
</html>
`;
}

function header(r: DriftReport): string {
  const versions = Object.entries(r.servingRowsByVersion)
    .map(([v, n]) => `version ${v}: ${n}`)
    .join(', ');
  const items: [string, string][] = [
    ['Feature service', r.featureService],
    ['Trained at', r.trainedAt],
    ['Training rows', String(r.trainingRows)],
    ['Dataset fingerprint', r.datasetFingerprint],
    ...(r.datasetPath ? [['Dataset', r.datasetPath] as [string, string]] : []),
    ['Serving window', `${r.since} to ${r.until}`],
    ['Serving rows', versions ? `${r.servingRows} (${versions})` : String(r.servingRows)],
    ['Generated at', r.generatedAt],
  ];
  return `<dl class="meta">${items.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>`;
}

function notes(lines: readonly string[]): string {
  return lines.length ? `<div class="notes">${lines.map((l) => `<p>${esc(l)}</p>`).join('')}</div>` : '';
}

function predictionSummary(r: DriftReport): string {
  const p = r.prediction;
  const pct = (x: number | null) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);
  const num = (x: number | null) => (x === null ? 'n/a' : x.toFixed(3));
  return `<h2>Predictions</h2>
<table class="summary"><thead><tr><th></th><th>training</th><th>serving</th></tr></thead><tbody>
<tr><th>rows</th><td>${p.training.rows}</td><td>${p.serving.rows}</td></tr>
<tr><th>mean probability</th><td>${num(p.trainingMeanProbability)} <span class="hint">(from bins)</span></td><td>${num(p.servingMeanProbability)}</td></tr>
<tr><th>positive rate</th><td>${pct(p.trainingPositiveRate)}</td><td>${pct(p.servingPositiveRate)}</td></tr>
<tr><th>flagged for review</th><td></td><td>${pct(p.servingReviewRate)}</td></tr>
<tr><th>PSI</th><td colspan="2">${psiText(p.psi)} ${badge(p.status)}</td></tr>
</tbody></table>`;
}

function featureTable(features: readonly FeatureDrift[]): string {
  if (features.length === 0) return '<h2>Features</h2><p>No profiled features.</p>';
  const rows = features.map(
    (f, i) =>
      `<tr><td><a href="#${anchor(f.name, i)}">${esc(f.name)}</a></td><td>${esc(f.type)}</td><td class="num">${psiText(f.psi)}</td><td>${badge(f.status)}</td><td class="num">${f.serving.rows}</td><td>${esc(f.versions.join(', '))}</td></tr>`,
  );
  return `<h2>Features by PSI</h2>
<p class="hint">PSI below 0.1: stable; 0.1 to 0.25: moderate shift; 0.25 and above: major shift.</p>
<table class="features"><thead><tr><th>feature</th><th>type</th><th>PSI</th><th>status</th><th>serving rows</th><th>versions compared</th></tr></thead><tbody>
${rows.join('\n')}
</tbody></table>`;
}

function charts(r: DriftReport): string {
  const blocks = [r.prediction as QuantityDrift, ...r.features].map(
    (q, i) => `<section id="${i === 0 ? 'prediction' : anchor(q.name, i - 1)}"><h3>${esc(q.name)} <span class="psi">PSI ${psiText(q.psi)}</span> ${badge(q.status)}</h3>${barChart(q)}</section>`,
  );
  return `<h2>Distributions</h2>
<p class="legend"><span class="swatch" style="background:${TRAINING_COLOUR}"></span>training <span class="swatch" style="background:${SERVING_COLOUR}"></span>serving (share of rows per bin)</p>
${blocks.join('\n')}`;
}

/** Paired bars per bin: training and serving proportions of all rows (missing values a bin of their own when any). */
export function barChart(q: QuantityDrift): string {
  const labels = binLabels(q.edges);
  const training = [...q.training.counts];
  const serving = [...q.serving.counts];
  if (q.training.nulls > 0 || q.serving.nulls > 0) {
    labels.push('missing');
    training.push(q.training.nulls);
    serving.push(q.serving.nulls);
  }
  const share = (counts: number[]) => {
    const total = counts.reduce((s, c) => s + c, 0);
    return counts.map((c) => (total > 0 ? c / total : 0));
  };
  const [t, s] = [share(training), share(serving)];
  // Gridlines at a round step (5%, 10%, 20%, 25%), four or five of them.
  const max = Math.max(0.05, ...t, ...s);
  const step = [0.0125, 0.025, 0.05, 0.1, 0.2, 0.25].find((x) => max / x <= 5) ?? 0.25;
  const lines = Math.ceil(max / step - 1e-9);
  const top = lines * step;

  const slot = 56;
  const [left, right, above, plot, below] = [48, 10, 10, 150, 76];
  const width = left + right + slot * labels.length;
  const height = above + plot + below;
  const y = (p: number) => above + plot - (p / top) * plot;
  const parts: string[] = [];
  for (let g = 0; g <= lines; g++) {
    const p = step * g;
    parts.push(`<line x1="${left}" x2="${width - right}" y1="${fmt(y(p))}" y2="${fmt(y(p))}" class="grid"/>`);
    parts.push(`<text x="${left - 4}" y="${fmt(y(p) + 4)}" text-anchor="end">${Number((p * 100).toFixed(2))}%</text>`);
  }
  labels.forEach((label, i) => {
    const x0 = left + i * slot + 6;
    const bar = (p: number, dx: number, colour: string, side: string) =>
      `<rect x="${fmt(x0 + dx)}" y="${fmt(y(p))}" width="21" height="${fmt(above + plot - y(p))}" fill="${colour}"><title>${esc(`${label}: ${side} ${(100 * p).toFixed(1)}%`)}</title></rect>`;
    parts.push(bar(t[i]!, 0, TRAINING_COLOUR, 'training'), bar(s[i]!, 22, SERVING_COLOUR, 'serving'));
    const cx = x0 + 22;
    const cy = above + plot + 12;
    parts.push(`<text x="${fmt(cx)}" y="${cy}" text-anchor="end" transform="rotate(-35 ${fmt(cx)} ${cy})">${esc(label)}</text>`);
  });
  const description = `${q.name}: training and serving share of rows per bin`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${esc(description)}"><title>${esc(description)}</title>${parts.join('')}</svg>`;
}

/** `< 1.5`, `1.5 to 2`, ..., `>= 9`; one bin with no edges is `all`. */
function binLabels(edges: readonly number[]): string[] {
  if (edges.length === 0) return ['all'];
  const e = edges.map(formatEdge);
  return [`< ${e[0]}`, ...e.slice(1).map((x, i) => `${e[i]} to ${x}`), `>= ${e[e.length - 1]}`];
}

/** Four significant digits, no trailing zeros; tiny and huge numbers in exponent form. */
function formatEdge(x: number): string {
  if (x === 0) return '0';
  const abs = Math.abs(x);
  if (abs < 1e-3 || abs >= 1e7) return x.toExponential(3).replace(/\.?0+e/, 'e');
  return String(Number(x.toPrecision(4)));
}

const psiText = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(3));
const badge = (status: DriftStatus): string => `<span class="badge" style="background:${STATUS_COLOUR[status]}">${esc(status)}</span>`;
const fmt = (x: number): string => String(Math.round(x * 10) / 10);
/** The id of the i-th feature's chart: its position keeps ids distinct, the name keeps them readable. */
const anchor = (name: string, i: number): string => `f${i}-${name.replace(/[^A-Za-z0-9_-]/g, '_')}`;

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const esc = (text: string): string => text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 2em auto; max-width: 1100px; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; } h3 { font-size: 1em; margin: 1.5em 0 .3em; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: .2em 1.5em; }
dl.meta dt { color: #555; } dl.meta dd { margin: 0; font-family: ui-monospace, monospace; word-break: break-all; }
.notes { background: #fff8e1; border-left: 4px solid #ed8c00; padding: .3em 1em; }
table { border-collapse: collapse; } th, td { padding: .25em .8em; border-bottom: 1px solid #e0e0e0; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { color: #fff; border-radius: 3px; padding: .05em .5em; font-size: .85em; }
.hint { color: #777; font-size: .9em; } .psi { font-weight: normal; color: #555; }
.legend .swatch { display: inline-block; width: .9em; height: .9em; margin: 0 .3em 0 1em; vertical-align: -.1em; }
svg { display: block; overflow: visible; } svg text { font-size: 10px; fill: #444; } svg .grid { stroke: #e6e6e6; }
`;
