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
  /**
   * Request families the exchange limits separately (Binance: spot, USDⓈ-M `fapi`, COIN-M
   * `dapi`, and `/futures/data`), each with its own weight per cost unit and default limit.
   * The family of a request comes from ccxt's API name (`fapiPublic`) or its URL. Absent: one
   * family (`limit`, `weightPerCost`).
   */
  families?: {
    of(api: string): string;
    ofUrl(url: string): string;
    /**
     * Per family: weight per ccxt cost unit, default limit, and whether the used-weight header
     * of its responses counts its own budget (`/futures/data` answers carry the futures host's
     * weight, not its own request count).
     */
    settings: Record<
      string,
      { weightPerCost: number; limit: PublishedLimit; ownUsageHeader?: false; burst?: number }
    >;
  };
}

/** The family of the requests an exchange limits together when it has no families. */
export const DEFAULT_FAMILY = "spot";

/** Binance's request families from ccxt's API name: fapi*, dapi*, the `*Data` (`/futures/data`) ones, else spot. */
function binanceFamily(api: string): string {
  if (/^(fapi|dapi)Data/.test(api)) return "futures-data";
  if (api.startsWith("fapi")) return "fapi";
  if (api.startsWith("dapi")) return "dapi";
  return DEFAULT_FAMILY;
}

/** Binance's request families from a URL path. */
function binanceFamilyOfUrl(url: string): string {
  if (url.includes("/futures/data")) return "futures-data";
  if (url.includes("/fapi/")) return "fapi";
  if (url.includes("/dapi/")) return "dapi";
  return DEFAULT_FAMILY;
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
    const spot = { capacity: (60_000 / Math.max(1, rateLimitMs)) * 5, windowMs: 60_000 };
    return {
      weightPerCost: 5,
      limit: spot,
      usedWeightHeader: "x-mbx-used-weight-1m",
      parseLimit: parseBinanceWeightLimit,
      // ccxt's futures tables give Binance's own weights (klines by limit: 1, 2, 5, 10);
      // USDⓈ-M and COIN-M publish 2400 a minute each; /futures/data allows 1000 requests per 5 min.
      families: {
        of: binanceFamily,
        ofUrl: binanceFamilyOfUrl,
        settings: {
          spot: { weightPerCost: 5, limit: spot },
          fapi: { weightPerCost: 1, limit: { capacity: 2400, windowMs: 60_000 } },
          dapi: { weightPerCost: 1, limit: { capacity: 2400, windowMs: 60_000 } },
          // A fixed window of 1000 requests per 5 minutes: a few dozen at once are well inside it.
          "futures-data": {
            weightPerCost: 1,
            limit: { capacity: 1000, windowMs: 300_000 },
            ownUsageHeader: false,
            burst: 100,
          },
        },
      },
    };
  }
  if (id === "kraken") return { weightPerCost: 1, limit: generic, historyLimit: 720 };
  return { weightPerCost: 1, limit: generic };
}
