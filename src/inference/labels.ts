/**
 * Reviewers' labels, kept as training data in the offline store (CONTRACT s.9):
 * `<offline>/_labels/<model>/date=YYYY-MM-DD/<time>-<uuid>.parquet`, partitioned by the UTC date
 * the label was given. Every append is a new file, written through DuckDB under a hidden temp name,
 * flushed to disk and renamed into place: it appears whole or not at all (an append spanning
 * several dates writes one file per date, each whole). Any Parquet reader reads them as they are.
 *
 * Columns: review_id, model, request_id, event_timestamp (TIMESTAMPTZ, the prediction's time, so
 * a point-in-time join sees the features as they were then), labelled_at (TIMESTAMPTZ), label
 * (INTEGER 0/1), reviewer, entity and inputs (VARCHAR holding JSON, null when absent).
 *
 * A review id may be labelled more than once (a crash between writing the label and removing the
 * item from the queue leaves it to be labelled again); readers take the latest labelled_at.
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../core/errors.js';
import { syncDir, syncFile } from '../core/fsync.js';
import { isIdentifier } from '../core/refs.js';
import { utcDate } from '../core/time.js';
import { openDuckDB, sqlList, sqlString } from '../offline/duckdb.js';
import { listPartitions } from '../offline/layout.js';
import type { ReviewQueue } from './review-queue.js';

export interface ReviewLabel {
  reviewId: string;
  model: string;
  requestId: string;
  /** Epoch ms of the prediction. */
  at: number;
  /** Epoch ms of the label. */
  labelledAt: number;
  label: 0 | 1;
  reviewer: string | null;
  entity: Record<string, string | number> | null;
  inputs: Record<string, unknown> | null;
}

/** A review item that is not (or no longer) in its queue: a 404 to the HTTP API. */
export class ReviewItemNotFoundError extends InputError {
  override name = 'ReviewItemNotFoundError';
}

export const MAX_REVIEWER_LENGTH = 200;

/** `_labels/<model>`, relative to the offline folder: `_` keeps it out of views' names and Hive scans. */
const labelsPath = (model: string): string => join('_labels', model);
export const labelsDir = (offlineDir: string, model: string): string => join(offlineDir, labelsPath(model));

const STAGING_COLUMNS = `review_id VARCHAR, model VARCHAR, request_id VARCHAR, event_ms DOUBLE, labelled_ms DOUBLE, label INTEGER, reviewer VARCHAR, entity VARCHAR, inputs VARCHAR, date VARCHAR`;
const toTimestamp = (column: string): string => `make_timestamptz(CAST(round(${column} * 1000) AS BIGINT))`;
const FILE_COLUMNS = `review_id, model, request_id, ${toTimestamp('event_ms')} AS event_timestamp, ${toTimestamp('labelled_ms')} AS labelled_at, label, reviewer, entity, inputs`;

function checkModel(model: string): void {
  if (typeof model !== 'string' || !isIdentifier(model)) throw new InputError(`model: '${String(model)}' is not a model name (letters, digits and _)`, { field: 'model' });
}

/** Checks what JSON or Parquet could not keep as given; the field names the label at fault. */
function checkLabel(l: ReviewLabel, model: string, i: number): void {
  const at = `labels[${i}]`;
  if (l.model !== model) throw new InputError(`${at}.model: '${l.model}' is not '${model}', the model being appended to`);
  if (l.label !== 0 && l.label !== 1) throw new InputError(`${at}.label: expected 0 or 1, got ${String(l.label)}`);
  for (const field of ['at', 'labelledAt'] as const) {
    if (typeof l[field] !== 'number' || !Number.isFinite(l[field])) throw new InputError(`${at}.${field}: expected epoch milliseconds, got ${String(l[field])}`);
  }
  for (const field of ['reviewId', 'requestId'] as const) {
    if (typeof l[field] !== 'string') throw new InputError(`${at}.${field}: expected a string, got ${typeof l[field]}`);
  }
}

/** Appends labels of one model, one new file per labelling date. */
export async function appendLabels(offlineDir: string, model: string, labels: readonly ReviewLabel[]): Promise<void> {
  checkModel(model);
  labels.forEach((l, i) => checkLabel(l, model, i));
  if (labels.length === 0) return;
  const db = await openDuckDB({ memoryLimit: '128MB', threads: 1 });
  const written: string[] = [];
  try {
    await db.connection.run(`CREATE TEMP TABLE labels (${STAGING_COLUMNS})`);
    const appender = await db.connection.createAppender('labels');
    try {
      for (const l of labels) {
        appender.appendVarchar(l.reviewId);
        appender.appendVarchar(model);
        appender.appendVarchar(l.requestId);
        appender.appendDouble(l.at);
        appender.appendDouble(l.labelledAt);
        appender.appendInteger(l.label);
        appendText(appender, l.reviewer ?? null);
        appendText(appender, l.entity === null || l.entity === undefined ? null : JSON.stringify(l.entity));
        appendText(appender, l.inputs === null || l.inputs === undefined ? null : JSON.stringify(l.inputs));
        appender.appendVarchar(utcDate(l.labelledAt));
        appender.endRow();
      }
      appender.flushSync();
    } finally {
      appender.closeSync();
    }
    const stamp = new Date().toISOString().replace(/[-:.]/g, '');
    for (const date of [...new Set(labels.map((l) => utcDate(l.labelledAt)))].sort()) {
      const dir = join(labelsDir(offlineDir, model), `date=${date}`);
      await mkdir(dir, { recursive: true });
      const name = `${stamp}-${randomUUID()}.parquet`;
      const temp = join(dir, `.${name}.tmp`);
      written.push(temp);
      await db.connection.run(
        `COPY (SELECT ${FILE_COLUMNS} FROM labels WHERE date = ${sqlString(date)} ORDER BY labelled_at, review_id) TO ${sqlString(temp)} (FORMAT parquet, COMPRESSION zstd)`,
      );
      await syncFile(temp);
      await rename(temp, join(dir, name));
      written.pop();
      await syncDir(dir);
    }
  } finally {
    // A temp file left by a failed COPY or rename: nothing of it shows.
    await Promise.all(written.map((f) => rm(f, { force: true })));
    db.close();
  }
}

