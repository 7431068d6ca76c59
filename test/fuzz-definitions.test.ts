/**
 * Bad definitions, generated (fast-check): random names (unicode, NUL, RTL, reserved words, empty,
 * very long, duplicates), values of the wrong type, unknown value types, windows like '0s',
 * '-1m', '1e309h' or a 400-digit number of hours, tiles that do not divide or exceed their
 * window, TTL garbage, missing entities, join keys that do not match, transforms that throw,
 * objects that only look like definitions, and files that do not parse or throw as they load.
 *
 * Each one is taken (and then what was built holds together: names are identifiers, durations
 * finite integers in range, tiles at least 1 s and no longer than their window...) or refused
 * with a DefinitionError/InputError of one line naming the object or the file: never a
 * TypeError, a RangeError or a stack. The builders are called directly (hundreds of cases a
 * second), the loader on generated repos (what `plan` and `apply` do: load, validate, make the
 * canonical JSON), and `larder apply`/`plan` themselves on a handful of fixed repos: exit 1, one
 * stderr line, the registry file unchanged.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DefinitionError, InputError, LarderError } from '../src/core/errors.js';
import { isIdentifier } from '../src/core/refs.js';
import { formatInstant, MAX_DURATION_MS, MAX_INSTANT_MS, MIN_INSTANT_MS, parseDuration, parseInstant, utcDate } from '../src/core/time.js';
import { KEY_TYPES, parseValueType } from '../src/core/value-types.js';
import { entity, featureService, featureView, fileSource, postgresSource, pushSource } from '../src/definitions/builders.js';
import { loadDefinitions } from '../src/definitions/loader.js';
import type { Definitions, Entity, FeatureView } from '../src/definitions/types.js';
import { validateDefinitions } from '../src/definitions/validate.js';
import { toCanonical, type CanonicalRepo } from '../src/registry/canonical.js';
import { FileRegistry } from '../src/registry/file.js';
import { loadCanonicalRepo } from '../src/registry/operations.js';
import { runLarder } from './support/cli.js';

// CI runs one fixed seed, so a run is reproducible; LARDER_FUZZ_SEED=random (or a number) explores others.
const FUZZ_SEED = process.env.LARDER_FUZZ_SEED === 'random' ? Date.now() : Number(process.env.LARDER_FUZZ_SEED ?? 20261206);
fc.configureGlobal({ seed: FUZZ_SEED });

// ---------------------------------------------------------------------------------------------
// What a clean refusal is

/** Runs `build`; a throw must be a LarderError of one non-empty line. Returns the value, or undefined when refused. */
function takenOrRefused<T>(build: () => T): T | undefined {
  let value: T;
  try {
    value = build();
  } catch (err) {
    expectCleanError(err);
    return undefined;
  }
  return value;
}

function expectCleanError(err: unknown): asserts err is LarderError {
  if (!(err instanceof DefinitionError || err instanceof InputError)) {
    // The property fails showing what escaped, stack included.
    throw new Error(`not a DefinitionError/InputError: ${err instanceof Error ? err.stack : String(err)}`);
  }
  expect(err.message.length).toBeGreaterThan(0);
  expect(err.message, 'one line').not.toMatch(/[\n\r]/);
  expect(err.message.length, 'a short message, not a dump of the input').toBeLessThan(1500);
}

// ---------------------------------------------------------------------------------------------
// Arbitraries

const RESERVED = [
  'select', 'from', 'where', 'order', 'group', 'table', 'rowid', 'date', 'default', 'null', 'true', 'class', 'function', 'import', 'export',
  '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype', 'then', 'event_timestamp', 'created_timestamp', 'kind',
];
const ODD_NAMES = [
  '', ' ', 'a b', '1abc', 'a-b', 'a.b', 'a:b', 'a/b', '../x', 'é', 'naïve', '名前', '🙂', 'a\u0000b', '\u202Eabc', 'a\nb', 'a\r\nb', 'a\tb', ' x', 'x ',
  'a'.repeat(128), 'a'.repeat(129), 'a'.repeat(300), 'b'.repeat(10_000), 'Ω', 'ǅ', '\uD800', 'x\u200B',
];
const identifierArb = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,12}$/);
const nameArb: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: identifierArb, weight: 6 },
  { arbitrary: fc.constantFrom(...RESERVED), weight: 3 },
  { arbitrary: fc.constantFrom(...ODD_NAMES), weight: 3 },
  { arbitrary: fc.string({ unit: 'grapheme', maxLength: 12 }), weight: 1 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 12 }), weight: 1 },
  { arbitrary: fc.anything({ maxDepth: 1 }), weight: 1 },
);

/** Values of no sensible type for any field. */
const JUNK: unknown[] = [null, undefined, NaN, Infinity, -Infinity, -1, 0, 1e309, 1e-320, -0, 2 ** 53 + 1, [], {}, [[]], () => 1, new Date(NaN), 10n, true, '', 'x', Symbol('s'), new Map(), Object.create(null)];
const junkArb: fc.Arbitrary<unknown> = fc.oneof(fc.constantFrom(...JUNK), fc.anything({ maxDepth: 2 }));

