/**
 * Candles over WebSocket with ccxt.pro: a {@linkcode KlineStreams} keeps the kline streams of
 * one exchange subscribed in batches (one connection per batch, within the exchange's stream
 * limits), reconnects with backoff after an error, a close or a silence, and reports each
 * candle update and each closed candle.
 *
 * How ccxt.pro behaves here (measured against tests/support/fake_ws.ts, see its notes): under
 * Deno it uses the built-in WebSocket; it does not re-subscribe after a drop (the next watch
 * opens a new connection); it notices no silent socket; and `watchOHLCV` hands back candles
 * without Binance's "closed" flag. So closes are taken from the raw kline event where the
 * exchange sends one (Binance's `k.x`, read by overriding `handleOHLCV` in a subclass), else
 * from the first update of the next candle; silence is timed here. Spot pairs and contracts
 * are served on different URLs (ccxt picks the URL from a batch's first market), so each
 * {@linkcode connectionGroup} gets batches of its own; ccxt maps a Binance event to a spot or a
 * contract market by its connection's URL (`isSpotUrl`), and so does the closed-flag hook.
 *
 * @module
 */
import ccxt from "ccxt";
import type { Candle } from "../candle.ts";
import { timeframeMs } from "../timeframe.ts";
import { parseUnifiedSymbol } from "../market_type.ts";
import { deepMerge } from "./ccxt_instance.ts";
import { candleProblem } from "./validate.ts";

/** One kline update: the candle so far, or the closed candle. */
export interface KlineEvent {
  symbol: string;
  timeframe: string;
  candle: Candle;
  closed: boolean;
}

/** A series watched over WebSocket. */
export interface KlineSubscription {
  symbol: string;
  timeframe: string;
}

/** State changes of one batch's connection. */
export interface KlineBatchState {
  /** Index of the batch (its subscriptions are `batches[index]`). */
  batch: number;
  up: boolean;
  /** Why the connection went down. */
  reason?: string;
}

/** Options of {@linkcode KlineStreams}. */
export interface KlineStreamsOptions {
  /** The exchange's ccxt id. */
  id: string;
  /** `CCXT_CONFIG[id]` (URLs, proxies), merged over the defaults like the REST client's. */
  ccxtConfig?: Record<string, unknown>;
  /** Markets and currencies already loaded by the REST client, so a connection loads none. */
  markets: { markets: unknown; currencies: unknown };
  /** Streams per connection (default {@linkcode streamLimits}). */
  streamsPerConnection?: number;
  /** A connection with no message for this long is reconnected (default: twice the smallest timeframe, at least 30 s). */
  silenceMs?: number;
  onEvent(event: KlineEvent): void;
  onState?(state: KlineBatchState): void;
  /** A malformed kline from the exchange: not stored, reported. */
  onRejected?(symbol: string, timeframe: string, reason: string): void;
  /** Clock and sleep, for tests. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** The exchange's WebSocket stream limits (Binance: 1024 streams per connection; we stay far below). */
export function streamLimits(id: string): { streamsPerConnection: number; connectsPerMinute: number } {
  // Binance allows 1024 streams a connection, 5 incoming messages a second and 300 connections
  // per 5 minutes per IP; ccxt sends one SUBSCRIBE per batch. Other exchanges are stricter.
  if (id.startsWith("binance")) return { streamsPerConnection: 200, connectsPerMinute: 30 };
  return { streamsPerConnection: 50, connectsPerMinute: 10 };
}

/**
 * Which connections a symbol's klines travel on: `spot`, `linear` (USDⓈ-M perpetuals and dated
 * futures), `inverse` (COIN-M) or `option`. Exchanges serve each on URLs of its own, so a
 * batch never mixes them.
 */
export function connectionGroup(symbol: string): string {
  const parsed = parseUnifiedSymbol(symbol);
  if (!parsed || parsed.type === "spot") return "spot";
  if (parsed.type === "option") return "option";
  return parsed.margin ?? parsed.type;
}

/** What is used of a ccxt.pro instance. */
interface ProExchange {
  has?: Record<string, unknown>;
  watchOHLCV(symbol: string, timeframe: string): Promise<unknown>;
  watchOHLCVForSymbols?(pairs: string[][]): Promise<unknown>;
  setMarkets(markets: unknown, currencies?: unknown): unknown;
  close(): Promise<void>;
}

type WatchResult = Record<string, Record<string, number[][]>>;

/**
 * Whether the kline events of exchange `id` say when a candle closed and are read for it
 * (Binance's `k.x`); elsewhere a close is taken from the next candle's first update, whose
 * last values may not be final.
 */
export function flagsCloses(id: string): boolean {
  return id.startsWith("binance");
}

/** Whether ccxt.pro can watch candles of exchange `id`. */
export function canWatchCandles(id: string): boolean {
  const pro = (ccxt as unknown as { pro?: Record<string, unknown> }).pro;
  const Cls = pro?.[id] as (new () => { has?: Record<string, unknown> }) | undefined;
  if (typeof Cls !== "function") return false;
  try {
    return Boolean(new Cls().has?.watchOHLCV);
  } catch {
    return false;
  }
}

/** A ccxt.pro instance of `id` that reports Binance-style closed flags through `onClosedFlag`. */
function createPro(
  id: string,
  ccxtConfig: Record<string, unknown>,
  onClosedFlag: (exchange: ProExchange, client: unknown, message: Record<string, unknown>) => void,
): ProExchange {
  const pro = (ccxt as unknown as { pro: Record<string, new (c: Record<string, unknown>) => ProExchange> }).pro;
  const Base = pro[id];
  // Binance's kline event says whether the candle closed (`k.x`); ccxt drops it. The subclass
  // passes the raw event on after ccxt has handled it.
  class WithCloses extends (Base as unknown as new (c: Record<string, unknown>) => ProExchange) {
    handleOHLCV(client: unknown, message: Record<string, unknown>): unknown {
      const base = Base.prototype as unknown as { handleOHLCV(c: unknown, m: unknown): unknown };
      const result = base.handleOHLCV.call(this, client, message);
      onClosedFlag(this, client, message);
      return result;
    }
  }
  return new WithCloses(deepMerge({ enableRateLimit: true, newUpdates: true }, ccxtConfig));
}

const KEY = (symbol: string, timeframe: string) => `${symbol}\u0000${timeframe}`;

/** The kline streams of one exchange. */
export class KlineStreams {
  readonly #o: KlineStreamsOptions;
  readonly #now: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  #batches: KlineSubscription[][] = [];
  readonly #runs: Promise<void>[] = [];
  readonly #exchanges = new Set<ProExchange>();
  /** The newest candle seen per series (open time), to find closes and drop stale updates. */
  readonly #latest = new Map<string, { ts: number; candle: Candle; closedSent: boolean }>();
  #closed = false;
  /** The exchange flags closed candles in its kline events (Binance `k.x`). */
  readonly #closedFlag: boolean;
  #connectsThisMinute: number[] = [];
  /** Connections opened, over the life of this object (reconnects included). */
  connects = 0;
  /** Kline messages received. */
  messages = 0;

