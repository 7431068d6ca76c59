/**
 * Synthetic ultrasound readings from pipeline welds, and failure labels consistent with them.
 *
 * Sizing. The real pipeline has 1,000 welds x ~10 sensors at 10 Hz: 100k readings a second, so
 * even 10M readings are 100 s of it. A sample must instead cover hours (the model's longest
 * window is 1 h, its label horizon 1 h) over enough welds to give failure labels. So:
 *   - welds: round(N / 20,000), at least 4 and at most 1,000 (`--welds` overrides); a sample of
 *     the pipeline's welds, weld i at km 100 * (i + 0.5) / welds;
 *   - sensors per weld: 10 (`--sensors`);
 *   - span: 24 h from `start` (`--hours`, at least 2);
 *   - each sensor samples at 10 Hz in bursts of 10 readings (1 s, timestamps 100 ms apart), one
 *     burst every period P = span / ceil(N / (welds x sensors x 10)), rounded down to 100 ms;
 *     the sensors of a weld are staggered across P. At the defaults (N = 200k: 10 welds) a weld
 *     reports a burst every ~43 s: ~14 readings in 1 min, ~830 in 1 h. P = 1 s is a continuous
 *     10 Hz stream; more readings than that is an error.
 *   - exactly N readings: the last period stops when N is reached.
 *
 * Signals (per weld w, sensor s, time t):
 *   temperature = base_w (30 +- 2 C) + sensor offset + swing_w (3-5 C) x daily cycle (peak 15:00
 *                 UTC) + 8 C x sig + noise 0.25
 *   pressure    = 72 - 0.2 bar/km x km_w + 0.4 x sin(6 h pump cycle) - 1.2 x sig + noise 0.12
 *   amplitude   = (base_w (100 +- 6 mV) + sensor offset (+- 2.5)) x (1 + 0.3 sig) - 0.3 x daily
 *                 temperature swing + noise 1.5 x (1 + 3 sig)
 * where sig in [0, 1] is the failure signature: 70% of welds are failure-prone and fail every 5
 * to 13 hours (then are repaired); over the 2-4 h before a failure sig rises as p^2 (p the
 * fraction of that ramp elapsed), so amplitude mean and variance and temperature drift upwards.
 *
 * Labels: per weld every 10 min from start + 1 h (so 1 h windows are full) to the last period;
 * failed = a failure in (t, t + 1 h]. At least one failure is placed inside the labelled range, so
 * both classes are present.
 *
 * Drift (`--drift d`, 0-1): from the middle of the span on, amplitude means are multiplied by
 * 1 + 0.2 d and amplitude noise by 1 + 1.5 d, for a drift report to find. d does not change the
 * random draws, so the first half is identical whatever d is.
 */
import { InputError } from '../core/errors.js';
import { Random } from './random.js';

export interface WeldOptions {
  seed: number;
  readings: number;
  /** Epoch ms where the readings start. */
  start: number;
  hours: number;
  /** Default: round(readings / 20,000) within [4, 1000]. */
  welds?: number;
  sensors: number;
  drift: number;
}

export const SAMPLE_MS = 100; // 10 Hz
export const BURST = 10; // readings per burst: 1 s of 10 Hz
export const LABEL_EVERY_MS = 10 * 60_000;
export const HORIZON_MS = 3_600_000;
const HOUR_MS = 3_600_000;

interface Failure {
  /** Epoch ms of the failure. */
  at: number;
  /** How long before it the signature starts, ms. */
  ramp: number;
}

interface Weld {
  id: string;
  km: number;
  amplitude: number;
  temperature: number;
  swing: number;
  pressure: number;
  pumpPhase: number;
  /** Sorted by time. */
  failures: Failure[];
}

interface Sensor {
  weld: number;
  /** 1-based within its weld. */
  id: number;
  /** Offset of its bursts within a period, ms. */
  offset: number;
  amplitude: number;
  temperature: number;
  pressure: number;
}

export interface WeldPlan {
  welds: Weld[];
  /** All sensors, in the order of their burst offsets. */
  sensors: Sensor[];
  readings: number;
  start: number;
  spanMs: number;
  periodMs: number;
  periods: number;
  drift: number;
  seed: number;
  /** First and last label instants. */
  labelStart: number;
  labelEnd: number;
}

