/**
 * `larder verify [--views a,b] [--sample N] [--at T]`: the train/serve skew audit
 * (verify/skew.ts). Prints one line per feature (entities compared, mismatches) and up to three
 * example mismatches each; exits 1 when any value differs, 0 when all agree.
 */
import { InputError } from '../core/errors.js';
import { formatInstant } from '../core/time.js';
import { loadDefinitions } from '../definitions/loader.js';
import { openOnlineStore } from '../online/open.js';
import { verifyOnline, type VerifyReport } from '../verify/skew.js';
import { configFrom, instantFlag, listFlag, parseFlags } from './args.js';
import type { Command } from './main.js';

export const command: Command = {
  summary: 'compares online values with point-in-time offline values at the same instant; exits 1 on any mismatch',
  usage: 'verify [--views a,b] [--sample N] [--at T] [--repo DIR]\n  samples N entities per view (default 100) from the offline store and compares at T (default now)',
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { views: { type: 'string' }, sample: { type: 'string' }, at: { type: 'string' } });
    if (positionals.length > 0) throw new InputError(`larder verify takes no arguments, got '${positionals[0]}'`);
    const views = listFlag(values.views);
    if (views && views.length === 0) throw new InputError('--views: give at least one view name');
    const sample = values.sample === undefined ? undefined : Number(values.sample);
    if (sample !== undefined && (!Number.isInteger(sample) || sample < 1)) throw new InputError(`--sample: expected a whole number above 0, got '${values.sample}'`);
    const at = instantFlag(values, 'at');

    const config = configFrom(values);
    const defs = await loadDefinitions(config.repoDir);
    const store = await openOnlineStore(config.online);
    try {
      const report = await verifyOnline({ defs, offlineDir: config.offlineDir, store, views, sample, at });
      process.stdout.write(formatReport(report));
      return report.mismatches === 0 ? 0 : 1;
    } finally {
      await store.close();
    }
  },
};

/** The report as a table, then the examples. */
export function formatReport(report: VerifyReport): string {
  const lines = [`verify at ${formatInstant(report.at)}: ${report.views.map((v) => `${v.view} (${v.entities} entities)`).join(', ') || 'no online views'}`];
  const rows = report.features.map((f) => [`${f.view}:${f.feature}`, String(f.compared), String(f.mismatches)]);
  const header = ['feature', 'compared', 'mismatches'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  lines.push(line(header), ...rows.map(line));
  for (const f of report.features) {
    for (const e of f.examples) lines.push(`  ${f.view}:${f.feature} ${JSON.stringify(e.entity)}: online ${JSON.stringify(e.online)}, offline ${JSON.stringify(e.offline)}`);
  }
  const empty = report.views.filter((v) => v.entities === 0).map((v) => v.view);
  if (empty.length) lines.push(`no offline rows to sample for: ${empty.join(', ')}`);
  lines.push(report.mismatches === 0 ? 'no mismatches' : `${report.mismatches} mismatched values`);
  return `${lines.join('\n')}\n`;
}
