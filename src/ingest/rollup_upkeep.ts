/**
 * When the service runs the rollup maintenance (src/db/rollup_maintenance.ts): once at start,
 * then shortly after its own writes that may land below the continuous aggregates' watermark
 * (a backfill that wrote rows, every repair tick), debounced and never two at a time. One log
 * line when it did something.
 *
 * @module
 */
import type { Database } from "../db/client.ts";
import { describeRollupMaintenance, maintainRollups, type RollupMaintenanceResult } from "../db/rollup_maintenance.ts";
import { getLogger } from "../log.ts";
import type { Registry } from "../metrics.ts";

/** Options of {@linkcode RollupUpkeep}. */
export interface RollupUpkeepOptions {
  /** Wait after a request before running, so that a burst of writes is covered once (default 5 s). */
  delayMs?: number;
  registry?: Registry;
}

/** One maintenance run. */
export type MaintainRollups = () => Promise<RollupMaintenanceResult>;

/** Debounced, serialised runs of {@linkcode maintainRollups}. */
export class RollupUpkeep {
  readonly #maintain: MaintainRollups;
  readonly #delayMs: number;
  readonly #log = getLogger("rollups");
  readonly #metrics;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<void> | null = null;
  #again = false;
  #stopped = false;

  /**
   * Creates the upkeep of the rollups of `db` (or runs of `maintain`, for a database reached
   * otherwise); nothing runs before {@linkcode RollupUpkeep.request}.
   */
  constructor(db: Database | MaintainRollups, options: RollupUpkeepOptions = {}) {
    this.#maintain = typeof db === "function"
      ? db
      : () => db.retry("rollup maintenance", (sql) => maintainRollups(sql));
    this.#delayMs = options.delayMs ?? 5_000;
    const r = options.registry;
    this.#metrics = r
      ? {
        refreshes: r.counter("candlekeep_rollup_refreshes_total", "Continuous aggregate refreshes run by the service"),
        recompressed: r.counter("candlekeep_chunks_recompressed_total", "Partially compressed chunks recompressed"),
      }
      : null;
  }

  /**
   * Asks for a run after `delayMs` (default: the configured delay). A request while one is
   * scheduled joins it; a request while one runs makes it go round once more when it ends.
   */
  request(delayMs: number = this.#delayMs): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#start();
    }, delayMs);
  }

  /** Runs a scheduled request now and waits for the running maintenance to end. */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#start();
    }
    await this.#running;
  }

  /**
   * Runs nothing more and waits for a running maintenance, at most `timeoutMs`: a refresh cut off
   * when the pool closes is rolled back by the server and done again at the next start.
   */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!this.#running) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([this.#running, new Promise((resolve) => timer = setTimeout(resolve, timeoutMs))]);
    clearTimeout(timer);
  }

  #start(): void {
    if (this.#running || this.#stopped) return;
    this.#running = this.#loop().finally(() => this.#running = null);
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      await this.#once();
    } while (this.#again && !this.#stopped);
  }

  async #once(): Promise<void> {
    try {
      const result = await this.#maintain();
      for (const r of result.refreshed) this.#metrics?.refreshes.inc({ view: r.view });
      if (result.recompressed > 0) this.#metrics?.recompressed.inc({}, result.recompressed);
      const line = describeRollupMaintenance(result);
      if (line) this.#log.info("{summary}", { summary: line });
      else if (result.busy) this.#log.debug("Rollup maintenance skipped: another instance is running it");
    } catch (error) {
      this.#log.error("Cannot maintain the rollups: {reason}", {
        reason: error instanceof Error ? error.message : String(error),
      });
    }
  }
}
