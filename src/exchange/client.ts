/**
 * The exchange client: one ccxt instance per exchange ({@linkcode createCcxtExchange}), whose
 * requests run through one {@linkcode RequestRunner} (shared weight limiter, retries,
 * reachability), its {@linkcode Markets} (loading, top-N selection) and an
 * {@linkcode OhlcvReader} (closed, validated pages, the paginator, earliest-candle search).
 *
 * @module
 */
import type { Config } from "../config_types.ts";
import { type CcxtExchange, createCcxtExchange, type ExchangeConfig } from "./ccxt_instance.ts";
import { systemClock, type WeightLimiter } from "./limiter.ts";
import { type FundingPage, FundingReader } from "./funding.ts";
import { Markets } from "./markets.ts";
import { type FetchedPage, type FetchedRange, OhlcvReader } from "./ohlcv.ts";
import { type OpenInterestOffer, type OpenInterestPage, OpenInterestReader } from "./open_interest.ts";
import type { ExchangeStatus } from "./reachability.ts";
import { RequestRunner, type RequestRunnerOptions } from "./request_runner.ts";
import type { PriceOption } from "../market_type.ts";

export { type CcxtExchange, createCcxtExchange, deepMerge, type ExchangeConfig } from "./ccxt_instance.ts";
export type { FetchedPage, FetchedRange } from "./ohlcv.ts";
export type { FundingPage, FundingRateRow } from "./funding.ts";
export type { OpenInterestOffer, OpenInterestPage, OpenInterestRow } from "./open_interest.ts";
export type { ExchangeStatus } from "./reachability.ts";

/** Options of {@linkcode ExchangeClient}, mostly for tests. */
export interface ExchangeClientOptions extends RequestRunnerOptions {
  /** ccxt request timeout in ms unless ccxtConfig sets one (default 15 s). */
  timeoutMs?: number;
  /** Page size when ccxt does not publish one (default 500). */
  defaultPageLimit?: number;
}

/** Counters exposed for metrics. */
export interface ExchangeStats {
  /** HTTP requests sent (every attempt). */
  requests: number;
  /** Rate-limit responses (HTTP 429 / RateLimitExceeded). */
  rateLimited: number;
  /** Ban responses (HTTP 418, or 403 with Retry-After). */
  banned: number;
  /** Retries after a failed attempt. */
  retries: number;
  /** Failed attempts by ccxt error class. */
  errorsByClass: Record<string, number>;
  /** Candles rejected by validation. */
  rejectedCandles: number;
  /** Repeated timestamps dropped. */
  duplicateCandles: number;
  /** Still-open candles dropped. */
  openCandlesDropped: number;
  /** Total ms requests waited in the rate limiter. */
  limiterWaitMs: number;
}

/**
 * One exchange. Implements the ingest engine's `ExchangeSource` (pageLimit, fetchPage,
 * findEarliest, validateSeries, topSymbols). Create with {@linkcode ExchangeClient.create}
 * (loads markets) or the constructor followed by {@linkcode ExchangeClient.start}.
 */
export class ExchangeClient {
  /** ccxt exchange id. */
  readonly id: string;
  /** The underlying ccxt instance (its throttle is our limiter). */
  readonly exchange: CcxtExchange;
  /** The limiter shared by every request to this exchange. */
  readonly limiter: WeightLimiter;
  /** Market type loaded. */
  readonly marketType: Config["marketType"];
  #config: ExchangeConfig;
  #runner: RequestRunner;
  #markets: Markets;
  #reader: OhlcvReader;
  #funding: FundingReader;
  #openInterest: OpenInterestReader;

