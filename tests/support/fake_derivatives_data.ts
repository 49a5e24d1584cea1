/**
 * Deterministic derivatives data for the fake exchange: contracts, mark/index/premium-index
 * candles, funding rates and open interest, each a pure function of (symbol, time), plus the
 * `expected*` helpers tests compare stored rows with.
 *
 * Mark and index 1-minute candles are the trade candle scaled by a per-minute factor close to 1
 * (so they differ from trade candles but stay valid OHLC); premium-index candles are small signed
 * numbers around 0.0001. Higher timeframes aggregate the 1-minute base like trade candles.
 * Funding rows sit on the contract's funding grid (multiples of the interval in force since the
 * epoch, from the first grid point at or after listing; `fundingHistory` changes the interval); open-interest rows sit on the period grid.
 *
 * @module
 */
import type { Candle } from "../../src/candle.ts";
import { floorTo } from "../../src/timeframe.ts";
import {
  candleAt,
  candlesForward,
  type FakeHole,
  type FakeMarket,
  minuteCandle,
  seedOf,
  unit,
} from "./fake_candles.ts";

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/** Which price a kline series follows (ccxt `params.price`; `trade` is the default klines). */
export type PriceKind = "trade" | "mark" | "index" | "premiumIndex";

/** A contract the fake lists: linear (settled in the quote) or inverse (settled in the base, e.g. `BTC/USD:BTC`). */
export interface FakeContract extends FakeMarket {
  /** Unified ccxt symbol: `BTC/USDT:USDT` (perpetual), `BTC/USDT:USDT-261225` (dated), `BTC/USD:BTC` (inverse). */
  symbol: string;
  /** Contract size (default 1; inverse contracts are worth this many quote units, e.g. 100 USD). */
  contractSize?: number;
  /** Funding interval in hours today (default 8; what fundingInfo and instruments-info state); dated contracts have no funding. */
  fundingIntervalHours?: number;
  /**
   * Earlier funding intervals, oldest first: before `until` (ms) and after the previous entry's
   * `until`, the contract funded every `hours` (default none: one interval for all history).
   */
  fundingHistory?: { until: number; hours: number }[];
  /** Delivery time (ms) of a dated contract; undefined for a perpetual. */
  expiry?: number;
  /** Open interest level in contracts (= base units; contract size is 1). */
  openInterest: number;
}

/** A range `[from, to)` without rows, optionally for one symbol and one price kind only. */
export interface FakeDerivativeHole extends FakeHole {
  /** Kline kind the hole applies to (default: every kind). Ignored by funding/OI holes. */
  price?: PriceKind;
}

/** One funding row as the exchange publishes it. */
export interface FakeFundingRow {
  /** Unified symbol. */
  symbol: string;
  /** Funding time (ms, on the funding grid). */
  ts: number;
  /** Rate as a decimal string with 8 fraction digits (Binance form), e.g. `0.00012345`. */
  rate: string;
  /** Mark price at the funding time, 8 fraction digits (Binance `markPrice`). */
  markPrice: string;
}

/** One open-interest row. */
export interface FakeOpenInterestRow {
  /** Unified symbol. */
  symbol: string;
  /** Row time (ms, on the period grid). */
  ts: number;
  /** Open interest in contracts (base units), 3 fraction digits as a string, e.g. `51234.123`. */
  amount: string;
  /** Open interest value, 8 fraction digits: in quote (amount × mark) for linear, in base (amount × size / mark) for inverse. */
  value: string;
}

/** Open-interest periods Binance accepts (`/futures/data/openInterestHist` `period`). */
export const OPEN_INTEREST_PERIODS: Record<string, number> = {
  "5m": 5 * MINUTE,
  "15m": 15 * MINUTE,
  "30m": 30 * MINUTE,
  "1h": HOUR,
  "2h": 2 * HOUR,
  "4h": 4 * HOUR,
  "6h": 6 * HOUR,
  "12h": 12 * HOUR,
  "1d": DAY,
};

/** How long Binance keeps open-interest history (30 days). */
export const OPEN_INTEREST_RETENTION_MS = 30 * DAY;

const round = (x: number, digits: number) => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/** The next quarterly delivery (last Friday of Mar/Jun/Sep/Dec, 08:00 UTC) at least 30 days after `nowMs`. */
export function nextQuarterlyExpiry(nowMs: number): number {
  const d = new Date(nowMs + 30 * DAY);
  let year = d.getUTCFullYear();
  let month = Math.floor(d.getUTCMonth() / 3) * 3 + 2;
  for (;;) {
    const last = new Date(Date.UTC(year, month + 1, 0, 8));
    const friday = last.getTime() - ((last.getUTCDay() + 2) % 7) * DAY;
    if (friday > nowMs + 30 * DAY) return friday;
    month += 3;
    if (month > 11) {
      month -= 12;
      year++;
    }
  }
}

