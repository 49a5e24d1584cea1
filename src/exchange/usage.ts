/**
 * Per-exchange knowledge of published request limits. Everything Binance- or Bybit-shaped in the
 * exchange layer lives here: Binance's REQUEST_WEIGHT limit in `exchangeInfo.rateLimits` and its
 * `x-mbx-used-weight-1m` usage header; Bybit's IP limit (600 requests per 5 s, every request
 * counts 1), its `X-Bapi-Limit-Status` / `X-Bapi-Limit-Reset-Timestamp` headers and its 403 IP
 * ban. Other exchanges use ccxt's own `rateLimit` and cost table.
 *
 * @module
 */

import { type Classification, headerValue } from "./errors.ts";

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
  /**
   * Response headers carrying the requests left in the current window and the instant (ms since
   * the epoch) that window resets (Bybit: `X-Bapi-Limit-Status`, `X-Bapi-Limit-Reset-Timestamp`).
   */
  remainingHeaders?: { remaining: string; resetAt: string };
  /**
   * Weight of every request whatever ccxt's cost (Bybit's IP limit counts requests; ccxt's costs
   * encode its own, slower pace). Absent: ccxt's cost × `weightPerCost`.
   */
  weightPerRequest?: number;
  /** Share of the limit to use (default: the runner's, 0.97); lower where a breach costs a long ban. */
  safety?: number;
  /**
   * HTTP status by which the exchange bans the IP for breaching its limit, with or without
   * Retry-After (Bybit: 403 "access too frequent"), and how long to pause without Retry-After.
   */
  ban?: { status: number; pauseMs: number };
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

/** Bybit's published HTTP limit per IP: 600 requests in any 5-second window. */
export const BYBIT_IP_LIMIT: PublishedLimit = { capacity: 600, windowMs: 5_000 };

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
  if (id === "bybit") {
    // Bybit v5: 600 requests per 5-second window per IP across all its HTTP traffic (spot,
    // linear, inverse share it); a breach is answered with HTTP 403 "access too frequent" and an
    // IP ban of at least 10 minutes. The per-UID limits (retCode 10006) only cover private endpoints.
    return {
      weightPerCost: 1,
      weightPerRequest: 1,
      limit: BYBIT_IP_LIMIT,
      safety: 0.9,
      remainingHeaders: { remaining: "x-bapi-limit-status", resetAt: "x-bapi-limit-reset-timestamp" },
      ban: { status: 403, pauseMs: 600_000 },
    };
  }
  if (id === "kraken") return { weightPerCost: 1, limit: generic, historyLimit: 720 };
  return { weightPerCost: 1, limit: generic };
}

/**
 * The exchange's own reading of failure `c` where it differs from the generic one: its ban status
 * (Bybit's 403 is an IP ban even without Retry-After), and for a rate-limit answer without
 * Retry-After (Bybit's retCode 10006/10018) the window reset its usage headers name.
 */
export function refineFailure(
  profile: UsageProfile,
  c: Classification,
  options: { headers?: Record<string, unknown>; nowMs: number },
): Classification {
  const { headers, nowMs } = options;
  if (profile.ban && c.status === profile.ban.status && c.kind !== "fatal") return { ...c, kind: "banned" };
  const names = profile.remainingHeaders;
  if (c.kind === "rate_limited" && c.retryAfterMs === undefined && names) {
    const resetAt = Number(headerValue(headers, names.resetAt));
    if (Number.isFinite(resetAt) && resetAt > nowMs) return { ...c, retryAfterMs: Math.min(resetAt - nowMs, 60_000) };
  }
  return c;
}
