/**
 * `GET /metrics` (Prometheus). Each server has its own prom-client registry, not the global one,
 * so several servers (tests, the SDK's) can run in one process.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Routes the histogram knows; anything else is `unmatched`, so a scan of random paths cannot grow the label set. */
export const ROUTES = ['/get-online-features', '/push', '/get-historical-features', '/health', '/metrics', '/registry', '/predict', '/review-queue'] as const;
export type RouteLabel = (typeof ROUTES)[number] | 'unmatched';

export type StoreLabel = 'online' | 'registry' | 'offline';

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly duration: Histogram<'route' | 'method' | 'status'>;
  private readonly storeErrors: Counter<'store'>;
  private readonly rowsPushed: Counter<'push_source' | 'to'>;
  /** The streaming issue counts events later than `allowedLateness` here; 0 until then. */
  readonly lateEvents: Counter<'view'>;
  private readonly predictions: Counter<'model' | 'version'>;
  private readonly reviewQueued: Counter<'model'>;
  /** `route method status` -> the histogram child: labels are looked up once, not per request. */
  private readonly children = new Map<string, Histogram.Internal<'route' | 'method' | 'status'>>();

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'larder_' });
    this.duration = new Histogram({
      name: 'larder_http_request_duration_seconds',
      help: 'Time from the request until its answer is written, by route, method and status',
      labelNames: ['route', 'method', 'status'],
      // Online reads take a millisecond or two; datasets and pushes seconds.
      buckets: [0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
    this.storeErrors = new Counter({ name: 'larder_store_errors_total', help: 'Store operations that failed or did not answer, by store', labelNames: ['store'], registers: [this.registry] });
    this.rowsPushed = new Counter({ name: 'larder_rows_pushed_total', help: 'Rows accepted by POST /push, by push source and target', labelNames: ['push_source', 'to'], registers: [this.registry] });
    this.lateEvents = new Counter({ name: 'larder_late_events_total', help: 'Pushed events later than their view allows online (written offline only)', labelNames: ['view'], registers: [this.registry] });
    for (const store of ['online', 'registry', 'offline'] as const) this.storeErrors.inc({ store }, 0);
    this.lateEvents.inc(0);
    this.predictions = new Counter({ name: 'larder_predictions_total', help: 'Predictions answered by POST /predict, by model and version', labelNames: ['model', 'version'], registers: [this.registry] });
    this.reviewQueued = new Counter({ name: 'larder_review_queued_total', help: 'Predictions queued for human review, by model', labelNames: ['model'], registers: [this.registry] });
  }

  observe(route: RouteLabel, method: string, status: number, seconds: number): void {
    const id = `${route} ${method} ${status}`;
    let child = this.children.get(id);
    if (!child) {
      child = this.duration.labels(route, method, String(status));
      this.children.set(id, child);
    }
    child.observe(seconds);
  }

  storeError(store: StoreLabel): void {
    this.storeErrors.inc({ store });
  }

  pushed(pushSource: string, to: string, rows: number): void {
    this.rowsPushed.inc({ push_source: pushSource, to }, rows);
  }

  predicted(model: string, version: string, rows: number): void {
    this.predictions.inc({ model, version }, rows);
  }

  queuedForReview(model: string, rows: number): void {
    this.reviewQueued.inc({ model }, rows);
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
