/**
 * `larder models [NAME]`: the models in the registry. Without a name, one line per model: its
 * newest version, when it was trained and how long it took, and its primary estimator's held-out
 * accuracy and AUC. With a name, one line per version: when it was registered, what it was
 * trained on (feature service, definitions version, dataset fingerprint and rows) and every
 * estimator's held-out metrics.
 */
import { InputError } from '../core/errors.js';
import type { ModelVersionMeta } from '../models/artifact.js';
import type { BinaryMetrics } from '../models/metrics.js';
import { openRegistry } from '../registry/open.js';
import { checkModelName, modelAbsent, type Registry } from '../registry/registry.js';
import { configFrom, parseFlags } from './args.js';
import type { Command } from './main.js';

export const command: Command = {
  summary: 'lists registered models and their versions with their held-out metrics',
  usage: 'models [NAME] [--repo DIR]\n  without NAME: each model with its newest version; with NAME: every version of that model',
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {});
    if (positionals.length > 1) throw new InputError(`larder models takes at most one model name, got ${positionals.length}: ${positionals.join(' ')}`);
    const name = positionals[0];
    if (name !== undefined) checkModelName(name);

    const config = configFrom(values);
    const registry = await openRegistry(config.registry);
    try {
      process.stdout.write(name === undefined ? await listModels(registry) : await listVersions(registry, name));
    } finally {
      await registry.close();
    }
    return 0;
  },
};

async function listModels(registry: Registry): Promise<string> {
  const names = await registry.modelNames();
  if (names.length === 0) return `no models registered in ${registry.url}\n`;
  const latest = await Promise.all(names.map(async (name) => (await registry.latestModel(name))!));
  const rows = latest.map((m) => {
    const metrics = m.metrics[m.primary];
    return [m.name, m.version, m.trainedAt, `${m.trainingSeconds.toFixed(1)}s`, m.primary, metric(metrics?.accuracy), metric(metrics?.auc)];
  });
  return table(['model', 'version', 'trained', 'took', 'primary', 'accuracy', 'auc'], rows, [1, 3, 5, 6]);
}

async function listVersions(registry: Registry, name: string): Promise<string> {
  const versions = await registry.modelVersions(name);
  if (versions.length === 0) throw modelAbsent(name, undefined, [], await registry.modelNames());
  const rows = versions.map((m) => [
    m.version,
    m.registeredAt,
    m.featureService,
    m.definitionsVersion,
    m.datasetFingerprint.slice(0, 12),
    String(m.datasetRows),
    estimatorMetrics(m),
  ]);
  const header = table(['version', 'registered', 'service', 'definitions', 'dataset', 'rows', 'held-out metrics (* primary)'], rows, [0, 5]);
  return `model ${name}: ${versions.length} version${versions.length === 1 ? '' : 's'}\n${header}`;
}

/** `naive_bayes* accuracy 0.912 precision 0.930 recall 0.951 auc 0.960; logistic_regression ...`. */
function estimatorMetrics(meta: ModelVersionMeta): string {
  return Object.entries(meta.metrics)
    .map(([estimator, m]: [string, BinaryMetrics]) =>
      [`${estimator}${estimator === meta.primary ? '*' : ''}`, `accuracy ${metric(m.accuracy)}`, `precision ${metric(m.precision)}`, `recall ${metric(m.recall)}`, `auc ${metric(m.auc)}`].join(' '),
    )
    .join('; ');
}

/** Null (no positives, nothing predicted positive, one class only) prints as '-'. */
const metric = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : v.toFixed(3));

/** Left-aligned columns, right-aligned where numbers are; a last text column is not padded. */
function table(header: string[], rows: string[][], numeric: number[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const last = header.length - 1;
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (numeric.includes(i) ? c.padStart(widths[i]!) : i === last ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[header, ...rows].map(line).join('\n')}\n`;
}
