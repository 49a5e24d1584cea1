/**
 * Candle pages of one exchange: one request per page window, only closed candles, validated;
 * a forward paginator over them; and the two-request search for the first candle.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { type Candle, fromOhlcvRow } from "../candle.ts";
import { floorTo, timeframeMs } from "../timeframe.ts";
import type { CcxtExchange } from "./ccxt_instance.ts";
import { ExchangeRequestError } from "./errors.ts";
import type { Clock } from "./limiter.ts";
import type { RequestRunner } from "./request_runner.ts";
import { type RejectedCandle, validateCandles } from "./validate.ts";
import { ccxtPriceParam, type PriceOption } from "../market_type.ts";

/** ccxt's `params.price` for mark, index and premium-index klines; nothing for trade candles. */
function priceParams(options: PriceOption): Record<string, string> {
  const price = options.price === undefined ? undefined : ccxtPriceParam(options.price);
  return price === undefined ? {} : { price };
}

const logger = getLogger(["candlekeep", "exchange"]);

/** One page returned by {@linkcode OhlcvReader.fetchPage}. */
export interface FetchedPage {
  /** Closed, valid candles with `window.from <= ts < window.to`, strictly increasing. */
  candles: Candle[];
  /** Candles served but rejected by validation (ts and broken rule): record them as invalid-data holes. */
  rejected: RejectedCandle[];
  /** Timestamps served twice on this page (the first copy was kept). */
  duplicates: number[];
  /** The window asked for, `[from, to)`. */
  window: { from: number; to: number };
  /** When the request was sent (ms); candles ending after it were still open and were dropped. */
  requestedAt: number;
  /** Candles dropped because their period had not ended when the request was sent. */
  openDropped: number;
}

/** The result of {@linkcode OhlcvReader.fetchRange}. */
export interface FetchedRange {
  candles: Candle[];
  rejected: RejectedCandle[];
  /** Windows that came back with no candle at all (historic holes or not yet listed). */
  emptyWindows: { from: number; to: number }[];
  /** Requests (pages) made. */
  pages: number;
}

/** Candle counters of one exchange. */
export interface CandleStats {
  /** Candles rejected by validation. */
  rejectedCandles: number;
  /** Repeated timestamps dropped. */
  duplicateCandles: number;
  /** Still-open candles dropped. */
  openCandlesDropped: number;
}

/** What {@linkcode OhlcvReader} needs besides the ccxt instance and the runner. */
export interface OhlcvReaderOptions {
  clock: Clock;
  /** Largest page for a timeframe. */
  pageLimit(timeframe: string, symbol?: string): number;
  /** Why a series cannot be served, or null. */
  validateSeries(symbol: string, timeframe: string): string | null;
  /** Most recent candles the exchange serves at all, if limited (Kraken: 720). */
  historyLimit?: number;
}

function ceilTo(ms: number, stepMs: number): number {
  const floor = floorTo(ms, stepMs);
  return floor === ms ? ms : floor + stepMs;
}

/** Reads candles of one exchange through its request runner. */
export class OhlcvReader {
  readonly #exchange: CcxtExchange;
  readonly #runner: RequestRunner;
  readonly #options: OhlcvReaderOptions;
  #stats: CandleStats = { rejectedCandles: 0, duplicateCandles: 0, openCandlesDropped: 0 };
  #loggedRejections = new Set<string>();
  #historyWarned = new Set<string>();

  /** Reads candles of `exchange` through `runner`. */
  constructor(exchange: CcxtExchange, runner: RequestRunner, options: OhlcvReaderOptions) {
    this.#exchange = exchange;
    this.#runner = runner;
    this.#options = options;
  }

