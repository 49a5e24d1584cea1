/**
 * Classification of exchange request failures: ccxt's error class first, the HTTP status where
 * ccxt's mapping is ambiguous (Binance's 429 and 418 are both `DDoSProtection`, a 500 with
 * -1001 is `OperationFailed`, a 503 with -1008 a plain `ExchangeError`).
 *
 * @module
 */
import ccxt from "ccxt";
import { redactor } from "../secrets.ts";

/** What a failed request means for the caller. */
export type FailureKind =
  /** Transient (network, timeout, 5xx, maintenance): retry with backoff. */
  | "retryable"
  /** Request rate exceeded (HTTP 429 or ccxt `RateLimitExceeded`/`DDoSProtection`): pause the limiter. */
  | "rate_limited"
  /** IP ban (HTTP 418, or 403 with Retry-After): pause the whole exchange. */
  | "banned"
  /** Not retried: bad symbol, bad request, authentication, unsupported. */
  | "fatal";

/** The outcome of {@linkcode classifyFailure}. */
export interface Classification {
  kind: FailureKind;
  /** ccxt error class name (e.g. `BadSymbol`), or `HTTP<status>` / the JS error name. */
  code: string;
  /** HTTP status of the response, when one arrived. */
  status?: number;
  /** Delay the exchange asked for (Retry-After), in ms. */
  retryAfterMs?: number;
  /** The exchange's (or ccxt's) message. */
  message: string;
}

/** Kinds of {@linkcode ExchangeRequestError}. */
export type ExchangeErrorKind =
  /** Not retried: the request itself is wrong (bad symbol, bad request, authentication). */
  | "fatal"
  /** Retried until the attempt budget ran out. */
  | "exhausted"
  /** The series is not served (symbol not listed, timeframe not offered); nothing was requested. */
  | "invalid_series";

/** Thrown by the exchange client when a request cannot be completed; the caller marks the series failed. */
export class ExchangeRequestError extends Error {
  /** Why it failed, see {@linkcode ExchangeErrorKind}. */
  readonly kind: ExchangeErrorKind;
  /** ccxt error class name of the last failure (e.g. `BadSymbol`, `RequestTimeout`), or `InvalidSeries`. */
  readonly code: string;
  /** ccxt exchange id. */
  readonly exchange: string;
  /** HTTP status of the last failed response, when there was one. */
  readonly status?: number;
  /** Requests made for this operation. */
  readonly attempts: number;
  /** Creates the error; secrets in `message` (ccxt may quote URLs and headers) are masked. */
  constructor(
    message: string,
    fields: { kind: ExchangeErrorKind; code: string; exchange: string; status?: number; attempts: number },
    options?: { cause?: unknown },
  ) {
    super(redactor().scrub(message), options);
    this.name = "ExchangeRequestError";
    this.kind = fields.kind;
    this.code = fields.code;
    this.exchange = fields.exchange;
    this.status = fields.status;
    this.attempts = fields.attempts;
  }
}

/** Parses a Retry-After header value (seconds or an HTTP date) into ms; undefined when absent or invalid. */
export function parseRetryAfter(value: string | undefined | null, nowMs: number): number | undefined {
  if (value === undefined || value === null || value.trim() === "") return undefined;
  const trimmed = value.trim();
  if (/^[0-9]+(\.[0-9]+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  if (Number.isFinite(at)) return Math.max(0, at - nowMs);
  return undefined;
}

/** Looks a header up case-insensitively. */
export function headerValue(headers: Record<string, unknown> | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  const wanted = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() === wanted && v !== undefined && v !== null) return String(v);
  }
  return undefined;
}

const FATAL_CLASSES = [
  "BadRequest",
  "BadSymbol",
  "AuthenticationError",
  "PermissionDenied",
  "AccountSuspended",
  "ArgumentsRequired",
  "NotSupported",
] as const;

/**
 * Classifies a failure of one request. `status` and `headers` are those of the response that
 * failed, when one arrived (the client records them per request, so concurrent requests do not
 * mix them up as `exchange.last_response_headers` would).
 */
export function classifyFailure(
  error: unknown,
  status: number | undefined,
  headers: Record<string, unknown> | undefined,
  nowMs: number,
): Classification {
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  const retryAfterMs = parseRetryAfter(headerValue(headers, "retry-after"), nowMs);
  const base = { code, status, retryAfterMs, message };
  if (status === 418) return { kind: "banned", ...base };
  if (status === 403 && retryAfterMs !== undefined) return { kind: "banned", ...base };
  if (status === 429) return { kind: "rate_limited", ...base };
  // Fatal classes first: a 400 BadSymbol must not be retried whatever else holds.
  for (const name of FATAL_CLASSES) {
    const cls = (ccxt as unknown as Record<string, new (...a: unknown[]) => Error>)[name];
    if (cls && error instanceof cls) return { kind: "fatal", ...base };
  }
  if (error instanceof ccxt.RateLimitExceeded || error instanceof ccxt.DDoSProtection) {
    return { kind: "rate_limited", ...base };
  }
  if (status !== undefined && status >= 500) return { kind: "retryable", ...base };
  if (error instanceof ccxt.OperationFailed) return { kind: "retryable", ...base };
  if (error instanceof ccxt.ExchangeError) return { kind: "fatal", ...base };
  // Not a ccxt error: a transport failure surfaced raw, or a bug. Only the former is retried.
  if (error instanceof TypeError && /fetch|network|connect/i.test(message)) return { kind: "retryable", ...base };
  return { kind: "fatal", ...base };
}

/**
 * Why a failed request shows that the exchange did not answer: no response at all (network
 * error, timeout), a 5xx, or ccxt's `ExchangeNotAvailable`/`OnMaintenance`. Null when the
 * exchange did answer: a 429 or a ban (it is there and asks us to wait), a rejected request.
 */
export function unreachableReason(error: unknown, failure: Classification): string | null {
  if (failure.kind !== "retryable") return null;
  const noResponse = failure.status === undefined;
  const serverFailed = failure.status !== undefined && failure.status >= 500;
  if (!noResponse && !serverFailed && !(error instanceof ccxt.ExchangeNotAvailable)) return null;
  return redactor().scrub(`${failure.code}${failure.status ? ` (HTTP ${failure.status})` : ""}: ${failure.message}`);
}

/** The ccxt error class name (or JS error name) of `error`. */
export function errorCode(error: unknown): string {
  if (error instanceof Error) {
    return error.constructor?.name && error.constructor.name !== "Error" ? error.constructor.name : error.name;
  }
  return typeof error;
}
