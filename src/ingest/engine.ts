/**
 * The ingest engine: registers the configured series, divides them with other instances
 * through leases, backfills what it holds, keeps it live on a schedule and repairs gaps. The
 * work itself lives in the files this one wires together: `jobs.ts` (running one job per
 * series), `coordination.ts` (leases), `series_sync.ts` (which series), `ticks.ts` (live and
 * repair ticks), `bounded_run.ts` (Deploy runs) and `one_shot.ts` (CLI runs).
 *
 * @module
 */
import type { Config } from "../config_types.ts";
import type { Database } from "../db/client.ts";
import type { Registry } from "../metrics.ts";
import type { SeriesTarget } from "./walk.ts";
import { type BoundedRunReport, BoundedRuns } from "./bounded_run.ts";
import { Leases } from "./coordination.ts";
import { errorMessage, Jobs, type SeriesFailure } from "./jobs.ts";
import { instanceIdentity } from "./leases.ts";
import { backfillOnce, type BackfillOnceOptions, repairOnce } from "./one_shot.ts";
import type { SeriesKey } from "./series.ts";
import { type AddSeriesInput, Catalog } from "./series_sync.ts";
import type { ExchangeSource } from "./source.ts";
import { Ticks } from "./ticks.ts";
import type { RollupUpkeep } from "./rollup_upkeep.ts";
import { Derivatives } from "./derivatives.ts";
import { WsLive } from "./ws_live.ts";
import type { ArchiveReader } from "./archive_import.ts";

export type { BoundedRunReport } from "./bounded_run.ts";
export type { SeriesFailure } from "./jobs.ts";
export type { BackfillOnceOptions } from "./one_shot.ts";
export { type AddSeriesInput, SeriesRequestError } from "./series_sync.ts";
export type { ExchangeSource } from "./source.ts";

/** Options of {@linkcode Ingestor}. */
export interface IngestorOptions {
  db: Database;
  config: Config;
  /** Candle sources by exchange id. */
  sources: ReadonlyMap<string, ExchangeSource>;
  registry?: Registry;
  /**
   * This instance's lease identity. Default: host name and pid with a random suffix (a one-shot
   * run); the service passes `INSTANCE_ID` or {@linkcode instanceIdentity} of its API port so
   * that a restarted process takes back its own leases at once.
   */
  owner?: string;
  /** Lease and heartbeat timeout in ms (default `LEASE_TTL`); leases are renewed every third of it. */
  leaseTtlMs?: number;
  now?: () => number;
  /** Rollup maintenance after backfills and repairs (none: the policies and the next start do it). */
  rollups?: RollupUpkeep;
  /** The archive backfills take whole past days from (main.ts builds it from `ARCHIVE`); none: REST only. */
  archive?: ArchiveReader | null;
}

/**
 * The ingest engine: registers the configured series, divides them with other instances
 * through leases, backfills what it holds, keeps it live on a schedule and repairs gaps.
 */
export class Ingestor {
  /** This instance's lease identity. */
  readonly owner: string;
  readonly #jobs: Jobs;
  readonly #leases: Leases;
  readonly #catalog: Catalog;
  readonly #ticks: Ticks;
  readonly #bounded: BoundedRuns;
  /** Funding rates and open interest of the perpetuals whose primary series this instance holds. */
  readonly #derivatives: Derivatives;
  /** Live candles over WebSocket: only in the service loop ({@linkcode Ingestor.start}). */
  #streams: WsLive | null = null;
  #timer: ReturnType<typeof setInterval> | undefined;
  #syncTimer: ReturnType<typeof setInterval> | undefined;

