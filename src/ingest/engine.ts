import type { BackfillSince, Config } from "../config_types.ts";
import type { Database } from "../db/client.ts";
import { getLogger } from "../log.ts";
import type { Registry } from "../metrics.ts";
import { isTimeframe } from "../timeframe.ts";
import { parseBackfillSince } from "../config.ts";
import {
  type BackfillProgress,
  backfillSeries,
  describeSeries,
  type IngestContext,
  LeaseLostError,
  type SeriesTarget,
} from "./backfill.ts";
import { heartbeat, instanceIdentity, rebalance, releaseAll } from "./leases.ts";
import { updateSeries } from "./live.ts";
import { repairSeries } from "./repair.ts";
import { registerSeries, type SeriesKey, setSeriesState, syncConfiguredSeries } from "./series.ts";
import type { CandleSource } from "./source.ts";

/** An exchange as the engine sees it: a candle source that may also rank markets. */
export interface ExchangeSource extends CandleSource {
  /** The top `n` active markets quoted in `quote` by 24h quote volume. */
  topSymbols?(n: number, quote: string): Promise<string[]>;
}

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
}

/** What one {@linkcode Ingestor.boundedRun} did. */
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

/** A failed series with the reason, for exit statuses and reports. */
export interface SeriesFailure {
  series: SeriesTarget;
  reason: string;
}

/** Options of {@linkcode Ingestor.backfillOnce}. */
export interface BackfillOnceOptions {
  /** Only series whose key matches every given field. */
  filter?: Partial<SeriesKey>;
  /** Overrides `BACKFILL_SINCE`. */
  since?: BackfillSince;
  onProgress?: (progress: BackfillProgress) => void;
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

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The ingest engine: registers the configured series, divides them with other instances
 * through leases, backfills what it holds, keeps it live on a schedule and repairs gaps.
 */
export class Ingestor {
  readonly owner: string;
  readonly #db: Database;
  readonly #config: Config;
  readonly #sources: ReadonlyMap<string, ExchangeSource>;
  readonly #ttl: number;
  readonly #now: () => number;
  readonly #log = getLogger("ingest");
  readonly #limits = new Map<string, Semaphore>();
  readonly #owned = new Set<number>();
  readonly #series = new Map<number, SeriesTarget>();
  readonly #backfilled = new Set<number>();
  readonly #busy = new Set<number>();
  readonly #failed = new Set<number>();
  readonly #inflight = new Set<Promise<unknown>>();
  readonly #metrics;
  #stopping = false;
  #liveRunning = false;
  #liveAgain = false;
  #repairRunning = false;
  #coordinating: Promise<void> | null = null;
  #boundedRuns = 0;
  #syncedAt = -Infinity;
  #timer: ReturnType<typeof setInterval> | undefined;
  #syncTimer: ReturnType<typeof setInterval> | undefined;
  readonly #cronAbort = new AbortController();

  /** Creates the engine; nothing runs until {@linkcode Ingestor.start} or a tick is called. */
  constructor(options: IngestorOptions) {
    this.#db = options.db;
    this.#config = options.config;
    this.#sources = options.sources;
    this.#ttl = options.leaseTtlMs ?? options.config.leaseTtlMs;
    this.#now = options.now ?? Date.now;
    // One-shot runs (CLI commands, Deploy isolates) get a random identity of their own: with
    // the service's, they would release its leases when they finish.
    this.owner = options.owner ?? instanceIdentity({});
    const r = options.registry;
    this.#metrics = r
      ? {
        written: r.counter(
          "candlekeep_candles_written_total",
          "Candles inserted or changed in storage",
        ),
        rejected: r.counter(
          "candlekeep_candles_rejected_total",
          "Candles rejected by validation",
        ),
        progress: r.gauge(
          "candlekeep_backfill_progress_ratio",
          "Share of the running backfill done (0 to 1)",
        ),
        failures: r.counter(
          "candlekeep_ingest_failures_total",
          "Series jobs that failed, by job",
        ),
      }
      : null;
  }

  #limit(exchange: string): Semaphore {
    let s = this.#limits.get(exchange);
    if (!s) {
      s = new Semaphore(this.#config.backfillConcurrency);
      this.#limits.set(exchange, s);
    }
    return s;
  }

  #labels(s: SeriesTarget) {
    return { exchange: s.exchange, symbol: s.symbol, timeframe: s.timeframe };
  }

