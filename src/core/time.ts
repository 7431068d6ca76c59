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

/**
 * The longest duration taken: 10,000 years (3.15e14 ms). Longer ones ('1e6d', a 400-digit
 * number of hours, 1e300 seconds) used to parse to Infinity or to numbers past 2^53, which then
 * failed far from the definition: a Redis expiry "is not an integer" (a 500 on push), windows
 * read as endless tile ranges. An instant plus such a duration stays a safe integer.
 */
export const MAX_DURATION_MS = 10_000 * 365.25 * 86_400_000;

/**
 * A value as an error shows it: one short line whatever was given (a request body or a file may
 * hold a 10,000-character string with newlines in it), quoted, control characters escaped.
 */
function shownValue(value: unknown, max = 40): string {
  if (typeof value !== 'string') return String(value);
  const cut = value.length > max ? `${value.slice(0, max)}...` : value;
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f\u2028\u2029]/.test(cut) ? JSON.stringify(cut) : `'${cut}'`;
}
const shownDuration = (value: unknown): string => shownValue(value);

/** Parses a duration; throws with the offending text so callers can prefix the field path. */
export function parseDuration(value: Duration): DurationMs {
  let ms: number;
  let amount: number;
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new Error(`expected a non-negative number of seconds, got ${value}`);
    amount = value;
    ms = Math.round(value * 1000);
  } else if (typeof value === 'string') {
    const m = DURATION.exec(value.trim());
    if (!m) throw new Error(`expected a duration like '90s', '30m', '2h' or '7d', got ${shownDuration(value)}`);
    amount = Number(m[1]);
    ms = Math.round(amount * UNIT_MS[m[2]!]!);
  } else {
    // Definitions are JavaScript: a value of any type can reach here (it used to throw a TypeError).
    throw new Error(`expected a duration like '90s', '30m', '2h' or '7d', or a number of seconds, got ${value === null ? 'null' : typeof value}`);
  }
  if (!(ms <= MAX_DURATION_MS)) throw new Error(`${shownDuration(value)} is longer than the longest duration taken (10000 years)`);
  // A positive duration below half a millisecond would round to 0, which means "no limit" for a TTL.
  if (ms === 0 && amount > 0) {
    throw new Error(`${shownDuration(value)} is shorter than a millisecond`);
  }
  return asDurationMs(ms);
}

/**
 * The instants Larder takes: years 0000 to 9999, those ISO-8601 writes with four digits. Outside
 * them `toISOString()` writes `+010000-...` or `-000001-...`, which breaks the offline store's
 * `date=YYYY-MM-DD` partitions, and past the range of a JS Date (an epoch ms of 1e20) it throws a
 * RangeError: such instants used to be taken here and fail later as 500s.
 */
export const MIN_INSTANT_MS = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
export const MAX_INSTANT_MS = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z

function inRange(ms: number, value: unknown): EpochMs {
  if (ms < MIN_INSTANT_MS || ms > MAX_INSTANT_MS) {
    throw new Error(`${shownValue(value, 60)} is outside the instants taken (years 0000 to 9999 UTC)`);
  }
  return asEpochMs(ms);
}

/** ISO-8601 instants with an explicit zone; a bare date or date-time is read as UTC. */
export function parseInstant(value: string | number | Date): EpochMs {
  if (value instanceof Date) {
    const ms = value.getTime();
    if (Number.isNaN(ms)) throw new Error('invalid Date');
    return inRange(ms, value.toISOString());
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`expected epoch milliseconds, got ${value}`);
    return inRange(value, value);
  }
  if (typeof value !== 'string') throw new Error(`expected an ISO-8601 instant or epoch milliseconds, got ${value === null ? 'null' : typeof value}`);
  const text = value.trim();
  const shown = shownValue(value, 60);
  const m = /^(\d{4})-(\d{2})-(\d{2})([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/i.exec(text);
  if (!m) throw new Error(`expected an ISO-8601 instant like 2024-01-01T00:00:00Z, got ${shown}`);
  // Date.parse rolls a day past the month's end over ('2024-02-30' read as March 1st): refused.
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (month < 1 || month > 12 || day < 1 || day > new Date(Date.UTC(2000, month, 0)).getUTCDate() || (month === 2 && day === 29 && !isLeapYear(year))) {
    throw new Error(`expected an ISO-8601 instant, got ${shown} (no such date)`);
  }
  const hasZone = /(Z|[+-]\d{2}:?\d{2})$/i.test(text) && text.length > 10;
  const normalised = text.replace(' ', 'T');
  const ms = Date.parse(hasZone ? normalised : normalised.length === 10 ? `${normalised}T00:00:00Z` : `${normalised}Z`);
  if (Number.isNaN(ms)) throw new Error(`expected an ISO-8601 instant, got ${shown}`);
  return inRange(ms, value);
}

const isLeapYear = (y: number): boolean => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;

export const formatInstant = (ms: EpochMs | number): string => new Date(ms).toISOString();

/** UTC calendar date of an instant, as used by the offline store's `date=` partitions. */
export const utcDate = (ms: EpochMs | number): string => new Date(ms).toISOString().slice(0, 10);

export const DAY_MS = 86_400_000;
