/** `larder plan`: validates the definitions and prints the diff against the registry. */
import { InputError } from '../core/errors.js';
import { objectCount, versionOf } from '../registry/canonical.js';
import { breakingChanges, diffRepos, formatDiff } from '../registry/diff.js';
import { openRegistry } from '../registry/open.js';
import { loadCanonicalRepo } from '../registry/operations.js';
import { configFrom, parseFlags } from './args.js';
import type { Command } from './main.js';

export const command: Command = {
  summary: 'validates the definitions and prints the diff against the registry; breaking changes are marked',
  usage: 'plan [--repo DIR]',
  async run(argv) {
    const { values, positionals } = parseFlags(argv, {});
    rejectPositionals('plan', positionals);
    const config = configFrom(values);
    const { repo, warnings } = await loadCanonicalRepo(config.repoDir);
    printWarnings(warnings);
    const registry = await openRegistry(config.registry);
    try {
      const current = await registry.current();
      const diff = diffRepos(current?.repo ?? null, repo);
      const lines = [
        `Definitions: version ${versionOf(repo)} (${objectCount(repo)} objects) in ${config.repoDir}`,
        `Registry:    ${current ? `version ${current.version}, applied ${current.appliedAt}` : 'nothing applied yet'} (${registry.url})`,
        '',
        formatDiff(diff, current?.version),
      ];
      const breaking = breakingChanges(diff);
      if (breaking.length > 0) lines.push(`${breaking.length} breaking change${breaking.length > 1 ? 's' : ''}: \`larder apply\` refuses ${breaking.length > 1 ? 'them' : 'it'} without --force.`);
      process.stdout.write(`${lines.join('\n')}\n`);
    } finally {
      await registry.close();
    }
    return 0;
  },
};

export function rejectPositionals(name: string, positionals: string[]): void {
  if (positionals.length > 0) throw new InputError(`larder ${name} takes no arguments, got '${positionals[0]}'`);
}

export function printWarnings(warnings: string[]): void {
  for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
}
