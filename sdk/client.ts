/**
 * `LarderClient`: a thin HTTP client for `larder serve` (CONTRACT s.5, s.6). It depends on
 * apache-arrow only; everything it takes from `src/` is types.
 *
 * Connections: requests go through the global `fetch` (Node's undici), whose dispatcher keeps
 * connections alive and reuses them across calls; every response body is read to its end so its
 * connection goes back to the pool. Pass `fetch` to use another dispatcher (undici's `Agent` with
 * other pool sizes or keep-alive timeouts).
 */
import { tableFromIPC, tableToIPC, type Table } from 'apache-arrow';
import { LarderClientError, LarderConnectionError, LarderHttpError, LarderPushError, LarderTimeoutError } from './errors.js';
import type {
  AnyProjection,
  AnyService,
  AnyView,
  CallOptions,
  EntitiesInput,
  FeastOnlineResponse,
  FeatureInput,
  FeatureStatus,
  HealthResult,
  HistoricalFeaturesRequest,
  OnlineFeaturesRequest,
  OnlineRow,
  OnlineRowWithStatus,
  PredictInput,
  PredictResponse,
  PushOptions,
  PushResult,
  RegistryResponse,
  ReviewQueueResponse,
  ServiceInput,
} from './types.js';

export interface LarderClientOptions {
  /** Base URL of the server, e.g. `http://localhost:6566`. */
  url: string;
  /** Sent as `Authorization: Bearer <apiKey>` (required by write endpoints when the server has `LARDER_API_KEYS`). */
  apiKey?: string;
  /** Default timeout of a call, in milliseconds (default 10 s). */
  timeoutMs?: number;
  /** Extra headers sent with every request. */
  headers?: Record<string, string>;
  /** The fetch to use (default: the global one). */
  fetch?: typeof globalThis.fetch;
}

export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_PUSH_BATCH_SIZE = 1000;
const ARROW_STREAM = 'application/vnd.apache.arrow.stream';
const JSON_TYPE = 'application/json';

type Columns = Record<string, unknown[]>;

interface RequestSpec extends CallOptions {
  method: 'GET' | 'POST';
  path: string;
  query?: Record<string, string | undefined>;
  /** A JSON value, or Arrow IPC bytes. */
  json?: unknown;
  arrow?: Uint8Array;
  accept: 'json' | 'arrow';
  /** Resolve with the status instead of throwing on non-2xx (health checks). */
  allowError?: boolean;
  /** Reads: safe to send again when a reused connection turns out closed. */
  retryable?: boolean;
}

export class LarderClient {
  readonly url: string;
  readonly timeoutMs: number;
  readonly #apiKey: string | undefined;
  readonly #headers: Record<string, string>;
  readonly #fetch: typeof globalThis.fetch;

