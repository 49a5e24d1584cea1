/**
 * Bounded runs for a Deploy-style host, where each cron invocation must end quickly and may
 * land on a fresh process.
 *
 * @module
 */
import type { Leases } from "./coordination.ts";
import { failuresOf, type Jobs, type SeriesFailure } from "./jobs.ts";
import type { Catalog } from "./series_sync.ts";
import type { Derivatives } from "./derivatives.ts";

/** What one {@linkcode BoundedRuns.run} did. */
export interface BoundedRunReport {
  /** Series worked on. */
  series: number;
  /** Series whose job failed, with reasons. */
  failures: SeriesFailure[];
  /** True when the budget ran out and some work was left for the next run. */
  budgetSpent: boolean;
  /** Series whose backfill is not complete yet. */
  pending: number;
  /** Wall time of the run, in ms. */
  elapsedMs: number;
}

const SYNC_EVERY_MS = 3_600_000;

/** The bounded runs of one engine (several may overlap in one process). */
export class BoundedRuns {
  readonly #jobs: Jobs;
  readonly #leases: Leases;
  readonly #catalog: Catalog;
  readonly #derivatives: Derivatives;
  #running = 0;
  #syncedAt = -Infinity;

  /**
   * Runs over `jobs`, claiming through `leases` the series `catalog` registers; funding and
   * open interest of the perpetuals whose primary series it claims go through `derivatives`.
   */
  constructor(jobs: Jobs, leases: Leases, catalog: Catalog, derivatives: Derivatives) {
    this.#jobs = jobs;
    this.#leases = leases;
    this.#catalog = catalog;
    this.#derivatives = derivatives;
  }

  /**
   * One bounded run: claims this instance's share of the series, then backfills (resuming from
   * its checkpoint) or live-updates each one (`live`), or repairs the gaps of each backfilled
   * one (`repair`). Once `budgetMs` of wall time has passed no new exchange request is
   * started; every page already fetched is written with its checkpoint, so the next run
   * continues where this one stopped. Leases are released at the end (when no other run of
   * this process is in flight), so the next run may land anywhere.
   */
  async run(kind: "live" | "repair", options: { budgetMs: number }): Promise<BoundedRunReport> {
    const jobs = this.#jobs;
    const started = performance.now();
    let spent = false;
    const stop = () => {
      if (!spent && performance.now() - started >= options.budgetMs) spent = true;
      return spent || jobs.stopping;
    };
    this.#running++;
    try {
      if (jobs.now() - this.#syncedAt >= SYNC_EVERY_MS) {
        await this.#catalog.sync();
        this.#syncedAt = jobs.now();
      }
      await this.#leases.coordinate();
      const owned = jobs.ownedIds;
      let ids = owned;
      if (kind === "repair") {
        // Only series whose backfill finished (here or in an earlier process) are repaired.
        const done = owned.length === 0 ? [] : await jobs.db.retry("backfilled series", (sql) =>
          sql<{ id: number }[]>`
            select series_id as id from backfill_checkpoints
            where status = 'done' and series_id = any(${owned}::int[])`);
        ids = owned.filter((id) => jobs.backfilled.has(id) || done.some((r) => r.id === id));
      }
      const runStartedAt = jobs.now();
      const context = jobs.context(stop);
      const results = ids.map((id) => {
        const series = jobs.series.get(id)!;
        if (kind === "repair") return jobs.repair(series, context);
        if (!jobs.backfilled.has(id)) {
          return jobs.backfill(series, runStartedAt, { stop });
        }
        return jobs.live(series, context);
      });
      // Funding and open interest of the perpetuals whose primary series this run holds, within
      // the same budget (open interest has a request budget of its own: it runs beside).
      const derivatives = kind === "repair"
        ? [this.#derivatives.funding({ check: true, stop })]
        : [this.#derivatives.funding({ stop }), this.#derivatives.openInterest({ stop })];
      const failures = failuresOf(await Promise.all(results));
      await Promise.all(derivatives);
      return {
        series: ids.length,
        failures,
        budgetSpent: spent,
        pending: ids.filter((id) => !jobs.backfilled.has(id)).length,
        elapsedMs: Math.round(performance.now() - started),
      };
    } finally {
      this.#running--;
      // What was backfilled stays known to this process; only the leases go.
      if (this.#running === 0) await this.#leases.release({ keepBackfilled: true });
    }
  }
}
