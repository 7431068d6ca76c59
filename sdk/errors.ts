/** Errors the SDK throws: one base class, so `catch (e) { if (e instanceof LarderClientError) ... }` covers all. */

export class LarderClientError extends Error {
  /** `POST /get-online-features`: the call that failed. */
  readonly endpoint: string;

  constructor(endpoint: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LarderClientError';
    this.endpoint = endpoint;
  }
}

/** The server answered 4xx or 5xx; `error` and `detail` are its `{ "error": ..., "detail": ... }`. */
export class LarderHttpError extends LarderClientError {
  readonly status: number;
  /** The server's one-line error (or the body's text when it was not JSON). */
  readonly error: string;
  /** The server's machine-readable detail (the field at fault...), when given. */
  readonly detail: unknown;

  constructor(endpoint: string, status: number, error: string, detail: unknown) {
    super(endpoint, `${endpoint} answered ${status}: ${error}${shownDetail(error, detail)}`);
    this.name = 'LarderHttpError';
    this.status = status;
    this.error = error;
    this.detail = detail;
  }
}

/** No answer within the call's timeout. */
export class LarderTimeoutError extends LarderClientError {
  readonly timeoutMs: number;

  constructor(endpoint: string, timeoutMs: number, cause: unknown) {
    super(endpoint, `${endpoint}: no answer within ${timeoutMs} ms`, { cause });
    this.name = 'LarderTimeoutError';
    this.timeoutMs = timeoutMs;
  }
}

/** The server could not be reached, or the connection broke (the cause says how). */
export class LarderConnectionError extends LarderClientError {
  constructor(endpoint: string, url: string, cause: unknown) {
    super(endpoint, `${endpoint}: could not reach ${url}: ${describe(cause)}`, { cause });
    this.name = 'LarderConnectionError';
  }
}

/**
 * A batch of a push failed: the batches before it landed (`rowsPushed`), it and the later ones
 * did not. `cause` is the batch's error (a LarderHttpError, a timeout, or the caller's abort).
 */
export class LarderPushError extends LarderClientError {
  readonly pushSource: string;
  /** Rows of the batches the server accepted before the failure. */
  readonly rowsPushed: number;
  readonly totalRows: number;
  /** 0-based index of the batch that failed. */
  readonly batch: number;
  /** The HTTP status of the failed batch, when the server answered. */
  readonly status: number | undefined;

  constructor(endpoint: string, pushSource: string, rowsPushed: number, totalRows: number, batch: number, cause: unknown) {
    super(endpoint, `push '${pushSource}': batch ${batch + 1} failed after ${rowsPushed} of ${totalRows} rows landed: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'LarderPushError';
    this.pushSource = pushSource;
    this.rowsPushed = rowsPushed;
    this.totalRows = totalRows;
    this.batch = batch;
    this.status = cause instanceof LarderHttpError ? cause.status : undefined;
  }
}

/** The detail, when it adds to the message: the server's `{ field }` repeats what the error starts with. */
const shownDetail = (error: string, detail: unknown): string => {
  if (detail === undefined || detail === null) return '';
  const d = detail as { field?: unknown };
  if (typeof d === 'object' && Object.keys(d).length === 1 && typeof d.field === 'string' && error.startsWith(d.field)) return '';
  const text = typeof detail === 'string' ? detail : JSON.stringify(detail);
  return ` (${text.length > 300 ? `${text.slice(0, 300)}...` : text})`;
};

// undici's "fetch failed" hides the reason in `cause` (ECONNREFUSED, socket hang up...).
const describe = (err: unknown): string => {
  const e = err as { message?: string; cause?: { message?: string; code?: string } } | undefined;
  const inner = e?.cause?.code ?? e?.cause?.message;
  return inner ? `${e?.message ?? String(err)} (${inner})` : (e?.message ?? String(err));
};