/** `YYMMDD` of a time (ccxt's dated-contract suffix). */
export function yymmdd(ms: number): string {
  return new Date(ms).toISOString().slice(2, 10).replaceAll("-", "");
}

/**
 * Default contracts: BTC and ETH linear perpetuals (ETH funds every 4 h, the rest every 8 h), a
 * SOL perpetual listed 10 days ago (mid-range, off the funding grid), and a quarterly BTC
 * contract `BTC/USDT:USDT-<YYMMDD>` listed 60 days ago (same base price, hence the same index
 * candles as the BTC perpetual: index candles depend on the pair and base price only), and an
 * inverse perpetual `BTC/USD:BTC` (contract size 100 USD).
 */
export function defaultContracts(nowMs: number = Date.now()): FakeContract[] {
  const day = (n: number) => Math.floor((nowMs - n * DAY) / MINUTE) * MINUTE + 7 * MINUTE;
  const expiry = nextQuarterlyExpiry(nowMs);
  return [
    { symbol: "BTC/USDT:USDT", listedAt: day(400), basePrice: 60010, quoteVolume24h: 2e10, openInterest: 80000 },
    {
      symbol: "ETH/USDT:USDT",
      listedAt: day(300),
      basePrice: 3001,
      quoteVolume24h: 1e10,
      openInterest: 2e6,
      fundingIntervalHours: 4,
    },
    { symbol: "SOL/USDT:USDT", listedAt: day(10), basePrice: 150.5, quoteVolume24h: 3e9, openInterest: 9e6 },
    {
      symbol: `BTC/USDT:USDT-${yymmdd(expiry)}`,
      listedAt: day(60),
      basePrice: 60010,
      quoteVolume24h: 5e8,
      openInterest: 3000,
      expiry,
    },
    {
      symbol: "BTC/USD:BTC",
      listedAt: day(400),
      basePrice: 60030,
      quoteVolume24h: 1e9,
      openInterest: 5e6,
      contractSize: 100,
    },
  ];
}

/** Whether a contract is inverse (settled in its base currency). */
export function isInverse(contract: FakeContract): boolean {
  const [pair, settle] = contract.symbol.split(":");
  return pair.split("/")[0] === settle.split("-")[0];
}

/** Whether a contract is a perpetual (funds) rather than a dated contract. */
export function isPerpetual(contract: FakeContract): boolean {
  return contract.expiry === undefined;
}

/** Funding interval of a perpetual in ms (today's). */
export function fundingIntervalMs(contract: FakeContract): number {
  return (contract.fundingIntervalHours ?? 8) * HOUR;
}

/** The funding intervals of a perpetual over time: `[from, to)` (ms) and the interval in force. */
function fundingRegimes(contract: FakeContract): { from: number; to: number; stepMs: number }[] {
  const out: { from: number; to: number; stepMs: number }[] = [];
  let from = -Infinity;
  for (const h of contract.fundingHistory ?? []) {
    out.push({ from, to: h.until, stepMs: h.hours * HOUR });
    from = h.until;
  }
  out.push({ from, to: Infinity, stepMs: fundingIntervalMs(contract) });
  return out;
}

/** The funding interval of a perpetual in force at `ts` (ms). */
export function fundingIntervalAt(contract: FakeContract, ts: number): number {
  return fundingRegimes(contract).find((r) => ts >= r.from && ts < r.to)!.stepMs;
}

function inHole(symbol: string, ts: number, holes: readonly FakeDerivativeHole[], price?: PriceKind): boolean {
  return holes.some((h) =>
    (h.symbol === undefined || h.symbol === symbol) && (price === undefined || h.price === undefined ||
      h.price === price) &&
    ts >= h.from && ts < h.to
  );
}

