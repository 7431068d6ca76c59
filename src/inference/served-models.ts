/**
 * The models a server predicts with: each loaded from the registry on its first request, then
 * kept; every few seconds the registry's newest version of each loaded model is read (meta only),
 * and a new version is loaded and swapped in whole. A request holds the model it started with.
 * A registry that does not answer changes nothing: the loaded versions go on serving.
 */
import { InputError, errorMessage } from '../core/errors.js';
import type { Estimator, ModelVersionMeta } from '../models/artifact.js';
import type { Registry } from '../registry/registry.js';
import type { Logger } from '../serving/errors.js';
import { RegistryUnavailableError } from '../registry/registry.js';
import { withRegistryTimeout, withTimeout } from '../serving/timeout.js';

export interface ServedModel {
  meta: ModelVersionMeta;
  /** The estimator `/predict` serves (`meta.primary`). */
  estimator: Estimator;
}

export class ServedModels {
  private readonly loaded = new Map<string, ServedModel>();
  /** First loads in flight, so concurrent first requests load once. */
  private readonly loading = new Map<string, Promise<ServedModel>>();
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;

  constructor(
    private readonly registry: Registry,
    private readonly options: { pollMs: number; log: Logger; /** Bound on one registry call (default 2000 ms). */ timeoutMs?: number },
  ) {
    this.timer = setInterval(() => void this.refresh(), options.pollMs);
    this.timer.unref();
  }

  /** The model as served now; loads it on first use. InputError (404) naming the model when none is registered. */
  get(name: string): ServedModel | Promise<ServedModel> {
    const model = this.loaded.get(name);
    if (model) return model;
    let pending = this.loading.get(name);
    if (!pending) {
      pending = this.load(name).finally(() => this.loading.delete(name));
      this.loading.set(name, pending);
    }
    return pending;
  }

  /** Reads the newest version of every loaded model and swaps in those that moved; what the timer does. */
  refresh(): Promise<void> {
    this.refreshing ??= this.poll().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /** Versions served now, by model. */
  versions(): Record<string, string> {
    return Object.fromEntries([...this.loaded].map(([name, m]) => [name, m.meta.version]));
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.refreshing;
  }

  /** A registry call, bounded: a registry that does not answer is a 503, not a hung request. */
  private bounded<T>(work: Promise<T>): Promise<T> {
    const ms = this.options.timeoutMs ?? 2000;
    return withRegistryTimeout(this.registry, work, ms);
  }

  private async load(name: string, version?: string): Promise<ServedModel> {
    const latest = version ?? (await this.bounded(this.registry.latestModel(name)))?.version;
    if (latest === undefined) {
      const names = await this.bounded(this.registry.modelNames());
      throw new ModelNotFoundError(`model: no model '${name}' is registered (registered: ${names.join(', ') || 'none'}; train one with larder train ${name})`, { field: 'model', models: names });
    }
    // Loading a 62k-word model reads megabytes: a longer bound than a lookup.
    const artifact = await withTimeout(this.registry.loadModel(name, latest), 5 * (this.options.timeoutMs ?? 2000), () => new RegistryUnavailableError(`registry ${this.registry.url}: loading model ${name} version ${latest} did not finish in time`));
    const estimator = artifact.estimators[artifact.meta.primary];
    if (!estimator) throw new Error(`model ${name} version ${latest}: its primary estimator '${artifact.meta.primary}' is not in the artifact`);
    const model = { meta: artifact.meta, estimator };
    this.loaded.set(name, model);
    return model;
  }

  private async poll(): Promise<void> {
    for (const [name, current] of this.loaded) {
      try {
        const latest = await this.bounded(this.registry.latestModel(name));
        if (latest && latest.version !== current.meta.version) {
          await this.load(name, latest.version);
          this.options.log(`larder serve: model ${name} version ${latest.version} loaded (was ${current.meta.version})`);
        }
      } catch (err) {
        this.options.log(`larder serve: checking model ${name} for a new version failed: ${errorMessage(err).split('\n')[0]}; still serving version ${current.meta.version}`);
      }
    }
  }
}

/** No such model in the registry: a 404. */
export class ModelNotFoundError extends InputError {
  override name = 'ModelNotFoundError';
}
