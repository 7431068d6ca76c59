/**
 * `larder train <model> [--labels FILE] [--until T] [--test-fraction F]`: trains a model of
 * CONTRACT s.9 from a point-in-time dataset and registers it as the model's next version.
 */
import { InputError } from '../core/errors.js';
import { loadDefinitions } from '../definitions/loader.js';
import type { BinaryMetrics } from '../models/metrics.js';
import { openRegistry } from '../registry/open.js';
import { MODEL_SPECS, modelSpec } from '../training/specs.js';
import { trainModel } from '../training/train.js';
import { configFrom, instantFlag, parseFlags } from './args.js';
import type { Command } from './main.js';

export const command: Command = {
  summary: 'trains a model from a point-in-time dataset and registers the new version',
  usage: `train <${MODEL_SPECS.map((s) => s.name).join('|')}> [--labels FILE] [--until T] [--test-fraction F] [--repo DIR]`,
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {
      labels: { type: 'string' },
      until: { type: 'string' },
      'test-fraction': { type: 'string' },
    });
    const [name, extra] = positionals;
    if (!name) throw new InputError(`give a model to train: ${MODEL_SPECS.map((s) => s.name).join(', ')}`);
    if (extra !== undefined) throw new InputError(`larder train takes one model, got also '${extra}'`);
    const spec = modelSpec(name);
    if (!spec) throw new InputError(`unknown model '${name}' (models: ${MODEL_SPECS.map((s) => s.name).join(', ')})`);
    const testFraction = values['test-fraction'] === undefined ? undefined : Number(values['test-fraction']);
    if (testFraction !== undefined && !(testFraction > 0 && testFraction < 1)) throw new InputError(`--test-fraction: expected a number between 0 and 1, got '${values['test-fraction']}'`);
    const config = configFrom(values);
    const defs = await loadDefinitions(config.repoDir);
    const registry = await openRegistry(config.registry);
    try {
      const { meta } = await trainModel({
        defs,
        registry,
        offlineDir: config.offlineDir,
        spec,
        labelsFile: values.labels,
        trainUntil: instantFlag(values, 'until'),
        testFraction,
        progress: (line) => process.stderr.write(`train ${spec.name}: ${line}\n`),
      });
      const lines = [
        `Registered ${meta.name} version ${meta.version} (feature service ${meta.featureService}, definitions ${meta.definitionsVersion}, ${meta.trainingSeconds} s)`,
        `dataset: ${meta.datasetRows} rows, fingerprint ${meta.datasetFingerprint.slice(0, 16)}, ${meta.datasetPath}`,
        `split: trained on ${meta.split.trainRows} rows up to ${meta.split.trainUntil}, evaluated on the ${meta.split.testRows} after${meta.reviewLabels ? `; ${meta.reviewLabels} reviewer labels` : ''}`,
        '',
        `${'estimator'.padEnd(30)}${'accuracy'.padStart(9)}${'precision'.padStart(10)}${'recall'.padStart(8)}${'AUC'.padStart(7)}`,
        ...Object.entries(meta.metrics).map(([estimator, m]) => `${(estimator + (estimator === meta.primary ? ' (served)' : '')).padEnd(30)}${metricCells(m)}`),
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
      return 0;
    } finally {
      await registry.close();
    }
  },
};

const cell = (v: number | null, width: number): string => (v === null ? '-' : v.toFixed(3)).padStart(width);
const metricCells = (m: BinaryMetrics): string => `${cell(m.accuracy, 9)}${cell(m.precision, 10)}${cell(m.recall, 8)}${cell(m.auc, 7)}`;
