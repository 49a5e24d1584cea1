/**
 * Funding rates and open interest as engine work: which perpetuals this instance collects (the
 * ones whose primary candle series it holds, see {@linkcode derivativeKeys}) and the runs over
 * them that the live tick, the repair tick, bounded Deploy runs and one-shot commands start.
 * The collecting itself lives in `src/derivatives/`.
 *
 * @module
 */
import type { BackfillSince } from "../config_types.ts";
import { FundingIngest } from "../derivatives/funding_ingest.ts";
import { OpenInterestTicks } from "../derivatives/open_interest_ticks.ts";
import { marketTypeOf } from "../market_type.ts";
import type { Counter } from "../metrics.ts";
import { errorMessage, type Jobs } from "./jobs.ts";
import { type DerivativeKey, derivativeKeys } from "./leases.ts";

/** Options of one {@linkcode Derivatives} run. */
export interface DerivativeRunOptions {
  /** Ends walks after the current page (a bounded run's budget), besides shutdown. */
  stop?: () => boolean;
  /**
   * One-shot commands: also collect the perpetuals among `among` whose primary series no
   * instance holds (a running service keeps its own).
   */
  claimFree?: boolean;
  among?: readonly DerivativeKey[];
  /** Where histories start instead of `BACKFILL_SINCE` (a backfill's `--since`). */
  since?: BackfillSince;
  /** The moment a duration `since` counts back from (default: when the run starts), e.g. the candles' run start. */
  startedAt?: number;
  /** The repair run: gap-check every history (refetch what is missing and not a confirmed hole). */
  check?: boolean;
}

/** The funding-rate and open-interest work of one engine. */
export class Derivatives {
  readonly #jobs: Jobs;
  /** Null when `FUNDING_RATES=false`. */
  readonly #funding: FundingIngest | null;
  readonly #openInterest: OpenInterestTicks;

  readonly #fundingWritten: Counter | undefined;

  /** Works for `jobs` (its database, exchanges, configuration, lease identity and metrics). */
  constructor(jobs: Jobs) {
    this.#jobs = jobs;
    const { db, config, sources, log, now, registry } = jobs;
    this.#fundingWritten = registry?.counter(
      "candlekeep_funding_rows_written_total",
      "Funding-rate rows inserted or changed in storage, by exchange and symbol",
    );
    const openInterestWritten = registry?.counter(
      "candlekeep_open_interest_rows_written_total",
      "Open-interest rows inserted or changed in storage, by exchange, symbol and period",
    );
    this.#funding = config.fundingRates === false ? null : new FundingIngest({
      db,
      sources,
      since: config.backfillSince,
      now,
      stopping: () => jobs.stopping,
    });
    this.#openInterest = new OpenInterestTicks({
      db,
      config,
      sources,
      log,
      now,
      stopping: () => jobs.stopping,
      onWritten: (key, rows) => openInterestWritten?.inc({ ...key }, rows),
    });
  }

  /** The perpetuals this instance collects now (their exchange configured). */
  async keys(options: DerivativeRunOptions = {}): Promise<DerivativeKey[]> {
    const jobs = this.#jobs;
    try {
      const keys = await jobs.db.retry("derivative leases", (sql) => derivativeKeys(sql, jobs.owner, options));
      return keys.filter((k) => marketTypeOf(k.symbol) === "swap" && jobs.sources.has(k.exchange));
    } catch (error) {
      jobs.log.error("Cannot tell which perpetuals to collect: {reason}", { reason: errorMessage(error) });
      return [];
    }
  }

  /** Brings the funding histories of this instance's perpetuals up to date (`check`: gap-check them all). */
  async funding(options: DerivativeRunOptions = {}): Promise<void> {
    if (this.#funding === null || this.#jobs.stopping) return;
    const keys = await this.keys(options);
    if (keys.length === 0) return;
    const results = await this.#jobs.track(
      this.#funding.run({ ...options, keys }),
    );
    for (const r of results) {
      if (r.written > 0) this.#fundingWritten?.inc({ exchange: r.key.exchange, symbol: r.key.symbol }, r.written);
    }
  }

  /** One open-interest run over this instance's perpetuals (`OPEN_INTEREST`); never two at once (`check`: the repair run). */
  async openInterest(options: DerivativeRunOptions = {}): Promise<void> {
    if ((this.#jobs.config.openInterest ?? "off") === "off" || this.#jobs.stopping) return;
    const keys = await this.keys(options);
    if (keys.length > 0) {
      await this.#jobs.track(
        this.#openInterest.tick(keys, options),
      );
    }
  }
}
