/**
 * Deterministic candles for the fake exchange: every 1-minute candle is a pure function of
 * (symbol, minute index), so any range is computable without state; higher timeframes are
 * aggregated from the 1-minute base.
 *
 * @module
 */
import type { Candle } from "../../src/candle.ts";
import { floorTo } from "../../src/timeframe.ts";

/** A market the fake lists. */
export interface FakeMarket {
  /** Unified symbol, e.g. `BTC/USDT`. */
  symbol: string;
  /** Listing time (ms, on a minute boundary): no candles before it. */
  listedAt: number;
  /** Price level of the walk. */
  basePrice: number;
  /** 24h quote volume reported by the ticker endpoints (for top-N). */
  quoteVolume24h: number;
  /** Listed but not trading (default true). */
  active?: boolean;
}

/** A range `[from, to)` where the exchange has no candles, optionally for one symbol only. */
export interface FakeHole {
  symbol?: string;
  from: number;
  to: number;
}

const MINUTE = 60_000;

/** FNV-1a hash of a string. */
export function seedOf(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** A uniform number in [0, 1) from (seed, index, salt). */
export function unit(seed: number, index: number, salt: number): number {
  let h = (seed ^ Math.imul(index | 0, 0x9e3779b1) ^ Math.imul(Math.floor(index / 4294967296) + salt, 0x85ebca6b)) >>>
    0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b) >>> 0;
  h = (h ^ (h >>> 16)) >>> 0;
  return h / 4294967296;
}

const round = (x: number, digits: number) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

function price(seed: number, base: number, minute: number): number {
  return round(
    base * (1 + 0.05 * Math.sin(minute / 977 + (seed % 100)) + 0.02 * Math.sin(minute / 131) +
      0.004 * (unit(seed, minute, 1) - 0.5)),
    2,
  );
}

/** The 1-minute candle of `market` opening at `minuteTs`. */
export function minuteCandle(market: FakeMarket, minuteTs: number): Candle {
  const seed = seedOf(market.symbol);
  const i = minuteTs / MINUTE;
  const open = price(seed, market.basePrice, i);
  const close = price(seed, market.basePrice, i + 1);
  const high = round(Math.max(open, close) + market.basePrice * 0.001 * unit(seed, i, 2), 2);
  const low = round(Math.min(open, close) - market.basePrice * 0.001 * unit(seed, i, 3), 2);
  const volume = round(0.5 + 10 * unit(seed, i, 4), 3);
  return { ts: minuteTs, open, high, low, close, volume };
}

function inHole(symbol: string, ts: number, holes: readonly FakeHole[]): boolean {
  return holes.some((h) => (h.symbol === undefined || h.symbol === symbol) && ts >= h.from && ts < h.to);
}

/**
 * The candle of `timeframeMs` opening at `ts`, aggregated from the 1-minute candles that exist
 * (listed, not in a hole, opened at or before `nowMs`); null when none does. A candle whose
 * period has not ended at `nowMs` is the still-open, partial one.
 */
export function candleAt(
  market: FakeMarket,
  timeframeMs: number,
  ts: number,
  nowMs: number,
  holes: readonly FakeHole[] = [],
): Candle | null {
  let out: Candle | null = null;
  let volume = 0;
  for (let m = ts; m < ts + timeframeMs && m <= nowMs; m += MINUTE) {
    if (m < market.listedAt || inHole(market.symbol, m, holes)) continue;
    const c = minuteCandle(market, m);
    volume += c.volume;
    if (out === null) out = { ...c, ts };
    else {
      out.high = Math.max(out.high, c.high);
      out.low = Math.min(out.low, c.low);
      out.close = c.close;
    }
  }
  if (out) out.volume = round(volume, 3);
  return out;
}

/** Every candle (the open one included) with `from <= ts <= toInclusive`, oldest first, at most `limit`. */
export function candlesForward(
  market: FakeMarket,
  timeframeMs: number,
  from: number,
  toInclusive: number,
  nowMs: number,
  holes: readonly FakeHole[],
  limit: number,
): Candle[] {
  const out: Candle[] = [];
  let t = Math.max(
    floorTo(from, timeframeMs) < from ? floorTo(from, timeframeMs) + timeframeMs : from,
    floorTo(market.listedAt, timeframeMs),
  );
  const last = Math.min(toInclusive, nowMs);
  for (; t <= last && out.length < limit; t += timeframeMs) {
    const c = candleAt(market, timeframeMs, t, nowMs, holes);
    if (c) out.push(c);
  }
  return out;
}

/** The latest candles (open one included) with `ts <= toInclusive`, oldest first, at most `limit`. */
export function candlesBackward(
  market: FakeMarket,
  timeframeMs: number,
  toInclusive: number,
  nowMs: number,
  holes: readonly FakeHole[],
  limit: number,
): Candle[] {
  const out: Candle[] = [];
  const first = floorTo(market.listedAt, timeframeMs);
  for (let t = floorTo(Math.min(toInclusive, nowMs), timeframeMs); t >= first && out.length < limit; t -= timeframeMs) {
    const c = candleAt(market, timeframeMs, t, nowMs, holes);
    if (c) out.push(c);
  }
  return out.reverse();
}

/**
 * What a correct client must return for `[from, to)`: every closed candle (its period ended by
 * `nowMs`), oldest first, computed independently of the HTTP layer.
 */
export function expectedCandles(
  market: FakeMarket,
  timeframeMs: number,
  from: number,
  to: number,
  nowMs: number,
  holes: readonly FakeHole[] = [],
): Candle[] {
  return candlesForward(market, timeframeMs, from, to - 1, nowMs, holes, Number.MAX_SAFE_INTEGER)
    .filter((c) => c.ts + timeframeMs <= nowMs && c.ts < to);
}
