/**
 * API error classes and the ONE function that maps them to HTTP responses
 * ({@linkcode errorResponse}). Handlers throw; `server.ts` catches and maps.
 *
 * @module
 */
import { isTransientDbError } from "../db/client.ts";
import { SeriesRequestError } from "../ingest/engine.ts";
import { redactor } from "../secrets.ts";

/** One problem with one request parameter. */
export interface ErrorDetail {
  /** Parameter path, e.g. `limit` or `body.symbol`. */
  parameter: string;
  /** What is wrong with it. */
  problem: string;
}

/** Base of the API's error classes: an error whose name is its class's name. */
export class ApiError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The request is malformed: a parameter is missing, of the wrong type or out of range. */
export class BadRequestError extends ApiError {
  /** One entry per problem found. */
  readonly details: ErrorDetail[];
  /** Creates the error. */
  constructor(message: string, details: ErrorDetail[] = []) {
    super(message);
    this.details = details;
  }
}

/** The route, series or timeframe does not exist. */
export class NotFoundError extends ApiError {}

/** The route exists but not for this method. */
export class MethodNotAllowedError extends ApiError {
  /** Methods the route accepts, for the `Allow` header. */
  readonly allow: string[];
  /** Creates the error. */
  constructor(method: string, path: string, allow: string[]) {
    super(`Cannot ${method} ${path}: allowed methods are ${allow.join(", ")}`);
    this.allow = allow;
  }
}

/** The bearer token is missing or wrong. */
export class UnauthorizedError extends ApiError {}

/** The route is disabled by configuration (no API_TOKEN). */
export class ForbiddenError extends ApiError {}

/** The request body is larger than allowed. */
export class PayloadTooLargeError extends ApiError {}

/** The request body has a content type the route does not accept. */
export class UnsupportedMediaTypeError extends ApiError {}

/** A dependency (database, ingest engine) is not available right now, or the service is full. */
export class ServiceUnavailableError extends ApiError {
  /** Seconds the client is told to wait (`Retry-After`). */
  readonly retryAfterSeconds: number;
  /** Creates the error. */
  constructor(message: string, retryAfterSeconds = 5) {
    super(message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/**
 * Thrown by an {@linkcode IngestControl} implementation to reject a request: `status` is 400
 * (invalid market or timeframe), 404 (unknown series or exchange) or 409 (conflict).
 */
export class IngestRequestError extends Error {
  /** HTTP status the API answers with: 400, 404 or 409. */
  readonly status: number;
  /** Creates the error. */
  constructor(status: 400 | 404 | 409, message: string) {
    super(message);
    this.name = "IngestRequestError";
    this.status = status;
  }
}

/** Body of every error response. */
export interface ErrorBody {
  error: string;
  details?: ErrorDetail[];
}

/** A JSON response with the right content type. */
export function json(body: unknown, init: ResponseInit = {}): Response {
  const headers = new Headers(init.headers);
  headers.set("content-type", "application/json; charset=utf-8");
  return new Response(JSON.stringify(body), { ...init, headers });
}

/** The HTTP status for an error thrown by a handler (500 for anything unexpected). */
export function errorStatus(error: unknown): number {
  if (error instanceof BadRequestError) return 400;
  if (error instanceof UnauthorizedError) return 401;
  if (error instanceof ForbiddenError) return 403;
  if (error instanceof NotFoundError) return 404;
  if (error instanceof MethodNotAllowedError) return 405;
  if (error instanceof PayloadTooLargeError) return 413;
  if (error instanceof UnsupportedMediaTypeError) return 415;
  if (error instanceof IngestRequestError || error instanceof SeriesRequestError) {
    return [400, 404, 409, 422].includes(error.status) ? error.status : 500;
  }
  if (error instanceof ServiceUnavailableError || isTransientDbError(error)) return 503;
  return 500;
}

/**
 * Maps an error to its response: the one place that knows which error class means which
 * status. Unexpected errors become a 500 whose body does not leak internals; every message
 * that is sent is scrubbed of secrets (see secrets.ts).
 */
export function errorResponse(error: unknown): Response {
  const status = errorStatus(error);
  const headers = new Headers();
  if (error instanceof MethodNotAllowedError) headers.set("allow", error.allow.join(", "));
  if (error instanceof UnauthorizedError) headers.set("www-authenticate", 'Bearer realm="candlekeep"');
  if (status === 503) {
    headers.set("retry-after", String(error instanceof ServiceUnavailableError ? error.retryAfterSeconds : 5));
  }
  let body: ErrorBody;
  if (status === 500) {
    body = { error: "Internal server error; the details are in the service log" };
  } else if (status === 503 && !(error instanceof ServiceUnavailableError)) {
    body = { error: "Database unavailable; try again shortly" };
  } else {
    const r = redactor();
    body = { error: r.message(error) };
    if (error instanceof BadRequestError) {
      body.details = error.details.map((d) => ({ parameter: r.scrub(d.parameter), problem: r.scrub(d.problem) }));
    }
  }
  return json(body, { status, headers });
}