  constructor(options: LarderClientOptions) {
    if (!options || typeof options.url !== 'string' || !/^https?:\/\//.test(options.url)) {
      throw new TypeError(`LarderClient: url must be an http(s) URL, got ${JSON.stringify(options?.url)}`);
    }
    // A base path (`http://gateway/larder`) is kept: endpoint paths are appended to it.
    this.url = options.url.replace(/\/+$/, '');
    this.timeoutMs = positive(options.timeoutMs, 'timeoutMs') ?? DEFAULT_TIMEOUT_MS;
    this.#apiKey = options.apiKey || undefined;
    this.#headers = { ...options.headers };
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  // -------------------------------------------------------------------------------------------
  // Online features

  /**
   * Online values of the features for the entities, one row per entity:
   * `[{ driver_id: 1001, conv_rate: 0.5 }, ...]`. Join keys come first; a value whose status is
   * not PRESENT is null. Given definition objects (a service, projections or views) the row type
   * is inferred from them; given names, rows are `Record<string, unknown>`. `raw: true` answers
   * the server's Feast response as is.
   */
  getOnlineFeatures<
    const Fs extends readonly FeatureInput[] = never,
    const Svc extends ServiceInput = never,
    E extends EntitiesInput = EntitiesInput,
    F extends boolean = false,
  >(request: OnlineFeaturesRequest<Fs, Svc, E, F> & { raw: true }): Promise<FeastOnlineResponse>;
  getOnlineFeatures<
    const Fs extends readonly FeatureInput[] = never,
    const Svc extends ServiceInput = never,
    E extends EntitiesInput = EntitiesInput,
    F extends boolean = false,
  >(request: OnlineFeaturesRequest<Fs, Svc, E, F> & { raw?: false }): Promise<OnlineRow<Fs, Svc, E, F>[]>;
  async getOnlineFeatures(
    request: OnlineFeaturesRequest<readonly FeatureInput[], ServiceInput, EntitiesInput, boolean> & { raw?: boolean },
  ): Promise<FeastOnlineResponse | Record<string, unknown>[]> {
    const response = await this.#online(request);
    if (request.raw) return response;
    const decoders = columnDecoders(response, request);
    return response.results.length === 0 ? [] : zip(response, (i) => rowAt(response, i, decoders));
  }

  /** As `getOnlineFeatures`, with each column's status and event timestamp beside the values. */
  async getOnlineFeaturesWithStatus<
    const Fs extends readonly FeatureInput[] = never,
    const Svc extends ServiceInput = never,
    E extends EntitiesInput = EntitiesInput,
    F extends boolean = false,
  >(request: OnlineFeaturesRequest<Fs, Svc, E, F>): Promise<OnlineRowWithStatus<OnlineRow<Fs, Svc, E, F>>[]> {
    const response = await this.#online(request as OnlineFeaturesRequest<readonly FeatureInput[], ServiceInput, EntitiesInput, boolean>);
    const decoders = columnDecoders(response, request);
    const names = response.metadata.feature_names;
    return zip(response, (i) => {
      const statuses: Record<string, FeatureStatus> = {};
      const eventTimestamps: Record<string, string> = {};
      names.forEach((name, j) => {
        const column = response.results[j]!;
        statuses[name] = column.statuses[i] ?? 'PRESENT';
        eventTimestamps[name] = column.event_timestamps[i]!;
      });
      return { values: rowAt(response, i, decoders), statuses, eventTimestamps } as OnlineRowWithStatus<OnlineRow<Fs, Svc, E, F>>;
    }) as OnlineRowWithStatus<OnlineRow<Fs, Svc, E, F>>[];
  }

  async #online(request: OnlineFeaturesRequest<readonly FeatureInput[], ServiceInput, EntitiesInput, boolean>): Promise<FeastOnlineResponse> {
    const endpoint = 'POST /get-online-features';
    const body = {
      ...selectionBody(endpoint, request),
      entities: toColumns(endpoint, 'entities', request.entities),
      full_feature_names: request.fullNames ?? false,
    };
    const response = await this.#request({ method: 'POST', path: '/get-online-features', json: body, accept: 'json', retryable: true, ...callOptions(request) });
    return checkOnlineResponse(endpoint, response);
  }

  // -------------------------------------------------------------------------------------------
  // Historical features