const VALID_DURATIONS = ['90s', '30m', '2h', '7d', '1w', '500ms', '1.5s', '0.5m', 90, 0, 3600, '0s', '0'];
const BAD_DURATIONS = [
  '-1m', '1e309h', `${'9'.repeat(400)}h`, '99999999999999999999d', '1000000000d', ' 1m', '1m ', '1M', '1H', '', 'm', '1 m', '1mm', '0.0001ms', '1e3s', '+1m', '1,5s',
  '∞s', '１m', 1e300, 1e20, -1, -0.5, NaN, Infinity, 1e-9, 0.0001, '7s', '61s', '1001ms', '3650000d', '520000w', `${'1'.repeat(17)}ms`,
];
const durationArb: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.constantFrom(...VALID_DURATIONS), weight: 3 },
  { arbitrary: fc.constantFrom(...BAD_DURATIONS), weight: 4 },
  { arbitrary: fc.tuple(fc.nat({ max: 100_000 }), fc.constantFrom('ms', 's', 'm', 'h', 'd', 'w')).map(([n, u]) => `${n}${u}`), weight: 2 },
  { arbitrary: fc.double(), weight: 1 },
  { arbitrary: fc.string({ maxLength: 8 }), weight: 1 },
  { arbitrary: junkArb, weight: 1 },
);

const VALID_TYPES = ['int32', 'int64', 'float32', 'float64', 'bool', 'string', 'timestamp', 'bytes', 'float32[]', 'float64[]', 'sparse(16)', 'sparse(62000)', 'sparse(2147483648)'];
const BAD_TYPES = [
  'sparse(0)', 'sparse(-1)', 'sparse(1e400)', `sparse(${'9'.repeat(400)})`, 'sparse(2147483649)', 'sparse(99999999999)', 'sparse(007)', 'sparse()', 'sparse(1.5)', 'sparse(16',
  'float32[][]', 'int8', 'INT64', 'double', 'integer', 'str', '', ' int64', 'int64 ', 'int64\u0000', 'timestamp[]', 'bool[]', 'sparse(16)[]',
];
const valueTypeArb: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.constantFrom(...VALID_TYPES), weight: 5 },
  { arbitrary: fc.constantFrom(...BAD_TYPES), weight: 3 },
  { arbitrary: fc.string({ maxLength: 10 }), weight: 1 },
  { arbitrary: junkArb, weight: 1 },
);

/** Mostly left out: a field that, given, refuses the whole object. */
const rare = (arb: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> => fc.oneof({ arbitrary: fc.constant(undefined), weight: 8 }, { arbitrary: arb, weight: 1 });
/** Sometimes the field is left out altogether. */
const maybe = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> => fc.option(arb, { nil: undefined, freq: 3 });
/** An object from optional fields, undefined ones dropped (a missing field, not a field set to undefined). */
const fields = (shape: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<Record<string, unknown>> =>
  fc.record(Object.fromEntries(Object.entries(shape).map(([k, a]) => [k, maybe(a)]))).map((o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)));
/** A record from generated keys, keys as given even when odd (`__proto__` an own key, as a JSON parse or computed key makes it). */
const recordOf = (keys: fc.Arbitrary<unknown>, values: fc.Arbitrary<unknown>, maxLength = 4): fc.Arbitrary<Record<string, unknown>> =>
  fc.array(fc.tuple(keys.map((k) => (typeof k === 'string' ? k : String(typeof k === 'symbol' ? 'sym' : k))), values), { maxLength }).map((entries) => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of entries) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    return out;
  });

