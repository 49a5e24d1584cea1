/**
 * Open-interest pages of one exchange (ccxt `fetchOpenInterestHistory`) through its request
 * runner: one request per page window on the period grid, the exchange's decimals kept exactly
 * (taken from the raw row ccxt parsed), rows validated; and what the exchange offers (periods,
 * page size, how long it keeps the history).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { timeframeMs } from "../timeframe.ts";
import type { CcxtExchange } from "./ccxt_instance.ts";
import { ExchangeRequestError } from "./errors.ts";
import type { Clock } from "./limiter.ts";
import type { RequestRunner } from "./request_runner.ts";

const logger = getLogger(["candlekeep", "exchange"]);
const DAY = 86_400_000;

/** One open-interest row: decimals as the exchange sent them. */
export interface OpenInterestRow {
  /** Period start on the period grid (ms). */
  ts: number;
  /** Open interest in contracts (base units), exact decimal text. */
  amount: string;
  /** Its value in quote, exact decimal text, or null when the exchange does not give it. */
  value: string | null;
}

/** One page of {@linkcode OpenInterestReader.fetchPage}. */
export interface OpenInterestPage {
  /** Valid rows with `window.from <= ts < window.to`, strictly increasing. */
  rows: OpenInterestRow[];
  /** Rows served but rejected (ts and reason). */
  rejected: { ts: number; reason: string }[];
  /** The window asked for, `[from, to)`. */
  window: { from: number; to: number };
}

/** What an exchange offers for the open interest of one symbol and period. */
export interface OpenInterestOffer {
  /** Why it cannot be fetched (no such perpetual, period not offered), or null. */
  unsupported: string | null;
  /** How far back the exchange serves history (ms), or null when it keeps all of it. */
  retentionMs: number | null;
  /** Most rows one request returns. */
  pageLimit: number;
  /** Listing time of the contract when the exchange publishes it. */
  listedAt: number | null;
}

/** Exchanges whose open-interest history is kept for a limited time only (Binance: 30 days). */
const RETENTION_MS: Record<string, number> = { binance: 30 * DAY, binanceusdm: 30 * DAY, binancecoinm: 30 * DAY };
/** Most rows per request (Binance openInterestHist 500, Bybit open-interest 200). */
const PAGE_LIMITS: Record<string, number> = { binance: 500, binanceusdm: 500, binancecoinm: 500, bybit: 200 };
const AMOUNT_KEYS = ["sumOpenInterest", "openInterest", "open_interest", "openInterestAmount", "amount"];
const VALUE_KEYS = ["sumOpenInterestValue", "openInterestValue", "sumOpenInterestUsd", "value"];
const DECIMAL = /^[0-9]+(\.[0-9]+)?$/;

/** The exact text of `parsed` in the raw row: the first of `keys` holding the same number. */
function exactText(info: Record<string, unknown>, keys: string[], parsed: unknown): string | null {
  if (typeof parsed !== "number" || !Number.isFinite(parsed)) return null;
  for (const key of keys) {
    const raw = info[key];
    const text = typeof raw === "number" ? String(raw) : typeof raw === "string" ? raw.trim() : null;
    if (text !== null && DECIMAL.test(text) && Number(text) === parsed) return text;
  }
  const text = String(parsed);
  return DECIMAL.test(text) ? text : null;
}

/** Reads open interest of one exchange through its request runner. */
export class OpenInterestReader {
  readonly #exchange: CcxtExchange;
  readonly #runner: RequestRunner;
  readonly #clock: Clock;
  #loggedRejections = 0;

  /** Reads `exchange`'s open interest through `runner`; `clock` says what now is. */
  constructor(exchange: CcxtExchange, runner: RequestRunner, clock: Clock) {
    this.#exchange = exchange;
    this.#runner = runner;
    this.#clock = clock;
  }