export function defaultWeldCount(readings: number, sensors: number): number {
  const byVolume = Math.min(1000, Math.max(4, Math.round(readings / 20_000)));
  return Math.max(1, Math.min(byVolume, Math.floor(readings / (sensors * BURST))));
}

/** Lays out welds, sensors and failures; validates the sizing (errors name the flag). */
export function planWelds(options: WeldOptions): WeldPlan {
  const { readings, start, hours, sensors: perWeld, drift, seed } = options;
  if (!Number.isInteger(readings) || readings < 1) throw new InputError(`--readings: expected a positive integer, got ${readings}`);
  if (!(hours >= 2)) throw new InputError(`--hours: expected at least 2 (labels need a full 1 h window and a 1 h horizon), got ${hours}`);
  if (!Number.isInteger(perWeld) || perWeld < 1 || perWeld > 64) throw new InputError(`--sensors: expected an integer from 1 to 64, got ${perWeld}`);
  if (!(drift >= 0 && drift <= 1)) throw new InputError(`--drift: expected a number from 0 to 1, got ${drift}`);
  const weldCount = options.welds ?? defaultWeldCount(readings, perWeld);
  if (!Number.isInteger(weldCount) || weldCount < 1 || weldCount > 1000) throw new InputError(`--welds: expected an integer from 1 to 1000, got ${weldCount}`);
  const sensorCount = weldCount * perWeld;
  if (readings < sensorCount * BURST) {
    throw new InputError(`--readings: ${readings} is less than one 1-second burst (${BURST} readings) for each of ${weldCount} welds x ${perWeld} sensors; lower --welds or --sensors`);
  }
  const spanMs = Math.round(hours * HOUR_MS);
  const periods = Math.ceil(readings / (sensorCount * BURST));
  const periodMs = Math.floor(spanMs / periods / SAMPLE_MS) * SAMPLE_MS;
  if (periodMs < BURST * SAMPLE_MS) {
    const max = sensorCount * Math.floor(spanMs / SAMPLE_MS);
    throw new InputError(`--readings: ${readings} is more than ${weldCount} welds x ${perWeld} sensors report at 10 Hz in ${hours} h (${max}); raise --hours or --welds`);
  }

  const rng = new Random(seed, 'welds/layout');
  const labelStart = start + HOUR_MS;
  const labelEnd = labelStart + Math.floor((start + periods * periodMs - labelStart) / LABEL_EVERY_MS) * LABEL_EVERY_MS;
  const welds: Weld[] = [];
  const sensors: Sensor[] = [];
  for (let w = 0; w < weldCount; w++) {
    const km = (100 * (w + 0.5)) / weldCount;
    const weld: Weld = {
      id: weldId(w),
      km,
      amplitude: 100 + 6 * rng.normal(),
      temperature: 30 + 2 * rng.normal(),
      swing: rng.uniform(3, 5),
      pressure: 72 - 0.2 * km + 0.3 * rng.normal(),
      pumpPhase: rng.uniform(0, 2 * Math.PI),
      failures: rng.chance(0.7) ? failureTimes(rng, start - 12 * HOUR_MS, start + spanMs + 2 * HORIZON_MS) : [],
    };
    welds.push(weld);
    const stagger = rng.next();
    for (let s = 0; s < perWeld; s++) {
      sensors.push({
        weld: w,
        id: s + 1,
        offset: Math.floor((((s + stagger) / perWeld) * periodMs) / SAMPLE_MS) * SAMPLE_MS,
        amplitude: 2.5 * rng.normal(),
        temperature: 0.2 * rng.normal(),
        pressure: 0.05 * rng.normal(),
      });
    }
  }
  // Both classes: if no failure falls where a label can see it, one weld fails there.
  if (!welds.some((w) => w.failures.some((f) => f.at > labelStart && f.at <= labelEnd))) {
    const at = labelStart + Math.round(0.6 * (labelEnd - labelStart)) + 5 * 60_000;
    const failures = welds[0]!.failures.filter((f) => f.at < at - 3 * HOUR_MS - 30 * 60_000 || f.at > at + 5 * HOUR_MS);
    failures.push({ at, ramp: 3 * HOUR_MS });
    welds[0]!.failures = failures.sort((a, b) => a.at - b.at);
  }
  sensors.sort((a, b) => a.offset - b.offset || a.weld - b.weld || a.id - b.id);
  return { welds, sensors, readings, start, spanMs, periodMs, periods, drift, seed, labelStart, labelEnd };
}