  get #id(): string {
    return this.#runner.id;
  }

  /** Snapshot of the counters. */
  stats(): CandleStats {
    return { ...this.#stats };
  }

  #invalidSeries(symbol: string, timeframe: string): void {
    const reason = this.#options.validateSeries(symbol, timeframe);
    if (reason !== null) {
      throw new ExchangeRequestError(reason, {
        kind: "invalid_series",
        code: "InvalidSeries",
        exchange: this.#id,
        attempts: 0,
      });
    }
  }

  /**
   * One page of closed, validated candles with `since <= ts < until` (until defaults to now),
   * at most `pageLimit` of them: the request covers exactly one page window from `since`
   * (rounded up to the timeframe), so a short page means the exchange has nothing more in that
   * window.
   */
  async fetchPage(
    symbol: string,
    timeframe: string,
    since: number,
    until?: number,
    options: PriceOption = {},
  ): Promise<FetchedPage> {
    this.#invalidSeries(symbol, timeframe);
    const clock = this.#options.clock;
    const tf = timeframeMs(timeframe);
    const limit = this.#options.pageLimit(timeframe, symbol);
    const from = ceilTo(Math.max(0, since), tf);
    const to = Math.min(until ?? clock.now(), from + limit * tf);
    const series = `${this.#id} ${symbol} ${timeframe}`;
    if (to <= from) {
      return {
        candles: [],
        rejected: [],
        duplicates: [],
        window: { from, to: Math.max(from, to) },
        requestedAt: clock.now(),
        openDropped: 0,
      };
    }
    this.#warnHistoryLimit(series, tf, from);
    const { value: rows, sentAt } = await this.#runner.run(
      "fetch candles",
      () => this.#exchange.fetchOHLCV(symbol, timeframe, from, limit, { until: to - 1, ...priceParams(options) }),
      { series },
    );
    const inWindow: Candle[] = [];
    let openDropped = 0;
    // Mark, index and premium-index klines trade nothing: a missing volume (Bybit sends none) is 0.
    const priced = options.price !== undefined && options.price !== "trade";
    for (const row of rows as unknown[][]) {
      const candle = fromOhlcvRow(priced && (row[5] === undefined || row[5] === null) ? [...row.slice(0, 5), 0] : row);
      if (Number.isFinite(candle.ts) && (candle.ts < from || candle.ts >= to)) continue;
      if (Number.isFinite(candle.ts) && candle.ts + tf > sentAt) {
        openDropped++;
        continue;
      }
      inWindow.push(candle);
    }
    const checked = validateCandles(inWindow, tf);
    this.#stats.openCandlesDropped += openDropped;
    this.#stats.rejectedCandles += checked.rejected.length;
    this.#stats.duplicateCandles += checked.duplicates.length;
    this.#logRejections({ series, symbol, timeframe }, checked.rejected);
    if (checked.duplicates.length > 0) {
      logger.debug("{series}: dropped {count} repeated candles", {
        series,
        count: checked.duplicates.length,
        ts: checked.duplicates,
      });
    }
    logger.debug("{series}: page {from} to {to}: {count} candles", {
      series,
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      count: checked.candles.length,
    });
    return {
      candles: checked.candles,
      rejected: checked.rejected,
      duplicates: checked.duplicates,
      window: { from, to },
      requestedAt: sentAt,
      openDropped,
    };
  }

  /** Logs each rejected candle once (series, timestamp, rule). */
  #logRejections(where: { series: string; symbol: string; timeframe: string }, rejected: RejectedCandle[]): void {
    const series = where.series;
    for (const r of rejected) {
      const key = `${series}|${r.ts}|${r.reason}`;
      if (this.#loggedRejections.has(key)) continue;
      if (this.#loggedRejections.size > 10_000) this.#loggedRejections.clear();
      this.#loggedRejections.add(key);
      logger.warn("{series}: rejected candle at {time}: {reason}", {
        ...where,
        exchange: this.#id,
        ts: r.ts,
        time: Number.isFinite(r.ts) ? new Date(r.ts).toISOString() : String(r.ts),
        reason: r.reason,
      });
    }
  }

  #warnHistoryLimit(series: string, tf: number, from: number): void {
    const keep = this.#options.historyLimit;
    if (keep === undefined || this.#historyWarned.has(series)) return;
    if (from < this.#options.clock.now() - keep * tf) {
      this.#historyWarned.add(series);
      logger.warn(
        "{series}: {exchange} serves only its {keep} most recent candles; older history cannot be fetched",
        { series, exchange: this.#id, keep },
      );
    }
  }

  /**
   * Walks forward page by page from `since` to `until` (default: the start of the current, still
   * open candle), yielding every page, empty ones included. The next request starts one
   * timeframe after the last candle seen (valid, rejected or repeated), so nothing is asked twice
   * and nothing is skipped; after an empty page it moves on by the full page window, so a
   * historic hole neither stops the walk nor loops.
   */
  async *pages(
    symbol: string,
    timeframe: string,
    since: number,
    until?: number,
    options: PriceOption = {},
  ): AsyncGenerator<FetchedPage> {
    const tf = timeframeMs(timeframe);
    // Nothing at or after the start of the current (open) candle can be closed yet.
    const end = Math.min(until ?? Infinity, floorTo(this.#options.clock.now(), tf));
    let cursor = ceilTo(Math.max(0, since), tf);
    while (cursor < end) {
      const page = await this.fetchPage(symbol, timeframe, cursor, end, options);
      yield page;
      let lastSeen = -Infinity;
      for (const c of page.candles) lastSeen = Math.max(lastSeen, c.ts);
      for (const r of page.rejected) {
        if (Number.isFinite(r.ts) && r.ts < page.window.to) lastSeen = Math.max(lastSeen, r.ts);
      }
      for (const d of page.duplicates) lastSeen = Math.max(lastSeen, d);
      const next = lastSeen === -Infinity ? page.window.to : lastSeen + tf;
      if (page.openDropped > 0 && lastSeen === -Infinity) break; // only the open candle is left
      if (next <= cursor) break;
      cursor = next;
    }
  }

  /** Collects {@linkcode pages} into one result (for tests, benchmarks and small ranges). */
  async fetchRange(symbol: string, timeframe: string, since: number, until?: number): Promise<FetchedRange> {
    const result: FetchedRange = { candles: [], rejected: [], emptyWindows: [], pages: 0 };
    for await (const page of this.pages(symbol, timeframe, since, until)) {
      result.pages++;
      result.candles.push(...page.candles);
      result.rejected.push(...page.rejected);
      if (page.candles.length === 0 && page.rejected.length === 0 && page.duplicates.length === 0) {
        result.emptyWindows.push(page.window);
      }
    }
    return result;
  }

  /**
   * Open time of the first candle, or null when the exchange has none. Two requests, no scan:
   * (1) `since = 0` on a coarse timeframe (1d when offered), which exchanges that page forward
   * from `since` (Binance, Bybit, OKX history) answer with their oldest candles; (2) the
   * requested timeframe from the start of that first coarse candle, whose first row is the
   * answer. An exchange that answers `since = 0` with recent candles only (Kraken) yields the
   * oldest candle it can serve, which is what a backfill can reach anyway.
   */
  async findEarliest(symbol: string, timeframe: string, options: PriceOption = {}): Promise<number | null> {
    this.#invalidSeries(symbol, timeframe);
    const tf = timeframeMs(timeframe);
    const offered = this.#exchange.timeframes ?? {};
    const coarse = tf < 86_400_000 && "1d" in offered ? "1d" : timeframe;
    const series = `${this.#id} ${symbol} ${timeframe}`;
    const first = async (tfName: string, since: number): Promise<number | null> => {
      const { value: rows } = await this.#runner.run(
        "find the earliest candle",
        () =>
          this.#exchange.fetchOHLCV(
            symbol,
            tfName,
            since,
            this.#options.pageLimit(tfName, symbol),
            priceParams(options),
          ),
        { series },
      );
      let min: number | null = null;
      for (const row of rows as unknown[][]) {
        const ts = Number(row[0]);
        if (Number.isFinite(ts) && ts >= since && (min === null || ts < min)) min = ts;
      }
      return min;
    };
    const coarseFirst = await first(coarse, 0);
    if (coarseFirst === null || coarse === timeframe) return coarseFirst;
    return (await first(timeframe, coarseFirst)) ?? coarseFirst;
  }
}
