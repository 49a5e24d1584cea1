/**
 * Binance kline stream payloads for the fake exchange's WebSocket side (fake_ws.ts), built from
 * the same deterministic 1-minute candles as the REST klines (fake_candles.ts).
 *
 * A closed candle (`x: true`) is `candleAt` at its close, so its fields are the REST row's
 * strings exactly. A forming candle at time `t` aggregates the minutes already closed plus the
 * current minute moved linearly from its open toward its final values by the elapsed fraction
 * of the minute (so highs/lows only widen and the last update before the close converges on the
 * final row). Quote volume, taker volumes and the trade count mirror the REST row ("0", 10).
 *
 * @module
 */
import { floorTo } from "../../src/timeframe.ts";
import type { Candle } from "../../src/candle.ts";
import { candleAt, type FakeHole, type FakeMarket, minuteCandle } from "./fake_candles.ts";

const MINUTE = 60_000;

/** A kline stream name the fake serves: `<symbol>@kline_<interval>` (`btcusdt_261226` for a dated contract). */
export interface KlineStream {
  /** The stream name as subscribed (lower-case symbol). */
  name: string;
  /** Exchange market id, upper case (`BTCUSDT`, `BTCUSDT_261226`). */
  marketId: string;
  /** Binance interval (`1m`, `5m`, ...). */
  interval: string;
  /** Interval length in ms. */
  intervalMs: number;
}

/** Binance spot kline intervals the fake streams (those its REST klines serve: no `1s`, no `1M`). */
export const STREAM_INTERVALS: Record<string, number> = {
  "1m": MINUTE,
  "3m": 3 * MINUTE,
  "5m": 5 * MINUTE,
  "15m": 15 * MINUTE,
  "30m": 30 * MINUTE,
  "1h": 60 * MINUTE,
  "2h": 120 * MINUTE,
  "4h": 240 * MINUTE,
  "6h": 360 * MINUTE,
  "8h": 480 * MINUTE,
  "12h": 720 * MINUTE,
  "1d": 1440 * MINUTE,
  "3d": 3 * 1440 * MINUTE,
  "1w": 7 * 1440 * MINUTE,
};

/** Parses `btcusdt@kline_1m`; null for any other stream name. */
export function parseKlineStream(name: string): KlineStream | null {
  const match = /^([a-z0-9_]+)@kline_([0-9]+[mhdw])$/.exec(name);
  if (!match || STREAM_INTERVALS[match[2]] === undefined) return null;
  return { name, marketId: match[1].toUpperCase(), interval: match[2], intervalMs: STREAM_INTERVALS[match[2]] };
}

function inHole(symbol: string, ts: number, holes: readonly FakeHole[]): boolean {
  return holes.some((h) => (h.symbol === undefined || h.symbol === symbol) && ts >= h.from && ts < h.to);
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

/** The 1-minute candle opening at `minuteTs` as it stood `fraction` (0..1) into its minute. */
function partialMinute(market: FakeMarket, minuteTs: number, fraction: number): Candle {
  const full = minuteCandle(market, minuteTs);
  const f = Math.min(1, Math.max(0, fraction));
  const close = round(full.open + (full.close - full.open) * f, 2);
  const top = Math.max(full.open, full.close);
  const bottom = Math.min(full.open, full.close);
  return {
    ts: minuteTs,
    open: full.open,
    high: round(Math.max(full.open, close) + (full.high - top) * f, 2),
    low: round(Math.min(full.open, close) - (bottom - full.low) * f, 2),
    close,
    volume: round(full.volume * f, 3),
  };
}

/**
 * The candle of `intervalMs` opening at `ts` as seen at `nowMs`: the closed REST candle once
 * `nowMs` reaches its close, else the forming one; null while no minute of it exists yet.
 */
export function streamCandle(
  market: FakeMarket,
  intervalMs: number,
  ts: number,
  nowMs: number,
  holes: readonly FakeHole[],
): Candle | null {
  if (nowMs >= ts + intervalMs) return candleAt(market, intervalMs, ts, ts + intervalMs - 1, holes);
  const currentMinute = floorTo(nowMs, MINUTE);
  let out = currentMinute > ts ? candleAt(market, intervalMs, ts, currentMinute - 1, holes) : null;
  if (currentMinute < market.listedAt || inHole(market.symbol, currentMinute, holes)) return out;
  const part = partialMinute(market, currentMinute, (nowMs - currentMinute) / MINUTE);
  if (out === null) return { ...part, ts };
  out = {
    ...out,
    high: Math.max(out.high, part.high),
    low: Math.min(out.low, part.low),
    close: part.close,
    volume: round(out.volume + part.volume, 3),
  };
  return out;
}

/** The kline event Binance sends for `candle` of `stream` at `eventTime`. */
export function klineEvent(
  stream: KlineStream,
  candle: Candle,
  closed: boolean,
  eventTime: number,
): Record<string, unknown> {
  const trades = closed ? 10 : Math.max(1, Math.min(9, Math.round(candle.volume)));
  const firstTradeId = candle.ts / 1000;
  return {
    e: "kline",
    E: eventTime,
    s: stream.marketId,
    k: {
      t: candle.ts,
      T: candle.ts + stream.intervalMs - 1,
      s: stream.marketId,
      i: stream.interval,
      f: firstTradeId,
      L: firstTradeId + trades - 1,
      o: String(candle.open),
      c: String(candle.close),
      h: String(candle.high),
      l: String(candle.low),
      v: String(candle.volume),
      n: trades,
      x: closed,
      q: "0",
      V: "0",
      Q: "0",
      B: "0",
    },
  };
}