  /** Wraps a new ccxt instance for `id`; call {@linkcode start} before use. */
  constructor(id: string, config: ExchangeConfig, options: ExchangeClientOptions = {}) {
    this.id = id;
    this.#config = config;
    this.marketType = config.marketType ?? "spot";
    this.exchange = createCcxtExchange(id, config, options.timeoutMs);
    this.#runner = new RequestRunner(id, this.exchange, options);
    this.limiter = this.#runner.limiter;
    this.#markets = new Markets(this.exchange, this.#runner, {
      marketType: this.marketType,
      defaultPageLimit: options.defaultPageLimit,
    });
    this.#reader = new OhlcvReader(this.exchange, this.#runner, {
      clock: options.clock ?? systemClock,
      pageLimit: (timeframe, symbol) => this.pageLimit(timeframe, symbol),
      validateSeries: (symbol, timeframe) => this.validateSeries(symbol, timeframe),
      historyLimit: this.#runner.profile.historyLimit,
    });
    this.#funding = new FundingReader(this.exchange, this.#runner, options.clock ?? systemClock);
    this.#openInterest = new OpenInterestReader(this.exchange, this.#runner, options.clock ?? systemClock);
  }

  /** Creates the client and loads its markets (and the top-N selection). */
  static async create(
    id: string,
    config: ExchangeConfig,
    options: ExchangeClientOptions = {},
  ): Promise<ExchangeClient> {
    const client = new ExchangeClient(id, config, options);
    await client.start();
    return client;
  }

  /** Loads markets, selects the symbols and logs the choice. */
  async start(): Promise<void> {
    await this.refreshMarkets();
  }

  /** Reloads markets (and re-evaluates the top-N selection). Call it hourly, or use {@linkcode startRefreshTimer}. */
  refreshMarkets(): Promise<void> {
    return this.#markets.refresh(this.#config);
  }

  /** Refreshes markets every `intervalMs` (default hourly); returns a function that stops it. */
  startRefreshTimer(intervalMs = 3_600_000): () => void {
    this.#markets.startTimer(() => this.refreshMarkets(), intervalMs);
    return () => this.stopRefreshTimer();
  }

  /** Stops the refresh timer, if any. */
  stopRefreshTimer(): void {
    this.#markets.stopTimer();
  }

  /** Releases timers; the client must not be used afterwards. */
  close(): void {
    this.stopRefreshTimer();
  }

  /** Configured symbols merged with the current top-N selection, de-duplicated. */
  symbols(): string[] {
    return this.#markets.symbols();
  }

  /** The top `n` active markets quoted in `quote` by 24h quote volume (one fetchTickers request). */
  topSymbols(n: number, quote: string): Promise<string[]> {
    return this.#markets.topSymbols(n, quote);
  }

  /** Why `symbol`/`timeframe` cannot be served here (not listed, inactive, timeframe not offered), or null. */
  validateSeries(symbol: string, timeframe: string): string | null {
    return this.#markets.validateSeries(symbol, timeframe);
  }

  /** Most candles one request returns for `symbol`'s market type (`features[type].fetchOHLCV.limit`), else 500. */
  pageLimit(timeframe: string, symbol?: string): number {
    return this.#markets.pageLimit(timeframe, symbol);
  }

  /**
   * The limiter of every request family in use (Binance limits spot, USDⓈ-M `fapi`, COIN-M
   * `dapi` and `/futures/data` separately; other exchanges have one, `spot`).
   */
  limiters(): Map<string, WeightLimiter> {
    return this.#runner.limiters();
  }

  /** Snapshot of the counters. */
  stats(): ExchangeStats {
    return { ...this.#runner.stats(), ...this.#reader.stats() };
  }

  /**
   * Whether the exchange answers: reachable, since when, why not (see `reachability.ts`). An
   * exchange that has not answered since the client was created is unreachable since then.
   */
  status(): ExchangeStatus {
    return this.#runner.reachability.status();
  }

  /**
   * One page of closed, validated candles with `since <= ts < until` (until defaults to now),
   * at most {@linkcode pageLimit} of them: the request covers exactly one page window from
   * `since` (rounded up to the timeframe), so a short page means the exchange has nothing more
   * in that window.
   */
  fetchPage(...args: Parameters<OhlcvReader["fetchPage"]>): Promise<FetchedPage> {
    return this.#reader.fetchPage(...args);
  }

  /**
   * Walks forward page by page from `since` to `until` (default: the start of the current, still
   * open candle), yielding every page, empty ones included (see `ohlcv.ts`).
   */
  pages(symbol: string, timeframe: string, since: number, until?: number): AsyncGenerator<FetchedPage> {
    return this.#reader.pages(symbol, timeframe, since, until);
  }

  /** Collects {@linkcode pages} into one result (for tests, benchmarks and small ranges). */
  fetchRange(symbol: string, timeframe: string, since: number, until?: number): Promise<FetchedRange> {
    return this.#reader.fetchRange(symbol, timeframe, since, until);
  }

  /** Most funding rows one request returns (Binance 1000, Bybit 200, else 100). */
  fundingPageLimit(): number {
    return this.#funding.pageLimit();
  }

  /** The perpetual's funding interval in ms where the exchange says it (see `funding.ts`), else null. */
  fundingInterval(symbol: string): Promise<number | null> {
    return this.#funding.fundingInterval(symbol);
  }

  /** When the contract was listed (ccxt `market.created`), or null when unknown. */
  listedAt(symbol: string): number | null {
    return this.#funding.listedAt(symbol);
  }

  /**
   * One page of validated funding rows with `since <= ts < until` (until defaults to now): one
   * request for a window of at most a page of funding times of `intervalMs` (1 h when unknown).
   */
  fetchFundingPage(symbol: string, since: number, until?: number, intervalMs?: number): Promise<FundingPage> {
    return this.#funding.fetchPage(symbol, since, until, intervalMs);
  }

  /** What the exchange offers for the open interest of `symbol` per `period` (see `open_interest.ts`). */
  openInterestOffer(symbol: string, period: string): OpenInterestOffer {
    return this.#openInterest.offer(symbol, period);
  }

  /** One validated page of open interest with `since <= ts < until`, exact decimals (see `open_interest.ts`). */
  fetchOpenInterestPage(symbol: string, period: string, since: number, until?: number): Promise<OpenInterestPage> {
    return this.#openInterest.fetchPage(symbol, period, since, until);
  }

  /** Open time of the first candle, or null when the exchange has none (two requests, no scan; see `ohlcv.ts`). */
  findEarliest(symbol: string, timeframe: string, options: PriceOption = {}): Promise<number | null> {
    return this.#reader.findEarliest(symbol, timeframe, options);
  }
}

/**
 * Creates and starts one client per configured exchange. Fails at start-up, naming the id, for
 * an unknown exchange or one without fetchOHLCV.
 */
export async function createExchangeClients(
  config: ExchangeConfig,
  options: ExchangeClientOptions = {},
): Promise<Map<string, ExchangeClient>> {
  const clients = new Map<string, ExchangeClient>();
  for (const id of config.exchanges) clients.set(id, new ExchangeClient(id, config, options));
  await Promise.all([...clients.values()].map((c) => c.start()));
  return clients;
}
