import type { Candle } from "../candle.ts";
import type { PriceOption } from "../market_type.ts";

/** A candle the exchange served but validation rejected. */
export interface RejectedCandle {
  ts: number;
  reason: string;
}

/** One page read from an exchange: closed, validated candles, oldest first. */
export interface Page {
  candles: Candle[];
  rejected: RejectedCandle[];
}

/**
 * What the ingest engine needs from an exchange. The exchange layer implements it over ccxt;
 * the engine never sees ccxt itself.
 */
export interface CandleSource {
  /** ccxt exchange id. */
  readonly id: string;
  /** Most candles one request returns for this timeframe (and symbol: its market type may matter). */
  pageLimit(timeframe: string, symbol?: string): number;
  /**
   * One page of closed, validated candles with `since <= ts < until`, oldest first; empty
   * when the exchange has none from `since` on within its page window.
   */
  fetchPage(
    symbol: string,
    timeframe: string,
    since: number,
    until: number,
    options?: PriceOption,
  ): Promise<Page>;
  /** Open time of the first candle the exchange has, or null when it has none. */
  findEarliest(symbol: string, timeframe: string, options?: PriceOption): Promise<number | null>;
  /** Why this series cannot be served (unknown symbol, unsupported timeframe), or null. */
  validateSeries(symbol: string, timeframe: string): string | null;
}

/** An exchange as the engine sees it: a candle source that may also rank markets. */
export interface ExchangeSource extends CandleSource {
  /** The top `n` active markets quoted in `quote` by 24h quote volume. */
  topSymbols?(n: number, quote: string): Promise<string[]>;
}
