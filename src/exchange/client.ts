/**
 * The exchange client: one ccxt instance per exchange, one shared weight limiter, retries with
 * backoff, closed and validated candle pages, a forward paginator, earliest-candle search and
 * top-N market selection.
 *
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";
import ccxt from "ccxt";
import { getLogger } from "@logtape/logtape";
import { type Candle, fromOhlcvRow } from "../candle.ts";
import type { Config } from "../config_types.ts";
import { floorTo, timeframeMs } from "../timeframe.ts";
import { classifyFailure, ExchangeRequestError, type FailureKind, headerValue } from "./errors.ts";
import { type Clock, systemClock, WeightLimiter } from "./limiter.ts";
import { type PublishedLimit, type UsageProfile, usageProfile } from "./usage.ts";
import { type RejectedCandle, validateCandles } from "./validate.ts";

const logger = getLogger(["candlekeep", "exchange"]);

/** A ccxt exchange instance. */
export type CcxtExchange = InstanceType<typeof ccxt.Exchange>;

/** The configuration fields the exchange layer reads. */
export type ExchangeConfig =
  & Pick<Config, "exchanges" | "ccxtConfig" | "symbols" | "topSymbols" | "quote" | "timeframes">
  & {
    marketType?: Config["marketType"];
  };

/** Options of {@linkcode ExchangeClient}, mostly for tests. */
export interface ExchangeClientOptions {
  /** Clock and sleep (default: the real ones). */
  clock?: Clock;
  /** Random source for backoff jitter (default Math.random). */
  random?: () => number;
  /** Attempts per request before giving up (default 8). */
  maxAttempts?: number;
  /** First backoff delay in ms (default 500), doubled per attempt. */
  baseDelayMs?: number;
  /** Largest backoff delay in ms (default 30 s). */
  maxDelayMs?: number;
  /** Pause after a ban without Retry-After, in ms (default 2 min). */
  defaultBanMs?: number;
  /** ccxt request timeout in ms unless ccxtConfig sets one (default 15 s). */
  timeoutMs?: number;
  /** Page size when ccxt does not publish one (default 500). */
  defaultPageLimit?: number;
  /** Share of the published rate limit to use (default 0.97). */
  limiterSafety?: number;
}

/** One page returned by {@linkcode ExchangeClient.fetchPage}. */
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

