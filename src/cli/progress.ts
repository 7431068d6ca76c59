/**
 * Progress of a long command (CONTRACT s.4: "long commands show progress on a terminal"). On a
 * TTY one line redrawn in place, `backfill review_text  812,000 rows  163k rows/s  00:05`, with a
 * bar when the total is known; off a TTY (logs, pipes) nothing until the final summary line.
 */

export interface Progress {
  /** Adds rows done. */
  tick(rows: number): void;
  /** Sets the rows done so far (for callers that count cumulatively). */
  update(rows: number): void;
  /** Clears the line and prints the summary (default: label, rows, rate and time) on stdout. */
  done(summary?: string): void;
  readonly rows: number;
}

export interface ProgressOptions {
  total?: number;
  /** Where the live line goes (default stderr, so stdout stays parseable). */
  stream?: NodeJS.WriteStream;
  /** Where the summary goes (default stdout). */
  out?: NodeJS.WritableStream;
  /** Draw the live line (default: when `stream` is a TTY). */
  live?: boolean;
  /** Milliseconds between redraws. */
  intervalMs?: number;
  now?: () => number;
}

const BAR_WIDTH = 24;

export function createProgress(label: string, options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  const out = options.out ?? process.stdout;
  const live = options.live ?? Boolean(stream.isTTY);
  const interval = options.intervalMs ?? 100;
  const now = options.now ?? (() => performance.now());
  const began = now();
  let rows = 0;
  let drawnAt = -Infinity;
  let drawn = false;

  const draw = (force: boolean): void => {
    if (!live) return;
    const t = now();
    if (!force && t - drawnAt < interval) return;
    drawnAt = t;
    const line = formatLine(label, rows, options.total, (t - began) / 1000);
    const width = stream.columns || 100; // 0 when the terminal does not say
    stream.write(`\r${line.slice(0, Math.max(10, width - 1))}\x1b[K`);
    drawn = true;
  };

  return {
    get rows() {
      return rows;
    },
    tick(n) {
      rows += n;
      draw(false);
    },
    update(n) {
      rows = n;
      draw(false);
    },
    done(summary) {
      if (drawn) stream.write('\r\x1b[K');
      const seconds = (now() - began) / 1000;
      out.write(`${summary ?? `${label}: ${formatCount(rows)} rows in ${seconds.toFixed(1)} s (${formatRate(rows, seconds)})`}\n`);
    },
  };
}

/** `backfill review_text  [######----]  812,000 / 1,000,000 rows  163k rows/s  00:05`. */
export function formatLine(label: string, rows: number, total: number | undefined, seconds: number): string {
  const parts = [label];
  if (total !== undefined && total > 0) {
    const filled = Math.min(BAR_WIDTH, Math.round((rows / total) * BAR_WIDTH));
    parts.push(`[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}]`, `${formatCount(rows)} / ${formatCount(total)} rows`);
  } else {
    parts.push(`${formatCount(rows)} rows`);
  }
  parts.push(formatRate(rows, seconds), formatElapsed(seconds));
  return parts.join('  ');
}

export const formatCount = (n: number): string => Math.round(n).toLocaleString('en-US');

export function formatRate(rows: number, seconds: number): string {
  if (seconds <= 0) return '- rows/s';
  const rate = rows / seconds;
  if (rate >= 1e6) return `${(rate / 1e6).toFixed(1)}M rows/s`;
  if (rate >= 1e3) return `${Math.round(rate / 1e3)}k rows/s`;
  return `${Math.round(rate)} rows/s`;
}

export function formatElapsed(seconds: number): string {
  const s = Math.floor(seconds);
  const hh = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return hh > 0 ? `${hh}:${mm}:${ss}` : `${mm}:${ss}`;
}
