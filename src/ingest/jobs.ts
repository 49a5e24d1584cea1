/**
 * The state an ingest engine's parts share (the series this instance holds, which of them are
 * backfilled, busy or failed) and the running of one job per series at a time: backfill, live
 * update or gap repair, at most `BACKFILL_CONCURRENCY` per exchange, with failures recorded.
 *
 * @module
 */
import type { BackfillSince, Config } from "../config_types.ts";
import type { Database } from "../db/client.ts";
import { counted, getLogger } from "../log.ts";
import type { Registry } from "../metrics.ts";
import { type BackfillProgress, backfillSeries } from "./backfill.ts";
import { describeSeries, type IngestContext, LeaseLostError, type SeriesTarget } from "./walk.ts";
import { checkSeries, updateSeries } from "./live.ts";
import { repairSeries } from "./repair.ts";
import type { RollupUpkeep } from "./rollup_upkeep.ts";
import { effectiveSince, seriesStartFacts, setSeriesState } from "./series.ts";
import type { ExchangeSource } from "./source.ts";
import type { ArchiveReader, ArchiveTally } from "./archive_import.ts";

/** A failed series with the reason, for exit statuses and reports. */
export interface SeriesFailure {
  series: SeriesTarget;
  reason: string;
}

/** The message of an error, or the thrown value as text. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The failures among job results (`null` is a job that succeeded or was skipped). */
export function failuresOf(results: readonly (SeriesFailure | null)[]): SeriesFailure[] {
  return results.filter((f): f is SeriesFailure => f !== null);
}

/**
 * ` and 12 archive files (1 fetched over REST instead)`, or nothing without archive files. Files
 * before the series' first candle (not listed yet) are no fallback: they are said apart.
 */
function archiveSummary(t: ArchiveTally): string {
  const handled = t.imported + t.missing + t.failed + t.beforeListing;
  if (handled === 0) return "";
  const notes = [
    ...(t.missing + t.failed > 0 ? [`${t.missing + t.failed} fetched over REST instead`] : []),
    ...(t.beforeListing > 0 ? [`${t.beforeListing} before the first candle`] : []),
  ];
  return ` and ${counted(handled, "archive file")}` + (notes.length > 0 ? ` (${notes.join("; ")})` : "");
}

