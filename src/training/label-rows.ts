/**
 * A model's label rows, (join keys..., event_timestamp, label 0/1), written to a Parquet file
 * that a point-in-time dataset takes as its entity rows: each label sees its features as they
 * were at its own time.
 */
import type { DuckDBConnection } from '@duckdb/node-api';
import { DefinitionError, InputError } from '../core/errors.js';
import { asEpochMs } from '../core/time.js';
import type { Definitions } from '../definitions/types.js';
import { sqlIdent, sqlPath, sqlString } from '../offline/duckdb.js';
import { readSourceRange } from '../offline/sources.js';
import type { LabelSource } from './specs.js';
import { isAbsolute, resolve } from 'node:path';
import { existsSync } from 'node:fs';

/** Far enough to cover any source's rows. */
const ALL_TIME = { start: asEpochMs(-62_135_596_800_000), end: asEpochMs(253_402_300_799_999) };

/**
 * Writes the label rows to `out` (Parquet), ordered by time then keys; returns how many, and of
 * them positive. `override` is a user's label file (join keys, event_timestamp, `label`).
 */
export async function writeLabelRows(
  connection: DuckDBConnection,
  options: { defs: Definitions; source: LabelSource; joinKeys: readonly string[]; out: string; override?: string | undefined },
): Promise<{ rows: number; positives: number }> {
  const { defs, joinKeys } = options;
  const keys = joinKeys.map(sqlIdent).join(', ');
  let select: string;
  let release = async (): Promise<void> => {};
  if (options.override !== undefined) {
    select = `SELECT ${keys}, CAST(event_timestamp AS TIMESTAMPTZ) AS event_timestamp, ${asLabel('label')} AS label FROM ${await scanFile(connection, options.override, '--labels', [...joinKeys, 'event_timestamp', 'label'])}`;
  } else if (options.source.kind === 'file') {
    const path = isAbsolute(options.source.path) ? options.source.path : resolve(defs.repoDir, options.source.path);
    select = `SELECT ${keys}, CAST(event_timestamp AS TIMESTAMPTZ) AS event_timestamp, ${asLabel(options.source.column)} AS label FROM ${await scanFile(connection, path, 'labels file', [...joinKeys, 'event_timestamp', options.source.column])}`;
  } else {
    const { view: viewName, positive, needs } = options.source;
    const view = defs.views.get(viewName);
    if (!view) throw new DefinitionError(`labels: the model reads its labels from view '${viewName}', which the definitions do not have`);
    const source = view.source.type === 'push' ? view.source.batchSource : view.source;
    if (!source) throw new DefinitionError(`labels: view '${viewName}' has no batch source to read labels from`);
    const rows = await readSourceRange(connection, source, { repoDir: defs.repoDir, ...ALL_TIME });
    release = rows.release;
    const names = new Set(rows.columns.map((c) => c.name));
    for (const column of [...joinKeys, ...needs]) {
      if (!names.has(column)) throw new DefinitionError(`labels: source '${source.name}' has no column '${column}' (has ${[...names].join(', ')})`);
    }
    const ts = sqlIdent(source.timestampField);
    select = `SELECT ${keys}, ${ts} AS event_timestamp, CAST((${positive}) AS INTEGER) AS label FROM ${rows.relation}
      WHERE ${ts} IS NOT NULL AND ${needs.map((n) => `${sqlIdent(n)} IS NOT NULL`).join(' AND ') || 'true'}`;
  }
  try {
    const filtered = `SELECT * FROM (${select}) WHERE event_timestamp IS NOT NULL AND label IS NOT NULL AND ${joinKeys.map((k) => `${sqlIdent(k)} IS NOT NULL`).join(' AND ')}`;
    await connection.run(`COPY (${filtered} ORDER BY event_timestamp, ${keys}) TO ${sqlString(options.out)} (FORMAT parquet)`);
  } finally {
    await release();
  }
  const reader = await connection.runAndReadAll(`SELECT count(*)::INTEGER AS n, coalesce(sum(label), 0)::INTEGER AS p FROM read_parquet(${sqlPath(options.out)})`);
  const [row] = reader.getRowObjectsJson() as { n: number; p: number }[];
  return { rows: Number(row!.n), positives: Number(row!.p) };
}

/** A boolean, 0/1 or true/false text column as 0/1 (anything else: null, and the row is dropped). */
const asLabel = (column: string): string => {
  const c = sqlIdent(column);
  return `CASE WHEN lower(CAST(${c} AS VARCHAR)) IN ('1', 'true', 't', 'yes') THEN 1 WHEN lower(CAST(${c} AS VARCHAR)) IN ('0', 'false', 'f', 'no') THEN 0 END`;
};

/** A Parquet or CSV scan of `path`, after checking it exists and has `columns`. */
async function scanFile(connection: DuckDBConnection, path: string, what: string, columns: readonly string[]): Promise<string> {
  if (!existsSync(path)) throw new InputError(`${what}: no file '${path}'`);
  // Exactly the file checked above: a `*`, `?` or `[` in its name is not a glob (sqlPath).
  const scan = /\.csv$/i.test(path) ? `read_csv(${sqlPath(path)}, header = true)` : /\.parquet$/i.test(path) ? `read_parquet(${sqlPath(path)})` : undefined;
  if (!scan) throw new InputError(`${what}: '${path}' is neither .parquet nor .csv`);
  const reader = await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${scan}`);
  const have = new Set((reader.getRowObjectsJson() as { column_name: string }[]).map((r) => r.column_name));
  const missing = columns.filter((c) => !have.has(c));
  if (missing.length) throw new InputError(`${what}: '${path}' has no column ${missing.map((m) => `'${m}'`).join(', ')} (has ${[...have].join(', ')})`);
  return scan;
}
