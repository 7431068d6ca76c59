/** `larder apply [--force]`: registers the definitions as a new registry version. */
import { BreakingChangeError } from '../core/errors.js';
import { objectCount } from '../registry/canonical.js';
import { breakingChanges, formatDiff } from '../registry/diff.js';
import { openRegistry } from '../registry/open.js';
import { loadCanonicalRepo } from '../registry/operations.js';
import { isRepoDiff } from '../registry/registry.js';
import { configFrom, parseFlags } from './args.js';
import type { Command } from './main.js';
import { printWarnings, rejectPositionals } from './plan.js';

export const command: Command = {
  summary: 'registers the definitions as a new version; refuses a breaking change without --force',
  usage: 'apply [--force] [--repo DIR]',
  async run(argv) {
    const { values, positionals } = parseFlags(argv, { force: { type: 'boolean' } });
    rejectPositionals('apply', positionals);
    const config = configFrom(values);
    const force = values.force === true;
    const { repo, warnings } = await loadCanonicalRepo(config.repoDir);
    printWarnings(warnings);
    const registry = await openRegistry(config.registry);
    try {
      const { version, diff, changed } = await registry.apply(repo, { force });
      if (!changed) {
        process.stdout.write(`${formatDiff(diff, version.version)}\n`);
        return 0;
      }
      const forced = breakingChanges(diff).length;
      process.stdout.write(
        `${formatDiff(diff)}\n\nApplied version ${version.version} (${objectCount(repo)} objects)${forced ? `, forcing ${forced} breaking change${forced > 1 ? 's' : ''}` : ''}.\n`,
      );
      return 0;
    } catch (err) {
      // Show what was refused; the error line itself names the first breaking change.
      if (err instanceof BreakingChangeError && isRepoDiff(err.detail)) process.stdout.write(`${formatDiff(err.detail)}\n`);
      throw err;
    } finally {
      await registry.close();
    }
  },
};