class Semaphore {
  #free: number;
  #waiting: (() => void)[] = [];
  constructor(size: number) {
    this.#free = size;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

/** Options of {@linkcode Jobs}. */
export interface JobsOptions {
  db: Database;
  config: Config;
  sources: ReadonlyMap<string, ExchangeSource>;
  registry?: Registry;
  /** This instance's lease identity. */
  owner: string;
  /** Lease and heartbeat timeout in ms. */
  ttlMs: number;
  now: () => number;
  /** Rollup maintenance, asked for after backfills that wrote rows and after repair ticks. */
  rollups?: RollupUpkeep;
  /** The archive backfills take whole past days from (`ARCHIVE=auto`); none: REST only. */
  archive?: ArchiveReader | null;
}

/** Options of {@linkcode Jobs.backfill}. */
export interface BackfillJobOptions {
  /** Where history starts; default: the series' own start, else `BACKFILL_SINCE`. */
  since?: BackfillSince;
  onProgress?: (progress: BackfillProgress) => void;
  /** Stops the walk after the current page when it returns true (besides shutdown). */
  stop?: () => boolean;
}

/** Shared engine state and the per-series job runner. */
export class Jobs {
  readonly db: Database;
  readonly config: Config;
  readonly sources: ReadonlyMap<string, ExchangeSource>;
  readonly owner: string;
  readonly ttlMs: number;
  readonly now: () => number;
  readonly rollups: RollupUpkeep | undefined;
  /** Where whole past days of history come from (null: REST only). */
  readonly archive: ArchiveReader | null;
  /** Where ingest metrics are registered (none in some tests). */
  readonly registry: Registry | undefined;
  readonly log = getLogger("ingest");
  /** Ids of the series this instance holds a lease on. */
  readonly owned = new Set<number>();
  /** Every series this instance has held, by id. */
  readonly series = new Map<number, SeriesTarget>();
  /** Series whose backfill this process completed. */
  readonly backfilled = new Set<number>();
  /** Set once the engine stops: no new work starts. */
  stopping = false;
  readonly #busy = new Set<number>();
  readonly #failed = new Set<number>();
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #limits = new Map<string, Semaphore>();
  readonly #metrics;

  /** Creates the runner with nothing held. */
  constructor(options: JobsOptions) {
    this.db = options.db;
    this.config = options.config;
    this.sources = options.sources;
    this.owner = options.owner;
    this.ttlMs = options.ttlMs;
    this.now = options.now;
    this.rollups = options.rollups;
    this.registry = options.registry;
    this.archive = options.archive ?? null;
    const r = options.registry;
    this.#metrics = r
      ? {
        written: r.counter("candlekeep_candles_written_total", "Candles inserted or changed in storage"),
        rejected: r.counter("candlekeep_candles_rejected_total", "Candles rejected by validation"),
        progress: r.gauge("candlekeep_backfill_progress_ratio", "Share of the running backfill done (0 to 1)"),
        failures: r.counter("candlekeep_ingest_failures_total", "Series jobs that failed, by job"),
        archiveFiles: r.counter(
          "candlekeep_archive_files_total",
          "Archive files a backfill handled, by outcome: imported, missing (404) or failed; the last two were fetched over REST",
        ),
        archiveBytes: r.counter("candlekeep_archive_bytes_total", "Bytes of verified archive zips imported"),
        archiveFallbacks: r.counter(
          "candlekeep_archive_fallbacks_total",
          "Archive files whose range REST fetched instead, by reason: missing, checksum_mismatch, corrupt_zip, download_failed",
        ),
      }
      : null;
  }

  /** Ids of the held series whose exchange is available, ascending. */
  get ownedIds(): number[] {
    return [...this.owned].filter((id) => this.sources.has(this.series.get(id)?.exchange ?? ""))
      .sort((a, b) => a - b);
  }

  /** Held series not backfilled by this process yet and not being worked on. */
  get unbackfilled(): number[] {
    return this.ownedIds.filter((id) => !this.backfilled.has(id) && !this.#busy.has(id));
  }

  /** Makes `ids` the held series (loaded `rows` among them); forgets the rest. */
  hold(ids: readonly number[], rows: readonly SeriesTarget[]): void {
    for (const id of [...this.owned]) if (!ids.includes(id)) this.forget(id);
    for (const row of rows) {
      this.series.set(row.id, row);
      this.owned.add(row.id);
    }
  }

  /** Stops holding series `id` (its lease is gone). */
  forget(id: number): void {
    this.owned.delete(id);
    this.backfilled.delete(id);
  }

  /** What a walker needs; `stop` replaces the shutdown check (a bounded run's budget). */
  context(stop: () => boolean = () => this.stopping): IngestContext {
    const m = this.#metrics;
    const labels = (s: SeriesTarget) => ({ exchange: s.exchange, symbol: s.symbol, timeframe: s.timeframe });
    return {
      db: this.db,
      owner: this.owner,
      now: this.now,
      log: this.log,
      stopping: stop,
      counters: m
        ? {
          written: (s, inserted, updated) => m.written.inc(labels(s), inserted + updated),
          rejected: (s, n) => m.rejected.inc(labels(s), n),
          archiveFile: (s, file) => {
            m.archiveFiles.inc({ exchange: s.exchange, outcome: file.outcome });
            if (file.bytes > 0) m.archiveBytes.inc({ exchange: s.exchange }, file.bytes);
            if (file.outcome !== "imported" && file.reason !== "before_listing") {
              m.archiveFallbacks.inc({ exchange: s.exchange, reason: file.reason ?? file.outcome });
            }
          },
        }
        : undefined,
    };
  }

  /** Keeps `p` among the work that {@linkcode Jobs.settle} waits for. */
  track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p);
    p.finally(() => this.#inflight.delete(p)).catch(() => {});
    return p;
  }

  /** Waits for the tracked work to end, at most `timeoutMs`. */
  async settle(timeoutMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled([...this.#inflight]),
      new Promise((resolve) => timer = setTimeout(resolve, timeoutMs)),
    ]);
    clearTimeout(timer);
  }

  #limit(exchange: string): Semaphore {
    let s = this.#limits.get(exchange);
    if (!s) {
      s = new Semaphore(this.config.backfillConcurrency);
      this.#limits.set(exchange, s);
    }
    return s;
  }

  /**
   * Runs one job of a series (none when one is already running for it), marking the series
   * failed with the reason when it throws and live again when a failed one recovers.
   */
  async runJob(kind: string, series: SeriesTarget, fn: () => Promise<unknown>): Promise<SeriesFailure | null> {
    if (this.#busy.has(series.id)) return null;
    this.#busy.add(series.id);
    if (!this.sources.has(series.exchange)) {
      return { series, reason: `exchange ${series.exchange} is not configured` };
    }
    try {
      await this.track(this.#limit(series.exchange).run(fn));
      if (this.#failed.delete(series.id) && this.backfilled.has(series.id)) {
        this.log.info("{series} recovered", { series: describeSeries(series) });
        await this.db.retry("mark live", (sql) => setSeriesState(sql, series.id, "live"));
      }
      return null;
    } catch (error) {
      if (error instanceof LeaseLostError) {
        this.log.warn("{reason}", { reason: error.message, series: describeSeries(series) });
        this.owned.delete(series.id);
        return null;
      }
      const reason = errorMessage(error);
      this.#failed.add(series.id);
      this.#metrics?.failures.inc({ job: kind });
      this.log.error("{job} of {series} failed: {reason}", { job: kind, series: describeSeries(series), reason });
      await this.db.retry("mark failed", (sql) => setSeriesState(sql, series.id, "failed", `${kind}: ${reason}`))
        .catch(() => {});
      return { series, reason };
    } finally {
      this.#busy.delete(series.id);
    }
  }

  /**
   * Backfills one held series from its start (see {@linkcode effectiveSince}) and switches it
   * to live. `runStartedAt` is the moment durations count back from.
   */
  backfill(
    series: SeriesTarget,
    runStartedAt: number,
    options: BackfillJobOptions = {},
  ): Promise<SeriesFailure | null> {
    const source = this.sources.get(series.exchange)!;
    return this.runJob("backfill", series, async () => {
      const since = options.since ?? await this.#startOf(series, runStartedAt);
      await this.db.retry("mark backfilling", (sql) => setSeriesState(sql, series.id, "backfilling"));
      const result = await backfillSeries(this.context(options.stop), source, series, {
        since,
        runStartedAt,
        archive: this.archive ?? undefined,
        onProgress: (p) => {
          this.#metrics?.progress.set(
            { exchange: series.exchange, symbol: series.symbol, timeframe: series.timeframe },
            p.expected > 0 ? Math.min(1, p.done / p.expected) : 1,
          );
          options.onProgress?.(p);
        },
      });
      // Late history may land in materialized or compressed days.
      if (result.written > 0) this.rollups?.request();
      if (result.complete) {
        this.backfilled.add(series.id);
        await this.db.retry("mark live", (sql) => setSeriesState(sql, series.id, "live"));
        const fields = {
          series: describeSeries(series),
          written: result.written,
          pages: result.pages,
          pagesText: counted(result.pages, "page"),
          candles: `${result.written} ${result.written === 1 ? "candle" : "candles"}`,
          archiveText: archiveSummary(result.archive),
        };
        // A series backfilled before (a restart) only catches up on what is newer: no news.
        if (result.history) {
          this.log.info("Backfill of {series} complete: {candles} in {pagesText}{archiveText}", fields);
        } else if (result.pages > 1) {
          this.log.info("Caught up {series}: {candles} in {pagesText}{archiveText}", fields);
        } else this.log.debug("{series} was backfilled before: {written} newer candles in {pagesText}", fields);
      }
    });
  }

  async #startOf(series: SeriesTarget, runStartedAt: number): Promise<BackfillSince> {
    const facts = await this.db.retry("series start", (sql) => seriesStartFacts(sql, series.id));
    const configured = this.config.backfillSince;
    return facts ? effectiveSince(facts, configured, runStartedAt) : configured;
  }

  /** One live update of a held series: the closed candles after its last stored one. */
  live(series: SeriesTarget, context: IngestContext = this.context()): Promise<SeriesFailure | null> {
    // Per-series lag is exported by the API's collector, from the database, so it covers the
    // series of every instance.
    return this.runJob("live update", series, () => updateSeries(context, this.sources.get(series.exchange)!, series));
  }

  /**
   * The REST check of a held series fed by a WebSocket: its closed candles from `from` on, in
   * one request (see {@linkcode checkSeries}).
   */
  check(series: SeriesTarget, from: number): Promise<SeriesFailure | null> {
    return this.runJob(
      "REST check",
      series,
      () => checkSeries(this.context(), this.sources.get(series.exchange)!, series, from),
    );
  }

  /** One gap repair of a held series. */
  repair(series: SeriesTarget, context: IngestContext = this.context()): Promise<SeriesFailure | null> {
    return this.runJob("gap repair", series, async () => {
      await repairSeries(context, this.sources.get(series.exchange)!, series);
      this.rollups?.request();
    });
  }
}
