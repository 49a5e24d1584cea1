/**
 * Per-exchange knowledge of published request limits. Everything Binance-shaped in the exchange
 * layer lives here: the REQUEST_WEIGHT limit in `exchangeInfo.rateLimits` and the
 * `x-mbx-used-weight-1m` usage header. Other exchanges use ccxt's own `rateLimit` and cost table.
 *
 * @module
 */

/** A published limit: `capacity` weight per `windowMs`. */
export interface PublishedLimit {
  capacity: number;
  windowMs: number;
}

/** How to turn ccxt's request costs into the exchange's weights and where usage is reported. */
export interface UsageProfile {
  /** Exchange weight of one unit of ccxt's endpoint cost. */
  weightPerCost: number;
  /** The limit assumed until the exchange publishes one. */
  limit: PublishedLimit;
  /** Response header carrying the weight used in the current window, if any. */
  usedWeightHeader?: string;
  /** Reads the published limit out of a response body (e.g. exchangeInfo), or null. */
  parseLimit?(url: string, body: string): PublishedLimit | null;
  /** Most recent candles the exchange serves at all (Kraken: 720); older history is unreachable. */
  historyLimit?: number;
}

const INTERVAL_MS: Record<string, number> = { SECOND: 1_000, MINUTE: 60_000, HOUR: 3_600_000, DAY: 86_400_000 };

/** Parses Binance's `rateLimits` REQUEST_WEIGHT entry from an exchangeInfo body. */
export function parseBinanceWeightLimit(url: string, body: string): PublishedLimit | null {
  if (!url.includes("exchangeInfo") || !body.includes("rateLimits")) return null;
  try {
    const parsed = JSON.parse(body) as {
      rateLimits?: { rateLimitType?: string; interval?: string; intervalNum?: number; limit?: number }[];
    };
    const entry = parsed.rateLimits?.find((r) => r.rateLimitType === "REQUEST_WEIGHT");
    if (!entry || !entry.interval || !(Number(entry.limit) > 0)) return null;
    const unit = INTERVAL_MS[entry.interval];
    if (unit === undefined) return null;
    return { capacity: Number(entry.limit), windowMs: unit * (Number(entry.intervalNum) || 1) };
  } catch {
    return null;
  }
}

/**
 * The usage profile of exchange `id`; `rateLimit` is ccxt's ms per unit of cost. ccxt's Binance
 * spot table counts 1 cost = 5 weight (rateLimit 50 ms → 1200 cost = 6000 weight per minute,
 * klines cost 0.4 = weight 2).
 */
export function usageProfile(id: string, rateLimitMs: number): UsageProfile {
  const generic: PublishedLimit = { capacity: 60_000 / Math.max(1, rateLimitMs), windowMs: 60_000 };
  if (id === "binance" || id === "binanceus") {
    return {
      weightPerCost: 5,
      limit: { capacity: (60_000 / Math.max(1, rateLimitMs)) * 5, windowMs: 60_000 },
      usedWeightHeader: "x-mbx-used-weight-1m",
      parseLimit: parseBinanceWeightLimit,
    };
  }
  if (id === "kraken") return { weightPerCost: 1, limit: generic, historyLimit: 720 };
  return { weightPerCost: 1, limit: generic };
}