// Good objects to mix in.
const driver = entity({ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' });
const rider = entity({ name: 'rider', joinKeys: ['rider_id', 'city'], keyTypes: { rider_id: 'int32' } });
const sameKey = entity({ name: 'driver_again', joinKeys: ['driver_id'] });
const stats = fileSource({ name: 'stats', path: 'data/stats.parquet', timestampField: 'event_timestamp' });
const readings = pushSource({
  name: 'readings',
  schema: { driver_id: 'int64', rider_id: 'int32', city: 'string', speed: 'float32', note: 'string', flag: 'bool', words: 'sparse(16)' },
  timestampField: 'event_timestamp',
  batchSource: stats,
});
const FAKES = [
  { kind: 'entity', name: 'fake' },
  { kind: 'source', type: 'push', name: 'fake' },
  { kind: 'source', name: 'fake', type: 'file' },
  { kind: 'featureView', name: 'fake' },
  { kind: 'projection', view: {}, features: ['x'] },
  { kind: 'projection' },
];
const entityArb = fc.oneof(fc.constantFrom<unknown>(driver, rider, sameKey, 'driver', 'rider', 'nobody', '', '1x', ...FAKES), junkArb);
const sourceArb = fc.oneof({ arbitrary: fc.constantFrom<unknown>(stats, readings), weight: 4 }, { arbitrary: fc.constantFrom<unknown>(...FAKES), weight: 1 }, { arbitrary: junkArb, weight: 1 });
const featureNameArb = fc.oneof({ arbitrary: fc.constantFrom('speed', 'note', 'trips', 'conv_rate', 'driver_id', 'event_timestamp', 'created_timestamp'), weight: 3 }, { arbitrary: nameArb, weight: 2 });
const schemaArb: fc.Arbitrary<unknown> = fc.oneof({ arbitrary: recordOf(featureNameArb, valueTypeArb), weight: 5 }, { arbitrary: junkArb, weight: 1 });
const transformArb = fc.constantFrom<unknown>(
  (row: Record<string, unknown>) => row,
  () => {
    throw new Error('a transform that throws');
  },
  () => null,
  42,
  'row => row',
);
const FUNCTIONS = ['count', 'sum', 'mean', 'min', 'max', 'stddev', 'last'];
const aggregationArb = fields({
  column: fc.oneof({ arbitrary: fc.constantFrom('speed', 'note', 'flag', 'words', 'missing', 'driver_id'), weight: 3 }, { arbitrary: nameArb, weight: 1 }),
  functions: fc.oneof({ arbitrary: fc.subarray(FUNCTIONS, { minLength: 1 }), weight: 4 }, { arbitrary: fc.array(fc.oneof(fc.constantFrom(...FUNCTIONS, 'median', 'COUNT', ''), junkArb), { maxLength: 3 }), weight: 1 }, { arbitrary: junkArb, weight: 1 }),
  windows: fc.oneof({ arbitrary: fc.array(durationArb, { minLength: 1, maxLength: 3 }), weight: 4 }, { arbitrary: junkArb, weight: 1 }),
  tile: durationArb,
  name: nameArb,
});

// ---------------------------------------------------------------------------------------------
// What a built definition must hold to

const MAX_NAME = 128;
const goodName = (name: unknown): boolean => typeof name === 'string' && isIdentifier(name) && name.length <= MAX_NAME;
const goodDuration = (ms: number): boolean => Number.isSafeInteger(ms) && ms >= 0 && ms <= MAX_DURATION_MS;

function checkEntity(e: Entity): void {
  expect(goodName(e.name)).toBe(true);
  expect(e.joinKeys.length).toBeGreaterThan(0);
  expect(new Set(e.joinKeys).size, 'join keys are distinct').toBe(e.joinKeys.length);
  for (const k of e.joinKeys) {
    expect(goodName(k)).toBe(true);
    expect(['event_timestamp', 'created_timestamp']).not.toContain(k);
    expect(KEY_TYPES).toContain(e.keyTypes[k]);
  }
  expect(Object.isFrozen(e)).toBe(true);
}

function checkView(v: FeatureView): void {
  expect(goodName(v.name)).toBe(true);
  expect(goodDuration(v.ttlMs)).toBe(true);
  expect(goodDuration(v.allowedLatenessMs)).toBe(true);
  const keys = v.entities.flatMap((e) => (typeof e === 'string' ? [] : e.joinKeys));
  expect(new Set(keys).size).toBe(keys.length);
  const features = Object.keys(v.schema);
  expect(features.length).toBeGreaterThan(0);
  for (const f of features) {
    expect(goodName(f), `feature name ${JSON.stringify(f)}`).toBe(true);
    expect([...keys, 'event_timestamp', 'created_timestamp']).not.toContain(f);
    expect(() => parseValueType(v.schema[f]!)).not.toThrow();
  }
  for (const a of v.aggregatedFeatures ?? []) {
    expect(goodName(a.name), `aggregation feature name ${JSON.stringify(a.name)}`).toBe(true);
    expect(goodDuration(a.windowMs) && a.windowMs > 0).toBe(true);
    expect(goodDuration(a.tileMs)).toBe(true);
    expect(a.tileMs).toBeGreaterThanOrEqual(1000);
    expect(a.tileMs).toBeLessThanOrEqual(a.windowMs);
    // A read combines window/tile tiles per entity: bounded, whatever was written.
    expect(a.windowMs / a.tileMs).toBeLessThanOrEqual(10_000);
  }
  if (v.aggregatedFeatures && v.source.type === 'push') {
    for (const a of v.aggregatedFeatures) expect(['int32', 'int64', 'float32', 'float64']).toContain(v.source.schema[a.column]);
  }
}

// ---------------------------------------------------------------------------------------------
// The parsers under every definition

describe('durations, instants and value types', () => {
  it('parseDuration takes any value: a safe integer of ms in range, or an Error saying what it got', () => {
    fc.assert(
      fc.property(durationArb, (value) => {
        let ms: number;
        try {
          ms = parseDuration(value as string | number);
        } catch (err) {
          expect(err).toBeInstanceOf(Error);
          expect((err as Error).message).not.toMatch(/[\n\r]/);
          expect((err as Error).message.length).toBeLessThan(300);
          return;
        }
        expect(goodDuration(ms)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('parseDuration reads every written duration in range exactly, and refuses the longer ones', () => {
    const units = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;
    fc.assert(
      fc.property(fc.nat({ max: Number.MAX_SAFE_INTEGER }), fc.constantFrom(...(Object.keys(units) as (keyof typeof units)[])), (n, unit) => {
        const ms = n * units[unit];
        if (ms <= MAX_DURATION_MS) expect(parseDuration(`${n}${unit}`)).toBe(ms);
        else expect(() => parseDuration(`${n}${unit}`)).toThrow(/longer than the longest duration/);
      }),
      { numRuns: 300 },
    );
  });

  it('parseInstant takes any value: an instant of years 0000-9999 that formats and dates, or an Error', () => {
    const instantArb = fc.oneof(
      fc.constantFrom<unknown>(
        '0000-01-01T00:00:00Z', '9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999-01:00', '10000-01-01T00:00:00Z', '-000001-01-01T00:00:00Z', '2024-02-30', '2023-02-29',
        '2024-02-29', '2024-13-01', '2024-00-10', '2024-01-32T00:00:00Z', '2024-01-01T25:00:00Z', '2024-01-01T24:00:00Z', '2024-01-01T23:59:60Z', '2024-01-01T00:00:00+25:00',
        '2024-01-01T00:00:00+05:60', '2024-01-01T00:00:00+0530', '2024-01-01T00:00:00-24:00', '2024-01-01T00:00:00 +01:00', '2024-01-01T00:00:00ZZ', '2024-1-1', 'now', 'NaN',
        '', ' ', 1e20, -1e20, 8.64e15, -8.64e15, 8.64e15 + 1, -62_167_219_200_001, 253_402_300_800_000, NaN, Infinity, -1, 0, 1.5, new Date(NaN), new Date(8.64e15), new Date(-1),
      ),
      fc.integer({ min: -9e15, max: 9e15 }),
      fc.double(),
      fc.date({ noInvalidDate: false }),
      fc.date().map((d) => d.toISOString()),
      fc.string({ maxLength: 30 }),
      junkArb,
    );
    fc.assert(
      fc.property(instantArb, (value) => {
        let ms: number;
        try {
          ms = parseInstant(value as string);
        } catch (err) {
          expect(err).toBeInstanceOf(Error);
          expect((err as Error).message).not.toMatch(/[\n\r]/);
          return;
        }
        expect(Number.isFinite(ms)).toBe(true);
        expect(ms).toBeGreaterThanOrEqual(MIN_INSTANT_MS);
        expect(ms).toBeLessThanOrEqual(MAX_INSTANT_MS);
        expect(utcDate(ms)).toMatch(/^\d{4}-\d{2}-\d{2}$/);
        expect(formatInstant(ms)).toMatch(/^\d{4}-/);
      }),
      { numRuns: 600 },
    );
  });

  it('parseInstant reads every instant of the range back from its ISO-8601 text, epoch ms and Date', () => {
    fc.assert(
      fc.property(fc.integer({ min: MIN_INSTANT_MS, max: MAX_INSTANT_MS }), (ms) => {
        expect(parseInstant(new Date(ms).toISOString())).toBe(ms);
        expect(parseInstant(ms)).toBe(ms);
        expect(parseInstant(new Date(ms))).toBe(ms);
      }),
      { numRuns: 300 },
    );
  });

  it('parseValueType takes any string: a type it can store, or an Error', () => {
    fc.assert(
      fc.property(valueTypeArb, (type) => {
        let parsed;
        try {
          parsed = parseValueType(type as string);
        } catch (err) {
          expect(err).toBeInstanceOf(Error);
          expect((err as Error).message).not.toMatch(/[\n\r]/);
          return;
        }
        if (parsed.kind === 'sparse') {
          expect(Number.isInteger(parsed.size)).toBe(true);
          expect(parsed.size).toBeGreaterThan(0);
          // Indices are int32.
          expect(parsed.size).toBeLessThanOrEqual(2 ** 31);
          expect(type).toBe(`sparse(${parsed.size})`);
        }
      }),
      { numRuns: 400 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The builders

describe('definition builders on generated input', () => {
  it('entity(): built and sound, or a one-line DefinitionError', () => {
    const input = fc.oneof(
      { arbitrary: fields({ name: nameArb, joinKeys: fc.oneof(fc.array(nameArb, { maxLength: 3 }), junkArb), valueType: fc.oneof(fc.constantFrom('int32', 'int64', 'string', 'float64', 'INT64'), junkArb), keyTypes: fc.oneof(recordOf(nameArb, fc.constantFrom('int32', 'int64', 'string', 'bool')), junkArb), description: fc.oneof(fc.string(), junkArb), tags: fc.oneof(recordOf(nameArb, fc.oneof(fc.string(), junkArb)), junkArb) }), weight: 6 },
      { arbitrary: junkArb, weight: 1 },
    );
    fc.assert(
      fc.property(input, (i) => {
        const e = takenOrRefused(() => entity(i as never));
        if (e) checkEntity(e);
      }),
      { numRuns: 400 },
    );
  });

  it('fileSource(), postgresSource(), pushSource(): built, or a one-line DefinitionError', () => {
    const base = { name: nameArb, timestampField: fc.oneof(fc.constantFrom('event_timestamp', 'ts'), nameArb), createdTimestampField: fc.oneof(fc.constantFrom('created', 'event_timestamp', 'ts'), nameArb), description: fc.oneof(fc.string(), junkArb) };
    const input = fc.oneof(
      fields({ ...base, path: fc.oneof(fc.constantFrom('data/x.parquet', 'x.csv', 'x.json', '', '.parquet', '/abs/x.CSV', 'a\u0000.parquet'), junkArb) }).map((i) => ['file', i] as const),
      fields({ ...base, table: fc.oneof(fc.constantFrom('trips', 'public.trips', 'a.b.c', 'trips; drop table x', ''), junkArb), query: fc.oneof(fc.constantFrom('select 1', ''), junkArb), connection: fc.oneof(fc.constantFrom('postgres://u:p@h/db', 'mysql://h', ''), junkArb) }).map((i) => ['postgres', i] as const),
      fields({ ...base, schema: fc.oneof(recordOf(fc.oneof(fc.constantFrom('driver_id', 'event_timestamp', 'created', 'ts', 'speed'), nameArb), valueTypeArb, 5), junkArb), batchSource: fc.oneof(fc.constantFrom<unknown>(stats, readings), junkArb) }).map((i) => ['push', i] as const),
      junkArb.map((i) => ['file', i] as const),
    );
    fc.assert(
      fc.property(input, ([kind, i]) => {
        const s = takenOrRefused(() => (kind === 'file' ? fileSource(i as never) : kind === 'postgres' ? postgresSource(i as never) : pushSource(i as never)));
        if (!s) return;
        expect(goodName(s.name)).toBe(true);
        expect(goodName(s.timestampField)).toBe(true);
        expect(s.createdTimestampField).not.toBe(s.timestampField);
        if (s.type === 'push') {
          for (const [column, type] of Object.entries(s.schema)) {
            expect(goodName(column)).toBe(true);
            expect(() => parseValueType(type)).not.toThrow();
          }
          // A push's event time is read as an instant: the schema cannot type it as anything else.
          if (Object.hasOwn(s.schema, s.timestampField)) expect(s.schema[s.timestampField]).toBe('timestamp');
          if (s.createdTimestampField && Object.hasOwn(s.schema, s.createdTimestampField)) expect(s.schema[s.createdTimestampField]).toBe('timestamp');
        }
      }),
      { numRuns: 400 },
    );
  });

  it('featureView() with a schema: built and sound, or a one-line DefinitionError', () => {
    const input = fields({
      name: nameArb,
      entities: fc.oneof({ arbitrary: fc.array(entityArb, { maxLength: 3 }), weight: 5 }, { arbitrary: junkArb, weight: 1 }),
      source: sourceArb,
      ttl: durationArb,
      schema: schemaArb,
      online: fc.oneof(fc.boolean(), junkArb),
      transform: transformArb,
      allowedLateness: durationArb,
      tags: fc.oneof(recordOf(nameArb, fc.string()), junkArb),
    });
    fc.assert(
      fc.property(input, (i) => {
        const v = takenOrRefused(() => featureView(i as never));
        if (!v) return;
        checkView(v);
        // select(): the declared features only, each once, at least one.
        const names = Object.keys(v.schema);
        expect(v.select(...(names as never[])).features).toEqual(names);
        for (const bad of ['nope', 'constructor', 'toString', '__proto__']) if (!names.includes(bad)) takenOrRefused(() => v.select(bad as never)) && expect.fail(`select('${bad}') was taken`);
      }),
      { numRuns: 500 },
    );
  });

  it('featureView() with aggregations: built with bounded windows and tiles, or a one-line DefinitionError', () => {
    const input = fields({
      name: fc.oneof({ arbitrary: identifierArb, weight: 4 }, { arbitrary: nameArb, weight: 1 }),
      entities: fc.oneof({ arbitrary: fc.constant([driver]), weight: 4 }, { arbitrary: fc.array(entityArb, { maxLength: 2 }), weight: 1 }),
      source: fc.oneof({ arbitrary: fc.constant<unknown>(readings), weight: 4 }, { arbitrary: sourceArb, weight: 1 }),
      aggregations: fc.oneof({ arbitrary: fc.array(aggregationArb, { minLength: 1, maxLength: 3 }), weight: 6 }, { arbitrary: junkArb, weight: 1 }),
      allowedLateness: durationArb,
      ttl: rare(fc.constantFrom<unknown>(0, '1h', 'x')),
      schema: rare(fc.constantFrom<unknown>({ speed: 'float64' })),
      transform: rare(transformArb),
    });
    fc.assert(
      fc.property(input, (i) => {
        const v = takenOrRefused(() => featureView(i as never));
        if (v) checkView(v);
      }),
      { numRuns: 600 },
    );
  });

  /** A view.select(...) to make inside the property, where its refusal is checked too. */
  class Select {
    constructor(readonly names: unknown[]) {}
  }

  it('featureService(): built from views and projections only, or a one-line DefinitionError', () => {
    const view = featureView({ name: 'driver_stats', entities: [driver], source: stats, schema: { trips: 'int64', conv_rate: 'float64' } });
    const other = featureView({ name: 'speeds', entities: [driver], source: readings, schema: { speed: 'float32' } });
    const member = fc.oneof(
      { arbitrary: fc.constantFrom<unknown>(view, other), weight: 3 },
      { arbitrary: fc.array(fc.oneof(fc.constantFrom('trips', 'conv_rate'), nameArb), { maxLength: 3 }).map((names) => new Select(names)), weight: 3 },
      { arbitrary: fc.constantFrom<unknown>(...FAKES), weight: 1 },
      { arbitrary: junkArb, weight: 1 },
    );
    const input = fields({ name: nameArb, features: fc.oneof(fc.array(member, { maxLength: 3 }), junkArb), description: fc.oneof(fc.string(), junkArb) });
    fc.assert(
      fc.property(input, (i) => {
        const s = takenOrRefused(() => {
          // select() runs here, so its refusals are the builder's too.
          const features = Array.isArray(i.features) ? i.features.map((m) => (m instanceof Select ? view.select(...(m.names as never[])) : m)) : i.features;
          return featureService({ ...i, features } as never);
        });
        if (!s) return;
        expect(goodName(s.name)).toBe(true);
        expect(s.projections.length).toBeGreaterThan(0);
        const views = s.projections.map((p) => p.view.name);
        expect(new Set(views).size).toBe(views.length);
        for (const p of s.projections) {
          expect(p.features.length).toBeGreaterThan(0);
          expect(new Set(p.features).size, 'a feature selected once').toBe(p.features.length);
          for (const f of p.features) expect(Object.hasOwn(p.view.schema, f)).toBe(true);
        }
      }),
      { numRuns: 400 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The loader on generated repos

/** A value as TypeScript source text: what a definitions file would hold. */
function js(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : v === Infinity ? 'Infinity' : v === -Infinity ? '-Infinity' : Object.is(v, -0) ? '-0' : String(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'boolean' || v === null) return String(v);
  if (typeof v === 'function' || typeof v === 'symbol') return 'Symbol("s")';
  if (v instanceof Date) return `new Date(${js(v.getTime())})`;
  if (Array.isArray(v)) return `[${v.map(js).join(', ')}]`;
  if (typeof v === 'object') return `{ ${Object.entries(v).map(([k, x]) => `[${JSON.stringify(k)}]: ${js(x)}`).join(', ')} }`;
  return 'undefined';
}

const HEADER = `import { entity, fileSource, pushSource, featureView, featureService, sparse } from 'larder';\n`;

/** Slots of a good repo; a case replaces some with generated text. */
interface Slots {
  entity: string;
  fileSource: string;
  pushSource: string;
  view: string;
  aggView: string;
  service: string;
  extra: string;
  /** A second file. */
  other: string;
}

const GOOD: Slots = {
  entity: `{ name: 'driver', joinKeys: ['driver_id'], valueType: 'int64' }`,
  fileSource: `{ name: 'stats', path: 'data/stats.csv', timestampField: 'event_timestamp' }`,
  pushSource: `{ name: 'readings', schema: { driver_id: 'int64', speed: 'float32', note: 'string' }, timestampField: 'event_timestamp' }`,
  view: `{ name: 'driver_stats', entities: [driver], source: stats, ttl: '2h', schema: { conv_rate: 'float64', words: sparse(16) } }`,
  aggView: `{ name: 'speed_stats', entities: [driver], source: readings, aggregations: [{ column: 'speed', functions: ['mean', 'count'], windows: ['1m', '1h'] }] }`,
  service: `{ name: 'svc', features: [driverStats.select('conv_rate'), speedStats] }`,
  extra: '',
  other: '',
};

const fileText = (s: Slots): string =>
  `${HEADER}export const driver = entity(${s.entity});
const stats = fileSource(${s.fileSource});
export const readings = pushSource(${s.pushSource});
export const driverStats = featureView(${s.view});
export const speedStats = featureView(${s.aggView});
export const svc = featureService(${s.service});
${s.extra}
`;

const valueOrJunk = (arb: fc.Arbitrary<unknown>) => fc.oneof({ arbitrary: arb, weight: 5 }, { arbitrary: junkArb, weight: 1 });

/** One change to the good repo. */
const mutationArb: fc.Arbitrary<Partial<Slots>> = fc.oneof(
  fc.record({ name: nameArb, joinKeys: valueOrJunk(fc.array(fc.oneof(fc.constant('driver_id'), nameArb), { maxLength: 3 })), valueType: valueOrJunk(fc.constantFrom('int32', 'int64', 'string', 'float64')) }).map((e) => ({ entity: js(e) })),
  fc.record({ name: nameArb, path: valueOrJunk(fc.constantFrom('data/stats.csv', 'data/missing.parquet', 'x.json', '')), timestampField: valueOrJunk(fc.constantFrom('event_timestamp', 'ts')) }).map((s) => ({ fileSource: js(s) })),
  fc
    .record({
      name: fc.oneof(fc.constant('readings'), nameArb),
      schema: recordOf(fc.oneof({ arbitrary: fc.constantFrom('driver_id', 'speed', 'note', 'event_timestamp', 'created'), weight: 3 }, { arbitrary: nameArb, weight: 1 }), valueTypeArb, 5),
      timestampField: valueOrJunk(fc.constantFrom('event_timestamp', 'ts')),
      createdTimestampField: fc.option(fc.constantFrom('created', 'event_timestamp'), { nil: undefined }),
    })
    .map((s) => ({ pushSource: js(Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined))) })),
  fc
    .record({
      name: fc.oneof(fc.constant('driver_stats'), nameArb),
      entities: fc.constantFrom('[driver]', "['driver']", "['rider']", '[driver, driver]', '[]', "[{ kind: 'entity', name: 'driver' }]", '42', "['']"),
      source: fc.constantFrom('stats', 'readings', "{ kind: 'source', type: 'file', name: 'stats2' }", 'null'),
      ttl: durationArb.map(js),
      schema: schemaArb.map(js),
      transform: fc.constantFrom('undefined', '(row) => row', "() => { throw new Error('boom') }", '42', '(row) => ({ conv_rate: row.nope.deeper })'),
    })
    .map((v) => ({ view: `{ name: ${js(v.name)}, entities: ${v.entities}, source: ${v.source}, ttl: ${v.ttl}, schema: ${v.schema}, transform: ${v.transform} }` })),
  fc.array(aggregationArb, { minLength: 1, maxLength: 2 }).map((aggs) => ({ aggView: `{ name: 'speed_stats', entities: [driver], source: readings, aggregations: ${js(aggs)} }` })),
  fc
    .oneof(
      fc.array(fc.oneof(fc.constantFrom('conv_rate', 'words'), nameArb), { maxLength: 3 }).map((names) => `[driverStats.select(${names.map(js).join(', ')})]`),
      fc.constantFrom('[driverStats, driverStats]', '[]', '[42]', "[{ kind: 'featureView', name: 'fake' }]", "[{ kind: 'projection', view: driverStats, features: ['nope'] }]", 'driverStats'),
    )
    .map((features) => ({ service: `{ name: 'svc', features: ${features} }` })),
  fc
    .oneof(
      fc.string({ maxLength: 20 }).map((s) => `@@@ ${s}`), // a syntax error, whatever follows
      fc.constantFrom(
        'export const = ;',
        'export const x = {',
        '}}}',
        'import { nothing } from "./nowhere.ts";',
        "import { nope } from 'larder';\nexport const y = nope();",
        "throw new Error('top-level failure');",
        'throw 42;',
        'throw null;',
        'throw undefined;',
        "throw { toString() { throw new Error('no text either'); } };",
        'throw Object.create(null);',
        "throw new Error('line one\\nline two');",
        "throw new Error('');",
        'const a: number = "typed wrong, and TypeScript types are not checked";',
        "export const fake = { kind: 'featureView', name: 'fake' };",
        "export const fake = { kind: 'entity', name: 'fake', joinKeys: 5 };",
        "export const fake = { kind: 'source', type: 'push', name: 'fake' };",
        "export const fake = { kind: 'featureService', name: 'fake', projections: [{ view: null }] };",
        "export const fake = { kind: 'featureView', name: 'fake2', entities: [driver], source: readings, schema: { x: 'int64' } };",
        "export const fakeCopy = { ...driverStats, name: 'copied' };",
        "export const twin = featureView({ name: 'driver_stats', entities: [driver], source: stats, schema: { conv_rate: 'float64' } });",
        "export const twinEntity = entity({ name: 'driver', joinKeys: ['driver_id'] });",
        "export const other = featureView({ name: 'other', entities: [driver], source: pushSource({ name: 'readings', schema: { driver_id: 'int64' }, timestampField: 'event_timestamp' }), schema: { driver_id2: 'int64' } });",
        "export const riderStats = featureView({ name: 'rider_stats', entities: ['rider'], source: stats, schema: { x: 'int32' } });",
        "export const noKey = featureView({ name: 'no_key', entities: [entity({ name: 'weld', joinKeys: ['weld_id'] })], source: readings, schema: { speed: 'float32' } });",
        "export const keyTyped = featureView({ name: 'key_typed', entities: [entity({ name: 'noted', joinKeys: ['note'], valueType: 'int64' })], source: readings, schema: { speed: 'float32' } });",
        "export const floatKey = featureView({ name: 'float_key', entities: [entity({ name: 'fast', joinKeys: ['speed'] })], source: readings, schema: { note: 'string' } });",
        "export const aggOnText = featureView({ name: 'agg_on_text', entities: [driver], source: readings, aggregations: [{ column: 'note', functions: ['max'], windows: ['1m'] }] });",
        "export const aggMissing = featureView({ name: 'agg_missing', entities: [driver], source: readings, aggregations: [{ column: 'nope', functions: ['max'], windows: ['1m'] }] });",
        "export const aggProto = featureView({ name: 'agg_proto', entities: [driver], source: readings, aggregations: [{ column: 'toString', functions: ['max'], windows: ['1m'] }] });",
        "export const protoKey = featureView({ name: 'proto_key', entities: [entity({ name: 'p', joinKeys: ['constructor'] })], source: readings, schema: { speed: 'float32' } });",
        "export const empty = featureService({ name: 'empty', features: [driverStats.select()] });",
        "export const twice = featureService({ name: 'twice', features: [driverStats.select('conv_rate', 'conv_rate')] });",
        'export const nothing = undefined; export default 42;',
        "export const hostile = new Proxy({}, { get() { throw new Error('a getter that throws'); } });",
        "export const getterKind = { get kind() { throw new Error('kind getter'); } };",
      ),
    )
    .map((extra) => ({ extra })),
  fc
    .constantFrom(
      // Duplicates across files, and circular imports.
      `${HEADER}export const again = featureView({ name: 'driver_stats', entities: ['driver'], source: fileSource({ name: 'stats_b', path: 'data/stats.csv', timestampField: 'event_timestamp' }), schema: { conv_rate: 'float64' } });`,
      `${HEADER}export const again = entity({ name: 'driver', joinKeys: ['driver_id'] });`,
      `${HEADER}export const again = pushSource({ name: 'readings', schema: { driver_id: 'int64' }, timestampField: 'event_timestamp' });`,
      `${HEADER}import { driverStats } from './a.ts';\nexport const svc2 = featureService({ name: 'svc', features: [driverStats] });`,
      `${HEADER}import { driver } from './a.ts';\nexport const early = driver.name.length;`,
      `${HEADER}import { early } from './c.ts';\nexport const x = early;`,
      `${HEADER}export const fine = entity({ name: 'rider', joinKeys: ['rider_id'] });`,
    )
    .map((other) => ({ other })),
);

const repoArb = fc.array(mutationArb, { minLength: 0, maxLength: 3 }).map((changes) => Object.assign({}, GOOD, ...changes) as Slots);

describe('the loader on generated repos', () => {
  let root: string;
  let n = 0;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'larder-fuzz-defs-'));
  });
  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  async function writeRepo(slots: Slots): Promise<string> {
    const dir = join(root, `r${n++}`);
    await mkdir(join(dir, 'data'), { recursive: true });
    await writeFile(join(dir, 'data', 'stats.csv'), 'driver_id,event_timestamp,conv_rate,words\n1,2024-01-01T00:00:00Z,0.5,\n');
    await writeFile(join(dir, 'a.ts'), fileText(slots));
    if (slots.other) {
      await writeFile(join(dir, 'b.ts'), slots.other);
      // For the circular case: c.ts imports b.ts, which imports c.ts.
      await writeFile(join(dir, 'c.ts'), `import { x } from './b.ts';\nexport const early = 1;\nexport const y = x;\n`);
    }
    return dir;
  }

  it('the good repo loads, so refusals below are about what was changed', async () => {
    const dir = await writeRepo(GOOD);
    const { repo, warnings } = await loadCanonicalRepo(dir);
    expect(warnings).toEqual([]);
    expect(repo.featureViews.map((v) => v.name)).toEqual(['driver_stats', 'speed_stats']);
  });

  it('plan/apply on a changed repo: it loads whole and sound, or one DefinitionError naming the file or object', async () => {
    const outcomes = { loaded: 0, refused: 0 };
    await fc.assert(
      fc.asyncProperty(repoArb, async (slots) => {
        const dir = await writeRepo(slots);
        let defs: Definitions;
        let repo: CanonicalRepo;
        try {
          // What `plan` and `apply` do before the registry: load, validate against the sources, canonical JSON.
          defs = await loadDefinitions(dir);
          await validateDefinitions(defs);
          repo = toCanonical(defs);
        } catch (err) {
          expectCleanError(err);
          // Names where: a file of the repo, or an object by kind.
          expect(err.message).toMatch(/\b[abc]\.ts\b|entity|source|featureView|featureService|feature view|feature service|entities/i);
          outcomes.refused++;
          return;
        }
        outcomes.loaded++;
        expect(JSON.parse(JSON.stringify(repo))).toEqual(repo); // plain JSON: no NaN, Infinity or undefined lost
        for (const e of defs.entities.values()) checkEntity(e);
        for (const v of defs.views.values()) {
          checkView(v);
          for (const e of v.entities) expect(defs.entities.get(e.name)).toBe(e);
        }
        for (const s of defs.services.values()) for (const p of s.projections) for (const f of p.features) expect(Object.hasOwn(p.view.schema, f)).toBe(true);
      }),
      { numRuns: 120 },
    );
    // Both outcomes happen: the generator is neither all good nor all bad.
    expect(outcomes.loaded).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(0);
  });
});

// ---------------------------------------------------------------------------------------------
// `larder apply` and `larder plan` on a few fixed bad repos

describe('larder apply and plan on bad repos', () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'larder-fuzz-cli-'));
  });
  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  const GOOD_FILE = fileText(GOOD);
  const CASES: { case: string; files: Record<string, string>; line: RegExp; command?: 'plan' }[] = [
    { case: 'a syntax error', files: { 'a.ts': `${GOOD_FILE}\nexport const broken = featureView({ name: 'x',, });\n` }, line: /a\.ts/ },
    { case: 'a window of 400 digits', files: { 'a.ts': fileText({ ...GOOD, aggView: `{ name: 'speed_stats', entities: [driver], source: readings, aggregations: [{ column: 'speed', functions: ['mean'], windows: ['${'9'.repeat(400)}h'] }] }` }) }, line: /featureView 'speed_stats': aggregations\.0\.windows: .*longer than the longest duration/ },
    { case: 'a window that makes no feature name', files: { 'a.ts': fileText({ ...GOOD, aggView: `{ name: 'speed_stats', entities: [driver], source: readings, aggregations: [{ column: 'speed', functions: ['mean'], windows: ['1.5m'] }] }` }) }, line: /featureView 'speed_stats': aggregations\.0\.windows: the feature name 'speed_mean_1\.5m' is not an identifier/ },
    { case: 'a push source typing its event time as a string', files: { 'a.ts': fileText({ ...GOOD, pushSource: `{ name: 'readings', schema: { driver_id: 'int64', speed: 'float32', event_timestamp: 'string' }, timestampField: 'event_timestamp' }` }) }, line: /pushSource 'readings': schema\.event_timestamp: .*timestamp/ },
    { case: 'a join key typed apart from its entity', files: { 'a.ts': fileText({ ...GOOD, pushSource: `{ name: 'readings', schema: { driver_id: 'string', speed: 'float32' }, timestampField: 'event_timestamp' }` }) }, line: /featureView 'speed_stats': join key 'driver_id' is int64 in entity 'driver' but string in push source 'readings'/ },
    { case: 'an object that only looks like a definition', files: { 'a.ts': `${GOOD_FILE}\nexport const fake = { kind: 'featureView', name: 'fake' };\n` }, line: /a\.ts: featureView 'fake': / },
    { case: 'a file that throws what has no text', files: { 'a.ts': `${GOOD_FILE}\nthrow { toString() { throw new Error('no text either'); } };\n` }, line: /a\.ts: / },
    { case: 'the same view in two files', files: { 'a.ts': GOOD_FILE, 'b.ts': `${HEADER}export const again = featureView({ name: 'driver_stats', entities: ['driver'], source: fileSource({ name: 'stats_b', path: 'data/stats.csv', timestampField: 'event_timestamp' }), schema: { conv_rate: 'float64' } });\n` }, line: /two feature views are named 'driver_stats': in .*a\.ts and .*b\.ts/, command: 'plan' },
    { case: 'circular imports read before they are set', files: { 'a.ts': GOOD_FILE, 'b.ts': `${HEADER}import { early } from './c.ts';\nexport const x = early;\n`, 'c.ts': `import { x } from './b.ts';\nexport const early = 1;\nexport const y = x;\n` }, line: /[bc]\.ts: .*(before initialization|not defined)/, command: 'plan' },
    { case: 'an entity name of 300 characters', files: { 'a.ts': fileText({ ...GOOD, entity: `{ name: '${'d'.repeat(300)}', joinKeys: ['driver_id'], valueType: 'int64' }` }) }, line: /entity 'd{10}.*': name: .*at most 128 characters/ },
  ];

  it('exit 1 with one line naming the file or object, no stack, and the registry file unchanged', async () => {
    const results = await Promise.all(
      CASES.map(async (c, i) => {
        const repo = join(root, `case${i}`);
        const home = join(repo, '.larder');
        await mkdir(join(repo, 'data'), { recursive: true });
        await writeFile(join(repo, 'data', 'stats.csv'), 'driver_id,event_timestamp,conv_rate,words\n1,2024-01-01T00:00:00Z,0.5,\n');
        // A registry with the good repo applied, so "unchanged" is about something.
        await writeFile(join(repo, 'a.ts'), GOOD_FILE);
        const registry = new FileRegistry(join(home, 'registry.json'));
        await registry.apply((await loadCanonicalRepo(repo)).repo);
        await registry.close();
        const before = await readFile(join(home, 'registry.json'));
        for (const [name, text] of Object.entries(c.files)) await writeFile(join(repo, name), text);
        const result = await runLarder(c.command === 'plan' ? ['plan'] : ['apply', '--force'], { cwd: root, env: { LARDER_REPO: repo, LARDER_HOME: home, LARDER_DEBUG: '' } });
        return { c, result, before, after: await readFile(join(home, 'registry.json')) };
      }),
    );
    for (const { c, result, before, after } of results) {
      const lines = result.stderr.trimEnd().split('\n');
      expect({ case: c.case, code: result.code, lines }).toMatchObject({ case: c.case, code: 1, lines: [expect.stringMatching(c.line)] });
      expect(result.stderr, c.case).not.toMatch(/^\s+at /m);
      expect(after.equals(before), `${c.case}: the registry file is unchanged`).toBe(true);
    }
  });
});
