/**
 * Pipeline weld sensors: ultrasound sensors on welds every 100 m of a 100 km pipeline report
 * every 100 ms. A model predicts weld failure from windowed aggregates of the readings.
 * `larder sample-data` writes data/weld_readings.parquet and data/weld_labels.parquet.
 */
import { entity, featureService, featureView, fileSource, pushSource } from 'larder';

export const weld = entity({ name: 'weld', joinKeys: ['weld_id'], valueType: 'string', description: 'A weld on the pipeline' });

/** History of readings for backfill; live readings arrive through the push source. */
export const weldHistory = fileSource({
  name: 'weld_history',
  path: 'data/weld_readings.parquet',
  timestampField: 'event_timestamp',
});

export const weldReadings = pushSource({
  name: 'weld_readings',
  schema: { weld_id: 'string', amplitude: 'float32', temperature: 'float32', pressure: 'float32' },
  timestampField: 'event_timestamp',
  batchSource: weldHistory,
});

const WINDOWS = ['1m', '10m', '1h'] as const;

export const weldSensorStats = featureView({
  name: 'weld_sensor_stats',
  entities: [weld],
  source: weldReadings,
  aggregations: [
    { column: 'amplitude', functions: ['mean', 'stddev', 'min', 'max', 'count'], windows: WINDOWS },
    { column: 'temperature', functions: ['mean', 'stddev', 'min', 'max'], windows: WINDOWS },
    { column: 'pressure', functions: ['mean', 'stddev', 'min', 'max'], windows: WINDOWS },
  ],
  description: 'Ultrasound amplitude, temperature and pressure over the last minute, 10 minutes and hour',
});

export const weldFailure = featureService({
  name: 'weld_failure',
  features: [weldSensorStats],
  description: 'Features of the weld failure model',
});
