/**
 * The loop of both use cases on the example definitions, as a user runs it: sample data, apply,
 * backfill and `larder train` from the CLI, then `larder serve` (startServer, Redis online under a
 * prefix of its own) answering `POST /predict/{model}`:
 *   - the models reach a stated quality on the later, held-out period;
 *   - /predict equals the same model scoring the point-in-time dataset of the same entities at
 *     the same instant (reviews materialized; welds pushed just before);
 *   - raw text through /predict gives the features backfill computed from the same text;
 *   - every prediction lands in the serving log;
 *   - a low-confidence prediction is queued, a reviewer's label comes back as a training label,
 *     and the server serves the retrained version without a restart.
 */
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LarderClient } from 'larder/sdk';
import { loadConfig } from '../src/config.js';
import { asEpochMs } from '../src/core/time.js';
import { loadDefinitions } from '../src/definitions/loader.js';
import type { Definitions } from '../src/definitions/types.js';
import { readLabels } from '../src/inference/labels.js';
import type { PredictAnswer } from '../src/inference/predict.js';
import { materialize } from '../src/materialize/materialize.js';
import type { ModelVersionMeta } from '../src/models/artifact.js';
import { scoreRow } from '../src/models/score.js';
import { writeDataset } from '../src/offline/dataset.js';
import { openDuckDB, sqlString } from '../src/offline/duckdb.js';
import { openOnlineStore } from '../src/online/open.js';
import type { OnlineStore } from '../src/online/store.js';
import { FileRegistry } from '../src/registry/file.js';
import { startServer, type RunningServer } from '../src/serving/server.js';
import { runLarder } from './support/cli.js';
import { deleteRedisPrefix, redisUrl, uniquePrefix } from './support/services.js';

const EXAMPLES = fileURLToPath(new URL('../feature-definitions', import.meta.url));

let dir: string;
let repo: string;
let env: Record<string, string>;
let defs: Definitions;
let prefix: string;
let store: OnlineStore;
let registry: FileRegistry;
let running: RunningServer;
const served: PredictAnswer[] = [];

const larder = (...args: string[]) => runLarder(args, { cwd: dir, env });

