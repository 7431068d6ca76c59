/**
 * The review queue on both online stores (real Redis under a per-test prefix, real LMDB in a temp
 * folder), the reviewers' labels in the offline store (read back by plain DuckDB too), and the two
 * HTTP handlers on a bare node:http server.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { appendLabels, labelReview, labelsDir, readLabels, ReviewItemNotFoundError, type ReviewLabel } from '../src/inference/labels.js';
import { openReviewQueue, type NewReviewItem, type ReviewQueue } from '../src/inference/review-queue.js';
import { openDuckDB, sqlString } from '../src/offline/duckdb.js';
import { EmbeddedOnlineStore } from '../src/online/embedded/store.js';
import { RedisConnection } from '../src/online/redis/connection.js';
import { RedisOnlineStore } from '../src/online/redis/store.js';
import type { OnlineStore } from '../src/online/store.js';
import { sendError } from '../src/serving/errors.js';
import { reviewLabelRoute, reviewQueueListRoute } from '../src/serving/routes/review-queue.js';
import { deleteRedisPrefix, redisUrl, uniquePrefix } from './support/services.js';

const DAY = 86_400_000;
const T0 = Date.parse('2024-03-01T10:00:00Z');

const item = (n: number, model = 'review_sentiment'): NewReviewItem => ({
  model,
  version: '3',
  requestId: `req-${n}`,
  at: T0 + n,
  entity: n % 2 ? { review_id: `r${n}` } : null,
  inputs: n % 2 ? null : { text: `Essa sandália é maravilhosa ${n}` },
  prediction: n % 2,
  probability: 0.5 + (n % 10) / 100,
});

interface Backend {
  store: OnlineStore;
  cleanup(): Promise<void>;
}

const backends: Record<string, () => Promise<Backend>> = {
  redis: async () => {
    const prefix = uniquePrefix('review');
    const store = new RedisOnlineStore(new RedisConnection(redisUrl()), prefix);
    return {
      store,
      async cleanup() {
        await deleteRedisPrefix(prefix);
        await store.close();
      },
    };
  },
  embedded: async () => {
    const dir = await mkdtemp(join(tmpdir(), 'larder-review-'));
    const store = new EmbeddedOnlineStore(join(dir, 'online'), 'larder:');
    return {
      store,
      async cleanup() {
        await store.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
};

describe.each(Object.keys(backends))('review queue on %s', (kind) => {
  let backend: Backend;
  let queue: ReviewQueue;
  beforeEach(async () => {
    backend = await backends[kind]!();
    queue = openReviewQueue(backend.store);
  });
  afterEach(async () => {
    await backend.cleanup();
  });

  it('enqueues, lists oldest first up to a limit, gets, removes and counts', async () => {
    const ids = await queue.enqueue(Array.from({ length: 25 }, (_, n) => item(n)));
    expect(ids).toHaveLength(25);
    expect(new Set(ids).size).toBe(25);
    await queue.enqueue([item(100, 'weld_failure'), item(101, 'weld_failure')]);
    expect(await queue.size('review_sentiment')).toBe(25);
    expect(await queue.size('weld_failure')).toBe(2);
    expect(await queue.size('nothing_queued')).toBe(0);

    const first = await queue.pending('review_sentiment', 10);
    expect(first.map((i) => i.id)).toEqual(ids.slice(0, 10));
    expect(first[0]).toEqual({ id: ids[0], ...item(0) });
    expect(first[1]).toEqual({ id: ids[1], ...item(1) });
    expect((await queue.pending('review_sentiment', 1000)).map((i) => i.id)).toEqual(ids);
    expect(await queue.pending('nothing_queued', 10)).toEqual([]);

    expect(await queue.get('review_sentiment', ids[3]!)).toEqual({ id: ids[3], ...item(3) });
    // Another model's queue does not hold it; an id of no shape of ours is simply not there.
    expect(await queue.get('weld_failure', ids[3]!)).toBeNull();
    expect(await queue.get('review_sentiment', 'not-an-id')).toBeNull();
    expect(await queue.remove('review_sentiment', 'not-an-id')).toBe(false);

    expect(await queue.remove('review_sentiment', ids[0]!)).toBe(true);
    expect(await queue.remove('review_sentiment', ids[0]!)).toBe(false);
    expect(await queue.get('review_sentiment', ids[0]!)).toBeNull();
    expect(await queue.size('review_sentiment')).toBe(24);
    expect((await queue.pending('review_sentiment', 2)).map((i) => i.id)).toEqual(ids.slice(1, 3));
    expect(await queue.enqueue([])).toEqual([]);
  });

  it('gives unique ids, in order per batch, under concurrent enqueues', async () => {
    const batches = await Promise.all(Array.from({ length: 20 }, (_, b) => queue.enqueue(Array.from({ length: 10 }, (_, n) => item(b * 10 + n)))));
    const all = batches.flat();
    expect(new Set(all).size).toBe(200);
    const listed = (await queue.pending('review_sentiment', 500)).map((i) => i.id);
    expect(new Set(listed)).toEqual(new Set(all));
    const position = new Map(listed.map((id, i) => [id, i]));
    for (const batch of batches) {
      const at = batch.map((id) => position.get(id)!);
      expect(at).toEqual([...at].sort((a, b) => a - b));
    }
  });

  it('never gives an id again, even after the newest item was removed', async () => {
    const [a] = await queue.enqueue([item(1)]);
    expect(await queue.remove('review_sentiment', a!)).toBe(true);
    const [b] = await queue.enqueue([item(2)]);
    expect(b).not.toBe(a);
    expect(await queue.get('review_sentiment', a!)).toBeNull();
    expect((await queue.get('review_sentiment', b!))?.requestId).toBe('req-2');
  });

  it('keeps at most maxLength items a model, dropping the oldest', async () => {
    const bounded = openReviewQueue(backend.store, { maxLength: 50 });
    const ids: string[] = [];
    for (let b = 0; b < 8; b++) ids.push(...(await bounded.enqueue(Array.from({ length: 50 }, (_, n) => item(b * 50 + n)))));
    const size = await bounded.size('review_sentiment');
    const kept = (await bounded.pending('review_sentiment', 1000)).map((i) => i.id);
    expect(kept).toHaveLength(size);
    // What is kept is the newest, in order.
    expect(kept).toEqual(ids.slice(ids.length - size));
    if (kind === 'embedded') expect(size).toBe(50);
    // Redis trims `MAXLEN ~`: whole stream nodes only (at most 100 entries each by default).
    else expect(size).toBeGreaterThanOrEqual(50), expect(size).toBeLessThanOrEqual(150);

    if (kind === 'embedded') {
      // One batch larger than the bound keeps its newest.
      const big = await bounded.enqueue(Array.from({ length: 120 }, (_, n) => item(1000 + n, 'weld_failure')));
      expect((await bounded.pending('weld_failure', 1000)).map((i) => i.id)).toEqual(big.slice(70));
      expect(await bounded.size('weld_failure')).toBe(50);
    }
  });

  it('rejects bad models, limits and items, writing nothing', async () => {
    await expect(queue.pending('bad-name', 10)).rejects.toThrow(/model: 'bad-name' is not a model name/);
    await expect(queue.pending('review_sentiment', 0)).rejects.toThrow(/limit: expected a positive integer, got 0/);
    await expect(queue.size('a}b')).rejects.toBeInstanceOf(InputError);
    await expect(queue.enqueue([item(1), { ...item(2), probability: Number.NaN }])).rejects.toThrow(/items\[1\]\.probability: expected a finite number/);
    await expect(queue.enqueue([{ ...item(1), model: 'no good' }])).rejects.toThrow(/items\[0\]\.model/);
    expect(await queue.size('review_sentiment')).toBe(0);
  });

  it('labelReview writes the label, then removes the item; a second labelling is not found', async () => {
    const offline = await mkdtemp(join(tmpdir(), 'larder-labels-'));
    try {
      const [a, b] = await queue.enqueue([item(1), item(2)]);
      for (const bad of [2, 'yes', null, undefined, 0.5, [1]]) {
        await expect(labelReview(queue, offline, 'review_sentiment', a!, bad, 'ana')).rejects.toThrow(/^label: expected 0 or 1/);
      }
      await expect(labelReview(queue, offline, 'review_sentiment', a!, 1, 'x'.repeat(201))).rejects.toThrow(/^reviewer: expected 1 to 200 characters, got 201/);
      await expect(labelReview(queue, offline, 'review_sentiment', a!, 1, 7)).rejects.toThrow(/^reviewer: expected a string/);
      expect(await readLabels(offline, 'review_sentiment')).toEqual([]);
      expect(await queue.size('review_sentiment')).toBe(2);

      const before = Date.now();
      const labelled = await labelReview(queue, offline, 'review_sentiment', a!, true, 'ana');
      expect(labelled).toMatchObject({ reviewId: a, model: 'review_sentiment', requestId: 'req-1', at: T0 + 1, label: 1, reviewer: 'ana', entity: { review_id: 'r1' }, inputs: null });
      expect(labelled.labelledAt).toBeGreaterThanOrEqual(before);
      expect(await queue.get('review_sentiment', a!)).toBeNull();
      expect(await readLabels(offline, 'review_sentiment')).toEqual([labelled]);

      const again = labelReview(queue, offline, 'review_sentiment', a!, 0);
      await expect(again).rejects.toBeInstanceOf(ReviewItemNotFoundError);
      await expect(labelReview(queue, offline, 'review_sentiment', a!, 0)).rejects.toThrow(`no review item ${a} in the queue of review_sentiment`);
      expect(await readLabels(offline, 'review_sentiment')).toEqual([labelled]);

      const other = await labelReview(queue, offline, 'review_sentiment', b!, 0);
      expect(other).toMatchObject({ reviewId: b, label: 0, reviewer: null, entity: null, inputs: { text: 'Essa sandália é maravilhosa 2' } });
      expect(await queue.size('review_sentiment')).toBe(0);
      expect((await readLabels(offline, 'review_sentiment')).map((l) => l.reviewId).sort()).toEqual([a, b].sort());
    } finally {
      await rm(offline, { recursive: true, force: true });
    }
  });
});

it('refuses an online store it has no queue for, naming it', () => {
  // Not a store at all: only its url is read before the refusal.
  expect(() => openReviewQueue({ url: 'memory:test' } as unknown as OnlineStore)).toThrow(/online store memory:test is neither the Redis nor the embedded store/);
});

const label = (reviewId: string, labelledAt: number, value: 0 | 1, extra: Partial<ReviewLabel> = {}): ReviewLabel => ({
  reviewId,
  model: 'review_sentiment',
  requestId: `req-${reviewId}`,
  at: T0,
  labelledAt,
  label: value,
  reviewer: 'ana',
  entity: { review_id: reviewId },
  inputs: { text: `texto ${reviewId}`, n: 3 },
  ...extra,
});

/** Every file under a folder, relative to it. */
async function filesUnder(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name)));
}

