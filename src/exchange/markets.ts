/**
 * The markets of one exchange: loading them (once at start, then hourly), the top-N selection
 * by 24h quote volume, which series the exchange can serve, and its page size.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Config } from "../config_types.ts";
import { timeframeMs } from "../timeframe.ts";
import type { CcxtExchange, ExchangeConfig } from "./ccxt_instance.ts";
import type { RequestRunner } from "./request_runner.ts";
import { marketTypeOf, parseUnifiedSymbol } from "../market_type.ts";

const logger = getLogger(["candlekeep", "exchange"]);

/** What {@linkcode Markets} works with. */
export interface MarketsOptions {
  /** Market type loaded. */
  marketType: Config["marketType"];
  /** Page size when ccxt does not publish one (default 500). */
  defaultPageLimit?: number;
}

/** The loaded markets of one exchange and the symbols chosen from them. */
export class Markets {
  readonly #exchange: CcxtExchange;
  readonly #runner: RequestRunner;
  readonly #marketType: Config["marketType"];
  readonly #defaultPageLimit: number;
  #selected: string[] = [];
  #top: string[] = [];
  #count: number | null = null;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Markets of `exchange`, requested through `runner`. */
  constructor(exchange: CcxtExchange, runner: RequestRunner, options: MarketsOptions) {
    this.#exchange = exchange;
    this.#runner = runner;
    this.#marketType = options.marketType;
    this.#defaultPageLimit = options.defaultPageLimit ?? 500;
  }

  get #id(): string {
    return this.#runner.id;
  }

  /**
   * Reloads markets and re-evaluates the top-N selection. The market count is logged at info
   * level when it changes (the first load included), the chosen symbols when they change.
   */
  async refresh(config: Pick<ExchangeConfig, "symbols" | "topSymbols" | "quote">): Promise<void> {
    await this.#runner.run("loadMarkets", () => this.#exchange.loadMarkets(true));
    const byType = new Map<string, number>();
    for (const m of Object.values(this.#exchange.markets ?? {})) {
      if (m?.type) byType.set(m.type, (byType.get(m.type) ?? 0) + 1);
    }
    const count = [...byType.values()].reduce((a, b) => a + b, 0);
    const types = [...byType].map(([type, n]) => `${n} ${type}`).join(", ");
    const fields = { exchange: this.#id, count, marketType: types || this.#marketType };
    if (count !== this.#count) logger.info("{exchange}: {marketType} markets loaded", fields);
    else logger.debug("{exchange}: {marketType} markets loaded", fields);
    this.#count = count;
    if (config.topSymbols > 0) {
      try {
        this.#top = await this.topSymbols(config.topSymbols, config.quote);
      } catch (error) {
        logger.error("{exchange}: cannot rank markets for TOP_SYMBOLS, keeping the previous choice: {error}", {
          exchange: this.#id,
          error,
        });
      }
    }
    const selected = [...new Set([...config.symbols, ...this.#top])];
    if (selected.join(",") !== this.#selected.join(",")) {
      logger.info("{exchange}: symbols {symbols}", { exchange: this.#id, symbols: selected, top: this.#top });
    }
    this.#selected = selected;
  }

  /** Calls `refresh` every `intervalMs`; a failure is logged and the next run tries again. */
  startTimer(refresh: () => Promise<void>, intervalMs: number): void {
    this.stopTimer();
    this.#timer = setInterval(() => {
      refresh().catch((error) => {
        logger.error("{exchange}: market refresh failed: {error}", { exchange: this.#id, error });
      });
    }, intervalMs);
  }

  /** Stops the refresh timer, if any. */
  stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Configured symbols merged with the current top-N selection, de-duplicated. */
  symbols(): string[] {
    return [...this.#selected];
  }

  #isOurType(market: { type?: string; spot?: boolean } | undefined): boolean {
    if (!market) return false;
    const wanted = this.#marketType === "margin" ? "spot" : this.#marketType;
    return market.type === wanted;
  }

  /** The top `n` active markets quoted in `quote` by 24h quote volume (one fetchTickers request). */
  async topSymbols(n: number, quote: string): Promise<string[]> {
    const type = this.#marketType === "margin" ? "spot" : this.#marketType;
    const { value: tickers } = await this.#runner.run(
      "fetchTickers",
      () => this.#exchange.fetchTickers(undefined, { type }),
    );
    const ranked: { symbol: string; volume: number }[] = [];
    for (const ticker of Object.values(tickers)) {
      if (ticker.symbol === undefined) continue;
      const market = this.#exchange.markets?.[ticker.symbol];
      if (!this.#isOurType(market) || market.active === false || market.quote !== quote.toUpperCase()) continue;
      const price = ticker.vwap ?? ticker.last ?? ticker.close;
      const volume = ticker.quoteVolume ??
        (ticker.baseVolume !== undefined && price !== undefined ? ticker.baseVolume * price : undefined);
      if (volume === undefined || !Number.isFinite(volume)) continue;
      ranked.push({ symbol: ticker.symbol, volume });
    }
    ranked.sort((a, b) => b.volume - a.volume || (a.symbol < b.symbol ? -1 : 1));
    const chosen = ranked.slice(0, n).map((r) => r.symbol);
    logger.debug("{exchange}: top {n} {quote} markets by 24h quote volume: {symbols}", {
      exchange: this.#id,
      n,
      quote,
      symbols: chosen,
    });
    return chosen;
  }

  /**
   * Why `symbol`/`timeframe` cannot be served here (not listed as a market of the type its
   * symbol names, timeframe not offered), or null.
   */
  validateSeries(symbol: string, timeframe: string): string | null {
    const market = this.#exchange.markets?.[symbol];
    const type = marketTypeOf(symbol);
    if (!market || market.type !== type) {
      const loaded = market ? `; it is a ${market.type} market` : "";
      return `Cannot serve ${this.#id} ${symbol} ${timeframe}: the exchange does not list ${symbol} as a ${type} market${loaded}`;
    }
    const offered = Object.keys(this.#exchange.timeframes ?? {});
    if (!offered.includes(timeframe)) {
      return `Cannot serve ${this.#id} ${symbol} ${timeframe}: current timeframe is ${timeframe}, the exchange offers ${
        offered.join(", ")
      }`;
    }
    try {
      timeframeMs(timeframe);
    } catch (error) {
      return (error as Error).message;
    }
    return null;
  }

  /**
   * Most candles one request returns: ccxt's `features[type].fetchOHLCV.limit` for the market
   * type of `symbol` (of MARKET_TYPE without one), else the default (500).
   */
  pageLimit(_timeframe: string, symbol?: string): number {
    type Limit = { fetchOHLCV?: { limit?: number } };
    type Features = Record<string, Limit & { linear?: Limit; inverse?: Limit }>;
    const features = (this.#exchange as unknown as { features?: Features }).features;
    const parsed = symbol === undefined ? null : parseUnifiedSymbol(symbol);
    const type = parsed?.type ?? (this.#marketType === "margin" ? "spot" : this.#marketType);
    const entry = features?.[type];
    let limit = entry?.fetchOHLCV?.limit ?? entry?.[parsed?.margin ?? "linear"]?.fetchOHLCV?.limit ??
      entry?.linear?.fetchOHLCV?.limit;
    // Binance weighs futures klines by limit (up to 499: 2, up to 1000: 5): ccxt's 500 costs 2.5
    // times the weight per candle of 499.
    if (this.#id.startsWith("binance") && (type === "swap" || type === "future") && limit === 500) limit = 499;
    return typeof limit === "number" && limit > 0 ? limit : this.#defaultPageLimit;
  }
}
