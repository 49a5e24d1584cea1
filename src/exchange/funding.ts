/**
 * Funding-rate history of perpetual contracts: one request per page window (ccxt
 * `fetchFundingRateHistory`), validated rows with the exchange's own decimals, and the
 * contract's funding interval where ccxt exposes it.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { CcxtExchange } from "./ccxt_instance.ts";
import { ExchangeRequestError } from "./errors.ts";
import type { Clock } from "./limiter.ts";
import type { RequestRunner } from "./request_runner.ts";

const logger = getLogger(["candlekeep", "exchange"]);

const MINUTE = 60_000;
const HOUR = 3_600_000;
/** How long the exchange's list of funding intervals is used before it is asked again. */
export const FUNDING_INTERVALS_TTL_MS = HOUR;

/** Most funding rows one request returns, by exchange (ccxt publishes no figure). */
const PAGE_LIMITS: Record<string, number> = { binance: 1000, binanceusdm: 1000, binancecoinm: 1000, bybit: 200 };

/** One funding row: time (ms UTC), the rate and the mark price as the exchange's decimals. */
export interface FundingRateRow {
  ts: number;
  /** Decimal text, exactly as published (or the shortest round-trip text of ccxt's number). */
  rate: string;
  /** Decimal text of the mark price at funding time, when the exchange gives one. */
  markPrice: string | null;
}

/** One page of funding rows with `window.from <= ts < window.to`, oldest first. */
export interface FundingPage {
  rows: FundingRateRow[];
  /** Rows served but rejected (ts and reason). */
  rejected: { ts: number; reason: string }[];
  /** The window asked for, `[from, to)`; it holds at most one page of funding times. */
  window: { from: number; to: number };
  /** When the request was sent (ms). */
  requestedAt: number;
}

const DECIMAL = /^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i;

/** `text` when it is a decimal equal to `value`, else the shortest round-trip text of `value`. */
export function exactDecimal(text: unknown, value: number): string {
  if (typeof text === "string" && DECIMAL.test(text.trim()) && Number(text) === value) return text.trim();
  return String(value);
}

function optionalDecimal(text: unknown): string | null {
  if (typeof text === "string" && DECIMAL.test(text.trim()) && Number.isFinite(Number(text))) return text.trim();
  if (typeof text === "number" && Number.isFinite(text)) return String(text);
  return null;
}

/** Why a served funding row cannot be stored, or null (finite rate, time within a minute of an hour). */
export function fundingRowProblem(ts: unknown, rate: unknown): string | null {
  if (typeof ts !== "number" || !Number.isSafeInteger(ts) || ts <= 0) return `time is ${String(ts)}`;
  if (typeof rate !== "number" || !Number.isFinite(rate)) return `rate is ${String(rate)}`;
  const offHour = Math.abs(ts - Math.round(ts / HOUR) * HOUR);
  if (offHour > MINUTE) return `time ${new Date(ts).toISOString()} is not on an hourly funding grid`;
  return null;
}

/** Parses ccxt's funding interval text (`8h`, `4h`, `60m`) to ms, or null. */
export function parseFundingInterval(text: unknown): number | null {
  const m = typeof text === "string" ? /^(\d+)([mh])$/.exec(text.trim()) : null;
  if (!m || Number(m[1]) <= 0) return null;
  return Number(m[1]) * (m[2] === "h" ? HOUR : MINUTE);
}

/** Reads funding history of one exchange through its request runner. */
export class FundingReader {
  readonly #exchange: CcxtExchange;
  readonly #runner: RequestRunner;
  readonly #clock: Clock;
  #intervals: { at: number; map: Promise<Map<string, number>> } | undefined;
  #rejected = 0;

  /** Reads through `runner` (its limiter and retries). */
  constructor(exchange: CcxtExchange, runner: RequestRunner, clock: Clock) {
    this.#exchange = exchange;
    this.#runner = runner;
    this.#clock = clock;
  }

  /** Funding rows rejected by validation so far. */
  get rejected(): number {
    return this.#rejected;
  }

