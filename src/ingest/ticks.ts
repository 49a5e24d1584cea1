/**
 * The service's scheduled work over the series this instance holds: backfilling the ones not
 * backfilled yet, the live tick and the gap repair tick.
 *
 * @module
 */
import type { Leases } from "./coordination.ts";
import { failuresOf, type Jobs, type SeriesFailure } from "./jobs.ts";
import type { Derivatives } from "./derivatives.ts";
import type { WsLive } from "./ws_live.ts";

/** Live and repair ticks of one engine; a tick never runs twice at once. */
export class Ticks {
  readonly #jobs: Jobs;
  readonly #leases: Leases;
  #liveRunning = false;
  #liveAgain = false;
  #repairRunning = false;
  readonly #derivatives: Derivatives;
  /** Live candles over WebSocket, once the service loop starts them (`LIVE_MODE`). */
  #streams: WsLive | null = null;

  /**
   * Ticks over the series `jobs` holds, renewing the leases through `leases` first; the
   * funding and open interest of the perpetuals it collects go through `derivatives`.
   */
  constructor(jobs: Jobs, leases: Leases, derivatives: Derivatives) {
    this.#jobs = jobs;
    this.#leases = leases;
    this.#derivatives = derivatives;
  }

  /** Feeds the eligible held series from WebSocket streams from the next live tick on. */
  useStreams(streams: WsLive): void {
    this.#streams = streams;
  }

  /** Backfills every held series that has not been backfilled by this process yet. */
  async backfillPending(): Promise<SeriesFailure[]> {
    const jobs = this.#jobs;
    const runStartedAt = jobs.now();
    const pending = jobs.ownedIds.filter((id) => !jobs.backfilled.has(id))
      .map((id) => jobs.backfill(jobs.series.get(id)!, runStartedAt));
    return failuresOf(await Promise.all(pending));
  }

  /** Starts {@linkcode Ticks.backfillPending} in the background when some held series needs it. */
  backfillInBackground(): void {
    if (this.#jobs.unbackfilled.length > 0 && !this.#jobs.stopping) {
      this.#jobs.track(this.backfillPending()).catch(() => {});
    }
  }

  /**
   * One live tick: for every held, backfilled series, fetch the closed candles after its last
   * stored one. A tick that fires while one is still running is not run at the same time
   * (returns false): the running one goes round once more when it ends, so the candle that
   * closed meanwhile is not left for the next tick.
   */
  async liveTick(): Promise<boolean> {
    if (this.#jobs.stopping) return false;
    if (this.#liveRunning) {
      this.#liveAgain = true;
      this.#jobs.log.debug("A live tick is still running: it runs once more when it ends");
      return false;
    }
    this.#liveRunning = true;
    try {
      do {
        this.#liveAgain = false;
        await this.#liveOnce();
      } while (this.#liveAgain && !this.#jobs.stopping);
      return true;
    } finally {
      this.#liveRunning = false;
    }
  }

  async #liveOnce(): Promise<void> {
    const jobs = this.#jobs;
    await this.#leases.coordinate();
    // Newly acquired series (or ones that failed) are backfilled first, in the background.
    this.backfillInBackground();
    const series = this.#backfilledSeries();
    const streams = this.#streams;
    if (streams) {
      await streams.sync(series).catch((error) =>
        jobs.log.error("Cannot update the WebSocket streams: {reason}", { reason: String(error) })
      );
    }
    // A series its stream keeps live needs nothing; every LIVE_REST_CHECK (or after a gap) one
    // REST request confirms it; a series whose stream is down or silent is updated over REST.
    await Promise.all(series.map((s) => {
      const mode = streams?.mode(s) ?? "rest";
      if (mode === "ws") return null;
      if (mode === "check") return jobs.check(s, streams!.beginCheck(s));
      return jobs.live(s);
    }));
    // In the background: a first open-interest backfill must not hold up the candles.
    this.#derivatives.openInterest().catch(() => {});
    await this.#derivatives.funding();
  }

  #backfilledSeries() {
    const jobs = this.#jobs;
    return jobs.ownedIds.filter((id) => jobs.backfilled.has(id)).map((id) => jobs.series.get(id)!);
  }

  /** One gap repair run over every held, backfilled series. */
  async repairTick(): Promise<boolean> {
    if (this.#repairRunning || this.#jobs.stopping) return false;
    this.#repairRunning = true;
    try {
      await Promise.all(this.#backfilledSeries().map((series) => this.#jobs.repair(series)));
      await Promise.all([this.#derivatives.funding({ check: true }), this.#derivatives.openInterest({ check: true })]);
      // Repairs write below the rollups' watermark and into compressed days; the maintenance
      // also catches writes made with SQL since the last tick.
      this.#jobs.rollups?.request();
      return true;
    } finally {
      this.#repairRunning = false;
    }
  }
}