function appendText(appender: { appendVarchar(v: string): void; appendNull(): void }, value: string | null): void {
  if (value === null) appender.appendNull();
  else appender.appendVarchar(value);
}

/** Every label of a model, the latest labelled_at per review id winning, oldest label first; [] when none. */
export async function readLabels(offlineDir: string, model: string): Promise<ReviewLabel[]> {
  checkModel(model);
  const files = (await listPartitions(offlineDir, labelsPath(model))).flatMap((p) => p.files);
  if (files.length === 0) return [];
  const db = await openDuckDB({ memoryLimit: '256MB', threads: 1 });
  try {
    // Equal labelled_at: the later file (names start with their write time), then the later row.
    const reader = await db.connection.runAndReadAll(
      `SELECT review_id, model, request_id, CAST(epoch_ms(event_timestamp) AS DOUBLE) AS event_ms, CAST(epoch_ms(labelled_at) AS DOUBLE) AS labelled_ms, label, reviewer, entity, inputs
       FROM read_parquet(${sqlList(files)}, filename = true, file_row_number = true, hive_partitioning = false)
       QUALIFY row_number() OVER (PARTITION BY review_id ORDER BY labelled_at DESC, parse_filename(filename) DESC, file_row_number DESC) = 1
       ORDER BY labelled_at, review_id`,
    );
    return reader.getRowObjectsJS().map((r) => ({
      reviewId: String(r.review_id),
      model: String(r.model),
      requestId: String(r.request_id),
      at: Number(r.event_ms),
      labelledAt: Number(r.labelled_ms),
      label: Number(r.label) === 1 ? 1 : 0,
      reviewer: r.reviewer === null ? null : String(r.reviewer),
      entity: r.entity === null ? null : (JSON.parse(String(r.entity)) as ReviewLabel['entity']),
      inputs: r.inputs === null ? null : (JSON.parse(String(r.inputs)) as ReviewLabel['inputs']),
    }));
  } finally {
    db.close();
  }
}

/** 0 or 1 from a label as posted: 0, 1, false or true. */
export function parseLabel(value: unknown): 0 | 1 {
  if (value === 0 || value === false) return 0;
  if (value === 1 || value === true) return 1;
  const shown = value === undefined ? 'nothing' : JSON.stringify(value);
  throw new InputError(`label: expected 0 or 1 (or false/true), got ${shown}`, { field: 'label' });
}

/** A reviewer's name as posted: absent or null for none, else a string of 1 to 200 characters. */
export function parseReviewer(value: unknown): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw new InputError(`reviewer: expected a string, got ${Array.isArray(value) ? 'an array' : typeof value}`, { field: 'reviewer' });
  if (value.length === 0 || value.length > MAX_REVIEWER_LENGTH) {
    throw new InputError(`reviewer: expected 1 to ${MAX_REVIEWER_LENGTH} characters, got ${value.length}`, { field: 'reviewer' });
  }
  return value;
}

/**
 * Labels a queued item: checks the label and reviewer, writes the label durably, then removes
 * the item. In that order so a crash in between loses no label: the item stays queued and may
 * be labelled again, and readLabels' latest-wins makes the repeat harmless. An item already
 * labelled (so gone) or never queued is a ReviewItemNotFoundError.
 */
export async function labelReview(queue: ReviewQueue, offlineDir: string, model: string, id: string, label: unknown, reviewer?: unknown): Promise<ReviewLabel> {
  checkModel(model);
  const value = parseLabel(label);
  const by = parseReviewer(reviewer);
  const item = await queue.get(model, id);
  if (!item) throw new ReviewItemNotFoundError(`no review item ${id} in the queue of ${model}`, { field: 'id', model, id });
  const labelled: ReviewLabel = {
    reviewId: item.id,
    model,
    requestId: item.requestId,
    at: item.at,
    labelledAt: Date.now(),
    label: value,
    reviewer: by,
    entity: item.entity,
    inputs: item.inputs,
  };
  await appendLabels(offlineDir, model, [labelled]);
  await queue.remove(model, id);
  return labelled;
}