/** The 1-minute candle of `kind` opening at `minuteTs` (volume 0 except for trade candles). */
export function minutePriceCandle(contract: FakeContract, kind: PriceKind, minuteTs: number): Candle {
  // the index follows the pair (the symbol without its -YYMMDD expiry), shared by its contracts
  const key = kind === "index" ? contract.symbol.split("-")[0] : contract.symbol;
  const trade = minuteCandle({ ...contract, symbol: key }, minuteTs);
  if (kind === "trade") return trade;
  const seed = seedOf(key);
  const i = minuteTs / MINUTE;
  if (kind === "premiumIndex") {
    const level = (m: number) =>
      round(0.0001 + 0.0004 * Math.sin(m / 353 + (seed % 17)) + 0.00005 * (unit(seed, m, 7) - 0.5), 8);
    const open = level(i);
    const close = level(i + 1);
    const high = round(Math.max(open, close) + 0.00002 * unit(seed, i, 8), 8);
    const low = round(Math.min(open, close) - 0.00002 * unit(seed, i, 9), 8);
    return { ts: minuteTs, open, high, low, close, volume: 0 };
  }
  const factor = kind === "mark"
    ? 1 + 0.0003 * Math.sin(i / 61) + 0.0001 * (unit(seed, i, 5) - 0.5)
    : 1 - 0.0002 + 0.0004 * unit(seed, i, 6);
  const f = (x: number) => round(x * factor, 2);
  return {
    ts: minuteTs,
    open: f(trade.open),
    high: f(trade.high),
    low: f(trade.low),
    close: f(trade.close),
    volume: 0,
  };
}

/**
 * The `kind` candle of `timeframeMs` opening at `ts`, aggregated from the 1-minute candles that
 * exist (listed, not in a hole, opened by `nowMs`, before expiry); null when none does.
 */
export function priceCandleAt(
  contract: FakeContract,
  kind: PriceKind,
  timeframeMs: number,
  ts: number,
  nowMs: number,
  holes: readonly FakeDerivativeHole[] = [],
): Candle | null {
  const until = Math.min(nowMs, (contract.expiry ?? Infinity) - MINUTE);
  if (kind === "trade") {
    return candleAt(
      contract,
      timeframeMs,
      ts,
      until,
      holes.filter((h) => !h.price || h.price === "trade"),
    );
  }
  let out: Candle | null = null;
  for (let m = ts; m < ts + timeframeMs && m <= until; m += MINUTE) {
    if (m < contract.listedAt || inHole(contract.symbol, m, holes, kind)) continue;
    const c = minutePriceCandle(contract, kind, m);
    if (out === null) out = { ...c, ts };
    else {
      out.high = Math.max(out.high, c.high);
      out.low = Math.min(out.low, c.low);
      out.close = c.close;
    }
  }
  return out;
}

/** Every `kind` candle (the open one included) with `from <= ts <= toInclusive`, oldest first, at most `limit`. */
export function priceCandlesForward(
  contract: FakeContract,
  kind: PriceKind,
  timeframeMs: number,
  range: { from: number; toInclusive: number; nowMs: number; limit: number },
  holes: readonly FakeDerivativeHole[] = [],
): Candle[] {
  if (kind === "trade") {
    const until = Math.min(range.nowMs, (contract.expiry ?? Infinity) - MINUTE);
    return candlesForward(
      contract,
      timeframeMs,
      range.from,
      range.toInclusive,
      until,
      holes.filter((h) => !h.price || h.price === "trade"),
      range.limit,
    );
  }
  const out: Candle[] = [];
  let t = Math.max(
    floorTo(range.from, timeframeMs) < range.from ? floorTo(range.from, timeframeMs) + timeframeMs : range.from,
    floorTo(contract.listedAt, timeframeMs),
  );
  const last = Math.min(range.toInclusive, range.nowMs);
  for (; t <= last && out.length < range.limit; t += timeframeMs) {
    const c = priceCandleAt(contract, kind, timeframeMs, t, range.nowMs, holes);
    if (c) out.push(c);
  }
  return out;
}

/** The latest `kind` candles (open one included) with `ts <= toInclusive`, oldest first, at most `limit`. */
export function priceCandlesBackward(
  contract: FakeContract,
  kind: PriceKind,
  timeframeMs: number,
  range: { toInclusive: number; nowMs: number; limit: number },
  holes: readonly FakeDerivativeHole[] = [],
): Candle[] {
  const out: Candle[] = [];
  const first = floorTo(contract.listedAt, timeframeMs);
  for (
    let t = floorTo(Math.min(range.toInclusive, range.nowMs), timeframeMs);
    t >= first && out.length < range.limit;
    t -= timeframeMs
  ) {
    const c = priceCandleAt(contract, kind, timeframeMs, t, range.nowMs, holes);
    if (c) out.push(c);
  }
  return out.reverse();
}

/**
 * What a correct client must return for `kind` candles in `[from, to)`: every closed candle (its
 * period ended by `nowMs`), oldest first. Volume is 0 for mark/index/premiumIndex (Binance sends
 * "0"; Bybit sends no volume, so ccxt gives undefined there).
 */
