/**
 * Which series an engine works on: the configured ones (exchanges × symbols or top N ×
 * timeframes) registered and checked against their exchange, and the ones added or removed
 * through the API at run time.
 *
 * @module
 */
import { parseBackfillSince } from "../config.ts";
import { isTimeframe } from "../timeframe.ts";
import { describeSeries, type SeriesTarget } from "./walk.ts";
import type { Leases } from "./coordination.ts";
import { errorMessage, type Jobs } from "./jobs.ts";
import { registerSeries, type SeriesKey, setSeriesState, storedSince, syncConfiguredSeries } from "./series.ts";
import { deleteSeriesCandles } from "./store.ts";
import { isContractSymbol, pricesFor } from "../market_type.ts";

/** Thrown for a series request the engine cannot accept; `status` follows HTTP. */
export class SeriesRequestError extends Error {
  /** HTTP-like status: 400 bad input, 404 unknown exchange, 422 not served by the exchange. */
  readonly status: number;
  /** Creates the error. */
  constructor(message: string, status: number) {
    super(message);
    this.name = "SeriesRequestError";
    this.status = status;
  }
}

/** A series added through the API. */
export interface AddSeriesInput extends SeriesKey {
  /**
   * Where its history starts (`BACKFILL_SINCE` syntax; default `BACKFILL_SINCE`), resolved
   * when it is added and recorded with the series.
   */
  since?: string;
}

/** Registers, checks, adds and removes the series of one engine. */
export class Catalog {
  readonly #jobs: Jobs;
  readonly #leases: Leases;
  /** Invalid symbols already reported, with their cause. */
  readonly #reported = new Set<string>();

  /** A catalog for `jobs`; added series are claimed through `leases`. */
  constructor(jobs: Jobs, leases: Leases) {
    this.#jobs = jobs;
    this.#leases = leases;
  }

  /** The configured series keys: exchanges × (symbols ∪ top N) × timeframes. */
  async configuredKeys(): Promise<SeriesKey[]> {
    const { config, sources, log } = this.#jobs;
    const keys: SeriesKey[] = [];
    for (const exchange of config.exchanges) {
      const source = sources.get(exchange);
      let symbols = [...config.symbols];
      if (config.topSymbols > 0 && source?.topSymbols) {
        try {
          const top = await source.topSymbols(config.topSymbols, config.quote);
          symbols = [...new Set([...symbols, ...top])];
          // The exchange client logs its choice already.
          log.debug("{exchange}: top {n} {quote} markets by 24h volume: {symbols}", {
            exchange,
            n: config.topSymbols,
            quote: config.quote,
            symbols: top.join(","),
          });
        } catch (error) {
          log.error("{exchange}: cannot rank markets for TOP_SYMBOLS: {reason}", {
            exchange,
            reason: errorMessage(error),
          });
        }
      }
      for (const symbol of symbols) {
        for (const timeframe of config.timeframes) {
          for (const price of pricesFor(symbol, config.candlePrices ?? ["trade"])) {
            keys.push({ exchange, symbol, timeframe, price });
          }
        }
      }
    }
    return keys;
  }

  /** Checks a series against its exchange; marks it invalid (with the reason) when it cannot be served. */
  async validate(row: SeriesTarget & { state: string }): Promise<string | null> {
    const { config, sources, db, log } = this.#jobs;
    const source = sources.get(row.exchange);
    if (!source && config.exchanges.includes(row.exchange)) {
      // Configured but not reachable yet (markets not loaded): wait, do not mark it invalid.
      return `exchange ${row.exchange} is not available yet`;
    }
    const reason = source
      ? source.validateSeries(row.symbol, row.timeframe)
      : `exchange ${row.exchange} is not configured (EXCHANGES)`;
    if (reason) {
      if (row.state !== "invalid") {
        // Once per symbol and cause: an unknown contract makes every timeframe and price invalid.
        const cause = `${row.exchange}|${row.symbol}|${reason.slice(reason.indexOf(": ") + 2)}`;
        const first = !this.#reported.has(cause);
        this.#reported.add(cause);
        log[first ? "error" : "debug"]("{series} is invalid: {reason}", { series: describeSeries(row), reason });
      }
      await db.retry("mark invalid", (sql) => setSeriesState(sql, row.id, "invalid", reason));
    } else if (row.state === "invalid") {
      await db.retry("mark valid", (sql) => setSeriesState(sql, row.id, "new", null));
    }
    return reason;
  }

