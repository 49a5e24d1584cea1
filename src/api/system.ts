/**
 * Operational routes: `/health`, `/ready`, `/metrics`, and the metrics the API owns.
 *
 * @module
 */
import type { Database } from "../db/client.ts";
import { migrationsApplied } from "../db/migrate.ts";
import { seriesFreshness } from "../db/overview.ts";
import { HistoryGauges } from "../derivatives/history_metrics.ts";
import type { Registry } from "../metrics.ts";
import { getLogger } from "../log.ts";
import { timeframeMs } from "../timeframe.ts";
import { json } from "./errors.ts";
import { type ExchangeStatusProvider, exchangeVerdict } from "./readiness.ts";

/** How long `/ready` waits for the database before answering 503. */
export const READY_TIMEOUT_MS = 2_000;
/** Minimum time between two per-series metric refreshes (each is a grouped scan). */
export const COLLECT_INTERVAL_MS = 10_000;

/** Handles `GET /health`: the process is alive. */
export function health(startedAt: number, nowMs: number): Response {
  return json({ status: "ok", uptime_s: Math.max(0, Math.round((nowMs - startedAt) / 1000)) });
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Options of {@linkcode ready}. */
export interface ReadyOptions {
  /** The configured exchanges' reachability; absent: exchanges are not judged. */
  exchanges?: ExchangeStatusProvider;
  /** Clock (epoch ms); defaults to `Date.now`. */
  now?: () => number;
}

/**
 * Handles `GET /ready`. 503 `unavailable` with the reason(s) when the database does not answer
 * `select 1` within {@linkcode READY_TIMEOUT_MS}, a migration is not applied, or every
 * configured exchange has been unreachable for 60 s or more (`UNREACHABLE_AFTER_MS`; this
 * instance can update nothing); 200 `degraded` naming the exchanges unreachable that long when
 * only some are; else 200 `ready`. Every answer lists each exchange's status.
 */
export async function ready(db: Database, options: ReadyOptions = {}): Promise<Response> {
  const reasons: string[] = [];
  try {
    await withTimeout(db.sql`select 1`, READY_TIMEOUT_MS, "the database");
    db.markReady(true);
    const applied = await withTimeout(migrationsApplied(db.sql), READY_TIMEOUT_MS, "the migration check");
    if (!applied) reasons.push("migrations not applied: run `candlekeep migrate` or start the service to apply them");
  } catch (error) {
    db.markReady(false);
    reasons.push(`database unreachable at ${db.target}: ${(error as Error).message ?? String(error)}`);
  }
  const verdict = exchangeVerdict(options.exchanges?.() ?? [], (options.now ?? Date.now)());
  const exchanges = { exchanges: verdict.exchanges };
  if (reasons.length > 0 || verdict.state === "down") {
    if (verdict.state === "down") reasons.push("every configured exchange is unreachable");
    reasons.push(...verdict.reasons);
    return json(
      { status: "unavailable", reason: reasons.join("; "), reasons, unreachable: verdict.unreachable, ...exchanges },
      { status: 503, headers: { "retry-after": "5" } },
    );
  }
  if (verdict.state === "degraded") {
    return json({
      status: "degraded",
      reason: verdict.reasons.join("; "),
      reasons: verdict.reasons,
      unreachable: verdict.unreachable,
      ...exchanges,
    });
  }
  return json({ status: "ready", ...exchanges });
}

const collectorsInstalled = new WeakSet<Registry>();

/**
 * Adds the API's metrics to `registry` once: the request latency histogram, and a collector
 * refreshing per-series lag and stored-candle gauges and the funding and open-interest gauges of
 * {@linkcode HistoryGauges} (at most every {@linkcode COLLECT_INTERVAL_MS};
 * a database outage keeps the last values and is logged).
 */
export function installApiMetrics(
  registry: Registry,
  db: Database,
  options: { now: () => number; exchanges?: ExchangeStatusProvider },
): void {
  const now = options.now;
  registry.histogram(
    "candlekeep_http_request_duration_seconds",
    "HTTP request latency by method, route and status",
  );
  if (collectorsInstalled.has(registry)) return;
  collectorsInstalled.add(registry);
  const lag = registry.gauge(
    "candlekeep_series_lag_seconds",
    "Seconds between now and the close of the last stored candle, per series",
  );
  const stored = registry.gauge("candlekeep_series_candles_stored", "Candles stored per series");
  const histories = new HistoryGauges(registry);
  if (options.exchanges) installExchangeGauge(registry, options.exchanges);
  const log = getLogger("api");
  let last = -Infinity;
  let known = new Map<string, Record<string, string>>();
  registry.collect(async () => {
    const t = now();
    if (t - last < COLLECT_INTERVAL_MS) return;
    last = t;
    try {
      const rows = await withTimeout(seriesFreshness(db.sql), READY_TIMEOUT_MS * 2, "the metrics query");
      const seen = new Map<string, Record<string, string>>();
      for (const r of rows) {
        const labels = { series_id: String(r.id), exchange: r.exchange, symbol: r.symbol, timeframe: r.timeframe };
        seen.set(labels.series_id, labels);
        stored.set(labels, r.count);
        let step = 0;
        try {
          step = timeframeMs(r.timeframe);
        } catch { /* no fixed length */ }
        if (r.lastTs === null || step === 0) lag.delete(labels);
        else lag.set(labels, Math.max(0, (t - (r.lastTs + step)) / 1000));
      }
      for (const [id, labels] of known) {
        if (!seen.has(id)) {
          lag.delete(labels);
          stored.delete(labels);
        }
      }
      known = seen;
      await withTimeout(histories.refresh(db.sql, t), READY_TIMEOUT_MS * 2, "the funding and open-interest query");
    } catch (error) {
      last = -Infinity;
      log.warn("Cannot refresh series metrics: {reason}", { reason: (error as Error).message });
    }
  });
}

/** `candlekeep_exchange_up{exchange}`: 1 while the exchange answers, 0 from its first unanswered request on. */
function installExchangeGauge(registry: Registry, exchanges: ExchangeStatusProvider): void {
  const up = registry.gauge(
    "candlekeep_exchange_up",
    "1 when the exchange answers, 0 while its requests fail without an answer (network, timeout, 5xx, maintenance)",
  );
  registry.collect(() => {
    for (const s of exchanges()) up.set({ exchange: s.id }, s.reachable ? 1 : 0);
  });
}

/** Handles `GET /metrics`: the registry in Prometheus text format 0.0.4. */
export async function metrics(registry: Registry): Promise<Response> {
  return new Response(await registry.render(), {
    headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
  });
}
