/**
 * docker compose seeds PostgreSQL with docker/postgres-init.sql so that the example
 * postgresSource `reviews_table` can stand in for the reviews file. Checked on the real server:
 * the seed loads, and the review_text view backfills from the table with its transform.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { featureView, postgresSource } from '../src/definitions/builders.js';
import { loadDefinitions } from '../src/definitions/loader.js';
import type { Definitions } from '../src/definitions/types.js';
import { backfill } from '../src/offline/backfill.js';
import { openDuckDB } from '../src/offline/duckdb.js';
import { describeSourceColumns } from '../src/offline/sources.js';
import { parseInstant } from '../src/core/time.js';
import { createTestDatabase } from './support/services.js';

const REPO = new URL('../feature-definitions/', import.meta.url).pathname;
let database: Awaited<ReturnType<typeof createTestDatabase>>;
let offlineDir: string;

beforeAll(async () => {
  database = await createTestDatabase('compose_seed');
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  await client.query(await readFile(new URL('../docker/postgres-init.sql', import.meta.url), 'utf8'));
  await client.end();
  offlineDir = await mkdtemp(join(tmpdir(), 'larder-seed-'));
});

afterAll(async () => {
  await database?.drop();
  await rm(offlineDir, { recursive: true, force: true });
});

describe('the compose seed and the example postgresSource', () => {
  it('has every column the reviews file has, so the table can replace it as a source', async () => {
    const defs = await loadDefinitions(REPO);
    const table = defs.sources.get('reviews_table');
    expect(table?.type).toBe('postgres');
    const withConnection = postgresSource({ ...(table as Parameters<typeof postgresSource>[0]), connection: database.url });
    const columns = (await describeSourceColumns(withConnection, REPO)).map((c) => c.name);
    expect(columns).toEqual(expect.arrayContaining(['review_id', 'sku', 'customer_id', 'text', 'rating', 'event_timestamp', 'created']));
  });

  it('backfills review_text from the seeded table with the same transform', async () => {
    const defs = await loadDefinitions(REPO);
    const example = defs.views.get('review_text')!;
    const table = defs.sources.get('reviews_table') as Parameters<typeof postgresSource>[0];
    const fromTable = featureView({
      name: 'review_text_pg',
      entities: [...example.entities],
      source: postgresSource({ ...table, connection: database.url }),
      schema: example.schema,
      transform: example.transform!,
    });
    const onlyTable: Definitions = { ...defs, views: new Map([['review_text_pg', fromTable]]) };
    const result = await backfill({ defs: onlyTable, offlineDir, start: parseInstant('2024-01-01T00:00:00Z'), end: parseInstant('2024-02-01T00:00:00Z') });
    expect(result.views[0]).toMatchObject({ name: 'review_text_pg', rows: 5000, droppedRows: 0 });

    const db = await openDuckDB();
    try {
      const reader = await db.connection.runAndReadAll(
        `SELECT review_id, text_length, len(word_counts.indices)::INTEGER AS distinct_words
         FROM read_parquet('${offlineDir}/review_text_pg/date=*/*.parquet') WHERE review_id = 'pg0000004'`,
      );
      // pg0000004 holds rating 5's phrase 'Essa sandália é maravilhosa, ficou perfeita, amei ameeei !!!':
      // 60 characters, 7 distinct words once 'ameeei' is squeezed to 'amei'.
      expect(reader.getRowObjectsJS()).toEqual([{ review_id: 'pg0000004', text_length: 60, distinct_words: 7 }]);
    } finally {
      db.close();
    }
  });
});
