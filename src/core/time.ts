/** Milliseconds since the Unix epoch, UTC. Every instant inside Larder is one of these. */
export type EpochMs = number & { readonly __brand: 'EpochMs' };
/** A length of time in milliseconds. */
export type DurationMs = number & { readonly __brand: 'DurationMs' };

export const asEpochMs = (ms: number): EpochMs => ms as EpochMs;
export const asDurationMs = (ms: number): DurationMs => ms as DurationMs;

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** A written duration: '90s', '30m', '2h', '7d' (also 'ms' and 'w'), or a number of seconds. */
export type Duration = string | number;

/** Parses a duration; throws with the offending text so callers can prefix the field path. */
export function parseDuration(value: Duration): DurationMs {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new Error(`expected a non-negative number of seconds, got ${value}`);
    return asDurationMs(Math.round(value * 1000));
  }
  const m = DURATION.exec(value.trim());
  if (!m) throw new Error(`expected a duration like '90s', '30m', '2h' or '7d', got '${value}'`);
  return asDurationMs(Math.round(Number(m[1]) * UNIT_MS[m[2]!]!));
}

/** ISO-8601 instants with an explicit zone; a bare date or date-time is read as UTC. */
export function parseInstant(value: string | number | Date): EpochMs {
  if (value instanceof Date) {
    const ms = value.getTime();
    if (Number.isNaN(ms)) throw new Error('invalid Date');
    return asEpochMs(ms);
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`expected epoch milliseconds, got ${value}`);
    return asEpochMs(value);
  }
  const text = value.trim();
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/i.test(text)) {
    throw new Error(`expected an ISO-8601 instant like 2024-01-01T00:00:00Z, got '${value}'`);
  }
  const hasZone = /(Z|[+-]\d{2}:?\d{2})$/i.test(text) && text.length > 10;
  const normalised = text.replace(' ', 'T');
  const ms = Date.parse(hasZone ? normalised : normalised.length === 10 ? `${normalised}T00:00:00Z` : `${normalised}Z`);
  if (Number.isNaN(ms)) throw new Error(`expected an ISO-8601 instant, got '${value}'`);
  return asEpochMs(ms);
}

export const formatInstant = (ms: EpochMs | number): string => new Date(ms).toISOString();

/** UTC calendar date of an instant, as used by the offline store's `date=` partitions. */
export const utcDate = (ms: EpochMs | number): string => new Date(ms).toISOString().slice(0, 10);

export const DAY_MS = 86_400_000;
