// Which series and timeframes exist, and which view a link may open.
import { tfMs } from "./format.js";

const TIMEFRAMES = ["1m", "5m", "15m", "1h", "4h", "1d", "1w"];

/** "exchange|symbol" of a series or view. */
export const keyOf = (v) => `${v.exchange}|${v.symbol}`;

/** The price a series or view is of: trade candles unless it says mark, index or premium. */
export const priceOf = (v) => v.price ?? "trade";

/** The prices stored for "exchange|symbol", trade first. */
export function pricesOf(series, key) {
  const order = ["trade", "mark", "index", "premium"];
  const have = new Set(series.filter((s) => keyOf(s) === key).map(priceOf));
  return order.filter((p) => have.has(p));
}

/** Stored timeframes by "exchange|symbol" (of one price when given). */
export function markets(series, price) {
  const map = new Map();
  for (const s of series) {
    if (price !== undefined && priceOf(s) !== price) continue;
    const key = keyOf(s);
    if (!map.has(key)) map.set(key, []);
    map.get(key).push(s.timeframe);
  }
  return map;
}

/** Timeframes a market (at a price, default trade) can show: stored ones and their multiples (resampled). */
export function timeframeOptions(series, key, price = "trade") {
  const stored = (markets(series, price).get(key) || []).filter((tf) => !Number.isNaN(tfMs(tf)));
  const options = [...new Set([...stored, ...TIMEFRAMES])]
    .filter((tf) => stored.some((s) => tfMs(tf) % tfMs(s) === 0))
    .sort((a, b) => tfMs(a) - tfMs(b));
  return { stored, options };
}

/** The view the link asks for when it names a known series, else the first series (with the reason). */
export function resolve(series, wanted, problems) {
  const first = series[0];
  const fallback = first
    ? { exchange: first.exchange, symbol: first.symbol, timeframe: first.timeframe, price: priceOf(first) }
    : null;
  if (wanted.exchange === null && wanted.symbol === null && wanted.timeframe === null) return { v: fallback };
  const name = `${wanted.symbol ?? "(no symbol)"} on ${wanted.exchange ?? "(no exchange)"}`;
  const { stored, options } = timeframeOptions(series, keyOf(wanted), priceOf(wanted));
  let problem = null;
  if (stored.length === 0) problem = `there is no series ${name}`;
  else if (wanted.timeframe === null) return { v: { ...wanted, timeframe: stored[0] } };
  else if (!options.includes(wanted.timeframe)) {
    problem = `${wanted.timeframe} cannot be shown for ${name}: stored ${
      stored.join(", ")
    }, resampled only to multiples`;
  }
  if (!problem) return { v: wanted };
  problems.push(`Cannot open the link: ${problem}.`);
  return { v: fallback, fellBack: true };
}