  /**
   * A point-in-time dataset (CONTRACT s.3) as an Arrow table: the entity rows in input order with
   * every input column, then the feature columns. Entities given as an Arrow table go as an Arrow
   * IPC stream; columns or rows go as JSON.
   */
  async getHistoricalFeatures(request: HistoricalFeaturesRequest): Promise<Table> {
    const endpoint = 'POST /get-historical-features';
    const selection = selectionBody(endpoint, request);
    const options = { method: 'POST' as const, path: '/get-historical-features', accept: 'arrow' as const, retryable: true, ...callOptions(request) };
    if (isArrowTable(request.entities)) {
      const query = {
        features: selection.features?.join(','),
        feature_service: selection.feature_service,
        full_feature_names: request.fullNames ? 'true' : undefined,
        timestamp_column: request.timestampColumn,
      };
      return (await this.#request({ ...options, query, arrow: tableToIPC(request.entities, 'stream') })) as Table;
    }
    const json = {
      ...selection,
      entities: toColumns(endpoint, 'entities', request.entities),
      full_feature_names: request.fullNames ?? false,
      ...(request.timestampColumn !== undefined && { timestamp_column: request.timestampColumn }),
    };
    return (await this.#request({ ...options, json })) as Table;
  }

  // -------------------------------------------------------------------------------------------
  // Push

  /**
   * Pushes rows to a push source: objects, columns or an Arrow table. Rows go in batches of
   * `batchSize`, in order, each awaited; a failed batch stops the push with a `LarderPushError`
   * saying how many rows landed (the failed batch wrote nothing: the server writes a request whole
   * or not at all). `Date` values travel as ISO-8601 strings.
   */
  async push(
    pushSourceName: string,
    rows: readonly Readonly<Record<string, unknown>>[] | Readonly<Record<string, readonly unknown[]>> | Table,
    options: PushOptions = {},
  ): Promise<PushResult> {
    const endpoint = 'POST /push';
    if (typeof pushSourceName !== 'string' || !pushSourceName) throw new TypeError('push: pushSourceName must be a non-empty string');
    const batchSize = positive(options.batchSize, 'batchSize') ?? DEFAULT_PUSH_BATCH_SIZE;
    if (!Number.isInteger(batchSize)) throw new TypeError(`batchSize must be a whole number of rows, got ${batchSize}`);
    const to = options.to ?? 'online';
    const call = callOptions(options);

    let total: number;
    let send: (from: number, to: number) => Promise<unknown>;
    if (isArrowTable(rows)) {
      const table = rows;
      total = table.numRows;
      send = (from, end) =>
        this.#request({ method: 'POST', path: '/push', query: { push_source_name: pushSourceName, to }, arrow: tableToIPC(table.slice(from, end), 'stream'), accept: 'json', ...call });
    } else {
      const columns = toColumns(endpoint, 'rows', rows as EntitiesInput);
      total = columnLength(columns);
      send = (from, end) => {
        const df: Columns = {};
        for (const [name, values] of Object.entries(columns)) df[name] = values.slice(from, end);
        return this.#request({ method: 'POST', path: '/push', json: { push_source_name: pushSourceName, df, to }, accept: 'json', ...call });
      };
    }

    let pushed = 0;
    let batch = 0;
    for (let from = 0; from < total; from += batchSize, batch++) {
      const end = Math.min(total, from + batchSize);
      try {
        await send(from, end);
      } catch (err) {
        // A caller's abort is wrapped too: how many rows landed matters more than the error's class.
        throw new LarderPushError(endpoint, pushSourceName, pushed, total, batch, err);
      }
      pushed = end;
    }
    return { rows: pushed, batches: batch };
  }

  // -------------------------------------------------------------------------------------------
  // Predict, health, registry

  /**
   * Predictions of a model: for entities (`{ review_id: ['r1'] }` or `{ entities: {...} }`), or for
   * raw inputs the views' transforms turn into features (`{ inputs: { text: [...] } }`). One
   * prediction per input row, in order.
   */
  async predict<M extends string>(model: M, input: PredictInput, options: CallOptions = {}): Promise<PredictResponse<M>> {
    if (typeof model !== 'string' || !model) throw new TypeError('predict: model must be a non-empty string');
    const path = `/predict/${encodeURIComponent(model)}`;
    const endpoint = `POST ${path}`;
    const body = isWrapped(input, 'inputs')
      ? { inputs: toColumns(endpoint, 'inputs', input.inputs) }
      : { entities: toColumns(endpoint, 'entities', isWrapped(input, 'entities') ? input.entities : (input as EntitiesInput)) };
    const response = await this.#request({ method: 'POST', path, json: body, accept: 'json', ...callOptions(options) });
    const r = response as Partial<PredictResponse<M>> | null;
    if (!r || typeof r !== 'object' || !Array.isArray(r.predictions)) throw unexpected(endpoint, 'no predictions array');
    return r as PredictResponse<M>;
  }

  /** Predictions of a model waiting for a reviewer, oldest first (`GET /review-queue/{model}`). */
  async reviewQueue(model: string, options: CallOptions & { limit?: number } = {}): Promise<ReviewQueueResponse> {
    if (typeof model !== 'string' || !model) throw new TypeError('reviewQueue: model must be a non-empty string');
    const query = options.limit === undefined ? undefined : { limit: String(options.limit) };
    return (await this.#request({ method: 'GET', path: `/review-queue/${encodeURIComponent(model)}`, ...(query && { query }), accept: 'json', ...callOptions(options) })) as ReviewQueueResponse;
  }

  /** A reviewer's label (0 or 1) for a queued prediction: it becomes a training label of the model's next `larder train`. */
  async labelReview(model: string, id: string, label: 0 | 1, options: CallOptions & { reviewer?: string } = {}): Promise<unknown> {
    if (typeof model !== 'string' || !model) throw new TypeError('labelReview: model must be a non-empty string');
    if (typeof id !== 'string' || !id) throw new TypeError('labelReview: id must be a non-empty string');
    if (label !== 0 && label !== 1) throw new TypeError(`labelReview: label must be 0 or 1, got ${String(label)}`);
    const json = { label, ...(options.reviewer !== undefined && { reviewer: options.reviewer }) };
    return this.#request({ method: 'POST', path: `/review-queue/${encodeURIComponent(model)}/${encodeURIComponent(id)}/label`, json, accept: 'json', ...callOptions(options) });
  }

  /** `GET /health`: `ok` when every store answers (200); a 503 resolves with `ok: false` and the server's body. */
  async health(options: CallOptions = {}): Promise<HealthResult> {
    const { status, body } = (await this.#request({ method: 'GET', path: '/health', accept: 'json', allowError: true, retryable: true, ...callOptions(options) })) as { status: number; body: unknown };
    return { ok: status === 200, status, body: (body && typeof body === 'object' ? body : { error: String(body) }) as HealthResult['body'] };
  }

  /** `GET /registry`: the applied version and its definitions (canonical JSON). */
  async registry(options: CallOptions = {}): Promise<RegistryResponse> {
    const response = (await this.#request({ method: 'GET', path: '/registry', accept: 'json', retryable: true, ...callOptions(options) })) as RegistryResponse | null;
    if (!response || typeof response !== 'object' || typeof response.version !== 'string') throw unexpected('GET /registry', 'no version');
    return response;
  }

  // -------------------------------------------------------------------------------------------
  // Transport

  async #request(spec: RequestSpec): Promise<unknown> {
    const endpoint = `${spec.method} ${spec.path}`;
    let url = this.url + spec.path;
    const query = Object.entries(spec.query ?? {}).filter((e): e is [string, string] => e[1] !== undefined);
    if (query.length) url += `?${new URLSearchParams(query)}`;

    const headers: Record<string, string> = {
      accept: spec.accept === 'arrow' ? ARROW_STREAM : JSON_TYPE,
      ...this.#headers,
    };
    if (this.#apiKey) headers.authorization = `Bearer ${this.#apiKey}`;
    let body: RequestInit['body'];
    if (spec.arrow) {
      headers['content-type'] = ARROW_STREAM;
      body = spec.arrow;
    } else if (spec.json !== undefined) {
      headers['content-type'] = JSON_TYPE;
      body = JSON.stringify(spec.json, jsonReplacer);
    }

    const timeoutMs = positive(spec.timeoutMs, 'timeoutMs') ?? this.timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = spec.signal ? AbortSignal.any([spec.signal, timeout]) : timeout;
    // The signal also bounds reading the body, so a server that stalls mid-answer times out too.
    const failed = (err: unknown): never => {
      if (spec.signal?.aborted) throw spec.signal.reason;
      if (timeout.aborted) throw new LarderTimeoutError(endpoint, timeoutMs, err);
      if (err instanceof LarderClientError) throw err;
      throw new LarderConnectionError(endpoint, url, err);
    };

    let res: Response | undefined;
    for (let attempt = 0; !res; attempt++) {
      try {
        res = await this.#fetch(url, { method: spec.method, headers, body, signal });
      } catch (err) {
        // A kept-alive connection the server closed just as it was reused: reads (nothing
        // written, so safe to repeat) go once more, on a fresh connection.
        if (spec.retryable && attempt === 0 && !signal.aborted && isStaleConnection(err)) continue;
        return failed(err);
      }
    }
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (err) {
      return failed(err);
    }

    const type = res.headers.get('content-type') ?? '';
    if (!res.ok && !spec.allowError) {
      const parsed = parseJson(bytes, type);
      const error = parsed && typeof parsed === 'object' && typeof (parsed as { error?: unknown }).error === 'string' ? (parsed as { error: string }).error : textOf(bytes) || res.statusText || 'error';
      throw new LarderHttpError(endpoint, res.status, error, parsed && typeof parsed === 'object' ? (parsed as { detail?: unknown }).detail : undefined);
    }
    if (spec.allowError) return { status: res.status, body: parseJson(bytes, type) ?? textOf(bytes) };
    if (spec.accept === 'arrow') {
      if (!type.startsWith(ARROW_STREAM) && !type.startsWith('application/vnd.apache.arrow')) {
        throw unexpected(endpoint, `expected ${ARROW_STREAM}, got '${type || 'no content type'}'`);
      }
      try {
        return tableFromIPC(bytes);
      } catch (err) {
        throw unexpected(endpoint, `not an Arrow IPC stream (${(err as Error).message})`);
      }
    }
    if (bytes.length === 0) return null;
    const parsed = parseJson(bytes, 'application/json');
    if (parsed === undefined) throw unexpected(endpoint, `not JSON: ${textOf(bytes).slice(0, 200)}`);
    return parsed;
  }
}

// ---------------------------------------------------------------------------------------------
// Request bodies

/** The wire names of a selection: `features` as `view:feature` references, or `feature_service`. */
function selectionBody(
  endpoint: string,
  request: { features?: readonly FeatureInput[] | undefined; service?: ServiceInput | undefined },
): { features?: string[]; feature_service?: string } {
  const hasFeatures = request.features !== undefined;
  const hasService = request.service !== undefined;
  if (hasFeatures === hasService) throw new TypeError(`${endpoint}: give exactly one of features and service`);
  if (hasService) {
    const service = request.service!;
    if (typeof service === 'string') return { feature_service: service };
    if (isKind(service, 'featureService')) return { feature_service: (service as AnyService).name };
    throw new TypeError(`${endpoint}: service must be a service name or a featureService() definition`);
  }
  if (!Array.isArray(request.features)) throw new TypeError(`${endpoint}: features must be an array`);
  return { features: request.features.flatMap((f, i) => refsOf(endpoint, f, i)) };
}

function refsOf(endpoint: string, input: FeatureInput, i: number): string[] {
  if (typeof input === 'string') return [input];
  if (isKind(input, 'projection')) {
    const p = input as AnyProjection;
    return p.features.map((f) => `${p.view.name}:${f}`);
  }
  if (isKind(input, 'featureView')) {
    const v = input as AnyView;
    return Object.keys(v.schema).map((f) => `${v.name}:${f}`);
  }
  throw new TypeError(`${endpoint}: features[${i}]: expected 'view:feature', view.select(...) or a feature view`);
}

/** Entities or rows as the columns the server takes; rows may leave keys out (null). */
function toColumns(endpoint: string, field: string, input: EntitiesInput): Columns {
  if (Array.isArray(input)) {
    const rows = input as readonly Readonly<Record<string, unknown>>[];
    const names: string[] = [];
    const seen = new Set<string>();
    rows.forEach((row, i) => {
      if (!row || typeof row !== 'object' || Array.isArray(row)) throw new TypeError(`${endpoint}: ${field}[${i}]: expected an object`);
      for (const k of Object.keys(row)) if (!seen.has(k)) seen.add(k), names.push(k);
    });
    const columns: Columns = {};
    for (const name of names) columns[name] = rows.map((row) => (name in row ? row[name] : null));
    return columns;
  }
  if (!input || typeof input !== 'object') throw new TypeError(`${endpoint}: ${field}: expected columns ({ name: [...] }) or an array of rows`);
  const columns = input as Readonly<Record<string, readonly unknown[]>>;
  for (const [name, values] of Object.entries(columns)) {
    if (!Array.isArray(values)) throw new TypeError(`${endpoint}: ${field}.${name}: expected an array of values`);
  }
  return columns as Columns;
}

function columnLength(columns: Columns): number {
  let length: number | undefined;
  let first = '';
  for (const [name, values] of Object.entries(columns)) {
    if (length === undefined) (length = values.length), (first = name);
    else if (values.length !== length) throw new TypeError(`POST /push: rows.${name}: ${values.length} values, but rows.${first} has ${length}`);
  }
  return length ?? 0;
}

/**
 * JSON values as the server reads them: dates as ISO strings (their toJSON), bigints as numbers
 * when exact else decimal strings, bytes as base64. A `function` so it sees the value before
 * toJSON (a Buffer's toJSON would give `{ type, data }`).
 */
function jsonReplacer(this: unknown, key: string, value: unknown): unknown {
  const original = (this as Record<string, unknown>)[key];
  if (original instanceof Uint8Array) return encodeBase64(original);
  if (typeof value === 'bigint') return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
  return value;
}

function encodeBase64(bytes: Uint8Array): string {
  let binary = '';
  // In chunks: String.fromCharCode takes its arguments on the stack.
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

const callOptions = (o: CallOptions): CallOptions => ({
  ...(o.timeoutMs !== undefined && { timeoutMs: o.timeoutMs }),
  ...(o.signal !== undefined && { signal: o.signal }),
});

const isWrapped = <K extends 'entities' | 'inputs'>(input: PredictInput, key: K): input is Extract<PredictInput, Record<K, unknown>> => {
  if (Array.isArray(input) || !input || typeof input !== 'object') return false;
  const value = (input as Record<string, unknown>)[key];
  // Bare entity columns hold arrays; the wrapped forms hold columns or rows.
  return value !== undefined && value !== null && typeof value === 'object' && (Array.isArray(value) ? value.every((r) => r !== null && typeof r === 'object' && !Array.isArray(r)) && value.length > 0 : true);
};

// ---------------------------------------------------------------------------------------------
// Responses

function checkOnlineResponse(endpoint: string, response: unknown): FeastOnlineResponse {
  const r = response as Partial<FeastOnlineResponse> | null;
  if (!r || typeof r !== 'object' || !Array.isArray(r.metadata?.feature_names) || !Array.isArray(r.results)) {
    throw unexpected(endpoint, 'expected { metadata: { feature_names }, results }');
  }
  if (r.results.length !== r.metadata.feature_names.length) {
    throw unexpected(endpoint, `${r.metadata.feature_names.length} feature names but ${r.results.length} results`);
  }
  const rows = r.results[0]?.values?.length ?? 0;
  r.results.forEach((column, j) => {
    if (!Array.isArray(column?.values) || column.values.length !== rows) throw unexpected(endpoint, `results[${j}].values: expected ${rows} values`);
    column.statuses ??= [];
    column.event_timestamps ??= [];
  });
  return r as FeastOnlineResponse;
}

type Decoder = (value: unknown) => unknown;

/**
 * Per column, how to turn its JSON value into the TS value the definitions promise: only bytes
 * differ (base64 on the wire, Uint8Array in TS). Known only when definitions were given.
 */
function columnDecoders(response: FeastOnlineResponse, request: { features?: readonly FeatureInput[] | undefined; service?: ServiceInput | undefined; fullNames?: boolean | undefined }): (Decoder | undefined)[] {
  const types = new Map<string, string>();
  const add = (view: string, feature: string, type: string) => types.set(request.fullNames ? `${view}__${feature}` : feature, type);
  const projections: AnyProjection[] = [];
  if (request.service && typeof request.service !== 'string') projections.push(...request.service.projections);
  for (const f of request.features ?? []) {
    if (typeof f === 'string') continue;
    if (isKind(f, 'projection')) projections.push(f as AnyProjection);
    else if (isKind(f, 'featureView')) for (const name of Object.keys((f as AnyView).schema)) add((f as AnyView).name, name, (f as AnyView).schema[name]);
  }
  for (const p of projections) for (const name of p.features) add(p.view.name, name, p.view.schema[name]!);
  if (![...types.values()].includes('bytes')) return [];
  // Join keys come first and are never bytes; features are matched by output name.
  return response.metadata.feature_names.map((name) => (types.get(name) === 'bytes' ? decodeBase64 : undefined));
}

const decodeBase64: Decoder = (value) => (typeof value === 'string' ? Uint8Array.from(atob(value), (c) => c.charCodeAt(0)) : value);

function rowAt(response: FeastOnlineResponse, i: number, decoders: (Decoder | undefined)[]): Record<string, unknown> {
  const names = response.metadata.feature_names;
  const row: Record<string, unknown> = {};
  for (let j = 0; j < names.length; j++) {
    const column = response.results[j]!;
    const status = column.statuses[i];
    const value = status === undefined || status === 'PRESENT' ? (column.values[i] ?? null) : null;
    const decode = decoders[j];
    row[names[j]!] = decode && value !== null ? decode(value) : value;
  }
  return row;
}

const zip = <T>(response: FeastOnlineResponse, f: (i: number) => T): T[] => Array.from({ length: response.results[0]?.values.length ?? 0 }, (_, i) => f(i));

// ---------------------------------------------------------------------------------------------
// Helpers

const isKind = (v: unknown, kind: string): boolean => typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === kind;

/** An Arrow table, also one made by another copy of apache-arrow (so no instanceof). */
function isArrowTable(v: unknown): v is Table {
  const t = v as Partial<Table> | null;
  return typeof t === 'object' && t !== null && !Array.isArray(t) && typeof t.numRows === 'number' && Array.isArray(t.batches) && typeof t.schema === 'object';
}

function positive(v: number | undefined, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isFinite(v) || v <= 0) throw new TypeError(`${what} must be a positive number, got ${v}`);
  return v;
}

function parseJson(bytes: Uint8Array, type: string): unknown {
  // Some proxies drop the content type; a body that looks like JSON is tried anyway.
  if (bytes.length === 0 || !(/json/i.test(type) || bytes[0] === 0x7b)) return undefined;
  try {
    return JSON.parse(textOf(bytes));
  } catch {
    return undefined;
  }
}

const textOf = (bytes: Uint8Array): string => new TextDecoder().decode(bytes).trim().slice(0, 2000);

/** The error undici gives when the socket it sent on was already closed by the server. */
function isStaleConnection(err: unknown): boolean {
  const code = (err as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  return code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE';
}

const unexpected = (endpoint: string, what: string): LarderClientError => new LarderClientError(endpoint, `${endpoint}: unexpected response: ${what}`);