export function expectedPriceCandles(
  contract: FakeContract,
  kind: PriceKind,
  timeframeMs: number,
  range: { from: number; to: number; nowMs: number },
  holes: readonly FakeDerivativeHole[] = [],
): Candle[] {
  return priceCandlesForward(contract, kind, timeframeMs, {
    from: range.from,
    toInclusive: range.to - 1,
    nowMs: range.nowMs,
    limit: Number.MAX_SAFE_INTEGER,
  }, holes).filter((c) => c.ts + timeframeMs <= range.nowMs && c.ts < range.to);
}

/** The funding row of a perpetual at grid time `ts` (no listing/hole check). */
export function fundingRowAt(contract: FakeContract, ts: number): FakeFundingRow {
  const seed = seedOf(contract.symbol);
  const k = ts / fundingIntervalAt(contract, ts);
  const rate = 0.0001 + 0.00025 * Math.sin(k / 9 + (seed % 13)) + 0.00008 * (unit(seed, k, 11) - 0.5);
  const mark = minutePriceCandle(contract, "mark", ts).open;
  return { symbol: contract.symbol, ts, rate: rate.toFixed(8), markPrice: mark.toFixed(8) };
}

/**
 * Funding rows of a perpetual with `from <= ts <= toInclusive` and `ts <= nowMs`, oldest first:
 * the funding grid from the first grid point at or after listing, minus holes. Empty for a
 * dated contract.
 */
export function fundingRows(
  contract: FakeContract,
  range: { from: number; toInclusive: number; nowMs: number },
  holes: readonly FakeHole[] = [],
): FakeFundingRow[] {
  if (!isPerpetual(contract)) return [];
  const start = Math.max(range.from, contract.listedAt);
  const last = Math.min(range.toInclusive, range.nowMs);
  const out: FakeFundingRow[] = [];
  for (const regime of fundingRegimes(contract)) {
    const step = regime.stepMs;
    for (let t = Math.ceil(Math.max(start, regime.from) / step) * step; t <= last && t < regime.to; t += step) {
      if (!inHole(contract.symbol, t, holes)) out.push(fundingRowAt(contract, t));
    }
  }
  return out;
}

/** What a correct client must return as funding history for `[from, to)`, oldest first. */
export function expectedFundingRates(
  contract: FakeContract,
  range: { from: number; to: number; nowMs: number },
  holes: readonly FakeHole[] = [],
): FakeFundingRow[] {
  return fundingRows(contract, { from: range.from, toInclusive: range.to - 1, nowMs: range.nowMs }, holes);
}

/** The open-interest row of a contract at `ts` (a function of time only, so periods agree). */
export function openInterestRowAt(contract: FakeContract, ts: number): FakeOpenInterestRow {
  const seed = seedOf(contract.symbol);
  const m = ts / MINUTE;
  const amount = round(
    contract.openInterest * (1 + 0.1 * Math.sin(m / 2011 + (seed % 7)) + 0.02 * unit(seed, m, 13)),
    3,
  );
  const mark = minutePriceCandle(contract, "mark", ts).open;
  const value = isInverse(contract) ? amount * (contract.contractSize ?? 1) / mark : amount * mark;
  return { symbol: contract.symbol, ts, amount: amount.toFixed(3), value: value.toFixed(8) };
}

/**
 * Open-interest rows on the `periodMs` grid with `from <= ts <= toInclusive`, listed, `ts <=
 * nowMs`, before expiry, not in a hole; oldest first. Retention is the route's business.
 */
export function openInterestRows(
  contract: FakeContract,
  periodMs: number,
  range: { from: number; toInclusive: number; nowMs: number },
  holes: readonly FakeHole[] = [],
): FakeOpenInterestRow[] {
  const start = Math.max(range.from, contract.listedAt);
  const last = Math.min(range.toInclusive, range.nowMs, (contract.expiry ?? Infinity) - 1);
  const out: FakeOpenInterestRow[] = [];
  for (let t = Math.ceil(start / periodMs) * periodMs; t <= last; t += periodMs) {
    if (!inHole(contract.symbol, t, holes)) out.push(openInterestRowAt(contract, t));
  }
  return out;
}

/**
 * What a correct client must return as open interest for `[from, to)`, oldest first. `retainMs`
 * (Binance: {@linkcode OPEN_INTEREST_RETENTION_MS}) drops rows older than `nowMs - retainMs`.
 */
export function expectedOpenInterest(
  contract: FakeContract,
  periodMs: number,
  range: { from: number; to: number; nowMs: number; retainMs?: number },
  holes: readonly FakeHole[] = [],
): FakeOpenInterestRow[] {
  const floor = range.retainMs === undefined ? -Infinity : range.nowMs - range.retainMs;
  return openInterestRows(contract, periodMs, {
    from: Math.max(range.from, floor),
    toInclusive: range.to - 1,
    nowMs: range.nowMs,
  }, holes);
}
