/**
 * Type-level tests of the SDK: the row types `getOnlineFeatures` infers from definition objects
 * built with the real builders. `npm run typecheck` runs tsc over this file, so a broken inference
 * fails the build; vitest runs it too (the calls are wrapped in functions never invoked: no server).
 */
import { describe, expectTypeOf, it } from 'vitest';
import { entity, featureService, featureView, fileSource, pushSource, sparse, type SparseVector } from 'larder';
import { LarderClient, type FeastOnlineResponse, type FeatureStatus, type OnlineRowWithStatus, type PredictResponse } from 'larder/sdk';
import type { Table } from 'apache-arrow';
import type { FeastOnlineResponse as ServerOnlineResponse } from '../src/online/online-features.js';
import { reviewSentiment as exampleReviewSentiment } from '../feature-definitions/reviews.js';

const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
const review = entity({ name: 'review', joinKeys: ['review_id'] });
const weld = entity({ name: 'weld', joinKeys: ['weld_id'] });
const source = fileSource({ name: 'stats_source', path: 'data/stats.parquet', timestampField: 'event_timestamp' });

const driverStats = featureView({
  name: 'driver_stats',
  entities: [driver],
  source,
  ttl: '2h',
  schema: { conv_rate: 'float64', acc_rate: 'float32', trips: 'int64', label: 'string', lucky: 'bool', seen_at: 'timestamp', blob: 'bytes', embedding: 'float32[]' },
});
const reviewText = featureView({
  name: 'review_text',
  entities: [review],
  source,
  schema: { word_counts: sparse(62000), text_length: 'int32' },
});
const weldStats = featureView({
  name: 'weld_sensor_stats',
  entities: [weld],
  source: pushSource({ name: 'weld_readings', schema: { weld_id: 'string', amplitude: 'float32' }, timestampField: 'event_timestamp' }),
  aggregations: [{ column: 'amplitude', functions: ['mean', 'count'], windows: ['1m'] }],
});

const reviewSentiment = featureService({ name: 'review_sentiment', features: [reviewText] });
const driverModelV1 = featureService({ name: 'driver_model_v1', features: [driverStats.select('conv_rate', 'trips')] });
const weldFailure = featureService({ name: 'weld_failure', features: [weldStats] });

const client = new LarderClient({ url: 'http://localhost:6566' });
type RowsOf<F extends () => Promise<unknown[]>> = Awaited<ReturnType<F>>[number];

