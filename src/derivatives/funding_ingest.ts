/**
 * Funding-rate ingest: for every configured perpetual on every exchange, backfill the funding
 * history from the candles' start (`BACKFILL_SINCE` or a backfill's `--since`, resolved once per
 * run and aligned down to the hour; the listing when later) page by page with a checkpoint after
 * each page, keep it current, and check it for gaps against the interval in force at each point
 * of the history (see funding_gaps.ts): missing rows are refetched, and funding times still
 * missing become confirmed holes (not fetched again). When the wanted start is earlier than
 * where the history starts (`range_from`), the older part is fetched in page-sized chunks,
 * newest first, `range_from` moving down after each (an interrupted extension resumes there).
 *
 * @module
 */
import type { BackfillSince } from "../config_types.ts";
import { resolveSince } from "../config_values.ts";
import type { Database } from "../db/client.ts";
import { counted, getLogger } from "../log.ts";
import { findFundingGaps, inferFundingInterval } from "./funding_gaps.ts";
import { type FundingSource, fundingSourceOf } from "./funding_source.ts";
import {
  advanceFundingCheckpoint,
  completeFundingCheckpoint,
  fundingExtent,
  fundingHoles,
  type FundingKey,
  insertFundingHoles,
  lowerFundingRangeFrom,
  readFundingCheckpoint,
  startFundingCheckpoint,
  storedFundingTimes,
  writeFundingRows,
} from "./funding_store.ts";

const MINUTE = 60_000;
const HOUR = 3_600_000;
/** A window ending closer than this to the request is fetched again (funding is published late). */
const PUBLISH_DELAY_MS = 5 * MINUTE;
/** `BACKFILL_SINCE=earliest` for a contract without a listing time: before the first perpetuals. */
const EARLIEST_FUNDING = Date.UTC(2016, 0, 1);

/** One run's options, its start resolved once. */
interface RunOptions {
  check?: boolean;
  stop?: () => boolean;
  since: BackfillSince;
  startedAt: number;
}

/** Options of {@linkcode FundingIngest}. */
export interface FundingIngestOptions {
  db: Database;
  /** Exchange clients by id (those that can read funding history are used). */
  sources: ReadonlyMap<string, object>;
  /** Perpetual symbols to collect on every exchange, unless a run names its own `keys`. */
  symbols?: readonly string[];
  /** Where history starts (`BACKFILL_SINCE`). */
  since: BackfillSince;
  now?: () => number;
  /** Stops a walk after the current page when it returns true (shutdown). */
  stopping?: () => boolean;
}

/** What one symbol's run did. */
export interface FundingRunResult {
  key: FundingKey;
  /** Rows new or changed. */
  written: number;
  /** Funding times confirmed as holes in this run. */
  holes: number;
  /** The reason when the run failed. */
  error?: string;
}

/** Backfill, live update and gap check of the funding histories of one engine. */
export class FundingIngest {
  readonly #options: FundingIngestOptions;
  readonly #now: () => number;
  readonly #busy = new Set<string>();
  readonly #failed = new Map<string, string>();
  readonly #log = getLogger("ingest");

