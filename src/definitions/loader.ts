/**
 * Loads a definitions repo: imports every `*.ts` under it (skipping tests, node_modules/, data/
 * and .larder/) and registers every exported definition and everything those reference.
 */
import { readdir } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DefinitionError, errorMessage } from '../core/errors.js';
import type { Definitions, Entity, FeatureService, FeatureView, Source } from './types.js';

/** A file as a user would type it: relative to the working directory when inside it. */
export const displayPath = (file: string): string => {
  const rel = relative(process.cwd(), file);
  return rel.startsWith('..') ? file : rel;
};

const SKIP_DIRS = new Set(['node_modules', 'data', '.larder', '.git']);

export async function listDefinitionFiles(repoDir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string): Promise<void> {
    const entries = await readdir(dir, { withFileTypes: true });
    for (const e of entries) {
      if (e.isDirectory()) {
        if (!SKIP_DIRS.has(e.name) && !e.name.startsWith('.')) await walk(join(dir, e.name));
      } else if (e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts')) {
        out.push(join(dir, e.name));
      }
    }
  }
  try {
    await walk(repoDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new DefinitionError(`definitions folder '${repoDir}' does not exist (set LARDER_REPO or --repo)`);
    throw err;
  }
  return out.sort();
}

type Kind = 'entity' | 'source' | 'featureView' | 'featureService';
const KIND_PLURAL: Record<Kind, string> = { entity: 'entities', source: 'sources', featureView: 'feature views', featureService: 'feature services' };

interface Registered {
  object: Entity | Source | FeatureView | FeatureService;
  file: string;
}

const kindOf = (v: unknown): Kind | undefined => {
  if (typeof v !== 'object' || v === null) return undefined;
  const k = (v as { kind?: unknown }).kind;
  return k === 'entity' || k === 'source' || k === 'featureView' || k === 'featureService' ? k : undefined;
};

/** Imports the repo and returns its definitions, validated across objects. */
export async function loadDefinitions(repoDirInput: string): Promise<Definitions> {
  const repoDir = resolve(repoDirInput);
  const files = await listDefinitionFiles(repoDir);
  const byKind: Record<Kind, Map<string, Registered>> = { entity: new Map(), source: new Map(), featureView: new Map(), featureService: new Map() };

  const register = (object: Registered['object'], file: string): void => {
    const kind = kindOf(object)!;
    const existing = byKind[kind].get(object.name);
    if (existing) {
      if (existing.object === object) return;
      throw new DefinitionError(
        `two ${KIND_PLURAL[kind]} are named '${object.name}': in ${displayPath(existing.file)} and ${displayPath(file)}`,
      );
    }
    byKind[kind].set(object.name, { object, file });
    // What a definition references is registered with it, so an unexported source still counts.
    if (kind === 'source' && (object as Source).type === 'push') {
      const batch = (object as Extract<Source, { type: 'push' }>).batchSource;
      if (batch) register(batch, file);
    }
    if (kind === 'featureView') {
      const view = object as FeatureView;
      register(view.source, file);
      for (const e of view.entities) if (typeof e === 'object') register(e, file);
    }
    if (kind === 'featureService') for (const p of (object as FeatureService).projections) register(p.view, file);
  };

  for (const file of files) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    } catch (err) {
      throw new DefinitionError(`${displayPath(file)}: ${errorMessage(err).split('\n')[0]}`);
    }
    // Services last within a file so that their views are attributed to where they are exported.
    const values = Object.values(mod).filter((v) => kindOf(v) !== undefined) as Registered['object'][];
    values.sort((a, b) => order(kindOf(a)!) - order(kindOf(b)!));
    for (const v of values) {
      try {
        register(v, file);
      } catch (err) {
        if (err instanceof DefinitionError) throw err;
        throw new DefinitionError(`${displayPath(file)}: ${errorMessage(err)}`);
      }
    }
  }
  return resolveReferences(byKind, repoDir);
}

const order = (k: Kind): number => ({ entity: 0, source: 1, featureView: 2, featureService: 3 })[k];

/** Replaces entity names given as strings by the registered entities; checks cross-object rules. */
function resolveReferences(byKind: Record<Kind, Map<string, Registered>>, repoDir: string): Definitions {
  const entities = new Map([...byKind.entity].map(([n, r]) => [n, r.object as Entity]));
  const sources = new Map([...byKind.source].map(([n, r]) => [n, r.object as Source]));
  const views = new Map<string, FeatureView>();
  for (const [name, reg] of byKind.featureView) {
    const view = reg.object as FeatureView;
    const at = `${displayPath(reg.file)}: featureView '${name}'`;
    const resolved = view.entities.map((e: Entity | string) => {
      if (typeof e !== 'string') return e;
      const found = entities.get(e);
      if (!found) throw new DefinitionError(`${at}: entities: unknown entity '${e}' (defined: ${[...entities.keys()].join(', ') || 'none'})`);
      return found;
    });
    const keys = new Set<string>();
    for (const e of resolved) {
      for (const k of e.joinKeys) {
        if (keys.has(k)) throw new DefinitionError(`${at}: entities: join key '${k}' appears in two entities`);
        keys.add(k);
      }
    }
    if (view.aggregatedFeatures && view.source.type === 'push') {
      for (const f of view.aggregatedFeatures) {
        if (!(f.column in view.source.schema)) {
          throw new DefinitionError(`${at}: aggregations: column '${f.column}' is not in push source '${view.source.name}' (has ${Object.keys(view.source.schema).join(', ')})`);
        }
      }
    }
    views.set(name, resolved.every((e, i) => e === view.entities[i]) ? view : Object.freeze({ ...view, entities: Object.freeze(resolved) }));
  }
  const services = new Map([...byKind.featureService].map(([n, r]) => [n, r.object as FeatureService]));
  return { entities, sources, views, services, repoDir };
}

/** All join keys of a view, in entity order. */
export const joinKeysOf = (view: FeatureView): string[] => view.entities.flatMap((e) => [...e.joinKeys]);