describe('getOnlineFeatures row types', () => {
  it('infers a service’s features: sparse vectors and ints, join keys from the entities', () => {
    const call = () => client.getOnlineFeatures({ service: reviewSentiment, entities: { review_id: ['r1', 'r2'] } });
    expectTypeOf<RowsOf<typeof call>>().toEqualTypeOf<{ review_id: string | number; word_counts: SparseVector | null; text_length: number | null }>();
    expectTypeOf<RowsOf<typeof call>['word_counts']>().toEqualTypeOf<{ size: number; indices: number[]; values: number[] } | null>();
  });

  it('infers the example repo’s review_sentiment service (CONTRACT s.8)', () => {
    const call = () => client.getOnlineFeatures({ service: exampleReviewSentiment, entities: { review_id: ['r1'] } });
    type Row = RowsOf<typeof call>;
    expectTypeOf<Row['review_id']>().toEqualTypeOf<string | number>();
    expectTypeOf<Row['word_counts']>().toEqualTypeOf<SparseVector | null>();
    expectTypeOf<Row['text_length']>().toEqualTypeOf<number | null>();
  });

  it('keeps exactly the selected features of a projection service', () => {
    const call = () => client.getOnlineFeatures({ service: driverModelV1, entities: { driver_id: [1001] } });
    type Row = RowsOf<typeof call>;
    expectTypeOf<Row>().toEqualTypeOf<{ driver_id: string | number; conv_rate: number | null; trips: number | null }>();
    const use = (row: Row) => {
      // @ts-expect-error acc_rate is in the view but not in the service
      void row.acc_rate;
      // @ts-expect-error no such feature anywhere
      void row.conv_rat;
      return row.conv_rate;
    };
    expectTypeOf(use).returns.toEqualTypeOf<number | null>();
  });

  it('maps every value type through TsValue', () => {
    const call = () => client.getOnlineFeatures({ features: [driverStats], entities: [{ driver_id: 1001 }, { driver_id: 1002 }] });
    expectTypeOf<RowsOf<typeof call>>().toEqualTypeOf<{
      driver_id: string | number;
      conv_rate: number | null;
      acc_rate: number | null;
      trips: number | null;
      label: string | null;
      lucky: boolean | null;
      seen_at: string | null;
      blob: Uint8Array | null;
      embedding: number[] | null;
    }>();
  });

  it('types aggregation features (count is int64) and several projections', () => {
    const agg = () => client.getOnlineFeatures({ service: weldFailure, entities: { weld_id: ['w1'] } });
    expectTypeOf<RowsOf<typeof agg>>().toEqualTypeOf<{ weld_id: string | number; amplitude_mean_1m: number | null; amplitude_count_1m: number | null }>();

    const two = () =>
      client.getOnlineFeatures({ features: [driverStats.select('label'), reviewText.select('text_length')], entities: { driver_id: [1], review_id: ['r'] } });
    expectTypeOf<RowsOf<typeof two>>().toEqualTypeOf<{ driver_id: string | number; review_id: string | number; label: string | null; text_length: number | null }>();
  });

  it('names features view__feature with fullNames: true', () => {
    const call = () => client.getOnlineFeatures({ service: driverModelV1, entities: { driver_id: [1] }, fullNames: true });
    expectTypeOf<RowsOf<typeof call>>().toEqualTypeOf<{ driver_id: string | number; driver_stats__conv_rate: number | null; driver_stats__trips: number | null }>();
    const bare = () => client.getOnlineFeatures({ service: driverModelV1, entities: { driver_id: [1] }, fullNames: false });
    expectTypeOf<RowsOf<typeof bare>>().toHaveProperty('conv_rate');
  });

  it('gives Record<string, unknown> rows for names given as strings', () => {
    const refs = () => client.getOnlineFeatures({ features: ['driver_stats:conv_rate'], entities: { driver_id: [1] } });
    expectTypeOf<RowsOf<typeof refs>>().toEqualTypeOf<Record<string, unknown>>();
    const named = () => client.getOnlineFeatures({ service: 'driver_model_v1', entities: { driver_id: [1] } });
    expectTypeOf<RowsOf<typeof named>>().toEqualTypeOf<Record<string, unknown>>();
    // A mix keeps the typed part.
    const mixed = () => client.getOnlineFeatures({ features: ['x:y', driverStats.select('trips')], entities: { driver_id: [1] } });
    expectTypeOf<RowsOf<typeof mixed>['trips']>().toEqualTypeOf<number | null>();
  });

  it('leaves join keys out of the type when their names are not literal', () => {
    const entities: Record<string, number[]> = { driver_id: [1] };
    const call = () => client.getOnlineFeatures({ service: driverModelV1, entities });
    expectTypeOf<RowsOf<typeof call>>().toEqualTypeOf<{ conv_rate: number | null; trips: number | null }>();
  });

  it('answers the Feast response with raw: true, and statuses beside values', () => {
    const raw = () => client.getOnlineFeatures({ service: driverModelV1, entities: { driver_id: [1] }, raw: true });
    expectTypeOf(raw).returns.resolves.toEqualTypeOf<FeastOnlineResponse>();

    const withStatus = () => client.getOnlineFeaturesWithStatus({ service: driverModelV1, entities: { driver_id: [1] } });
    type Entry = RowsOf<typeof withStatus>;
    expectTypeOf<Entry>().toEqualTypeOf<OnlineRowWithStatus<{ driver_id: string | number; conv_rate: number | null; trips: number | null }>>();
    expectTypeOf<Entry['statuses']['conv_rate']>().toEqualTypeOf<FeatureStatus>();
    expectTypeOf<Entry['eventTimestamps']['trips']>().toEqualTypeOf<string>();
  });

  it('rejects malformed requests at compile time', () => {
    // Each call is a compile-time check only.
    const never = (): void => {
      // @ts-expect-error features and service together
      void client.getOnlineFeatures({ service: driverModelV1, features: ['driver_stats:trips'], entities: { driver_id: [1] } });
      // @ts-expect-error select() only takes the view's features
      void driverStats.select('nope');
      // @ts-expect-error entities are required
      void client.getOnlineFeatures({ service: driverModelV1 });
      // @ts-expect-error a typo in an option is caught (excess property)
      void client.getOnlineFeatures({ service: driverModelV1, entities: { driver_id: [1] }, fullname: true });
    };
    expectTypeOf(never).toBeFunction();
  });
});

describe('the wire types', () => {
  it('declares the Feast response exactly as the server’s read path answers it', () => {
    expectTypeOf<FeastOnlineResponse>().toEqualTypeOf<ServerOnlineResponse>();
  });
});

describe('other methods', () => {
  it('types historical tables, predictions and push results', () => {
    const hist = () => client.getHistoricalFeatures({ service: driverModelV1, entities: { driver_id: [1], event_timestamp: [new Date()] } });
    expectTypeOf(hist).returns.resolves.toEqualTypeOf<Table>();
    const predict = () => client.predict('review_sentiment', { review_id: ['r1'] });
    expectTypeOf(predict).returns.resolves.toEqualTypeOf<PredictResponse<'review_sentiment'>>();
    const inputs = () => client.predict('review_sentiment', { inputs: { text: ['Essa sandália é maravilhosa'] } });
    expectTypeOf(inputs).returns.resolves.toHaveProperty('predictions');
    const push = () => client.push('weld_readings', [{ weld_id: 'w1', amplitude: 0.5, event_timestamp: new Date() }], { to: 'online_and_offline' });
    expectTypeOf(push).returns.resolves.toEqualTypeOf<{ rows: number; batches: number }>();
    const never = (): void => {
      // @ts-expect-error not a push target
      void client.push('weld_readings', [], { to: 'everywhere' });
    };
    expectTypeOf(never).toBeFunction();
  });
});
