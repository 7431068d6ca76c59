/**
 * What applying a repo would change: objects added, changed (field by field) and removed, each
 * change flagged `breaking` when it would break datasets, online reads or models built on the
 * current version. Pure: the registry, `larder plan` and `larder apply` all call it.
 */
import type { CanonicalRepo } from './canonical.js';

export type ObjectKind = 'entity' | 'source' | 'featureView' | 'featureService';
export type Action = 'add' | 'change' | 'remove';

export interface FieldChange {
  /** Dotted path inside the object: `schema.trips`, `joinKeys`, `aggregations.amplitude_mean_1m.tileMs`. */
  path: string;
  action: Action;
  /** Absent when added. */
  from?: unknown;
  /** Absent when removed. */
  to?: unknown;
  breaking: boolean;
}

export interface ObjectDiff {
  kind: ObjectKind;
  name: string;
  action: Action;
  /** Field changes (action 'change' only). */
  fields: FieldChange[];
  breaking: boolean;
}

export interface RepoDiff {
  /** By kind (entities, sources, views, services), then name. */
  objects: ObjectDiff[];
}

const KINDS: { kind: ObjectKind; key: keyof CanonicalRepo }[] = [
  { kind: 'entity', key: 'entities' },
  { kind: 'source', key: 'sources' },
  { kind: 'featureView', key: 'featureViews' },
  { kind: 'featureService', key: 'featureServices' },
];

/** Removing these breaks whoever reads them; an unused entity or source can go quietly. */
const BREAKING_REMOVAL: Record<ObjectKind, boolean> = { entity: false, source: false, featureView: true, featureService: true };