  /** Nothing runs until a method is called. */
  constructor(options: FundingIngestOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** The pairs of `keys` (default: the configured symbols on every exchange) whose exchange can read funding. */
  #targets(keys?: readonly FundingKey[]): { source: FundingSource; key: FundingKey }[] {
    const all = keys ??
      [...this.#options.sources.keys()].flatMap((exchange) =>
        (this.#options.symbols ?? []).map((symbol) => ({ exchange, symbol }))
      );
    const out: { source: FundingSource; key: FundingKey }[] = [];
    for (const key of all) {
      const client = this.#options.sources.get(key.exchange);
      const source = client ? fundingSourceOf(client) : null;
      if (source) out.push({ source, key });
    }
    return out;
  }

  /**
   * Brings every funding history up to date: backfills (resuming from its checkpoint) or
   * fetches what was published since the last stored row; a backfill that completes is
   * gap-checked. `check: true` gap-checks every history (the repair run); `keys` narrows the
   * run to those perpetuals (the ones this instance collects); `stop` ends walks after the
   * current page (a bounded run's budget), besides shutdown; `since` overrides where histories
   * start (a backfill's `--since`), resolved once at `startedAt` (default: the run's start).
   */
  async run(
    options: {
      check?: boolean;
      keys?: readonly FundingKey[];
      stop?: () => boolean;
      since?: BackfillSince;
      startedAt?: number;
    } = {},
  ): Promise<FundingRunResult[]> {
    const run = {
      check: options.check,
      stop: options.stop,
      since: options.since ?? this.#options.since,
      startedAt: options.startedAt ?? this.#now(),
    };
    return await Promise.all(
      this.#targets(options.keys).map(({ source, key }) => this.#runOne(source, key, run)),
    );
  }

  async #runOne(source: FundingSource, key: FundingKey, options: RunOptions): Promise<FundingRunResult> {
    const check = options.check ?? false;
    const id = `${key.exchange} ${key.symbol}`;
    const result: FundingRunResult = { key, written: 0, holes: 0 };
    if (this.#busy.has(id)) return result;
    this.#busy.add(id);
    try {
      const completed = await this.#walk(source, key, result, options);
      this.#failed.delete(id);
      if (completed === "now" || (check && completed !== "no")) await this.#checkGaps(source, key, result);
    } catch (error) {
      result.error = error instanceof Error ? error.message : String(error);
      // once per reason, not on every live tick
      if (this.#failed.get(id) !== result.error) {
        this.#log.error("Cannot update funding rates of {series}: {reason}", { series: id, reason: result.error });
      }
      this.#failed.set(id, result.error);
    } finally {
      this.#busy.delete(id);
    }
    return result;
  }

  /** The contract's funding interval: the exchange's, else the one in force at the end of the stored rows. */
  async #interval(source: FundingSource, key: FundingKey): Promise<number | null> {
    const stated = await source.fundingInterval(key.symbol);
    if (stated !== null) return stated;
    const extent = await fundingExtent(this.#options.db.sql, key);
    if (extent === null) return null;
    const recent = await storedFundingTimes(this.#options.db.sql, key, {
      from: extent.last - 200 * 8 * HOUR,
      to: extent.last,
    });
    return findFundingGaps(recent).currentMs ?? inferFundingInterval(recent);
  }

