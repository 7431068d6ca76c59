/**
 * Loads a definitions repo: imports every `*.ts` under it (skipping tests, node_modules/, data/
 * and .larder/) and registers every exported definition and everything those reference.
 */
import { readdir } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DefinitionError, errorMessage } from '../core/errors.js';
import { isIdentifier } from '../core/refs.js';
import { MAX_DURATION_MS } from '../core/time.js';
import { KEY_TYPES, isValueType } from '../core/value-types.js';
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
    checkNames(object, file);
    checkShape(object, file);
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
      throw new DefinitionError(`${displayPath(file)}: ${thrownText(err)}`);
    }
    // Services last within a file so that their views are attributed to where they are exported.
    // Reading an export's `kind` runs the file's code (a getter, a Proxy): what it throws names the file.
    let values: Registered['object'][];
    try {
      values = Object.values(mod).filter((v) => kindOf(v) !== undefined) as Registered['object'][];
      values.sort((a, b) => order(kindOf(a)!) - order(kindOf(b)!));
    } catch (err) {
      throw new DefinitionError(`${displayPath(file)}: reading its exports failed: ${thrownText(err)}`);
    }
    for (const v of values) {
      try {
        register(v, file);
      } catch (err) {
        if (err instanceof DefinitionError) throw err;
        throw new DefinitionError(`${displayPath(file)}: ${thrownText(err)}`);
      }
    }
  }
  return resolveReferences(byKind, repoDir);
}

// ---------------------------------------------------------------------------------------------
// Names reach SQL (DuckDB, PostgreSQL) and file paths (the offline store's `<view>/date=...`).
// The builders validate them, but anything exported with a `kind` registers, including objects
// not made by a builder (`{ ...view, name: '../x' }`, a literal): so every name is checked again
// here, and a definition that is not an identifier is refused with one line naming it.

const IDENTIFIER_RULE = 'must be an identifier (letters, digits, _; not starting with a digit)';
const TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;

/** A value for the one-line error: quoted, control characters (a newline, NUL) escaped. */
const shown = (v: unknown): string => (typeof v === 'string' && !/[\u0000-\u001f\u007f]/.test(v) ? `'${v}'` : JSON.stringify(v) ?? String(v));

function checkNames(object: Registered['object'], file: string): void {
  const kind = kindOf(object)!;
  const name: unknown = object.name;
  const fail = (field: string, message: string): never => {
    throw new DefinitionError(`${displayPath(file)}: ${kind === 'source' ? `${(object as Source).type ?? ''}Source` : kind} ${shown(name)}: ${field}: ${message}`);
  };
  const identifier = (field: string, value: unknown): void => {
    if (typeof value !== 'string' || !isIdentifier(value)) fail(field, `${shown(value)} ${IDENTIFIER_RULE}`);
  };
  const keysOf = (field: string, record: unknown): string[] => {
    if (typeof record !== 'object' || record === null) return fail(field, 'expected an object');
    const keys = Object.keys(record);
    for (const key of keys) identifier(`${field}.${key}`, key);
    return keys;
  };
  identifier('name', name);
  if (kind === 'entity') {
    const e = object as Entity;
    if (!Array.isArray(e.joinKeys) || e.joinKeys.length === 0) fail('joinKeys', 'needs at least one join key');
    e.joinKeys.forEach((k, i) => identifier(`joinKeys.${i}`, k));
    for (const key of keysOf('keyTypes', e.keyTypes)) {
      if (!e.joinKeys.includes(key)) fail(`keyTypes.${key}`, 'not one of its join keys');
      if (!(KEY_TYPES as readonly string[]).includes((e.keyTypes as Record<string, string>)[key]!)) fail(`keyTypes.${key}`, `expected one of ${KEY_TYPES.join(', ')}`);
    }
  } else if (kind === 'source') {
    const s = object as Source;
    identifier('timestampField', s.timestampField);
    if (s.createdTimestampField !== undefined) identifier('createdTimestampField', s.createdTimestampField);
    if (s.type === 'file') {
      if (typeof s.path !== 'string' || !/\.(parquet|csv)$/i.test(s.path) || s.path.includes('\0')) fail('path', `${shown(s.path)} must be a file path ending in .parquet or .csv`);
      if (s.format !== 'parquet' && s.format !== 'csv') fail('format', `${shown(s.format)} must be parquet or csv`);
    } else if (s.type === 'postgres') {
      if ((s.table === undefined) === (s.query === undefined)) fail('table', 'give exactly one of table or query');
      if (s.table !== undefined && (typeof s.table !== 'string' || !TABLE_NAME.test(s.table))) fail('table', `${shown(s.table)} must be a table name, optionally schema-qualified`);
      if (s.query !== undefined && (typeof s.query !== 'string' || s.query.trim() === '')) fail('query', 'must be a SQL query');
    } else if (s.type === 'push') {
      keysOf('schema', s.schema);
    } else {
      fail('type', `${shown((s as { type?: unknown }).type)} is not file, postgres or push`);
    }
  } else if (kind === 'featureView') {
    const v = object as FeatureView;
    keysOf('schema', v.schema);
    (v.aggregatedFeatures ?? []).forEach((f, i) => {
      identifier(`aggregations.${i}.name`, f.name);
      identifier(`aggregations.${i}.column`, f.column);
    });
    if (!Array.isArray(v.entities) || v.entities.length === 0) fail('entities', 'needs at least one entity');
    v.entities.forEach((e: Entity | string, i) => {
      if (typeof e === 'string') identifier(`entities.${i}`, e);
      else if (kindOf(e) !== 'entity') fail(`entities.${i}`, 'must be an entity() definition or its name');
    });
    if (kindOf(v.source) !== 'source') fail('source', 'must be a source definition');
  } else {
    const service = object as FeatureService;
    if (!Array.isArray(service.projections)) fail('features', 'expected feature views');
    service.projections.forEach((p, i) => {
      if (kindOf(p?.view) !== 'featureView') fail(`features.${i}`, 'must be a feature view or view.select(...)');
      p.features.forEach((f) => {
        identifier(`features.${i}`, f);
        if (!Object.hasOwn(p.view.schema, f)) fail(`features.${i}`, `feature view '${p.view.name}' has no feature ${shown(f)}`);
      });
    });
  }
}