/** Whether a field change of an object of this kind breaks readers of the current version. */
function isBreaking(kind: ObjectKind, field: Omit<FieldChange, 'breaking'>): boolean {
  const [head] = field.path.split('.');
  if (kind === 'featureView') {
    // A feature removed or retyped; added features break nobody.
    if (head === 'schema') return field.action !== 'add';
    return head === 'joinKeys' || head === 'keyTypes';
  }
  if (kind === 'entity') return head === 'joinKeys' || head === 'keyTypes';
  return false;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const isNamedList = (v: unknown): v is { name: string }[] =>
  Array.isArray(v) && v.every((x) => isPlainObject(x) && typeof x.name === 'string');
const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** Field-level differences between two versions of one object, in path order. */
function diffFields(from: unknown, to: unknown, path: string, out: Omit<FieldChange, 'breaking'>[]): void {
  const at = (key: string): string => (path ? `${path}.${key}` : key);
  if (isPlainObject(from) && isPlainObject(to)) {
    for (const key of [...new Set([...Object.keys(from), ...Object.keys(to)])].sort()) {
      if (!(key in to)) out.push({ path: at(key), action: 'remove', from: from[key] });
      else if (!(key in from)) out.push({ path: at(key), action: 'add', to: to[key] });
      else diffFields(from[key], to[key], at(key), out);
    }
    return;
  }
  // Lists of named objects (resolved aggregations) diff by name: a reorder is not a change.
  if (isNamedList(from) && isNamedList(to) && from.length + to.length > 0) {
    diffFields(Object.fromEntries(from.map((x) => [x.name, x])), Object.fromEntries(to.map((x) => [x.name, x])), path, out);
    return;
  }
  if (!same(from, to)) out.push({ path, action: 'change', from, to });
}

/** The changes from `from` (null: nothing applied yet) to `to`. */
export function diffRepos(from: CanonicalRepo | null, to: CanonicalRepo): RepoDiff {
  const objects: ObjectDiff[] = [];
  for (const { kind, key } of KINDS) {
    const before = new Map<string, unknown>((from?.[key] ?? []).map((o) => [o.name, o]));
    const after = new Map<string, unknown>(to[key].map((o) => [o.name, o]));
    for (const name of [...new Set([...before.keys(), ...after.keys()])].sort()) {
      const a = before.get(name);
      const b = after.get(name);
      if (a === undefined) {
        objects.push({ kind, name, action: 'add', fields: [], breaking: false });
      } else if (b === undefined) {
        objects.push({ kind, name, action: 'remove', fields: [], breaking: BREAKING_REMOVAL[kind] });
      } else {
        const raw: Omit<FieldChange, 'breaking'>[] = [];
        diffFields(a, b, '', raw);
        if (raw.length === 0) continue;
        const fields = raw.map((f) => ({ ...f, breaking: isBreaking(kind, f) }));
        objects.push({ kind, name, action: 'change', fields, breaking: fields.some((f) => f.breaking) });
      }
    }
  }
  return { objects };
}

export const hasChanges = (diff: RepoDiff): boolean => diff.objects.length > 0;

/** One line per breaking change: `featureView 'driver_stats': schema.trips: int64 -> float64`. */
export function breakingChanges(diff: RepoDiff): string[] {
  const out: string[] = [];
  for (const o of diff.objects) {
    if (!o.breaking) continue;
    if (o.action === 'remove') out.push(`${o.kind} '${o.name}' removed`);
    for (const f of o.fields) if (f.breaking) out.push(`${o.kind} '${o.name}': ${fieldText(f)}`);
  }
  return out;
}

export interface DiffSummary {
  add: number;
  change: number;
  remove: number;
  changeBreaking: number;
  removeBreaking: number;
}

export function summarize(diff: RepoDiff): DiffSummary {
  const s: DiffSummary = { add: 0, change: 0, remove: 0, changeBreaking: 0, removeBreaking: 0 };
  for (const o of diff.objects) {
    s[o.action]++;
    if (o.breaking && o.action === 'change') s.changeBreaking++;
    if (o.breaking && o.action === 'remove') s.removeBreaking++;
  }
  return s;
}

const MAX_VALUE = 40;

/** A value as one short terminal token: strings bare, lists in brackets, long text elided. */
function show(value: unknown): string {
  const text =
    typeof value === 'string'
      ? value
      : Array.isArray(value) && value.every((v) => typeof v !== 'object')
        ? `[${value.join(', ')}]`
        : JSON.stringify(value);
  return text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE - 3)}...` : text;
}

function fieldText(f: FieldChange): string {
  switch (f.action) {
    case 'add':
      return `${f.path}: ${show(f.to)} added`;
    case 'remove':
      return `${f.path}: ${show(f.from)} removed`;
    case 'change':
      return `${f.path}: ${show(f.from)} -> ${show(f.to)}`;
  }
}

const SIGN: Record<Action, string> = { add: '+', change: '~', remove: '-' };
const BREAKING = '  [breaking]';

/** The diff for the terminal: one line per object, indented field lines, then a summary. */
export function formatDiff(diff: RepoDiff, version?: string): string {
  if (!hasChanges(diff)) return `No changes. Registry is up to date${version ? ` at version ${version}` : ''}.`;
  const lines: string[] = [];
  for (const o of diff.objects) {
    lines.push(`${SIGN[o.action]} ${o.kind} ${o.name}${o.action === 'remove' && o.breaking ? BREAKING : ''}`);
    for (const f of o.fields) {
      const text = f.action === 'change' ? `${f.path}: ${show(f.from)} -> ${show(f.to)}` : `${f.path}: ${show(f.action === 'add' ? f.to : f.from)}`;
      lines.push(`    ${SIGN[f.action]} ${text}${f.breaking ? BREAKING : ''}`);
    }
  }
  const s = summarize(diff);
  const breaking = (n: number): string => (n > 0 ? ` (${n} breaking)` : '');
  lines.push('', `${s.add} to add, ${s.change} to change${breaking(s.changeBreaking)}, ${s.remove} to remove${breaking(s.removeBreaking)}`);
  return lines.join('\n');
}
