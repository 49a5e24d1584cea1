/**
 * The open-interest side of the live tick: for every perpetual among the series this instance
 * holds, one {@linkcode syncOpenInterest} run (the first one backfills), in the background so
 * candle updates never wait for it, and never two runs at once.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import type { BackfillSince, Config } from "../config_types.ts";
import type { Database } from "../db/client.ts";
import { marketTypeOf } from "../market_type.ts";
import { isOpenInterestSource, syncOpenInterest } from "./open_interest_sync.ts";

/** What {@linkcode OpenInterestTicks} needs from the engine. */
export interface OpenInterestTicksOptions {
  db: Database;
  config: Config;
  sources: ReadonlyMap<string, unknown>;
  log: Logger;
  now: () => number;
  stopping: () => boolean;
  /** Told how many rows each run of a history wrote (for metrics). */
  onWritten?: (key: { exchange: string; symbol: string; period: string }, rows: number) => void;
}

/** Open-interest runs of one engine (nothing when `OPEN_INTEREST=off`). */
export class OpenInterestTicks {
  readonly #options: OpenInterestTicksOptions;
  #running: Promise<void> | null = null;
  readonly #reported = new Set<string>();

  /** Runs over the sources of `options`. */
  constructor(options: OpenInterestTicksOptions) {
    this.#options = options;
  }

  /**
   * Starts one run over the perpetuals among `series` (exchange, symbol) unless one is still
   * running; returns the running one (resolves when it ends; failures are logged, not thrown).
   * `stop` ends the walks after the current page (a bounded run's budget), besides shutdown;
   * `since` overrides where histories start (a backfill's `--since`), resolved at `startedAt`
   * (default: the run's start); `check` refetches every missing point within the exchange's
   * window (the repair run).
   */
  tick(
    series: readonly { exchange: string; symbol: string }[],
    options: { stop?: () => boolean; since?: BackfillSince; check?: boolean; startedAt?: number } = {},
  ): Promise<void> {
    const period = this.#options.config.openInterest ?? "off";
    if (period === "off" || this.#options.stopping()) return Promise.resolve();
    if (this.#running) return this.#running;
    const keys = new Map<string, { exchange: string; symbol: string; period: string }>();
    for (const s of series) {
      if (marketTypeOf(s.symbol) === "swap") keys.set(`${s.exchange}|${s.symbol}`, { ...s, period });
    }
    const stop = options.stop;
    const stopping = stop ? () => this.#options.stopping() || stop() : this.#options.stopping;
    const run = {
      stopping,
      since: options.since,
      check: options.check,
      startedAt: options.startedAt ?? this.#options.now(),
    };
    this.#running = Promise.all([...keys.values()].map((key) => this.#one(key, run))).then(() => {})
      .finally(() => this.#running = null);
    return this.#running;
  }

  async #one(
    key: { exchange: string; symbol: string; period: string },
    run: { stopping: () => boolean; since?: BackfillSince; check?: boolean; startedAt: number },
  ): Promise<void> {
    const o = this.#options;
    const source = o.sources.get(key.exchange);
    const name = `${key.exchange} ${key.symbol} ${key.period}`;
    if (!isOpenInterestSource(source)) return;
    try {
      const result = await syncOpenInterest(
        {
          db: o.db,
          log: o.log,
          now: o.now,
          since: run.since ?? o.config.backfillSince,
          startedAt: run.startedAt,
          check: run.check,
          stopping: run.stopping,
        },
        source,
        key,
      );
      if (result.written > 0) o.onWritten?.(key, result.written);
      if (result.unsupported && !this.#reported.has(name)) {
        this.#reported.add(name);
        o.log.warn("Open interest of {series} is not collected: {reason}", {
          series: name,
          reason: result.unsupported,
        });
      }
    } catch (error) {
      o.log.error("Open interest of {series} failed: {reason}", {
        series: name,
        reason: error instanceof Error ? error.message : String(error),
      });
    }
  }
}
