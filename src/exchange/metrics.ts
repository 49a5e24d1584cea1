import type { Registry } from "../metrics.ts";
import type { ExchangeClient } from "./client.ts";

/**
 * Exposes each exchange client's counters (requests, rate-limit responses, bans, errors by
 * class, rejected candles) as Prometheus metrics, refreshed when `/metrics` is rendered.
 */
export function registerExchangeMetrics(registry: Registry, clients: ReadonlyMap<string, ExchangeClient>): void {
  const requests = registry.counter("candlekeep_exchange_requests_total", "HTTP requests sent to the exchange");
  const limited = registry.counter("candlekeep_exchange_rate_limited_total", "Rate-limit responses (429) received");
  const banned = registry.counter("candlekeep_exchange_banned_total", "IP ban responses (418) received");
  const retries = registry.counter("candlekeep_exchange_retries_total", "Requests retried after a failure");
  const errors = registry.counter("candlekeep_exchange_errors_total", "Failed exchange requests by error class");
  const rejected = registry.counter("candlekeep_exchange_rejected_candles_total", "Candles rejected by validation");
  registry.collect(() => {
    for (const [exchange, client] of clients) {
      const s = client.stats();
      requests.setTotal({ exchange }, s.requests);
      limited.setTotal({ exchange }, s.rateLimited);
      banned.setTotal({ exchange }, s.banned);
      retries.setTotal({ exchange }, s.retries);
      rejected.setTotal({ exchange }, s.rejectedCandles);
      for (const [cls, n] of Object.entries(s.errorsByClass)) errors.setTotal({ exchange, class: cls }, n);
    }
  });
}