  #context(onStop = () => this.#stopping): IngestContext {
    return {
      db: this.#db,
      owner: this.owner,
      now: this.#now,
      log: this.#log,
      stopping: onStop,
      counters: this.#metrics
        ? {
          written: (s, inserted, updated) => this.#metrics!.written.inc(this.#labels(s), inserted + updated),
          rejected: (s, n) => this.#metrics!.rejected.inc(this.#labels(s), n),
        }
        : undefined,
    };
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p);
    p.finally(() => this.#inflight.delete(p)).catch(() => {});
    return p;
  }

  /** The configured series keys: exchanges × (symbols ∪ top N) × timeframes. */
  async configuredKeys(): Promise<SeriesKey[]> {
    const keys: SeriesKey[] = [];
    for (const exchange of this.#config.exchanges) {
      const source = this.#sources.get(exchange);
      let symbols = [...this.#config.symbols];
      if (this.#config.topSymbols > 0 && source?.topSymbols) {
        try {
          const top = await source.topSymbols(
            this.#config.topSymbols,
            this.#config.quote,
          );
          symbols = [...new Set([...symbols, ...top])];
          this.#log.info(
            "{exchange}: top {n} {quote} markets by 24h volume: {symbols}",
            {
              exchange,
              n: this.#config.topSymbols,
              quote: this.#config.quote,
              symbols: top.join(","),
            },
          );
        } catch (error) {
          this.#log.error(
            "{exchange}: cannot rank markets for TOP_SYMBOLS: {reason}",
            {
              exchange,
              reason: errorMessage(error),
            },
          );
        }
      }
      for (const symbol of symbols) {
        for (const timeframe of this.#config.timeframes) {
          keys.push({ exchange, symbol, timeframe });
        }
      }
    }
    return keys;
  }

  /** Checks a series against its exchange; marks it invalid (with the reason) when it cannot be served. */
  async #validate(
    row: SeriesTarget & { state: string },
  ): Promise<string | null> {
    const source = this.#sources.get(row.exchange);
    if (!source && this.#config.exchanges.includes(row.exchange)) {
      // Configured but not reachable yet (markets not loaded): wait, do not mark it invalid.
      return `exchange ${row.exchange} is not available yet`;
    }
    const reason = source
      ? source.validateSeries(row.symbol, row.timeframe)
      : `exchange ${row.exchange} is not configured (EXCHANGES)`;
    if (reason) {
      if (row.state !== "invalid") {
        this.#log.error("{series} is invalid: {reason}", {
          series: describeSeries(row),
          reason,
        });
      }
      await this.#db.retry(
        "mark invalid",
        (sql) => setSeriesState(sql, row.id, "invalid", reason),
      );
    } else if (row.state === "invalid") {
      await this.#db.retry(
        "mark valid",
        (sql) => setSeriesState(sql, row.id, "new", null),
      );
    }
    return reason;
  }

  /** Registers the configured series (deactivating removed ones) and validates them. */
  async syncSeries(): Promise<SeriesTarget[]> {
    const keys = await this.configuredKeys();
    const rows = await this.#db.retry(
      "register series",
      (sql) => syncConfiguredSeries(sql, keys),
    );
    const valid: SeriesTarget[] = [];
    for (const row of rows) {
      const reason = await this.#validate(row);
      if (!reason) valid.push(row);
    }
    // Series added through the API earlier are part of the work too.
    const api = await this.#db.retry(
      "list api series",
      (sql) =>
        sql<(SeriesTarget & { state: string })[]>`
        select id, exchange, symbol, timeframe, state from series where active and origin = 'api'`,
    );
    for (const row of api) {
      if (!(await this.#validate(row))) valid.push(row);
    }
    this.#log.info("{count} series configured", { count: valid.length });
    return valid;
  }

  /** Renews this instance's heartbeat and leases and takes its share of free series. */
  coordinate(onlyIds?: readonly number[]): Promise<void> {
    if (this.#coordinating) return this.#coordinating;
    this.#coordinating = (async () => {
      try {
        await this.#db.retry(
          "heartbeat",
          (sql) =>
            heartbeat(sql, this.owner, {
              ttlMs: this.#ttl,
              hostname: Deno.hostname?.(),
              pid: Deno.pid,
            }),
        );
        const ids = await this.#db.retry(
          "rebalance",
          (sql) =>
            rebalance(sql, this.owner, {
              ttlMs: this.#ttl,
              onlyIds,
              max: onlyIds ? onlyIds.length : undefined,
            }),
        );
        const rows = ids.length === 0 ? [] : await this.#db.retry("load series", (sql) =>
          sql<SeriesTarget[]>`
            select id, exchange, symbol, timeframe from series where id = any(${ids}::int[])`);
        for (const id of [...this.#owned]) {
          if (!ids.includes(id)) {
            this.#owned.delete(id);
            this.#backfilled.delete(id);
          }
        }
        for (const row of rows) {
          this.#series.set(row.id, row);
          this.#owned.add(row.id);
        }
      } catch (error) {
        this.#log.error("Cannot renew leases: {reason}", {
          reason: errorMessage(error),
        });
      } finally {
        this.#coordinating = null;
      }
    })();
    return this.#coordinating;
  }

  /** Ids of the series this instance holds now. */
  get owned(): number[] {
    return [...this.#owned].filter((id) => this.#sources.has(this.#series.get(id)?.exchange ?? ""))
      .sort((a, b) => a - b);
  }

  async #runJob(
    kind: string,
    series: SeriesTarget,
    fn: () => Promise<unknown>,
  ): Promise<SeriesFailure | null> {
    if (this.#busy.has(series.id)) return null;
    this.#busy.add(series.id);
    const source = this.#sources.get(series.exchange);
    if (!source) {
      return {
        series,
        reason: `exchange ${series.exchange} is not configured`,
      };
    }
    try {
      await this.#track(this.#limit(series.exchange).run(fn));
      if (this.#failed.delete(series.id) && this.#backfilled.has(series.id)) {
        this.#log.info("{series} recovered", { series: describeSeries(series) });
        await this.#db.retry("mark live", (sql) => setSeriesState(sql, series.id, "live"));
      }
      return null;
    } catch (error) {
      if (error instanceof LeaseLostError) {
        this.#log.warn("{reason}", { reason: error.message, series: describeSeries(series) });
        this.#owned.delete(series.id);
        return null;
      }
      const reason = errorMessage(error);
      this.#failed.add(series.id);
      this.#metrics?.failures.inc({ job: kind });
      this.#log.error("{job} of {series} failed: {reason}", {
        job: kind,
        series: describeSeries(series),
        reason,
      });
      await this.#db.retry(
        "mark failed",
        (sql) => setSeriesState(sql, series.id, "failed", `${kind}: ${reason}`),
      )
        .catch(() => {});
      return { series, reason };
    } finally {
      this.#busy.delete(series.id);
    }
  }

  /** Backfills one held series and switches it to live. */
  #backfill(
    series: SeriesTarget,
    since: BackfillSince,
    runStartedAt: number,
    onProgress?: (p: BackfillProgress) => void,
    stop?: () => boolean,
  ): Promise<SeriesFailure | null> {
    const source = this.#sources.get(series.exchange)!;
    return this.#runJob("backfill", series, async () => {
      await this.#db.retry(
        "mark backfilling",
        (sql) => setSeriesState(sql, series.id, "backfilling"),
      );
      const result = await backfillSeries(this.#context(stop), source, series, {
        since,
        runStartedAt,
        onProgress: (p) => {
          this.#metrics?.progress.set(
            this.#labels(series),
            p.expected > 0 ? Math.min(1, p.done / p.expected) : 1,
          );
          onProgress?.(p);
        },
      });
      if (result.complete) {
        this.#backfilled.add(series.id);
        await this.#db.retry(
          "mark live",
          (sql) => setSeriesState(sql, series.id, "live"),
        );
        this.#log.info(
          "Backfill of {series} complete: {written} candles in {pages} pages",
          {
            series: describeSeries(series),
            written: result.written,
            pages: result.pages,
          },
        );
      }
    });
  }

  /** Backfills every held series that has not been backfilled by this process yet. */
  async backfillPending(): Promise<SeriesFailure[]> {
    const runStartedAt = this.#now();
    const jobs = this.owned.filter((id) => !this.#backfilled.has(id))
      .map((id) =>
        this.#backfill(
          this.#series.get(id)!,
          this.#config.backfillSince,
          runStartedAt,
        )
      );
    return (await Promise.all(jobs)).filter((f): f is SeriesFailure => f !== null);
  }

  /**
   * One live tick: for every held, backfilled series, fetch the closed candles after its last
   * stored one. A tick that fires while one is still running is not run at the same time
   * (returns false): the running one goes round once more when it ends, so the candle that
   * closed meanwhile is not left for the next tick.
   */
  async liveTick(): Promise<boolean> {
    if (this.#stopping) return false;
    if (this.#liveRunning) {
      this.#liveAgain = true;
      this.#log.debug("A live tick is still running: it runs once more when it ends");
      return false;
    }
    this.#liveRunning = true;
    try {
      do {
        this.#liveAgain = false;
        await this.#liveOnce();
      } while (this.#liveAgain && !this.#stopping);
      return true;
    } finally {
      this.#liveRunning = false;
    }
  }

  async #liveOnce(): Promise<void> {
    await this.coordinate();
    // Newly acquired series (or ones that failed) are backfilled first, in the background.
    const pending = this.owned.filter((id) => !this.#backfilled.has(id) && !this.#busy.has(id));
    if (pending.length > 0) {
      this.#track(this.backfillPending()).catch(() => {});
    }
    const jobs = this.owned.filter((id) => this.#backfilled.has(id)).map(
      (id) => {
        const series = this.#series.get(id)!;
        // Per-series lag is exported by the API's collector, from the database, so it covers
        // the series of every instance.
        return this.#runJob(
          "live update",
          series,
          () => updateSeries(this.#context(), this.#sources.get(series.exchange)!, series),
        );
      },
    );
    await Promise.all(jobs);
  }

  /** One gap repair run over every held, backfilled series. */
  async repairTick(): Promise<boolean> {
    if (this.#repairRunning || this.#stopping) return false;
    this.#repairRunning = true;
    try {
      const jobs = this.owned.filter((id) => this.#backfilled.has(id)).map(
        (id) => {
          const series = this.#series.get(id)!;
          return this.#runJob("gap repair", series, () =>
            repairSeries(
              this.#context(),
              this.#sources.get(series.exchange)!,
              series,
            ));
        },
      );
      await Promise.all(jobs);
      return true;
    } finally {
      this.#repairRunning = false;
    }
  }

  /**
   * One bounded run for a Deploy-style host, where each cron invocation must end quickly and
   * may land on a fresh process: claims this instance's share of the series, then backfills
   * (resuming from its checkpoint) or live-updates each one (`live`), or repairs the gaps of
   * each backfilled one (`repair`). Once `budgetMs` of wall time has passed no new exchange
   * request is started; every page already fetched is written with its checkpoint, so the
   * next run continues where this one stopped. Leases are released at the end (when no other
   * run of this process is in flight), so the next run may land anywhere.
   */
  async boundedRun(kind: "live" | "repair", options: { budgetMs: number }): Promise<BoundedRunReport> {
    const started = performance.now();
    let spent = false;
    const stop = () => {
      if (!spent && performance.now() - started >= options.budgetMs) spent = true;
      return spent || this.#stopping;
    };
    this.#boundedRuns++;
    try {
      if (this.#now() - this.#syncedAt >= 3_600_000) {
        await this.syncSeries();
        this.#syncedAt = this.#now();
      }
      await this.coordinate();
      const owned = this.owned;
      let ids = owned;
      if (kind === "repair") {
        // Only series whose backfill finished (here or in an earlier process) are repaired.
        const done = owned.length === 0 ? [] : await this.#db.retry("backfilled series", (sql) =>
          sql<{ id: number }[]>`
            select series_id as id from backfill_checkpoints
            where status = 'done' and series_id = any(${owned}::int[])`);
        ids = owned.filter((id) => this.#backfilled.has(id) || done.some((r) => r.id === id));
      }
      const runStartedAt = this.#now();
      const context = this.#context(stop);
      const jobs = ids.map((id) => {
        const series = this.#series.get(id)!;
        const source = this.#sources.get(series.exchange)!;
        if (kind === "repair") {
          return this.#runJob("gap repair", series, () => repairSeries(context, source, series));
        }
        if (!this.#backfilled.has(id)) {
          return this.#backfill(series, this.#config.backfillSince, runStartedAt, undefined, stop);
        }
        return this.#runJob("live update", series, () => updateSeries(context, source, series));
      });
      const failures = (await Promise.all(jobs)).filter((f): f is SeriesFailure => f !== null);
      return {
        series: ids.length,
        failures,
        budgetSpent: spent,
        pending: ids.filter((id) => !this.#backfilled.has(id)).length,
        elapsedMs: Math.round(performance.now() - started),
      };
    } finally {
      this.#boundedRuns--;
      if (this.#boundedRuns === 0) {
        // What was backfilled stays known to this process; only the leases go.
        this.#owned.clear();
        await releaseAll(this.#db.sql, this.owner).catch((error) =>
          this.#log.warn("Cannot release leases: {reason}", { reason: errorMessage(error) })
        );
      }
    }
  }

  /**
   * One-shot backfill (the `backfill` command): registers and validates the configured series,
   * narrows them by `filter`, claims their leases, backfills them and repairs gaps.
   * Returns the series that could not be done, with reasons.
   */
  async backfillOnce(
    options: BackfillOnceOptions = {},
  ): Promise<SeriesFailure[]> {
    const failures: SeriesFailure[] = [];
    const f = options.filter ?? {};
    const keys = (await this.configuredKeys()).filter((k) =>
      (!f.exchange || k.exchange === f.exchange) &&
      (!f.symbol || k.symbol === f.symbol) &&
      (!f.timeframe || k.timeframe === f.timeframe)
    );
    const rows = [];
    for (const key of keys) {
      rows.push(
        await this.#db.retry("register", (sql) => registerSeries(sql, key)),
      );
    }
    const valid: SeriesTarget[] = [];
    for (const row of rows) {
      const reason = await this.#validate(row);
      if (reason) failures.push({ series: row, reason });
      else valid.push(row);
    }
    const renew = this.#renewOneShot();
    try {
      failures.push(...await this.#claimOrWait(valid));
      const runStartedAt = this.#now();
      const jobs = valid.filter((s) => this.#owned.has(s.id)).map(async (s) => {
        const failure = await this.#backfill(
          s,
          options.since ?? this.#config.backfillSince,
          runStartedAt,
          options.onProgress,
        );
        if (failure) return failure;
        return await this.#runJob(
          "gap repair",
          s,
          () => repairSeries(this.#context(), this.#sources.get(s.exchange)!, s),
        );
      });
      for (const r of await Promise.all(jobs)) if (r) failures.push(r);
    } finally {
      clearInterval(renew);
      await this.#releaseLeases();
    }
    return failures;
  }

  /**
   * Claims free (or expired) leases among `ids` for a one-shot run and renews the ones held,
   * without a heartbeat: a one-shot run is not an instance the running ones share with, so
   * their fair share (and what they hold) does not change because of it.
   */
  async #claimOneShot(ids: readonly number[]): Promise<void> {
    const held = await this.#db.retry(
      "claim leases",
      (sql) => rebalance(sql, this.owner, { ttlMs: this.#ttl, onlyIds: ids, max: ids.length }),
    );
    const rows = held.length === 0 ? [] : await this.#db.retry("load series", (sql) =>
      sql<SeriesTarget[]>`
        select id, exchange, symbol, timeframe from series where id = any(${held}::int[])`);
    for (const id of [...this.#owned]) if (!held.includes(id)) this.#owned.delete(id);
    for (const row of rows) {
      this.#series.set(row.id, row);
      this.#owned.add(row.id);
    }
  }

  /** Renews a one-shot run's leases every third of the lease timeout; clear the interval after. */
  #renewOneShot(): ReturnType<typeof setInterval> {
    return setInterval(() => {
      const ids = [...this.#owned];
      if (ids.length === 0) return;
      this.#claimOneShot(ids).catch((error) =>
        this.#log.error("Cannot renew leases: {reason}", { reason: errorMessage(error) })
      );
    }, Math.max(1000, this.#ttl / 3));
  }

  /**
   * Claims the leases of `series` for a one-shot run. Leases of an instance that stopped
   * heart-beating (killed) are waited for until they expire. A series kept by a live instance
   * (it heart-beat or renewed the lease since this run began) is skipped with a notice: that
   * instance does the work. Returns, as failures, only series that could be neither claimed
   * nor attributed to a live instance.
   */
  async #claimOrWait(series: readonly SeriesTarget[]): Promise<SeriesFailure[]> {
    const ids = series.map((s) => s.id);
    const deadline = Date.now() + this.#ttl + 2000;
    const ttl = `${Math.ceil(this.#ttl / 1000)} seconds`;
    const [{ since }] = await this.#db.retry("now", (sql) => sql<{ since: Date }[]>`select now() as since`);
    let announced = false;
    for (;;) {
      await this.#claimOneShot(ids);
      const missing = ids.filter((id) => !this.#owned.has(id));
      if (missing.length === 0) return [];
      // A holder that heart-beat, or renewed the lease, since we started waiting is alive:
      // its series are not ours. (A lease renewed at t >= since expires after since + ttl.)
      const holders = await this.#db.retry(
        "lease holders",
        (sql) =>
          sql<{ id: number; owner: string | null; alive: boolean }[]>`
          select s.id, s.lease_owner as owner,
                 s.lease_owner is not null and s.lease_expires_at > now() and (
                   coalesce(i.heartbeat_at > ${since}, false) or
                   s.lease_expires_at > ${since}::timestamptz + ${ttl}::interval
                 ) as alive
          from series s left join instances i on i.id = s.lease_owner
          where s.id = any(${missing}::int[])`,
      );
      if (holders.every((h) => h.alive) || Date.now() > deadline) {
        const failures: SeriesFailure[] = [];
        for (const s of series) {
          const holder = holders.find((h) => h.id === s.id);
          if (!holder) continue;
          if (holder.alive) {
            this.#log.info("{series} is kept by the running instance {owner}; skipped", {
              series: describeSeries(s),
              owner: holder.owner,
            });
          } else {
            failures.push({ series: s, reason: "held by another instance (its lease has not expired)" });
          }
        }
        return failures;
      }
      if (!announced) {
        this.#log.info(
          "{count} series are leased by another instance: waiting up to {seconds} s to see whether it is running",
          { count: missing.length, seconds: Math.ceil((deadline - Date.now()) / 1000) },
        );
        announced = true;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /**
   * One-shot gap repair (the `gaps --repair` command) over every active series this instance
   * can hold; series kept by a running instance are skipped with a notice. Returns the series
   * whose repair failed, with reasons.
   */
  async repairOnce(): Promise<SeriesFailure[]> {
    const rows = await this.#db.retry("list series", (sql) =>
      sql<SeriesTarget[]>`
        select id, exchange, symbol, timeframe from series where active and state <> 'invalid' order by id`);
    const usable = rows.filter((r) => this.#sources.has(r.exchange));
    const failures: SeriesFailure[] = [];
    const renew = this.#renewOneShot();
    try {
      failures.push(...await this.#claimOrWait(usable));
      const jobs = usable.filter((r) => this.#owned.has(r.id)).map((series) =>
        this.#runJob(
          "gap repair",
          series,
          () => repairSeries(this.#context(), this.#sources.get(series.exchange)!, series),
        )
      );
      for (const f of await Promise.all(jobs)) if (f) failures.push(f);
    } finally {
      clearInterval(renew);
      await this.#releaseLeases();
    }
    return failures;
  }

  async #releaseLeases(): Promise<void> {
    this.#owned.clear();
    this.#backfilled.clear();
    // One try: at shutdown a database that is down must not hold the exit up; the leases
    // then simply expire after LEASE_TTL.
    await releaseAll(this.#db.sql, this.owner).catch((error) =>
      this.#log.warn("Cannot release leases: {reason}", { reason: errorMessage(error) })
    );
  }

  /** Adds a series at run time (API) and starts its backfill when this instance can hold it. */
  async addSeries(
    input: {
      exchange: string;
      symbol: string;
      timeframe: string;
      since?: string;
    },
  ) {
    const source = this.#sources.get(input.exchange);
    if (!source) {
      throw new SeriesRequestError(
        `Cannot add series: exchange ${input.exchange} is not configured; configured: ${
          [...this.#sources.keys()].join(", ")
        }`,
        404,
      );
    }
    if (!isTimeframe(input.timeframe)) {
      throw new SeriesRequestError(
        `Cannot add series: timeframe ${input.timeframe} is not valid`,
        400,
      );
    }
    const reason = source.validateSeries(input.symbol, input.timeframe);
    if (reason) {
      throw new SeriesRequestError(`Cannot add series: ${reason}`, 422);
    }
    const existing = await this.#db.retry(
      "find series",
      (sql) =>
        sql<{ id: number; active: boolean }[]>`
        select id, active from series
        where exchange = ${input.exchange} and symbol = ${input.symbol} and timeframe = ${input.timeframe}`,
    );
    const row = await this.#db.retry(
      "register",
      (sql) => registerSeries(sql, input, { origin: "api" }),
    );
    const created = existing.length === 0 || !existing[0].active;
    if (created) {
      await this.coordinate();
      if (this.#owned.has(row.id) && !this.#backfilled.has(row.id)) {
        const since = (input.since ? parseBackfillSince(input.since) : null) ?? this.#config.backfillSince;
        this.#track(this.#backfill(row, since, this.#now())).catch(() => {});
      }
    }
    return { id: row.id, created };
  }

  /** Stops updating a series (its data stays unless `purge`). Returns false when unknown. */
  async removeSeries(
    id: number,
    options: { purge: boolean },
  ): Promise<boolean> {
    const found = await this.#db.retry(
      "remove series",
      (sql) =>
        sql.begin(async (tx) => {
          const rows = await tx`
          update series set active = false, state = 'stopped', state_reason = 'removed through the API',
                 lease_owner = null, lease_expires_at = null, updated_at = now()
          where id = ${id} returning id`;
          if (rows.length === 0) return false;
          if (options.purge) {
            await tx`delete from candles where series_id = ${id}`;
            await tx`delete from confirmed_holes where series_id = ${id}`;
            await tx`delete from backfill_checkpoints where series_id = ${id}`;
          }
          return true;
        }),
    );
    this.#owned.delete(id);
    this.#backfilled.delete(id);
    return found;
  }

  /**
   * Starts the service loop: registers series, claims leases (renewed every third of the
   * lease timeout), backfills, then schedules live ticks and gap repair with `Deno.cron`.
   */
  async start(options: { cron?: boolean } = {}): Promise<void> {
    await this.syncSeries();
    const [{ held }] = await this.#db.retry(
      "own leases",
      (sql) => sql<{ held: number }[]>`select count(*)::int as held from series where lease_owner = ${this.owner}`,
    );
    if (held > 0) {
      this.#log.info("Taking back {count} series leased by this instance ({owner}) before it restarted", {
        count: held,
        owner: this.owner,
      });
    }
    await this.coordinate();
    this.#timer = setInterval(() => {
      this.coordinate().then(() => {
        const pending = this.owned.filter((id) => !this.#backfilled.has(id) && !this.#busy.has(id));
        if (pending.length > 0 && !this.#stopping) {
          this.#track(this.backfillPending()).catch(() => {});
        }
      });
    }, Math.max(1000, this.#ttl / 3));
    // Markets are refreshed hourly by the exchange clients; re-evaluate the configured series
    // (TOP_SYMBOLS may now pick other markets) on the same rhythm.
    this.#syncTimer = setInterval(() => {
      if (this.#stopping) return;
      this.syncSeries().then(() => this.coordinate()).catch((error) =>
        this.#log.error("Cannot re-evaluate series: {reason}", { reason: errorMessage(error) })
      );
    }, 3_600_000);
    // Catch up at once (after a restart the last candles before the stop are missing), not
    // at the next scheduled tick; then repair gaps.
    this.#track(this.backfillPending().then(() => this.liveTick()).then(() => this.repairTick())).catch(
      () => {},
    );
    if (options.cron !== false) {
      const guard = (fn: () => Promise<unknown>) => async () => {
        try {
          await fn();
        } catch (error) {
          this.#log.error("Scheduled run failed: {reason}", {
            reason: errorMessage(error),
          });
        }
      };
      // backoffSchedule is explicit: outside Deno Deploy the CLI would otherwise re-run a
      // failed handler on its own; ours never throws and the next tick catches up anyway.
      Deno.cron("candlekeep-live", this.#config.liveSchedule, {
        backoffSchedule: [],
      }, guard(() => this.liveTick()));
      Deno.cron("candlekeep-repair", this.#config.repairSchedule, {
        backoffSchedule: [],
      }, guard(() => this.repairTick()));
    }
  }

  /**
   * Stops scheduling, lets in-flight page writes commit (waiting at most `timeoutMs`) and
   * releases this instance's leases.
   */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.#stopping = true;
    this.#cronAbort.abort();
    if (this.#timer !== undefined) clearInterval(this.#timer);
    if (this.#syncTimer !== undefined) clearInterval(this.#syncTimer);
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled([...this.#inflight]),
      new Promise((resolve) => timer = setTimeout(resolve, timeoutMs)),
    ]);
    clearTimeout(timer);
    await this.#releaseLeases();
  }
}