  /** Registers the configured series (deactivating removed ones) and validates them. */
  async sync(): Promise<SeriesTarget[]> {
    const { db, log } = this.#jobs;
    const keys = await this.configuredKeys();
    const rows = await db.retry("register series", (sql) => syncConfiguredSeries(sql, keys));
    const valid: SeriesTarget[] = [];
    for (const row of rows) {
      if (!(await this.validate(row))) valid.push(row);
    }
    // Series added through the API earlier are part of the work too.
    const api = await db.retry(
      "list api series",
      (sql) =>
        sql<(SeriesTarget & { state: string })[]>`
        select id, exchange, symbol, timeframe, price, state from series where active and origin = 'api'`,
    );
    for (const row of api) {
      if (!(await this.validate(row))) valid.push(row);
    }
    log.info("{count} series configured", { count: valid.length });
    return valid;
  }

  /** Adds a series at run time (API) and starts its backfill when this instance can hold it. */
  async add(input: AddSeriesInput): Promise<{ id: number; created: boolean }> {
    const jobs = this.#jobs;
    const source = jobs.sources.get(input.exchange);
    if (!source) {
      throw new SeriesRequestError(
        `Cannot add series: exchange ${input.exchange} is not configured; configured: ${
          [...jobs.sources.keys()].join(", ")
        }`,
        404,
      );
    }
    if (!isTimeframe(input.timeframe)) {
      throw new SeriesRequestError(`Cannot add series: timeframe ${input.timeframe} is not valid`, 400);
    }
    const reason = source.validateSeries(input.symbol, input.timeframe);
    if (reason) throw new SeriesRequestError(`Cannot add series: ${reason}`, 422);
    const price = input.price ?? "trade";
    if (price !== "trade" && !isContractSymbol(input.symbol)) {
      throw new SeriesRequestError(
        `Cannot add series: current price is ${price}, but ${input.symbol} is a spot market, which has trade candles only`,
        400,
      );
    }
    const existing = await jobs.db.retry(
      "find series",
      (sql) =>
        sql<{ id: number; active: boolean }[]>`
        select id, active from series
        where exchange = ${input.exchange} and symbol = ${input.symbol} and timeframe = ${input.timeframe}
          and price = ${price}`,
    );
    // The start is resolved now and recorded with the series: "1d" means one day before this
    // request, also after a restart.
    const addedAt = jobs.now();
    const since = (input.since ? parseBackfillSince(input.since) : null) ?? jobs.config.backfillSince;
    const row = await jobs.db.retry(
      "register",
      (sql) => registerSeries(sql, input, { origin: "api", since: storedSince(since, addedAt) }),
    );
    const created = existing.length === 0 || !existing[0].active;
    if (created) {
      await this.#leases.coordinate();
      if (jobs.owned.has(row.id) && !jobs.backfilled.has(row.id)) {
        jobs.track(jobs.backfill(row, addedAt)).catch(() => {});
      }
    }
    return { id: row.id, created };
  }

  /** Stops updating a series (its data stays unless `purge`). Returns false when unknown. */
  async remove(id: number, options: { purge: boolean }): Promise<boolean> {
    const found = await this.#jobs.db.retry(
      "remove series",
      (sql) =>
        sql.begin(async (tx) => {
          const rows = await tx`
          update series set active = false, state = 'stopped', state_reason = 'removed through the API',
                 lease_owner = null, lease_expires_at = null, updated_at = now()
          where id = ${id} returning id`;
          if (rows.length === 0) return false;
          if (options.purge) {
            await deleteSeriesCandles(tx, id);
            await tx`delete from confirmed_holes where series_id = ${id}`;
            await tx`delete from backfill_checkpoints where series_id = ${id}`;
          }
          return true;
        }),
    );
    this.#jobs.forget(id);
    return found;
  }
}
