/**
 * Checks every candle before it may reach storage.
 *
 * @module
 */
import type { Candle } from "../candle.ts";
import { isAligned } from "../timeframe.ts";

/** A candle the exchange served that failed validation. */
export interface RejectedCandle {
  /** Open time (ms), or NaN when the timestamp itself was unusable. */
  ts: number;
  /** The broken rule, e.g. `high below max(open, close)`. */
  reason: string;
}

/** The outcome of {@linkcode validateCandles}. */
export interface ValidationResult {
  /** Valid candles, strictly increasing. */
  candles: Candle[];
  /** Invalid candles with the broken rule (never returned as candles). */
  rejected: RejectedCandle[];
  /** Timestamps served more than once; the first copy was kept. Not holes: the timestamp is covered. */
  duplicates: number[];
}

const FIELDS = ["ts", "open", "high", "low", "close", "volume"] as const;

/** Why one candle is invalid on its own (ignoring its neighbours), or null when it is fine. */
export function candleProblem(candle: Candle, timeframeMs: number): string | null {
  for (const field of FIELDS) {
    const value = candle[field];
    if (typeof value !== "number" || !Number.isFinite(value)) {
      return `${field} is not a finite number (${String(value)})`;
    }
  }
  if (candle.low > candle.high) return "low above high";
  if (candle.low > Math.min(candle.open, candle.close)) return "low above min(open, close)";
  if (candle.high < Math.max(candle.open, candle.close)) return "high below max(open, close)";
  if (candle.volume < 0) return "negative volume";
  if (!isAligned(candle.ts, timeframeMs)) return `timestamp not aligned to the ${timeframeMs} ms timeframe in UTC`;
  return null;
}

/**
 * Splits a page into valid and rejected candles. Rules: six finite numbers; low <= min(open,
 * close); high >= max(open, close); low <= high; volume >= 0; timestamp on a UTC timeframe
 * boundary; strictly increasing (a candle earlier than its predecessor is rejected as out of
 * order); a repeated timestamp keeps the first copy and lists the repeat in `duplicates`.
 * One bad candle never costs the good ones on the same page.
 */
export function validateCandles(candles: readonly Candle[], timeframeMs: number): ValidationResult {
  const result: ValidationResult = { candles: [], rejected: [], duplicates: [] };
  let previous = -Infinity;
  for (const candle of candles) {
    const problem = candleProblem(candle, timeframeMs);
    if (problem !== null) {
      result.rejected.push({ ts: typeof candle.ts === "number" ? candle.ts : NaN, reason: problem });
      continue;
    }
    if (candle.ts === previous) {
      result.duplicates.push(candle.ts);
      continue;
    }
    if (candle.ts < previous) {
      result.rejected.push({ ts: candle.ts, reason: "out of order (earlier than the previous candle)" });
      continue;
    }
    previous = candle.ts;
    result.candles.push(candle);
  }
  return result;
}