/** The result of {@linkcode ExchangeClient.fetchRange}. */
export interface FetchedRange {
  candles: Candle[];
  rejected: RejectedCandle[];
  /** Windows that came back with no candle at all (historic holes or not yet listed). */
  emptyWindows: { from: number; to: number }[];
  /** Requests (pages) made. */
  pages: number;
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

interface RequestContext {
  sentAt?: number;
  status?: number;
  headers?: Record<string, unknown>;
}

/** Deep-merges plain objects; arrays and other values from `override` replace. Returns a new object. */
export function deepMerge(base: Record<string, unknown>, override: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : value;
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype;
}

const MARKET_TYPE_LOADS: Record<string, string[]> = {
  spot: ["spot"],
  margin: ["spot"],
  swap: ["linear", "inverse"],
  future: ["linear", "inverse"],
  option: ["option"],
};

/**
 * Creates the ccxt instance for `id`: `enableRateLimit` on (its throttle is replaced by our
 * limiter), a request timeout, only `marketType` markets loaded, then the user's
 * `ccxtConfig[id]` deep-merged over all that. Throws for an unknown id or an exchange without
 * `fetchOHLCV`.
 */
export function createCcxtExchange(
  id: string,
  config: Pick<ExchangeConfig, "ccxtConfig" | "marketType">,
  timeoutMs = 15_000,
): CcxtExchange {
  const registry = ccxt as unknown as Record<string, unknown>;
  const known = (ccxt.exchanges as string[]).includes(id) && typeof registry[id] === "function";
  if (!known) {
    throw new Error(
      `Cannot create exchange: current value is "${id}", which ccxt ${ccxt.version} does not know (expected a ccxt id such as binance, bybit, okx, kraken)`,
    );
  }
  const marketType = config.marketType ?? "spot";
  const defaults: Record<string, unknown> = {
    enableRateLimit: true,
    timeout: timeoutMs,
    options: {
      defaultType: marketType === "margin" ? "spot" : marketType,
      fetchMarkets: { types: MARKET_TYPE_LOADS[marketType] ?? [marketType] },
    },
  };
  const merged = deepMerge(defaults, config.ccxtConfig?.[id] ?? {});
  merged.enableRateLimit = true;
  const Cls = registry[id] as new (config: Record<string, unknown>) => CcxtExchange;
  const exchange = new Cls(merged);
  if (!exchange.has?.fetchOHLCV) {
    throw new Error(`Cannot use exchange: current value is "${id}", whose ccxt class has no fetchOHLCV`);
  }
  return exchange;
}

function ceilTo(ms: number, stepMs: number): number {
  const floor = floorTo(ms, stepMs);
  return floor === ms ? ms : floor + stepMs;
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
  #clock: Clock;
  #random: () => number;
  #maxAttempts: number;
  #baseDelay: number;
  #maxDelay: number;
  #defaultBan: number;
  #defaultPageLimit: number;
  #profile: UsageProfile;
  #context = new AsyncLocalStorage<RequestContext>();
  #stats: ExchangeStats = {
    requests: 0,
    rateLimited: 0,
    banned: 0,
    retries: 0,
    errorsByClass: {},
    rejectedCandles: 0,
    duplicateCandles: 0,
    openCandlesDropped: 0,
    limiterWaitMs: 0,
  };
  #loggedRejections = new Set<string>();
  #historyWarned = new Set<string>();
  #selected: string[] = [];
  #top: string[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Wraps a new ccxt instance for `id`; call {@linkcode start} before use. */
  constructor(id: string, config: ExchangeConfig, options: ExchangeClientOptions = {}) {
    this.id = id;
    this.#config = config;
    this.marketType = config.marketType ?? "spot";
    this.exchange = createCcxtExchange(id, config, options.timeoutMs);
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#maxAttempts = options.maxAttempts ?? 8;
    this.#baseDelay = options.baseDelayMs ?? 500;
    this.#maxDelay = options.maxDelayMs ?? 30_000;
    this.#defaultBan = options.defaultBanMs ?? 120_000;
    this.#defaultPageLimit = options.defaultPageLimit ?? 500;
    this.#profile = usageProfile(id, Number(this.exchange.rateLimit) || 100);
    this.limiter = new WeightLimiter({
      capacity: this.#profile.limit.capacity,
      windowMs: this.#profile.limit.windowMs,
      safety: options.limiterSafety,
      clock: this.#clock,
    });
    this.#hookCcxt();
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

  /** Replaces ccxt's throttle with the shared limiter and records each response's status and headers. */
  #hookCcxt(): void {
    const ex = this.exchange as unknown as Record<string, unknown>;
    ex.throttle = async (cost?: number) => {
      const weight = (cost ?? 1) * this.#profile.weightPerCost;
      const before = this.#clock.now();
      await this.limiter.acquire(weight);
      this.#stats.limiterWaitMs += this.#clock.now() - before;
      this.#stats.requests++;
      const ctx = this.#context.getStore();
      if (ctx) ctx.sentAt = this.#clock.now();
    };
    const original = (ex.onRestResponse as (...args: unknown[]) => string).bind(this.exchange);
    ex.onRestResponse = (
      status: number,
      statusText: string,
      url: string,
      method: string,
      headers: Record<string, unknown>,
      body: string,
      ...rest: unknown[]
    ) => {
      const ctx = this.#context.getStore();
      if (ctx) {
        ctx.status = status;
        ctx.headers = headers;
      }
      this.#observeResponse(url, headers, body);
      return original(status, statusText, url, method, headers, body, ...rest);
    };
  }