async function ok(...args: string[]): Promise<string> {
  const r = await larder(...args);
  if (r.code !== 0) throw new Error(`larder ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

async function postPredict(model: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${running.url}/predict/${model}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = await res.json();
  if (res.status === 200) served.push(json as PredictAnswer);
  return { status: res.status, json };
}

/** The point-in-time dataset of a model's service for entity rows, as DuckDB reads it back (what training reads). */
async function datasetRows(service: string, entities: Record<string, unknown[]>): Promise<Record<string, unknown>[]> {
  const out = join(dir, `dataset-${Math.random().toString(36).slice(2)}.parquet`);
  await writeDataset({ defs, offlineDir: join(dir, 'home', 'offline'), entities, service, out });
  const db = await openDuckDB();
  try {
    return (await db.connection.runAndReadAll(`SELECT * FROM read_parquet(${sqlString(out)})`)).getRowObjectsJson() as Record<string, unknown>[];
  } finally {
    db.close();
  }
}

async function latest(model: string): Promise<ModelVersionMeta> {
  const meta = await registry.latestModel(model);
  if (!meta) throw new Error(`no ${model}`);
  return meta;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'larder-predict-'));
  repo = join(dir, 'repo');
  await cp(EXAMPLES, repo, { recursive: true, filter: (src) => !/[\\/](\.larder|data)$/.test(src) });
  env = { LARDER_REPO: repo, LARDER_HOME: join(dir, 'home') };
  await ok('sample-data', '--reviews', '4000', '--readings', '60000');
  await ok('apply');
  await ok('backfill', '--start', '2023-12-31T00:00:00Z', '--end', '2024-03-05T00:00:00Z');
  await ok('train', 'review_sentiment');
  await ok('train', 'weld_failure');
  defs = await loadDefinitions(repo);
  prefix = uniquePrefix('predict');
  store = await openOnlineStore(redisUrl(), { prefix });
  registry = new FileRegistry(join(dir, 'home', 'registry.json'));
  await materialize({ defs, offlineDir: join(dir, 'home', 'offline'), store, registry, end: asEpochMs(Date.now()), views: ['review_text'] });
  running = await startServer({
    config: loadConfig({ ...env, LARDER_ONLINE: redisUrl() }),
    port: 0,
    store,
    registry,
    reloadIntervalMs: 200,
    pushFlushMs: 50,
    servingLogFlushMs: 100,
    log: () => {},
  });
}, 180_000);

afterAll(async () => {
  await running?.close();
  await store?.close();
  await registry?.close();
  if (prefix) await deleteRedisPrefix(prefix);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('larder train', () => {
  it('reaches the stated quality on the later period, and records what it was trained on', async () => {
    const reviews = await latest('review_sentiment');
    expect(reviews.version).toBe('1');
    expect(reviews.primary).toBe('naive_bayes');
    expect(reviews.metrics.naive_bayes!.accuracy).toBeGreaterThan(0.8);
    expect(reviews.metrics.naive_bayes!.auc).toBeGreaterThan(0.88);
    expect(reviews.metrics.logistic_regression!.accuracy).toBeGreaterThan(0.8);
    expect(reviews.split.trainRows + reviews.split.testRows).toBe(4000);
    expect(Date.parse(reviews.split.trainUntil)).toBeLessThan(Date.parse('2024-03-01T00:00:00Z'));
    const welds = await latest('weld_failure');
    expect(welds.metrics.logistic_regression!.auc).toBeGreaterThan(0.8);

    const applied = (await registry.current())!;
    for (const meta of [reviews, welds]) {
      expect(meta.definitionsHash).toBe(applied.hash);
      expect(meta.datasetFingerprint).toMatch(/^[0-9a-f]{64}$/);
      expect((await readFile(meta.datasetPath)).length).toBeGreaterThan(0);
    }
    expect(welds.features.map((f) => f.ref)).toContain('weld_sensor_stats:amplitude_mean_1h');
  });

  it('names what is wrong in one line', async () => {
    const unknown = await larder('train', 'churn');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^larder train: unknown model 'churn' \(models: review_sentiment, weld_failure\)\n$/);
    const badLabels = await larder('train', 'weld_failure', '--labels', join(dir, 'nope.parquet'));
    expect(badLabels.code).toBe(1);
    expect(badLabels.stderr).toMatch(/--labels: no file '.*nope\.parquet'/);
    expect(await registry.modelVersions('weld_failure')).toHaveLength(1);
  });
});

describe('POST /predict/{model}', () => {
  it('predicts reviews as the model scores the point-in-time dataset at the same instant', async () => {
    const ids = Array.from({ length: 40 }, (_, i) => `r${String(i * 97 + 1).padStart(7, '0')}`);
    const { status, json } = await postPredict('review_sentiment', { entities: { review_id: ids } });
    expect(status).toBe(200);
    expect(json.model).toBe('review_sentiment');
    expect(json.version).toBe('1');
    expect(json.predictions).toHaveLength(ids.length);

    const rows = await datasetRows('review_sentiment', { review_id: ids, event_timestamp: ids.map(() => new Date().toISOString()) });
    const artifact = await registry.loadModel('review_sentiment', '1');
    rows.forEach((row, i) => {
      const p = json.predictions[i];
      const offline = scoreRow(artifact.estimators.naive_bayes!, row);
      expect(p.probability).toBe(offline.probability);
      expect(p.prediction).toBe(offline.probability >= 0.5 ? 1 : 0);
      expect(p.features.word_counts.indices).toEqual((row.word_counts as { indices: number[] }).indices);
      expect(p.features.text_length).toBe(row.text_length);
    });
  });

  it('computes the features of raw text with the code backfill ran', async () => {
    const db = await openDuckDB();
    let sample: { review_id: string; text: string }[];
    try {
      sample = (await db.connection.runAndReadAll(`SELECT review_id, text FROM read_parquet(${sqlString(join(repo, 'data', 'reviews.parquet'))}) ORDER BY review_id LIMIT 5`)).getRowObjectsJson() as typeof sample;
    } finally {
      db.close();
    }
    const byText = await postPredict('review_sentiment', { inputs: { text: sample.map((s) => s.text) } });
    const byId = await postPredict('review_sentiment', { entities: { review_id: sample.map((s) => s.review_id) } });
    expect(byText.status).toBe(200);
    expect(byText.json.predictions.map((p: any) => [p.features, p.probability])).toEqual(byId.json.predictions.map((p: any) => [p.features, p.probability]));
  });

  it('predicts welds from the windows a push just updated, as the dataset computes them', async () => {
    const welds = ['W0001', 'W0002', 'W0003'];
    const now = Date.now();
    const readings = welds.flatMap((weld, w) => Array.from({ length: 20 }, (_, s) => ({ weld, at: now - 25_000 + s * 1000 + w, x: (w * 7 + s * 3) % 11 })));
    const pushed = await fetch(`${running.url}/push`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        push_source_name: 'weld_readings',
        to: 'online_and_offline',
        df: {
          weld_id: readings.map((r) => r.weld),
          event_timestamp: readings.map((r) => r.at),
          amplitude: readings.map((r) => 100 + r.x),
          temperature: readings.map((r) => 30 + r.x / 10),
          pressure: readings.map((r) => 70 - r.x / 20),
        },
      }),
    });
    expect(pushed.status).toBe(200);
    const { status, json } = await postPredict('weld_failure', { entities: { weld_id: welds } });
    expect(status).toBe(200);
    // Every window (1 min and up) covers all the readings at any instant of the next half minute.
    const rows = await datasetRows('weld_failure', { weld_id: welds, event_timestamp: welds.map(() => new Date().toISOString()) });
    const artifact = await registry.loadModel('weld_failure', '1');
    rows.forEach((row, i) => {
      const p = json.predictions[i];
      expect(p.features.amplitude_count_1m).toBe(20);
      expect(Number(row.amplitude_count_1m)).toBe(20);
      const offline = scoreRow(artifact.estimators.logistic_regression!, row).probability;
      expect(Math.abs(p.probability - offline)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(offline)));
      expect(p.prediction).toBe(offline >= 0.5 ? 1 : 0);
      expect(p.features.amplitude_mean_1m).toBeCloseTo(Number(row.amplitude_mean_1m), 9);
    });
  });

  it('answers the SDK the same', async () => {
    const client = new LarderClient({ url: running.url });
    const answer = await client.predict('review_sentiment', { review_id: ['r0000001', 'r0000002'] });
    served.push(answer as unknown as PredictAnswer);
    const direct = await postPredict('review_sentiment', { entities: { review_id: ['r0000001', 'r0000002'] } });
    expect(answer.predictions).toEqual(direct.json.predictions);
  });

  it('refuses bad requests with a 4xx naming the field, predicting nothing', async () => {
    const before = served.length;
    const cases: [string, unknown, number, RegExp][] = [
      ['nomodel', { entities: { review_id: ['r1'] } }, 404, /^model: no model 'nomodel' is registered/],
      ['review_sentiment', { entities: { review_id: ['r1'] }, inputs: { text: ['x'] } }, 400, /^entities: give entities or inputs, not both/],
      ['review_sentiment', {}, 400, /^entities: give entities/],
      ['review_sentiment', { inputs: { body: ['x'] } }, 400, /^inputs: view 'review_text' computes its features from 'text'/],
      ['review_sentiment', { inputs: { text: ['a', 'b'], lang: ['pt'] } }, 400, /^inputs\.lang: 1 values, but text has 2/],
      ['review_sentiment', { entities: { weld_id: ['W0001'] } }, 400, /weld_id|review_id/],
      ['weld_failure', { inputs: { amplitude: [1] } }, 400, /^inputs: view 'weld_sensor_stats' has no transform/],
    ];
    for (const [model, body, code, error] of cases) {
      const { status, json } = await postPredict(model, body);
      expect([model, status]).toEqual([model, code]);
      expect(json.error).toMatch(error);
    }
    const notJson = await fetch(`${running.url}/predict/review_sentiment`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<hi/>' });
    expect(notJson.status).toBe(415);
    expect(served.length).toBe(before);
  });

  it('counts predictions in /metrics, and asks a key for labels when the server has keys', async () => {
    const metrics = await (await fetch(`${running.url}/metrics`)).text();
    const counted = served.filter((a) => a.model === 'review_sentiment' && a.version === '1').reduce((n, a) => n + a.predictions.length, 0);
    expect(metrics).toContain(`larder_predictions_total{model="review_sentiment",version="1"} ${counted}`);

    const guarded = await startServer({ config: loadConfig({ ...env, LARDER_ONLINE: redisUrl() }), port: 0, store, registry, apiKeys: ['k-1'], servingLog: false, log: () => {} });
    try {
      const label = (headers: Record<string, string>) =>
        fetch(`${guarded.url}/review-queue/review_sentiment/001-000000/label`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"label": 1}' });
      expect((await label({})).status).toBe(401);
      expect((await label({ authorization: 'Bearer nope' })).status).toBe(403);
      expect((await label({ authorization: 'Bearer k-1' })).status).toBe(404);
      // Reads need no key.
      const read = await fetch(`${guarded.url}/predict/review_sentiment`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"entities": {"review_id": ["r0000001"]}}' });
      expect(read.status).toBe(200);
    } finally {
      await guarded.close();
    }
  });

  it('keeps every prediction in the serving log', async () => {
    await running.context.servingLog!.flush();
    const db = await openDuckDB();
    try {
      for (const model of ['review_sentiment', 'weld_failure']) {
        const files = join(dir, 'home', 'offline', '_serving_log', model, 'date=*', '*.parquet');
        const logged = (await db.connection.runAndReadAll(`SELECT request_id, row, probability FROM read_parquet(${sqlString(files)}) ORDER BY request_id, row`)).getRowObjectsJson() as { request_id: string; row: number; probability: number }[];
        const expected = served
          .filter((a) => a.model === model)
          .flatMap((a) => a.predictions.map((p, row) => ({ request_id: a.request_id, row, probability: p.probability })))
          .sort((a, b) => (a.request_id < b.request_id ? -1 : a.request_id > b.request_id ? 1 : a.row - b.row));
        expect(logged.length).toBeGreaterThan(0);
        expect(logged).toEqual(expected);
      }
    } finally {
      db.close();
    }
  });
});

describe('review queue and retraining', () => {
  it('queues an unsure prediction, takes a reviewer label back as training data, and serves the retrained version', async () => {
    // The least confident of the reviews, as the served model scores them now.
    const ids = Array.from({ length: 4000 }, (_, i) => `r${String(i + 1).padStart(7, '0')}`);
    const rows = await datasetRows('review_sentiment', { review_id: ids, event_timestamp: ids.map(() => new Date().toISOString()) });
    const artifact = await registry.loadModel('review_sentiment', '1');
    const confidence = rows.map((r) => {
      const p = scoreRow(artifact.estimators.naive_bayes!, r).probability;
      return Math.max(p, 1 - p);
    });
    const unsure = ids[confidence.indexOf(Math.min(...confidence))]!;
    expect(Math.min(...confidence)).toBeLessThan(artifact.meta.reviewThreshold);

    const { json } = await postPredict('review_sentiment', { entities: { review_id: [unsure] } });
    expect(json.predictions[0].needs_review).toBe(true);
    const client = new LarderClient({ url: running.url });
    let items: any[] = [];
    for (const until = Date.now() + 5000; Date.now() < until; await new Promise((r) => setTimeout(r, 50))) {
      items = (await client.reviewQueue('review_sentiment', { limit: 50 })).items;
      if (items.some((i) => i.requestId === json.request_id)) break;
    }
    const item = items.find((i) => i.requestId === json.request_id);
    expect(item).toMatchObject({ entity: { review_id: unsure }, version: '1' });

    const label = 1 - json.predictions[0].prediction;
    await client.labelReview('review_sentiment', item.id, label as 0 | 1, { reviewer: 'ana' });
    const after = (await client.reviewQueue('review_sentiment')).items;
    expect(after.some((i: any) => i.id === item.id)).toBe(false);
    expect((await readLabels(join(dir, 'home', 'offline'), 'review_sentiment')).map((l) => [l.entity, l.label])).toEqual([[{ review_id: unsure }, label]]);

    const retrained = await ok('train', 'review_sentiment');
    expect(retrained).toMatch(/^Registered review_sentiment version 2 /);
    expect(retrained).toMatch(/; 1 reviewer labels/);
    const v2 = await latest('review_sentiment');
    expect(v2.reviewLabels).toBe(1);
    expect(v2.datasetFingerprint).not.toBe((await registry.modelVersions('review_sentiment'))[0]!.datasetFingerprint);

    let version = '1';
    for (const until = Date.now() + 5000; version !== '2' && Date.now() < until; await new Promise((r) => setTimeout(r, 100))) {
      version = (await postPredict('review_sentiment', { entities: { review_id: ['r0000001'] } })).json.version;
    }
    expect(version).toBe('2');
  });
});
