/**
 * The HTTP API: {@linkcode createHandler} builds a plain `Request → Response` function
 * (testable without a port); {@linkcode serveApi} serves it with `Deno.serve` behind the
 * connection limits of `guard.ts`. Errors thrown by handlers are mapped to statuses in one
 * place, `errors.ts`.
 *
 * @module
 */
import { getFundingRates } from "./funding.ts";
import type { Config } from "../config_types.ts";
import type { Database } from "../db/client.ts";
import { getLogger } from "../log.ts";
import { type ConnectionLimits, type GuardedServer, serveGuarded } from "./guard.ts";
import type { Registry } from "../metrics.ts";
import { getCandles } from "./candles.ts";
import { getExport } from "./export.ts";
import type { ExchangeStatusProvider } from "./readiness.ts";
import { admissionGate } from "./admission.ts";
import { asset } from "./dashboard.ts";
import { errorResponse, json } from "./errors.ts";
import { getOpenInterest } from "./open_interest.ts";
import { corsPreflight, linkBase, withCors, withGzip } from "./http_manners.ts";
import { openApiDocument } from "./openapi.ts";
import { NoQuery, parseQuery } from "./params.ts";
import { type Handler, Router } from "./router.ts";
import { addSeriesRoute, type IngestControl, listSeriesRoute, removeSeriesRoute, seriesGapsRoute } from "./series.ts";
import { health, installApiMetrics, metrics, ready } from "./system.ts";
import { getStream } from "./stream.ts";
import { StreamHub } from "./stream_hub.ts";

export type { IngestControl } from "./series.ts";
export type { ExchangeStatusProvider } from "./readiness.ts";
export { IngestRequestError } from "./errors.ts";
export { type ConnectionLimits, DEFAULT_LIMITS } from "./guard.ts";

/** What the API needs. */
export interface ApiDeps {
  db: Database;
  config: Config;
  registry: Registry;
  /** The ingest engine's controls; absent → POST/DELETE /v1/series answer 503. */
  ingest?: IngestControl;
  /** Process start time (epoch ms) for `/health`; defaults to when the handler was created. */
  startedAt?: number;
  /** Clock, for tests; defaults to `Date.now`. */
  now?: () => number;
  /** Reachability of every configured exchange, judged by `/ready` and exported on `/metrics`; absent: not judged. */
  exchanges?: ExchangeStatusProvider;
  /**
   * Wake-ups of `GET /v1/stream` (a `LISTEN` connection, opened by the first stream). Default:
   * one of the router's own; whoever creates it closes it (`serveApi` does at shutdown).
   */
  streams?: StreamHub;
}

/** Builds the router with every route of the API. */
export function createRouter(deps: ApiDeps): Router {
  const now = deps.now ?? Date.now;
  const startedAt = deps.startedAt ?? now();
  const sql = deps.db.sql;
  const gate = admissionGate(sql, { limit: deps.config.http?.maxPages });
  const streams = deps.streams ?? new StreamHub(sql);
  const streamClients = deps.registry.gauge("candlekeep_stream_clients", "Open GET /v1/stream responses");
  const streamEvents = deps.registry.counter(
    "candlekeep_stream_events_total",
    "Candle events sent on GET /v1/stream, by kind (closed, forming)",
  );
  const streamDropped = deps.registry.counter(
    "candlekeep_stream_dropped_total",
    "GET /v1/stream clients dropped for reading too slowly",
  );
  deps.registry.collect(() => streamClients.set({}, streams.size));
  const streamOptions = {
    hub: streams,
    now,
    onEvent: (closed: boolean) => streamEvents.inc({ kind: closed ? "closed" : "forming" }),
    onDrop: () => streamDropped.inc(),
  };
  const noQuery = (fn: () => Response | Promise<Response>): Handler => (_req, { url }) => {
    parseQuery(url, NoQuery);
    return fn();
  };
  return new Router()
    .on("GET", "/v1/candles", (req, { url }) =>
      getCandles(sql, url, {
        gate,
        now,
        base: linkBase(req, deps.config.http ?? {}),
        ifNoneMatch: req.headers.get("if-none-match"),
      }))
    .on("GET", "/v1/export", (_req, { url }) => getExport(sql, url, { gate, now }))
    .on("GET", "/v1/stream", (req, { url }) => getStream(sql, req, url, streamOptions))
    .on(
      "GET",
      "/v1/funding-rates",
      (req, { url }) => getFundingRates(sql, url, { base: linkBase(req, deps.config.http ?? {}) }),
    )
    .on(
      "GET",
      "/v1/open-interest",
      (req, { url }) => getOpenInterest(sql, url, { base: linkBase(req, deps.config.http ?? {}) }),
    )
    .on("GET", "/v1/series", (_req, { url }) => listSeriesRoute(sql, url, now()))
    .on("POST", "/v1/series", (req, { url }) => addSeriesRoute(req, url, deps.config.apiToken, deps.ingest))
    .on(
      "DELETE",
      "/v1/series/:id",
      (req, { url, params }) => removeSeriesRoute(req, url, params.id, deps.config.apiToken, deps.ingest),
    )
    .on("GET", "/v1/series/:id/gaps", (_req, { url, params }) => seriesGapsRoute(sql, url, params.id, now()))
    .on("GET", "/health", noQuery(() => health(startedAt, now())))
    .on("GET", "/ready", noQuery(() => ready(deps.db, { exchanges: deps.exchanges, now })))
    .on("GET", "/metrics", noQuery(() => metrics(deps.registry)))
    .on("GET", "/openapi.json", (_req, { url }) => {
      parseQuery(url, NoQuery);
      return json(openApiDocument(url.origin));
    })
    .on("GET", "/", () => asset("/"))
    .on("GET", "/assets/:name", (_req, { params }) => asset(`/assets/${params.name}`));
}