  /** Most rows one request returns. */
  pageLimit(): number {
    return PAGE_LIMITS[this.#runner.id] ?? 100;
  }

  #market(symbol: string) {
    const market = this.#exchange.markets?.[symbol];
    if (!market || market.type !== "swap") {
      const loaded = market ? `; it is a ${market.type} market` : "";
      throw new ExchangeRequestError(
        `Cannot fetch funding rates of ${this.#runner.id} ${symbol}: the exchange does not list it as a perpetual (swap) market${loaded}`,
        { kind: "invalid_series", code: "InvalidSeries", exchange: this.#runner.id, attempts: 0 },
      );
    }
    return market;
  }

  /** When the contract was listed (ccxt `market.created`), or null when unknown. */
  listedAt(symbol: string): number | null {
    const created = this.#market(symbol).created;
    return typeof created === "number" && Number.isFinite(created) ? created : null;
  }

  /**
   * The contract's funding interval in ms where the exchange says it: Bybit's instrument
   * `fundingInterval` (minutes), else ccxt `fetchFundingIntervals` (Binance `fundingInfo`,
   * which lists the contracts whose interval was changed; asked again after
   * {@linkcode FUNDING_INTERVALS_TTL_MS}, so a change while running is seen). Null when unknown.
   */
  async fundingInterval(symbol: string): Promise<number | null> {
    const info = (this.#market(symbol).info ?? {}) as Record<string, unknown>;
    const minutes = Number(info.fundingInterval);
    if (Number.isFinite(minutes) && minutes > 0) return minutes * MINUTE;
    if (!this.#exchange.has?.fetchFundingIntervals) return null;
    const now = this.#clock.now();
    if (this.#intervals === undefined || now - this.#intervals.at >= FUNDING_INTERVALS_TTL_MS) {
      const map = this.#runner.run("fetch funding intervals", () => this.#exchange.fetchFundingIntervals())
        .then(({ value }) => {
          const out = new Map<string, number>();
          for (const [key, entry] of Object.entries(value as Record<string, { interval?: string }>)) {
            const ms = parseFundingInterval(entry?.interval);
            if (ms !== null) out.set(key, ms);
          }
          return out;
        });
      this.#intervals = { at: now, map };
    }
    const asked = this.#intervals;
    try {
      return (await asked.map).get(symbol) ?? null;
    } catch (error) {
      if (this.#intervals === asked) this.#intervals = undefined;
      throw error;
    }
  }

  /**
   * One page of validated funding rows with `since <= ts < until` (until defaults to now): the
   * request covers one window of at most a page of funding times (`pageLimit × intervalMs`,
   * with `intervalMs` 1 h when unknown), so an empty answer means the exchange has no funding
   * row in that window.
   */
  async fetchPage(symbol: string, since: number, until?: number, intervalMs?: number): Promise<FundingPage> {
    this.#market(symbol);
    const limit = this.pageLimit();
    const from = Math.max(0, Math.ceil(since));
    const to = Math.min(until ?? this.#clock.now() + 1, from + limit * (intervalMs ?? HOUR));
    if (to <= from) return { rows: [], rejected: [], window: { from, to: from }, requestedAt: this.#clock.now() };
    const series = `${this.#runner.id} ${symbol} funding`;
    const { value, sentAt } = await this.#runner.run(
      "fetch funding rates",
      () => this.#exchange.fetchFundingRateHistory(symbol, from, limit, { until: to - 1 }),
      { series },
    );
    const rows: FundingRateRow[] = [];
    const rejected: { ts: number; reason: string }[] = [];
    const seen = new Set<number>();
    for (const item of value as { timestamp?: number; fundingRate?: number; info?: Record<string, unknown> }[]) {
      const ts = item.timestamp;
      if (typeof ts === "number" && (ts < from || ts >= to)) continue;
      const problem = fundingRowProblem(ts, item.fundingRate);
      if (problem !== null) {
        rejected.push({ ts: Number(ts), reason: problem });
        continue;
      }
      if (seen.has(ts!)) continue;
      seen.add(ts!);
      const info = item.info ?? {};
      rows.push({
        ts: ts!,
        rate: exactDecimal(info.fundingRate, item.fundingRate!),
        markPrice: optionalDecimal(info.markPrice),
      });
    }
    rows.sort((a, b) => a.ts - b.ts);
    if (rejected.length > 0) {
      this.#rejected += rejected.length;
      logger.warn("{series}: rejected {count} funding rows: {first}", {
        series,
        count: rejected.length,
        first: rejected[0].reason,
      });
    }
    logger.debug("{series}: page {from} to {to}: {count} rows", {
      series,
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
      count: rows.length,
    });
    return { rows, rejected, window: { from, to }, requestedAt: sentAt };
  }
}