  #observeResponse(url: string, headers: Record<string, unknown>, body: string): void {
    const profile = this.#profile;
    if (profile.parseLimit) {
      const limit: PublishedLimit | null = profile.parseLimit(url, body);
      if (limit && (limit.capacity !== this.limiter.capacity || limit.windowMs !== this.limiter.windowMs)) {
        this.limiter.setLimit(limit.capacity, limit.windowMs);
        logger.info("{exchange}: published request limit {capacity} weight per {windowMs} ms", {
          exchange: this.id,
          capacity: limit.capacity,
          windowMs: limit.windowMs,
        });
      }
    }
    if (profile.usedWeightHeader) {
      const used = headerValue(headers, profile.usedWeightHeader);
      if (used !== undefined) this.limiter.syncUsage(Number(used));
    }
  }

  /** Loads markets, selects the symbols and logs the choice. */
  async start(): Promise<void> {
    await this.refreshMarkets();
  }

  /** Reloads markets (and re-evaluates the top-N selection). Call it hourly, or use {@linkcode startRefreshTimer}. */
  async refreshMarkets(): Promise<void> {
    await this.#request("loadMarkets", undefined, () => this.exchange.loadMarkets(true));
    const count = Object.values(this.exchange.markets ?? {}).filter((m) => this.#isOurType(m)).length;
    logger.info("{exchange}: {count} {marketType} markets loaded", {
      exchange: this.id,
      count,
      marketType: this.marketType,
    });
    if (this.#config.topSymbols > 0) {
      try {
        this.#top = await this.topSymbols(this.#config.topSymbols, this.#config.quote);
      } catch (error) {
        logger.error("{exchange}: cannot rank markets for TOP_SYMBOLS, keeping the previous choice: {error}", {
          exchange: this.id,
          error,
        });
      }
    }
    const selected = [...new Set([...this.#config.symbols, ...this.#top])];
    if (selected.join(",") !== this.#selected.join(",")) {
      logger.info("{exchange}: symbols {symbols}", { exchange: this.id, symbols: selected, top: this.#top });
    }
    this.#selected = selected;
  }

  /** Refreshes markets every `intervalMs` (default hourly); returns a function that stops it. */
  startRefreshTimer(intervalMs = 3_600_000): () => void {
    this.stopRefreshTimer();
    this.#timer = setInterval(() => {
      this.refreshMarkets().catch((error) => {
        logger.error("{exchange}: market refresh failed: {error}", { exchange: this.id, error });
      });
    }, intervalMs);
    return () => this.stopRefreshTimer();
  }

  /** Stops the refresh timer, if any. */
  stopRefreshTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Releases timers; the client must not be used afterwards. */
  close(): void {
    this.stopRefreshTimer();
  }

  /** Configured symbols merged with the current top-N selection, de-duplicated. */
  symbols(): string[] {
    return [...this.#selected];
  }

  #isOurType(market: { type?: string; spot?: boolean } | undefined): boolean {
    if (!market) return false;
    const wanted = this.marketType === "margin" ? "spot" : this.marketType;
    return market.type === wanted;
  }

  /** The top `n` active markets quoted in `quote` by 24h quote volume (one fetchTickers request). */
  async topSymbols(n: number, quote: string): Promise<string[]> {
    const type = this.marketType === "margin" ? "spot" : this.marketType;
    const tickers = await this.#request(
      "fetchTickers",
      undefined,
      () => this.exchange.fetchTickers(undefined, { type }),
    );
    const ranked: { symbol: string; volume: number }[] = [];
    for (const ticker of Object.values(tickers)) {
      if (ticker.symbol === undefined) continue;
      const market = this.exchange.markets?.[ticker.symbol];
      if (!this.#isOurType(market) || market.active === false || market.quote !== quote.toUpperCase()) continue;
      const price = ticker.vwap ?? ticker.last ?? ticker.close;
      const volume = ticker.quoteVolume ??
        (ticker.baseVolume !== undefined && price !== undefined ? ticker.baseVolume * price : undefined);
      if (volume === undefined || !Number.isFinite(volume)) continue;
      ranked.push({ symbol: ticker.symbol, volume });
    }
    ranked.sort((a, b) => b.volume - a.volume || (a.symbol < b.symbol ? -1 : 1));
    const chosen = ranked.slice(0, n).map((r) => r.symbol);
    logger.info("{exchange}: top {n} {quote} markets by 24h quote volume: {symbols}", {
      exchange: this.id,
      n,
      quote,
      symbols: chosen,
    });
    return chosen;
  }

  /** Why `symbol`/`timeframe` cannot be served here (not listed, inactive, timeframe not offered), or null. */
  validateSeries(symbol: string, timeframe: string): string | null {
    const market = this.exchange.markets?.[symbol];
    if (!market || !this.#isOurType(market)) {
      return `Cannot serve ${this.id} ${symbol} ${timeframe}: the exchange does not list ${symbol} as a ${this.marketType} market`;
    }
    const offered = Object.keys(this.exchange.timeframes ?? {});
    if (!offered.includes(timeframe)) {
      return `Cannot serve ${this.id} ${symbol} ${timeframe}: current timeframe is ${timeframe}, the exchange offers ${
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

  /** Most candles one request returns: ccxt's `features[marketType].fetchOHLCV.limit`, else 500. */
  pageLimit(_timeframe: string): number {
    type Features = Record<string, { fetchOHLCV?: { limit?: number }; linear?: { fetchOHLCV?: { limit?: number } } }>;
    const features = (this.exchange as unknown as { features?: Features }).features;
    const type = this.marketType === "margin" ? "spot" : this.marketType;
    const entry = features?.[type];
    const limit = entry?.fetchOHLCV?.limit ?? entry?.linear?.fetchOHLCV?.limit;
    return typeof limit === "number" && limit > 0 ? limit : this.#defaultPageLimit;
  }

  /** Snapshot of the counters. */
  stats(): ExchangeStats {
    return { ...this.#stats, errorsByClass: { ...this.#stats.errorsByClass } };
  }

  /**
   * Runs one ccxt call with retries: transient failures back off exponentially with jitter (or
   * wait Retry-After); a 429 pauses the shared limiter and a ban the whole exchange until
   * Retry-After; fatal errors are thrown at once with the exchange's message.
   */
  async #request<T>(operation: string, series: string | undefined, call: () => Promise<T>): Promise<T> {
    const { value } = await this.#requestTimed(operation, series, call);
    return value;
  }

  async #requestTimed<T>(
    operation: string,
    series: string | undefined,
    call: () => Promise<T>,
  ): Promise<{ value: T; sentAt: number }> {
    let last: { kind: FailureKind; code: string; status?: number; message: string } | undefined;
    for (let attempt = 1; attempt <= this.#maxAttempts; attempt++) {
      const ctx: RequestContext = {};
      try {
        const value = await this.#context.run(ctx, call);
        return { value, sentAt: ctx.sentAt ?? this.#clock.now() };
      } catch (error) {
        const now = this.#clock.now();
        const c = classifyFailure(error, ctx.status, ctx.headers, now);
        last = c;
        this.#stats.errorsByClass[c.code] = (this.#stats.errorsByClass[c.code] ?? 0) + 1;
        const where = { exchange: this.id, operation, series, code: c.code, status: c.status, attempt };
        if (c.kind === "fatal") {
          logger.error("{exchange} {operation} failed ({code}): {reason}", { ...where, reason: c.message });
          throw new ExchangeRequestError(
            `Cannot ${operation} on ${this.id}${series ? ` for ${series}` : ""}: ${c.code}${
              c.status ? ` (HTTP ${c.status})` : ""
            }: ${c.message}`,
            { kind: "fatal", code: c.code, exchange: this.id, status: c.status, attempts: attempt },
            { cause: error },
          );
        }
        if (attempt === this.#maxAttempts) break;
        this.#stats.retries++;
        const backoff = Math.min(this.#maxDelay, this.#baseDelay * 2 ** (attempt - 1)) * (0.5 + this.#random() * 0.5);
        if (c.kind === "rate_limited") {
          this.#stats.rateLimited++;
          const wait = c.retryAfterMs ?? backoff;
          this.limiter.pauseUntil(now + wait, "rate_limited");
          logger.warn("{exchange}: rate limited, pausing all requests for {waitMs} ms", { ...where, waitMs: wait });
        } else if (c.kind === "banned") {
          this.#stats.banned++;
          const wait = c.retryAfterMs ?? this.#defaultBan;
          this.limiter.pauseUntil(now + wait, "banned");
          logger.error("{exchange}: banned (HTTP {status}), pausing the whole exchange for {waitMs} ms", {
            ...where,
            waitMs: wait,
          });
        } else {
          const wait = c.retryAfterMs ?? backoff;
          logger.warn("{exchange} {operation}: {code}, retrying in {waitMs} ms: {reason}", {
            ...where,
            waitMs: Math.round(wait),
            reason: c.message,
          });
          await this.#clock.sleep(wait);
        }
      }
    }
    if (last?.kind === "rate_limited") this.#stats.rateLimited++;
    if (last?.kind === "banned") this.#stats.banned++;
    throw new ExchangeRequestError(
      `Cannot ${operation} on ${this.id}${
        series ? ` for ${series}` : ""
      }: gave up after ${this.#maxAttempts} attempts, last ${last?.code}${
        last?.status ? ` (HTTP ${last.status})` : ""
      }: ${last?.message}`,
      {
        kind: "exhausted",
        code: last?.code ?? "Unknown",
        exchange: this.id,
        status: last?.status,
        attempts: this.#maxAttempts,
      },
    );
  }

  #invalidSeries(symbol: string, timeframe: string): void {
    const reason = this.validateSeries(symbol, timeframe);
    if (reason !== null) {
      throw new ExchangeRequestError(reason, {
        kind: "invalid_series",
        code: "InvalidSeries",
        exchange: this.id,
        attempts: 0,
      });
    }
  }

  /**
   * One page of closed, validated candles with `since <= ts < until` (until defaults to now),
   * at most {@linkcode pageLimit} of them: the request covers exactly one page window from
   * `since` (rounded up to the timeframe), so a short page means the exchange has nothing more
   * in that window.
   */
  async fetchPage(symbol: string, timeframe: string, since: number, until?: number): Promise<FetchedPage> {
    this.#invalidSeries(symbol, timeframe);
    const tf = timeframeMs(timeframe);
    const limit = this.pageLimit(timeframe);
    const from = ceilTo(Math.max(0, since), tf);
    const to = Math.min(until ?? this.#clock.now(), from + limit * tf);
    const series = `${this.id} ${symbol} ${timeframe}`;
    const empty: FetchedPage = {
      candles: [],
      rejected: [],
      duplicates: [],
      window: { from, to: Math.max(from, to) },
      requestedAt: this.#clock.now(),
      openDropped: 0,
    };
    if (to <= from) return empty;
    this.#warnHistoryLimit(series, tf, from);
    const { value: rows, sentAt } = await this.#requestTimed(
      "fetch candles",
      series,
      () => this.exchange.fetchOHLCV(symbol, timeframe, from, limit, { until: to - 1 }),
    );
    const inWindow: Candle[] = [];
    let openDropped = 0;
    for (const row of rows as unknown[][]) {
      const candle = fromOhlcvRow(row);
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
    for (const r of checked.rejected) {
      const key = `${series}|${r.ts}|${r.reason}`;
      if (this.#loggedRejections.has(key)) continue;
      if (this.#loggedRejections.size > 10_000) this.#loggedRejections.clear();
      this.#loggedRejections.add(key);
      logger.warn("{series}: rejected candle at {time}: {reason}", {
        series,
        exchange: this.id,
        symbol,
        timeframe,
        ts: r.ts,
        time: Number.isFinite(r.ts) ? new Date(r.ts).toISOString() : String(r.ts),
        reason: r.reason,
      });
    }
    if (checked.duplicates.length > 0) {
      logger.warn("{series}: dropped {count} repeated candles", {
        series,
        count: checked.duplicates.length,
        ts: checked.duplicates,
      });
    }
    return {
      candles: checked.candles,
      rejected: checked.rejected,
      duplicates: checked.duplicates,
      window: { from, to },
      requestedAt: sentAt,
      openDropped,
    };
  }

  #warnHistoryLimit(series: string, tf: number, from: number): void {
    const keep = this.#profile.historyLimit;
    if (keep === undefined || this.#historyWarned.has(series)) return;
    if (from < this.#clock.now() - keep * tf) {
      this.#historyWarned.add(series);
      logger.warn(
        "{series}: {exchange} serves only its {keep} most recent candles; older history cannot be fetched",
        { series, exchange: this.id, keep },
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
  async *pages(symbol: string, timeframe: string, since: number, until?: number): AsyncGenerator<FetchedPage> {
    const tf = timeframeMs(timeframe);
    // Nothing at or after the start of the current (open) candle can be closed yet.
    const end = Math.min(until ?? Infinity, floorTo(this.#clock.now(), tf));
    let cursor = ceilTo(Math.max(0, since), tf);
    while (cursor < end) {
      const page = await this.fetchPage(symbol, timeframe, cursor, end);
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
  async findEarliest(symbol: string, timeframe: string): Promise<number | null> {
    this.#invalidSeries(symbol, timeframe);
    const tf = timeframeMs(timeframe);
    const offered = this.exchange.timeframes ?? {};
    const coarse = tf < 86_400_000 && "1d" in offered ? "1d" : timeframe;
    const series = `${this.id} ${symbol} ${timeframe}`;
    const first = async (tfName: string, since: number): Promise<number | null> => {
      const rows = await this.#request(
        "find the earliest candle",
        series,
        () => this.exchange.fetchOHLCV(symbol, tfName, since, this.pageLimit(tfName)),
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