  /** Nothing connects until {@linkcode KlineStreams.start}. */
  constructor(options: KlineStreamsOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.#closedFlag = flagsCloses(options.id);
  }

  /** The batches of subscriptions, one connection each. */
  get batches(): readonly (readonly KlineSubscription[])[] {
    return this.#batches;
  }

  /**
   * Connects the batches of `subscriptions` and keeps them connected until
   * {@linkcode KlineStreams.close}. A batch holds one {@linkcode connectionGroup} only: ccxt
   * subscribes a batch on the URL of its first market's type.
   */
  start(subscriptions: readonly KlineSubscription[]): void {
    const per = this.#o.streamsPerConnection ?? streamLimits(this.#o.id).streamsPerConnection;
    const groups = new Map<string, KlineSubscription[]>();
    for (const s of subscriptions) {
      const group = connectionGroup(s.symbol);
      groups.set(group, [...(groups.get(group) ?? []), s]);
    }
    this.#batches = [];
    for (const group of groups.values()) {
      for (let i = 0; i < group.length; i += per) this.#batches.push(group.slice(i, i + per));
    }
    this.#batches.forEach((batch, index) => this.#runs.push(this.#run(batch, index)));
  }

  /** Closes every connection; resolves when every batch loop has ended. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#exchanges].map((e) => e.close().catch(() => {})));
    await Promise.allSettled(this.#runs);
  }

  #silenceMs(batch: readonly KlineSubscription[]): number {
    if (this.#o.silenceMs !== undefined) return this.#o.silenceMs;
    const smallest = Math.min(...batch.map((s) => timeframeMs(s.timeframe)));
    return Math.max(30_000, 2 * smallest);
  }

  /** Waits until a new connection is allowed (`connectsPerMinute` per exchange). */
  async #connectSlot(): Promise<void> {
    const limit = streamLimits(this.#o.id).connectsPerMinute;
    for (;;) {
      const now = this.#now();
      this.#connectsThisMinute = this.#connectsThisMinute.filter((t) => now - t < 60_000);
      if (this.#connectsThisMinute.length < limit) {
        this.#connectsThisMinute.push(now);
        return;
      }
      await this.#sleep(Math.max(50, 60_000 - (now - this.#connectsThisMinute[0])));
    }
  }