const NUMERIC_TYPES: readonly string[] = ['int32', 'int64', 'float32', 'float64'];

const isDuration = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= MAX_DURATION_MS;

/**
 * After the names, the rest of what the builders guarantee and the stores, datasets and the
 * registry rely on, for objects not made by a builder (a literal with a `kind`): a view without
 * `ttlMs` or `online` used to load, reach the registry as JSON without them, and be read with
 * NaN freshness online.
 */
function checkShape(object: Registered['object'], file: string): void {
  const kind = kindOf(object)!;
  const fail = (field: string, message: string): never => {
    throw new DefinitionError(`${displayPath(file)}: ${kind} '${object.name}': ${field}: ${message} (make definitions with the larder builders)`);
  };
  if (kind === 'entity') {
    const e = object as Entity;
    for (const key of e.joinKeys) if (!Object.hasOwn(e.keyTypes, key)) fail(`keyTypes.${key}`, 'missing');
  } else if (kind === 'featureView') {
    const v = object as FeatureView;
    if (!isDuration(v.ttlMs)) fail('ttlMs', 'expected a whole number of milliseconds');
    if (!isDuration(v.allowedLatenessMs)) fail('allowedLatenessMs', 'expected a whole number of milliseconds');
    if (typeof v.online !== 'boolean') fail('online', 'expected true or false');
    if (Object.keys(v.schema).length === 0) fail('schema', 'must declare at least one feature');
    for (const [feature, type] of Object.entries(v.schema)) if (!isValueType(type)) fail(`schema.${feature}`, 'unknown value type');
    if (v.transform !== undefined && typeof v.transform !== 'function') fail('transform', 'must be a function');
    if (v.aggregatedFeatures !== undefined) {
      if (!Array.isArray(v.aggregatedFeatures) || v.aggregatedFeatures.length === 0) fail('aggregations', 'expected the resolved aggregations');
      for (const f of v.aggregatedFeatures) {
        if (!Object.hasOwn(v.schema, f.name) || !isDuration(f.windowMs) || !isDuration(f.tileMs) || f.tileMs < 1000 || f.tileMs > f.windowMs) fail(`aggregations.${f.name}`, 'not as featureView() resolves it');
      }
    }
  } else if (kind === 'featureService') {
    const s = object as FeatureService;
    if (s.projections.length === 0) fail('features', 'needs at least one feature view');
    s.projections.forEach((p, i) => {
      if (!Array.isArray(p.features) || p.features.length === 0) fail(`features.${i}`, 'select at least one feature');
    });
  }
}

/**
 * What a file threw, as the first line of one error. A file may throw anything: `throw null`,
 * an object whose toString throws (which used to escape as that second error: exit 70), an Error
 * with an empty message or many lines.
 */
function thrownText(err: unknown): string {
  let text: string;
  try {
    text = errorMessage(err);
  } catch {
    text = `it threw a value that cannot be shown (${typeof err})`;
  }
  const lines = (typeof text === 'string' ? text : '').split(/\r?\n|\r/);
  // esbuild's syntax errors start "Transform failed with 1 error:"; the next line says where and what.
  const first = /^Transform failed with \d+ errors?:?$/.test(lines[0]!.trim()) && lines[1]?.trim() ? lines[1] : lines[0];
  const line = first!.trim();
  return line || `it threw ${err instanceof Error ? `a ${err.name} with no message` : 'a value with no message'}`;
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
        // Own keys: `in` took a column named `toString` as one of every schema's.
        if (!Object.hasOwn(view.source.schema, f.column)) {
          throw new DefinitionError(`${at}: aggregations: column '${f.column}' is not in push source '${view.source.name}' (has ${Object.keys(view.source.schema).join(', ')})`);
        }
        // Tiles aggregate numbers; a string column was taken here and refused every push (400s).
        const type = view.source.schema[f.column];
        if (!NUMERIC_TYPES.includes(type as string)) {
          throw new DefinitionError(`${at}: aggregations: column '${f.column}' of push source '${view.source.name}' is ${type}; aggregations take ${NUMERIC_TYPES.join(', ')}`);
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