  /** What the exchange offers for `symbol` at `period`. */
  offer(symbol: string, period: string): OpenInterestOffer {
    const id = this.#runner.id;
    const market = this.#exchange.markets?.[symbol];
    const base = {
      retentionMs: RETENTION_MS[id] ?? null,
      pageLimit: PAGE_LIMITS[id] ?? 100,
      listedAt: typeof market?.created === "number" ? market.created : null,
    };
    const unsupported = (reason: string) => ({ ...base, unsupported: reason });
    if (!this.#exchange.has["fetchOpenInterestHistory"]) {
      return unsupported(`${id} does not offer open-interest history (ccxt fetchOpenInterestHistory)`);
    }
    if (!market) return unsupported(`${symbol} is not listed on ${id}`);
    if (market.type !== "swap") return unsupported(`${symbol} on ${id} is a ${market.type} market, not a perpetual`);
    const intervals = (this.#exchange.options as Record<string, unknown>)["intervals"];
    if (intervals && typeof intervals === "object" && !(period in intervals)) {
      return unsupported(`${id} offers open interest per ${Object.keys(intervals).join(", ")}, not ${period}`);
    }
    return { ...base, unsupported: null };
  }

  /**
   * One page: the rows with `since <= ts < until` (until defaults to now) of at most one page
   * window from `since` (rounded up to the period grid), validated, exact decimals.
   */
  async fetchPage(symbol: string, period: string, since: number, until?: number): Promise<OpenInterestPage> {
    const offer = this.offer(symbol, period);
    if (offer.unsupported !== null) {
      throw new ExchangeRequestError(`Cannot fetch open interest: ${offer.unsupported}`, {
        kind: "invalid_series",
        code: "InvalidSeries",
        exchange: this.#runner.id,
        attempts: 0,
      });
    }
    const step = timeframeMs(period);
    const from = Math.ceil(Math.max(0, since) / step) * step;
    const to = Math.min(until ?? this.#clock.now() + 1, from + offer.pageLimit * step);
    if (to <= from) return { rows: [], rejected: [], window: { from, to: from } };
    const series = `${this.#runner.id} ${symbol} open interest ${period}`;
    const { value, sentAt } = await this.#runner.run(
      "fetch open interest",
      () => this.#exchange.fetchOpenInterestHistory(symbol, period, from, offer.pageLimit, { until: to - 1 }),
      { series },
    );
    const rows: OpenInterestRow[] = [];
    const rejected: { ts: number; reason: string }[] = [];
    const seen = new Set<number>();
    const inverse = this.#exchange.markets?.[symbol]?.inverse === true;
    for (const item of value as unknown as Record<string, unknown>[]) {
      // ccxt reads Bybit's open interest of an inverse contract (counted in contracts of 1 USD)
      // as a value only: it is the amount in contracts, and no separate value is given.
      if (inverse && item.openInterestAmount == null && item.openInterestValue != null) {
        item.openInterestAmount = item.openInterestValue;
        item.openInterestValue = undefined;
      }
      const ts = item.timestamp as number;
      if (Number.isFinite(ts) && (ts < from || ts >= to)) continue;
      const info = (item.info ?? {}) as Record<string, unknown>;
      const amount = exactText(info, AMOUNT_KEYS, item.openInterestAmount);
      const value = item.openInterestValue === undefined || item.openInterestValue === null
        ? null
        : exactText(info, VALUE_KEYS, item.openInterestValue);
      let reason: string | null = null;
      if (!Number.isSafeInteger(ts) || ts % step !== 0) reason = `time ${ts} is not on the ${period} grid`;
      else if (ts > sentAt) reason = "time is after the request";
      else if (seen.has(ts)) continue;
      else if (amount === null) reason = `amount is not a non-negative decimal: ${item.openInterestAmount}`;
      else if (value === null && item.openInterestValue != null) {
        reason = `value is not a non-negative decimal: ${item.openInterestValue}`;
      }
      if (reason !== null) {
        rejected.push({ ts, reason });
        continue;
      }
      seen.add(ts);
      rows.push({ ts, amount: amount!, value });
    }
    rows.sort((a, b) => a.ts - b.ts);
    if (rejected.length > 0 && this.#loggedRejections++ < 100) {
      logger.warn("{series}: rejected {count} open-interest rows, first at {time}: {reason}", {
        series,
        count: rejected.length,
        time: new Date(rejected[0].ts).toISOString(),
        reason: rejected[0].reason,
      });
    }
    return { rows, rejected, window: { from, to } };
  }
}