  /** Creates the engine; nothing runs until {@linkcode Ingestor.start} or a tick is called. */
  constructor(options: IngestorOptions) {
    // One-shot runs (CLI commands, Deploy isolates) get a random identity of their own: with
    // the service's, they would release its leases when they finish.
    this.owner = options.owner ?? instanceIdentity({});
    this.#jobs = new Jobs({
      db: options.db,
      config: options.config,
      sources: options.sources,
      registry: options.registry,
      owner: this.owner,
      ttlMs: options.leaseTtlMs ?? options.config.leaseTtlMs,
      now: options.now ?? Date.now,
      rollups: options.rollups,
      archive: options.archive,
    });
    this.#leases = new Leases(this.#jobs);
    this.#catalog = new Catalog(this.#jobs, this.#leases);
    this.#derivatives = new Derivatives(this.#jobs);
    this.#ticks = new Ticks(this.#jobs, this.#leases, this.#derivatives);
    this.#bounded = new BoundedRuns(this.#jobs, this.#leases, this.#catalog, this.#derivatives);
  }

  /** The configured series keys: exchanges × (symbols ∪ top N) × timeframes. */
  configuredKeys(): Promise<SeriesKey[]> {
    return this.#catalog.configuredKeys();
  }

  /** Registers the configured series (deactivating removed ones) and validates them. */
  syncSeries(): Promise<SeriesTarget[]> {
    return this.#catalog.sync();
  }

  /** Renews this instance's heartbeat and leases and takes its share of free series. */
  coordinate(onlyIds?: readonly number[]): Promise<void> {
    return this.#leases.coordinate(onlyIds);
  }

  /** Ids of the series this instance holds now. */
  get owned(): number[] {
    return this.#jobs.ownedIds;
  }

  /** Backfills every held series that has not been backfilled by this process yet. */
  async backfillPending(): Promise<SeriesFailure[]> {
    const failures = await this.#ticks.backfillPending();
    await this.#derivatives.funding();
    return failures;
  }

  /**
   * One live tick: for every held, backfilled series, fetch the closed candles after its last
   * stored one. A tick that fires while one is still running is not run at the same time
   * (returns false): the running one goes round once more when it ends.
   */
  liveTick(): Promise<boolean> {
    return this.#ticks.liveTick();
  }

  /**
   * One open-interest run over the perpetuals this instance collects (`OPEN_INTEREST`: those
   * whose primary series it holds); the live tick starts it too.
   */
  openInterestTick(): Promise<void> {
    return this.#derivatives.openInterest();
  }

  /** One gap repair run over every held, backfilled series. */
  repairTick(): Promise<boolean> {
    return this.#ticks.repairTick();
  }

  /**
   * One bounded run for a Deploy-style host: claims this instance's share of the series and
   * works on them (`live`: backfill or live update; `repair`: gap repair) until `budgetMs`
   * has passed, then writes what is in flight and releases the leases.
   */
  boundedRun(kind: "live" | "repair", options: { budgetMs: number }): Promise<BoundedRunReport> {
    return this.#bounded.run(kind, options);
  }

  /**
   * One-shot backfill (the `backfill` command): registers and validates the configured series,
   * narrows them by `filter`, claims their leases, backfills them and repairs gaps.
   * Returns the series that could not be done, with reasons.
   */
  backfillOnce(options: BackfillOnceOptions = {}): Promise<SeriesFailure[]> {
    return backfillOnce(this.#parts(), options);
  }

  /**
   * One-shot gap repair (the `gaps --repair` command) over every active series this instance
   * can hold; series kept by a running instance are skipped with a notice. Returns the series
   * whose repair failed, with reasons.
   */
  repairOnce(): Promise<SeriesFailure[]> {
    return repairOnce(this.#parts());
  }

  #parts() {
    return { jobs: this.#jobs, leases: this.#leases, catalog: this.#catalog, derivatives: this.#derivatives };
  }

  /** Adds a series at run time (API) and starts its backfill when this instance can hold it. */
  addSeries(input: AddSeriesInput): Promise<{ id: number; created: boolean }> {
    return this.#catalog.add(input);
  }

  /** Stops updating a series (its data stays unless `purge`). Returns false when unknown. */
  removeSeries(id: number, options: { purge: boolean }): Promise<boolean> {
    return this.#catalog.remove(id, options);
  }

  /**
   * Starts the service loop: registers series, claims leases (renewed every third of the
   * lease timeout), backfills, then schedules live ticks and gap repair with `Deno.cron`.
   */
  async start(options: { cron?: boolean } = {}): Promise<void> {
    const jobs = this.#jobs;
    if ((jobs.config.live?.mode ?? "rest") !== "rest" && !jobs.config.deploy) {
      this.#streams = new WsLive(jobs);
      this.#ticks.useStreams(this.#streams);
    }
    await this.syncSeries();
    await this.#leases.announceTakeBack();
    await this.coordinate();
    this.#timer = setInterval(() => {
      this.coordinate().then(() => this.#ticks.backfillInBackground());
    }, Math.max(1000, jobs.ttlMs / 3));
    // Markets are refreshed hourly by the exchange clients; re-evaluate the configured series
    // (TOP_SYMBOLS may now pick other markets) on the same rhythm.
    this.#syncTimer = setInterval(() => {
      if (jobs.stopping) return;
      this.syncSeries().then(() => this.coordinate()).catch((error) =>
        jobs.log.error("Cannot re-evaluate series: {reason}", { reason: errorMessage(error) })
      );
    }, 3_600_000);
    // Catch up at once (after a restart the last candles before the stop are missing), not
    // at the next scheduled tick; then repair gaps.
    jobs.track(this.backfillPending().then(() => this.liveTick()).then(() => this.repairTick())).catch(() => {});
    if (options.cron !== false) {
      const guard = (fn: () => Promise<unknown>) => async () => {
        try {
          await fn();
        } catch (error) {
          jobs.log.error("Scheduled run failed: {reason}", { reason: errorMessage(error) });
        }
      };
      // backoffSchedule is explicit: outside Deno Deploy the CLI would otherwise re-run a
      // failed handler on its own; ours never throws and the next tick catches up anyway.
      Deno.cron("candlekeep-live", jobs.config.liveSchedule, { backoffSchedule: [] }, guard(() => this.liveTick()));
      Deno.cron(
        "candlekeep-repair",
        jobs.config.repairSchedule,
        { backoffSchedule: [] },
        guard(() => this.repairTick()),
      );
    }
  }

  /**
   * Stops scheduling, lets in-flight page writes commit (waiting at most `timeoutMs`) and
   * releases this instance's leases.
   */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.#jobs.stopping = true;
    await this.#streams?.close();
    if (this.#timer !== undefined) clearInterval(this.#timer);
    if (this.#syncTimer !== undefined) clearInterval(this.#syncTimer);
    await this.#jobs.settle(timeoutMs);
    await this.#leases.release();
  }
}