const TEXT_TYPE = /^(text\/|application\/(json|javascript|xml|[^;]*\+json|[^;]*\+xml)\b)/i;

/**
 * `response` with `; charset=utf-8` added to a text content type that names no charset, so
 * every text response the API serves says its charset.
 */
export function withCharset(response: Response): Response {
  const type = response.headers.get("content-type");
  if (type === null || !TEXT_TYPE.test(type) || /;\s*charset=/i.test(type)) return response;
  const headers = new Headers(response.headers);
  headers.set("content-type", `${type}; charset=utf-8`);
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

/**
 * The API as one `Request → Response` function: routes, maps errors to statuses, records
 * `candlekeep_http_request_duration_seconds{method,route,status}` and logs method, path,
 * status and duration. Never throws.
 */
export function createHandler(deps: ApiDeps): (req: Request) => Promise<Response> {
  const router = createRouter(deps);
  const corsOrigins = deps.config.http?.corsOrigins ?? [];
  const log = getLogger("api");
  installApiMetrics(deps.registry, deps.db, { now: deps.now ?? Date.now, exchanges: deps.exchanges });
  const latency = deps.registry.histogram(
    "candlekeep_http_request_duration_seconds",
    "HTTP request latency by method, route and status",
  );
  return async (req: Request): Promise<Response> => {
    const started = performance.now();
    let url: URL;
    try {
      url = new URL(req.url);
    } catch {
      url = new URL("http://invalid/");
    }
    const method = req.method.toUpperCase();
    let route = "unmatched";
    let response: Response;
    try {
      const preflight = corsPreflight(req, corsOrigins);
      if (preflight) {
        route = "preflight";
        response = preflight;
      } else {
        const match = router.match(method, url.pathname);
        route = match.route;
        response = await match.handler(req, { url, params: match.params });
      }
      if (method === "HEAD") {
        // The GET body is never sent: cancel it so a streamed page frees its cursor and permit now.
        await response.body?.cancel().catch(() => {});
        response = new Response(null, { status: response.status, headers: response.headers });
      }
      response = await withGzip(req, withCharset(response));
    } catch (error) {
      response = errorResponse(error);
      if (response.status >= 500) {
        log.error("{method} {path} failed: {error}", { method, path: url.pathname, error });
      }
    }
    response = withCors(req, response, corsOrigins);
    const seconds = (performance.now() - started) / 1000;
    latency.observe({ method, route, status: String(response.status) }, seconds);
    // The access log: successful requests at debug (a dashboard polls), client errors at info.
    log[response.status >= 400 ? "info" : "debug"]("{method} {path} {status} {durationMs} ms", {
      method,
      path: url.pathname,
      status: response.status,
      durationMs: Math.round(seconds * 10_000) / 10,
    });
    return response;
  };
}

/** A running API server. */
export interface ApiServer {
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
  /** The port it listens on (useful with port 0). */
  port: number;
  /** Stops accepting connections and waits for running requests. */
  shutdown(): Promise<void>;
}

/**
 * Serves the API on `hostname:port` (0 picks a free port) until `signal` aborts or `shutdown()`,
 * behind the front of `guard.ts`: request heads must arrive within `limits.headerTimeoutMs`,
 * idle keep-alive connections are closed after `limits.idleTimeoutMs` and at most
 * `limits.maxConnections` are open ({@linkcode DEFAULT_LIMITS} unless given).
 */
export function serveApi(
  deps: ApiDeps,
  options: { hostname: string; port: number; signal?: AbortSignal; limits?: Partial<ConnectionLimits> },
): ApiServer {
  // Open streams never end by themselves: they are ended before the server waits for requests.
  const streams = deps.streams ?? new StreamHub(deps.db.sql);
  const handler = createHandler({ ...deps, streams });
  options.signal?.addEventListener("abort", () => streams.close(), { once: true });
  const log = getLogger("api");
  let server: GuardedServer;
  try {
    server = serveGuarded(handler, {
      hostname: options.hostname,
      port: options.port,
      signal: options.signal,
      limits: options.limits,
      onListen: ({ hostname, port }) => log.info("API listening on http://{hostname}:{port}", { hostname, port }),
      onClose: (reason) => log.debug("Closed a client connection: {reason}", { reason }),
    });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new Error(
        `Cannot serve the API on ${options.hostname}:${options.port}: the port is in use (is Candlekeep already running there?); set API_PORT to another port`,
      );
    }
    throw error;
  }
  return {
    finished: server.finished,
    port: server.port,
    shutdown: async () => {
      await streams.close();
      await server.shutdown();
    },
  };
}
