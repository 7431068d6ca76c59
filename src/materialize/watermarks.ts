/**
 * Materialization watermarks, kept in the registry's state beside the definitions: per view, the
 * end of the last materialized window, so `larder materialize --end T` without `--start` loads
 * only rows with event time in (watermark, T]: a row exactly at the watermark went online with
 * the run that set it.
 */
import { asEpochMs, formatInstant, parseInstant, type EpochMs } from '../core/time.js';
import type { Registry } from '../registry/registry.js';

export interface Watermark {
  /** Rows with event time at or before this are online (those fresh at it). ISO-8601. */
  end: string;
  /** When the window was materialized. ISO-8601. */
  materializedAt: string;
}

export const watermarkKey = (view: string): string => `materialize:${view}`;

export async function getWatermark(registry: Registry, view: string): Promise<EpochMs | undefined> {
  const state = await registry.getState<Watermark>(watermarkKey(view));
  return state?.end ? parseInstant(state.end) : undefined;
}

/** Moves the watermark to `end`, never back: re-materializing an older range leaves it. */
export async function advanceWatermark(registry: Registry, view: string, end: EpochMs, now: EpochMs = asEpochMs(Date.now())): Promise<EpochMs> {
  const previous = await getWatermark(registry, view);
  const next = previous !== undefined && previous > end ? previous : end;
  await registry.setState(watermarkKey(view), { end: formatInstant(next), materializedAt: formatInstant(now) } satisfies Watermark);
  return next;
}
