/**
 * `larder drift --model M [--since T] [--until T] [--out FILE] [--version V]`: compares the
 * serving log of a model with its training profile (drift/report.ts) and writes the HTML report
 * (drift/html.ts), whole or not at all. Prints one line per feature (PSI, status) and the path.
 * No predictions in the window is not an error: it says so, writes the report and exits 0.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { InputError } from '../core/errors.js';
import { syncDir, syncFile } from '../core/fsync.js';
import { DAY_MS, asEpochMs, formatInstant } from '../core/time.js';
import { renderDriftHtml } from '../drift/html.js';
import { computeDrift, type DriftReport } from '../drift/report.js';
import type { ModelVersionMeta } from '../models/artifact.js';
import { openRegistry } from '../registry/open.js';
import { checkModelName, modelAbsent, type Registry } from '../registry/registry.js';
import { configFrom, instantFlag, parseFlags, requireFlag } from './args.js';
import type { Command } from './main.js';

export const command: Command = {
  summary: "compares the serving log with the model's training data; writes an HTML report",
  usage:
    'drift --model M [--since T] [--until T] [--out FILE] [--version V] [--repo DIR]\n' +
    '  window [since, until) defaults to the last 7 days; version defaults to the newest;\n' +
    '  out defaults to <home>/reports/drift-<model>-<YYYYMMDDTHHMMSS>.html',
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      model: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      out: { type: 'string' },
      version: { type: 'string' },
    });
    if (positionals.length > 0) throw new InputError(`larder drift takes no arguments, got '${positionals[0]}' (give the model with --model)`);
    const model = requireFlag(values, 'model');
    checkModelName(model);
    const until = instantFlag(values, 'until') ?? asEpochMs(Date.now());
    const since = instantFlag(values, 'since') ?? asEpochMs(until - 7 * DAY_MS);
    if (since >= until) throw new InputError(`--since: ${formatInstant(since)} is not before the window's end ${formatInstant(until)}`);
    if (values.out === '') throw new InputError('--out: give a file name');

    const config = configFrom(values);
    const registry = await openRegistry(config.registry);
    let meta: ModelVersionMeta;
    try {
      meta = await modelMeta(registry, model, values.version);
    } finally {
      await registry.close();
    }

    const report = await computeDrift({ offlineDir: config.offlineDir, meta, since, until });
    const out = resolve(values.out ?? join(config.home, 'reports', `drift-${model}-${fileStamp(Date.now())}.html`));
    await writeAtomically(out, renderDriftHtml(report));
    process.stdout.write(formatDrift(report, out));
    return 0;
  },
};

/** The meta of the version asked for, or the newest; an InputError naming the model (and version) when absent. */
async function modelMeta(registry: Registry, model: string, version: string | undefined): Promise<ModelVersionMeta> {
  if (version === undefined) {
    const latest = await registry.latestModel(model);
    if (!latest) throw modelAbsent(model, undefined, [], await registry.modelNames());
    return latest;
  }
  const versions = await registry.modelVersions(model);
  const meta = versions.find((m) => m.version === version);
  if (!meta) throw modelAbsent(model, version, versions.map((m) => m.version), await registry.modelNames());
  return meta;
}

/** The console summary: the window, a table of features by PSI, the prediction, the report path. */
export function formatDrift(report: DriftReport, file: string): string {
  const lines = [`drift of ${report.model} version ${report.version} (trained ${report.trainedAt}), serving ${report.since} to ${report.until}: ${report.servingRows} rows`];
  if (report.servingRows === 0) lines.push(`no predictions in the serving log of ${report.model} since ${report.since}`);
  const psi = (x: number | null) => (x === null ? 'n/a' : x.toFixed(3));
  const rows = [...report.features, report.prediction].map((q) => [q.name, psi(q.psi), q.status]);
  const header = ['feature', 'psi', 'status'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 1 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  lines.push(line(header), ...rows.map(line));
  for (const note of report.notes.filter((n) => !n.startsWith('no predictions in the serving log'))) lines.push(note);
  const flagged = report.features.filter((f) => f.status === 'major').length;
  if (report.servingRows > 0) lines.push(flagged ? `${flagged} feature${flagged === 1 ? '' : 's'} with a major shift (PSI >= 0.25)` : 'no feature with a major shift');
  lines.push(`report: ${file}`);
  return `${lines.join('\n')}\n`;
}

/** `20240101T101500`, UTC. */
const fileStamp = (ms: number): string => new Date(ms).toISOString().slice(0, 19).replace(/[-:]/g, '');

/** Written beside the target under a hidden name, synced, then renamed: a reader never sees half a report. */
async function writeAtomically(file: string, text: string): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true });
  const partial = join(dir, `.${basename(file)}.${process.pid}-${randomBytes(4).toString('hex')}.partial`);
  try {
    await writeFile(partial, text);
    await syncFile(partial);
    await rename(partial, file);
    await syncDir(dir);
  } catch (err) {
    await rm(partial, { force: true });
    throw new InputError(`--out: cannot write '${file}': ${(err as Error).message}`);
  }
}