export const weldId = (index: number): string => `W${String(index + 1).padStart(4, '0')}`;

/** A failure-prone weld fails every 5-13 h; each failure's signature ramps over 2-4 h, never back past the previous failure. */
function failureTimes(rng: Random, from: number, to: number): Failure[] {
  const out: Failure[] = [];
  let previous = from - 24 * HOUR_MS;
  for (let at = from + rng.uniform(0, 13) * HOUR_MS; at < to; at += rng.uniform(5, 13) * HOUR_MS) {
    const t = Math.round(at);
    out.push({ at: t, ramp: Math.min(rng.uniform(2, 4) * HOUR_MS, t - previous - 30 * 60_000) });
    previous = t;
  }
  return out;
}

/** The failure signature of a weld at time t, in [0, 1]. */
export function signature(weld: Weld, t: number): number {
  for (const f of weld.failures) {
    if (f.at <= t) continue;
    const before = f.at - t;
    if (before > f.ramp) return 0;
    const p = 1 - before / f.ramp;
    return p * p;
  }
  return 0;
}

export type ReadingSink = (weld: number, sensor: number, t: number, amplitude: number, temperature: number, pressure: number) => void;

/** Emits exactly `plan.readings` readings, period by period (so roughly in time order). */
export function generateReadings(plan: WeldPlan, emit: ReadingSink): void {
  const rng = new Random(plan.seed, 'welds/readings');
  const { welds, sensors, start, periodMs, drift } = plan;
  const driftFrom = start + plan.spanMs / 2;
  let left = plan.readings;
  for (let k = 0; k < plan.periods && left > 0; k++) {
    for (const sensor of sensors) {
      const weld = welds[sensor.weld]!;
      const t0 = start + k * periodMs + sensor.offset;
      // Slow signals are constant over a 1 s burst.
      const sig = signature(weld, t0);
      const hourOfDay = (t0 / HOUR_MS) % 24;
      const daily = Math.sin((2 * Math.PI * (hourOfDay - 9)) / 24);
      const pump = 0.4 * Math.sin((2 * Math.PI * (t0 - start)) / (6 * HOUR_MS) + weld.pumpPhase);
      const late = t0 >= driftFrom;
      const amplitudeMean = (weld.amplitude + sensor.amplitude) * (1 + 0.3 * sig) * (late ? 1 + 0.2 * drift : 1) - 0.3 * weld.swing * daily;
      const amplitudeNoise = 1.5 * (1 + 3 * sig) * (late ? 1 + 1.5 * drift : 1);
      const temperatureMean = weld.temperature + sensor.temperature + weld.swing * daily + 8 * sig;
      const pressureMean = weld.pressure + sensor.pressure + pump - 1.2 * sig;
      const n = Math.min(BURST, left);
      for (let j = 0; j < n; j++) {
        emit(
          sensor.weld,
          sensor.id,
          t0 + j * SAMPLE_MS,
          amplitudeMean + amplitudeNoise * rng.normal(),
          temperatureMean + 0.25 * rng.normal(),
          pressureMean + 0.12 * rng.normal(),
        );
      }
      left -= n;
      if (left === 0) return;
    }
  }
}

export type LabelSink = (weld: number, t: number, failed: boolean) => void;

/** Labels every 10 min per weld from plan.labelStart to plan.labelEnd: failed = a failure in (t, t + 1 h]. */
export function generateLabels(plan: WeldPlan, emit: LabelSink): void {
  for (let t = plan.labelStart; t <= plan.labelEnd; t += LABEL_EVERY_MS) {
    plan.welds.forEach((weld, w) => {
      emit(w, t, weld.failures.some((f) => f.at > t && f.at <= t + HORIZON_MS));
    });
  }
}

export const labelCount = (plan: WeldPlan): number => plan.welds.length * (Math.floor((plan.labelEnd - plan.labelStart) / LABEL_EVERY_MS) + 1);