  /** Where the history of `key` should start: `since` at the run's start, on the hour, not before the listing. */
  #wantedStart(source: FundingSource, key: FundingKey, options: RunOptions): number {
    const since = resolveSince(options.since, options.startedAt);
    const listed = source.listedAt(key.symbol);
    return Math.max(since === "earliest" ? listed ?? EARLIEST_FUNDING : Math.floor(since / HOUR) * HOUR, listed ?? 0);
  }

  /**
   * Walks forward from the checkpoint to the present, after fetching the part older than the
   * checkpoint's start when an earlier start is wanted. Returns "now" when this walk completed
   * the backfill or an extension, "before" when it had been completed earlier, "no" when it
   * stopped early.
   */
  async #walk(
    source: FundingSource,
    key: FundingKey,
    result: FundingRunResult,
    options: RunOptions,
  ): Promise<"now" | "before" | "no"> {
    const db = this.#options.db;
    const stop = options.stop;
    const wanted = this.#wantedStart(source, key, options);
    let checkpoint = await db.retry("read funding checkpoint", (sql) => readFundingCheckpoint(sql, key));
    if (checkpoint === null) {
      await db.retry("start funding checkpoint", (sql) => startFundingCheckpoint(sql, key, wanted));
      checkpoint = (await db.retry("read funding checkpoint", (sql) => readFundingCheckpoint(sql, key)))!;
    }
    const interval = await this.#interval(source, key);
    const extended = wanted < checkpoint.rangeFrom;
    if (
      extended && !await this.#extend(source, key, result, { from: wanted, to: checkpoint.rangeFrom, interval, stop })
    ) {
      return "no";
    }
    const done = extended ? "now" : "before";
    let cursor = checkpoint.cursor;
    // Live: nothing to ask before the next funding time after the cursor has passed.
    if (checkpoint.completedAt !== null && interval !== null) {
      const last = (await fundingExtent(db.sql, key))?.last ?? -Infinity;
      const next = Math.max(last + interval, Math.ceil((cursor - MINUTE) / interval) * interval);
      if (next > this.#now()) return done;
    }
    while (true) {
      if (this.#options.stopping?.() || stop?.()) return "no";
      const page = await source.fetchFundingPage(key.symbol, cursor, undefined, interval ?? undefined);
      const safeEnd = Math.min(page.window.to, page.requestedAt - PUBLISH_DELAY_MS);
      const lastRow = page.rows.length > 0 ? page.rows[page.rows.length - 1].ts + 1 : cursor;
      const next = Math.max(cursor, lastRow, safeEnd);
      result.written += await db.retry("write funding page", (sql) =>
        sql.begin(async (tx) => {
          const n = await writeFundingRows(tx, key, page.rows);
          await advanceFundingCheckpoint(tx, key, next);
          return n;
        }));
      const reachedNow = page.window.to >= page.requestedAt - PUBLISH_DELAY_MS;
      cursor = next;
      if (reachedNow) break;
    }
    if (checkpoint.completedAt !== null) return done;
    await db.retry("complete funding checkpoint", (sql) => completeFundingCheckpoint(sql, key, this.#now()));
    const extent = await fundingExtent(db.sql, key);
    this.#log.info("Funding backfill of {series} complete: {count} rows from {first} to {last}", {
      series: `${key.exchange} ${key.symbol}`,
      count: extent?.count ?? 0,
      first: extent ? new Date(extent.first).toISOString() : "-",
      last: extent ? new Date(extent.last).toISOString() : "-",
    });
    return "now";
  }

  /**
   * Fetches `[from, to)` (older than the stored history) in chunks of one page, newest first,
   * moving the checkpoint's start down after each. Returns false when it stopped early.
   */
  async #extend(
    source: FundingSource,
    key: FundingKey,
    result: FundingRunResult,
    range: { from: number; to: number; interval: number | null; stop?: () => boolean },
  ): Promise<boolean> {
    const db = this.#options.db;
    const chunk = (source.fundingPageLimit?.() ?? 100) * (range.interval ?? HOUR);
    const written = result.written;
    let upper = range.to;
    while (upper > range.from) {
      const lower = Math.max(range.from, upper - chunk);
      let cursor = lower;
      while (cursor < upper) {
        if (this.#options.stopping?.() || range.stop?.()) return false;
        const page = await source.fetchFundingPage(key.symbol, cursor, upper, range.interval ?? undefined);
        result.written += await db.retry("write funding page", (sql) => writeFundingRows(sql, key, page.rows));
        if (page.window.to <= cursor) break;
        cursor = page.window.to;
      }
      await db.retry("extend funding checkpoint", (sql) => lowerFundingRangeFrom(sql, key, lower));
      upper = lower;
    }
    this.#log.info("Funding history of {series} extended back to {start}: {count} rows", {
      series: `${key.exchange} ${key.symbol}`,
      start: new Date(range.from).toISOString(),
      count: result.written - written,
    });
    return true;
  }

  /**
   * Refetches funding times missing between the first and last stored rows, following the
   * interval in force at each point of the history; what stays missing is a hole.
   */
  async #checkGaps(source: FundingSource, key: FundingKey, result: FundingRunResult): Promise<void> {
    const sql = this.#options.db.sql;
    const statedMs = await source.fundingInterval(key.symbol);
    const analyse = async () => {
      const extent = await fundingExtent(sql, key);
      if (extent === null) return [];
      const stored = await storedFundingTimes(sql, key, { from: extent.first, to: extent.last });
      return findFundingGaps(stored, { holes: await fundingHoles(sql, key), statedMs }).gaps;
    };
    const gaps = await analyse();
    if (gaps.length === 0) return;
    const written = result.written;
    for (const gap of gaps) {
      // the whole span between the known points: a row on an unexpected time is found too
      let since = gap.after + MINUTE;
      const until = gap.before - MINUTE;
      while (since < until) {
        const page = await source.fetchFundingPage(key.symbol, since, until, gap.intervalMs);
        result.written += await this.#options.db.retry(
          "write funding rows",
          (s) => writeFundingRows(s, key, page.rows),
        );
        if (page.window.to <= since) break;
        since = page.window.to;
      }
    }
    // what the refetch did not bring, judged again on the completed history
    const still = new Set((await analyse()).flatMap((g) => g.times));
    const holes = gaps.flatMap((g) => g.times).filter((t) => still.has(t));
    this.#log.info("Repaired {series}: {gapsText}, {filled} rows filled, {holes} confirmed holes", {
      series: `${key.exchange} ${key.symbol} funding`,
      gaps: gaps.length,
      gapsText: counted(gaps.length, "gap"),
      filled: result.written - written,
      holes: holes.length,
    });
    if (holes.length > 0) {
      await this.#options.db.retry("record funding holes", (s) => insertFundingHoles(s, key, holes));
      result.holes += holes.length;
      this.#log.warn("{series}: {times} the exchange does not have, recorded as holes (first {first})", {
        series: `${key.exchange} ${key.symbol} funding`,
        count: holes.length,
        times: counted(holes.length, "funding time"),
        first: new Date(holes[0]).toISOString(),
      });
    }
  }
}