describe('labels in the offline store', () => {
  let offline: string;
  beforeEach(async () => {
    offline = await mkdtemp(join(tmpdir(), 'larder-labels-'));
  });
  afterEach(async () => {
    await rm(offline, { recursive: true, force: true });
  });

  it('round-trips, the latest labelled_at per review winning', async () => {
    expect(await readLabels(offline, 'review_sentiment')).toEqual([]);
    const a1 = label('a', T0 + 1000, 1);
    const b = label('b', T0 + 2000, 0, { reviewer: null, entity: null });
    await appendLabels(offline, 'review_sentiment', [a1, b]);
    // A relabel of `a` a day later (another partition), and a stale one that must not win.
    const a2 = label('a', T0 + DAY, 0, { reviewer: 'rui' });
    await appendLabels(offline, 'review_sentiment', [a2, label('c', T0 + 500, 1)]);
    await appendLabels(offline, 'review_sentiment', [label('a', T0 + 10, 1)]);
    expect(await readLabels(offline, 'review_sentiment')).toEqual([label('c', T0 + 500, 1), b, a2]);
    expect(await readLabels(offline, 'weld_failure')).toEqual([]);
  });

  it('writes whole files, one per labelling date, that plain DuckDB reads', async () => {
    await appendLabels(offline, 'review_sentiment', [label('a', T0, 1), label('b', T0 + DAY, 0)]);
    await appendLabels(offline, 'review_sentiment', [label('c', T0 + 5, 1)]);
    const files = await filesUnder(labelsDir(offline, 'review_sentiment'));
    expect(files).toHaveLength(3);
    for (const f of files) expect(f).toMatch(/^date=2024-03-0[12]\/\d{8}T\d{9}Z-[0-9a-f-]{36}\.parquet$/);
    expect(files.filter((f) => f.startsWith('date=2024-03-01/'))).toHaveLength(2);

    const db = await openDuckDB();
    try {
      const glob = sqlString(join(labelsDir(offline, 'review_sentiment'), '*', '*.parquet'));
      const described = (await db.connection.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${glob}, hive_partitioning = false)`)).getRowObjectsJS();
      expect(described.map((r) => [r.column_name, r.column_type])).toEqual([
        ['review_id', 'VARCHAR'],
        ['model', 'VARCHAR'],
        ['request_id', 'VARCHAR'],
        ['event_timestamp', 'TIMESTAMP WITH TIME ZONE'],
        ['labelled_at', 'TIMESTAMP WITH TIME ZONE'],
        ['label', 'INTEGER'],
        ['reviewer', 'VARCHAR'],
        ['entity', 'VARCHAR'],
        ['inputs', 'VARCHAR'],
      ]);
      const rows = (
        await db.connection.runAndReadAll(
          `SELECT review_id, strftime(event_timestamp, '%Y-%m-%dT%H:%M:%S.%g') AS at, label, json_extract_string(inputs, '$.text') AS text, CAST(date AS VARCHAR) AS date FROM read_parquet(${glob}) ORDER BY review_id`,
        )
      ).getRowObjectsJS();
      expect(rows).toEqual([
        { review_id: 'a', at: '2024-03-01T10:00:00.000', label: 1, text: 'texto a', date: '2024-03-01' },
        { review_id: 'b', at: '2024-03-01T10:00:00.000', label: 0, text: 'texto b', date: '2024-03-02' },
        { review_id: 'c', at: '2024-03-01T10:00:00.000', label: 1, text: 'texto c', date: '2024-03-01' },
      ]);
    } finally {
      db.close();
    }
  });

  it('rejects bad labels, writing nothing', async () => {
    await expect(appendLabels(offline, 'review_sentiment', [label('a', T0, 1), label('b', T0, 2 as 1)])).rejects.toThrow(/labels\[1\]\.label: expected 0 or 1, got 2/);
    await expect(appendLabels(offline, 'review_sentiment', [label('a', Number.NaN, 1)])).rejects.toThrow(/labels\[0\]\.labelledAt/);
    await expect(appendLabels(offline, 'review_sentiment', [label('a', T0, 1, { model: 'weld_failure' })])).rejects.toThrow(/labels\[0\]\.model/);
    await expect(appendLabels(offline, '../escape', [label('a', T0, 1)])).rejects.toThrow(/model: '..\/escape' is not a model name/);
    expect(await readdir(offline)).toEqual([]);
  });
});

describe('review queue over HTTP', () => {
  let backend: Backend;
  let queue: ReviewQueue;
  let offline: string;
  let server: Server;
  let base: string;
  const logged: string[] = [];

  beforeAll(async () => {
    backend = await backends.embedded!();
    queue = openReviewQueue(backend.store);
    offline = await mkdtemp(join(tmpdir(), 'larder-labels-'));
    const list = reviewQueueListRoute({ queue, knownModel: (m) => m !== 'unknown_model', maxLimit: 50 });
    const labelRoute = reviewLabelRoute({ queue, offlineDir: offline, maxBodyBytes: 4096 });
    server = createServer((req, res) => {
      const route = req.method === 'POST' ? labelRoute : list;
      route(req, res).catch((err: unknown) => sendError(res, err, (line) => logged.push(line), `${req.method} ${req.url}`));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await backend.cleanup();
    await rm(offline, { recursive: true, force: true });
  });

  const get = async (path: string) => {
    const res = await fetch(base + path);
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };
  const post = async (path: string, body: string) => {
    const res = await fetch(base + path, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };

  it('lists a model queue and takes labels, answering 200, 400 and 404 with JSON', async () => {
    const ids = await queue.enqueue([item(1), item(2), item(3)]);

    const listed = await get('/review-queue/review_sentiment?limit=2');
    expect(listed.status).toBe(200);
    expect(listed.body).toEqual({ model: 'review_sentiment', pending: 3, items: [{ id: ids[0], ...item(1) }, { id: ids[1], ...item(2) }] });
    expect((await get('/review-queue/review_sentiment')).body.items).toHaveLength(3);
    expect((await get('/review-queue/weld_failure')).body).toEqual({ model: 'weld_failure', pending: 0, items: [] });

    for (const limit of ['0', '51', 'abc', '1.5', '-1']) {
      const bad = await get(`/review-queue/review_sentiment?limit=${limit}`);
      expect(bad.status).toBe(400);
      expect(bad.body.error).toMatch(/^limit: expected an integer from 1 to 50/);
      expect(bad.body.detail.field).toBe('limit');
    }
    const badModel = await get('/review-queue/bad-name');
    expect(badModel.status).toBe(400);
    expect(badModel.body.detail.field).toBe('model');
    const unknown = await get('/review-queue/unknown_model');
    expect(unknown.status).toBe(404);
    expect(unknown.body.detail.field).toBe('model');

    const labelled = await post(`/review-queue/review_sentiment/${ids[0]}/label`, JSON.stringify({ label: 1, reviewer: 'ana' }));
    expect(labelled.status).toBe(200);
    expect(labelled.body.label).toMatchObject({ reviewId: ids[0], model: 'review_sentiment', requestId: 'req-1', label: 1, reviewer: 'ana' });
    expect((await readLabels(offline, 'review_sentiment')).map((l) => l.reviewId)).toEqual([ids[0]]);

    const twice = await post(`/review-queue/review_sentiment/${ids[0]}/label`, JSON.stringify({ label: 0 }));
    expect(twice.status).toBe(404);
    expect(twice.body.error).toBe(`no review item ${ids[0]} in the queue of review_sentiment`);
    expect(twice.body.detail.field).toBe('id');
    expect((await post('/review-queue/review_sentiment/000000000000001-000000/label', '{"label": 1}')).status).toBe(404);

    const badLabel = await post(`/review-queue/review_sentiment/${ids[1]}/label`, JSON.stringify({ label: 'positive' }));
    expect(badLabel.status).toBe(400);
    expect(badLabel.body).toEqual({ error: 'label: expected 0 or 1 (or false/true), got "positive"', detail: { field: 'label' } });
    const badReviewer = await post(`/review-queue/review_sentiment/${ids[1]}/label`, JSON.stringify({ label: 0, reviewer: 'x'.repeat(201) }));
    expect(badReviewer.status).toBe(400);
    expect(badReviewer.body.detail.field).toBe('reviewer');
    const misspelt = await post(`/review-queue/review_sentiment/${ids[1]}/label`, JSON.stringify({ lable: 1 }));
    expect(misspelt.status).toBe(400);
    expect(misspelt.body.detail.field).toBe('body.lable');
    expect((await post(`/review-queue/review_sentiment/${ids[1]}/label`, 'not json')).status).toBe(400);
    expect((await post(`/review-queue/review_sentiment/${ids[1]}/label`, '[1]')).status).toBe(400);
    expect((await post(`/review-queue/review_sentiment/${ids[1]}/label`, JSON.stringify({ label: 1, reviewer: 'y'.repeat(5000) }))).status).toBe(413);
    expect((await post(`/review-queue/bad-name/${ids[1]}/label`, '{"label": 1}')).status).toBe(400);
    // None of those wrote a label or took the item off the queue.
    expect((await readLabels(offline, 'review_sentiment')).map((l) => l.reviewId)).toEqual([ids[0]]);
    expect(await queue.size('review_sentiment')).toBe(2);

    expect((await post(`/review-queue/review_sentiment/${ids[1]}/label`, JSON.stringify({ label: false }))).body.label.label).toBe(0);
    expect((await get('/review-queue/review_sentiment')).body.pending).toBe(1);
    expect(logged).toEqual([]);
  });
});