  async #run(batch: readonly KlineSubscription[], index: number): Promise<void> {
    const pairs = batch.map((s) => [s.symbol, s.timeframe]);
    let backoff = 1000;
    while (!this.#closed) {
      await this.#connectSlot();
      if (this.#closed) return;
      const exchange = createPro(
        this.#o.id,
        this.#o.ccxtConfig ?? {},
        (ex, client, message) => this.#rawKline(ex, client, message),
      );
      exchange.setMarkets(this.#o.markets.markets, this.#o.markets.currencies);
      this.#exchanges.add(exchange);
      this.connects++;
      const connectedAt = this.#now();
      let up = false;
      // Nothing is inferred across connections: a close missed while reconnecting is left to
      // the REST safety net, never made up from a forming candle of the previous connection.
      for (const s of batch) this.#latest.delete(KEY(s.symbol, s.timeframe));
      try {
        const silence = this.#silenceMs(batch);
        for (;;) {
          if (this.#closed) return;
          const result = await this.#within(this.#watch(exchange, pairs), silence);
          if (!up) {
            up = true;
            this.#o.onState?.({ batch: index, up: true });
          }
          this.#results(result);
          // A connection that stayed up a while earns a fresh backoff.
          if (this.#now() - connectedAt > 30_000) backoff = 1000;
        }
      } catch (error) {
        if (this.#closed) return;
        const reason = error instanceof Error ? error.message : String(error);
        this.#o.onState?.({ batch: index, up: false, reason });
      } finally {
        this.#exchanges.delete(exchange);
        await exchange.close().catch(() => {});
      }
      if (this.#closed) return;
      await this.#sleep(backoff * (0.8 + Math.random() * 0.4));
      backoff = Math.min(60_000, backoff * 2);
    }
  }

  async #watch(exchange: ProExchange, pairs: string[][]): Promise<WatchResult> {
    if (pairs.length > 1 && exchange.has?.watchOHLCVForSymbols && exchange.watchOHLCVForSymbols) {
      return await exchange.watchOHLCVForSymbols(pairs) as WatchResult;
    }
    const [symbol, timeframe] = pairs[0];
    return { [symbol]: { [timeframe]: await exchange.watchOHLCV(symbol, timeframe) as number[][] } };
  }

  /** `p`, or a rejection when it takes longer than `ms` (a silent stream). */
  #within<T>(p: Promise<T>, ms: number): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const silent = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no message for ${Math.round(ms / 1000)} s`)), ms);
    });
    return Promise.race([p, silent]).finally(() => clearTimeout(timer));
  }

  /** Updates from ccxt's watch results (exchanges without a closed flag close a candle at the next one). */
  #results(result: WatchResult): void {
    for (const [symbol, byTimeframe] of Object.entries(result ?? {})) {
      for (const [timeframe, rows] of Object.entries(byTimeframe ?? {})) {
        for (const row of rows ?? []) this.#update(symbol, timeframe, row, false);
      }
    }
  }

  /** A raw kline event with Binance's closed flag: the closed candle is reported at once. */
  #rawKline(exchange: ProExchange, client: unknown, message: Record<string, unknown>): void {
    this.messages++;
    const k = message.k as Record<string, unknown> | undefined;
    if (!k || k.x !== true) return;
    const ex = exchange as unknown as {
      safeSymbol(id: unknown, m?: unknown, d?: unknown, type?: string): string;
      findTimeframe(i: unknown): string;
      isSpotUrl?(client: unknown): boolean;
    };
    const spot = ex.isSpotUrl ? ex.isSpotUrl(client) : true;
    const symbol = ex.safeSymbol(k.s, undefined, undefined, spot ? "spot" : "contract");
    const timeframe = ex.findTimeframe(k.i);
    const row = [Number(k.t), Number(k.o), Number(k.h), Number(k.l), Number(k.c), Number(k.v)];
    this.#update(symbol, timeframe, row, true);
  }

  #update(symbol: string, timeframe: string, row: number[], closedFlag: boolean): void {
    const key = KEY(symbol, timeframe);
    const candle: Candle = { ts: row[0], open: row[1], high: row[2], low: row[3], close: row[4], volume: row[5] };
    const problem = candleProblem(candle, timeframeMs(timeframe));
    if (problem !== null) {
      this.#o.onRejected?.(symbol, timeframe, problem);
      return;
    }
    const seen = this.#latest.get(key);
    if (seen && candle.ts < seen.ts) return; // out of order: older than what we have
    if (seen && candle.ts > seen.ts && !seen.closedSent && !this.#closedFlag) {
      // The next candle began: the previous one closed with its last values (exchanges that
      // flag closes are not guessed for: a missed flag is left to the REST safety net).
      this.#o.onEvent({ symbol, timeframe, candle: seen.candle, closed: true });
    }
    if (seen && candle.ts === seen.ts && seen.closedSent) return; // a repeat after the close
    this.#latest.set(key, { ts: candle.ts, candle, closedSent: closedFlag });
    this.#o.onEvent({ symbol, timeframe, candle, closed: closedFlag });
  }
}
