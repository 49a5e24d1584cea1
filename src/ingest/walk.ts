/**
 * Walking a time range of one series through its exchange, page by page, writing each page
 * (and optionally the backfill checkpoint) in one transaction: the step backfill, live
 * updates and gap repair share.
 *
 * @module
 */
import type { Database } from "../db/client.ts";
import type { Logger } from "../log.ts";
import { floorTo, timeframeMs } from "../timeframe.ts";
import type { CandleSource, Page } from "./source.ts";
import { type Queryable, writeCandles } from "./store.ts";
import type { PriceKind } from "../market_type.ts";

/** The series a job works on. */
export interface SeriesTarget {
  id: number;
  exchange: string;
  symbol: string;
  timeframe: string;
  /** The price its candles are of (default trade). */
  price?: PriceKind;
}

/** Counters the walkers report into (wired to Prometheus metrics by the engine). */
export interface IngestCounters {
  /** Candles written (inserted or changed). */
  written(series: SeriesTarget, inserted: number, updated: number): void;
  /** Candles rejected by validation. */
  rejected(series: SeriesTarget, count: number): void;
  /** One archive file imported, or fallen back to REST (`reason`: missing, checksum_mismatch, ...). */
  archiveFile?(
    series: SeriesTarget,
    file: { outcome: "imported" | "missing" | "failed"; bytes: number; reason?: string },
  ): void;
}

/** What every ingest job needs. */
export interface IngestContext {
  db: Database;
  /** This instance's id; page writes commit only while it holds the series' lease. */
  owner: string;
  counters?: IngestCounters;
  now?: () => number;
  log: Logger;
  /** Checked between pages; when it returns true the walk stops after the current page. */
  stopping?: () => boolean;
}

/**
 * The step of `timeframe` in ms and the open time of its forming candle now: every candle
 * before `target` is closed.
 */
export function closedTarget(ctx: IngestContext, timeframe: string): { tf: number; target: number } {
  const tf = timeframeMs(timeframe);
  return { tf, target: floorTo(ctx.now?.() ?? Date.now(), tf) };
}

/** Thrown when this instance lost the series' lease to another instance mid-walk. */
export class LeaseLostError extends Error {
  /** Creates the error. */
  constructor(series: SeriesTarget) {
    super(
      `Cannot continue ${describeSeries(series)}: its lease is now held by another instance`,
    );
    this.name = "LeaseLostError";
  }
}

/** `binance BTC/USDT 1m` (`binance BTC/USDT:USDT 1m mark` for other prices), for messages. */
export function describeSeries(
  s: { exchange: string; symbol: string; timeframe: string; price?: string },
): string {
  const price = s.price && s.price !== "trade" ? ` ${s.price}` : "";
  return `${s.exchange} ${s.symbol} ${s.timeframe}${price}`;
}

/**
 * Moves the backfill checkpoint's cursor of `series` to `to`, in the caller's transaction, while
 * this instance holds the series' lease; throws {@linkcode LeaseLostError} when it does not.
 */
export async function advanceCheckpoint(
  tx: Queryable,
  ctx: IngestContext,
  series: SeriesTarget,
  to: number,
): Promise<void> {
  const updated = await tx`
    update backfill_checkpoints set cursor = to_timestamp(${to} / 1000.0), updated_at = now()
    where series_id = ${series.id}
      and exists (select 1 from series where id = ${series.id} and lease_owner = ${ctx.owner})`;
  if (updated.count === 0) throw new LeaseLostError(series);
}

/** Options of {@linkcode walkRange}. */
export interface WalkOptions {
  /** Advance backfill_checkpoints.cursor in each page's transaction. */
  checkpoint: boolean;
  /** Whether the series has stored candles before `from` (holes are only recorded after data). */
  hasEarlierData: boolean;
  /**
   * A page window without any candle is a confirmed hole once the series has data (set when the
   * range is known to be followed by data, e.g. a slot an archive file lacks).
   */
  emptyIsHole?: boolean;
  onPage?: (cursor: number) => void;
}

/** What a walk did. */
export interface WalkResult {
  pages: number;
  written: number;
  /** Open time of the last candle received, or null. */
  lastTs: number | null;
  /** False when stopped early (shutdown). */
  complete: boolean;
}

/**
 * Walks `[from, to)` page by page through the exchange, writing each page and (optionally)
 * advancing the checkpoint in one transaction, so a crash repeats at most one page. A range
 * the exchange skips between two candles is recorded as a confirmed hole; candles it serves
 * but validation rejects are recorded as holes with the reason.
 */
export async function walkRange(
  ctx: IngestContext,
  source: CandleSource,
  series: SeriesTarget,
  range: { from: number; to: number },
  options: WalkOptions,
): Promise<WalkResult> {
  const tf = timeframeMs(series.timeframe);
  const windowMs = source.pageLimit(series.timeframe, series.symbol) * tf;
  let cursor = range.from;
  let seenData = options.hasEarlierData;
  const result: WalkResult = {
    pages: 0,
    written: 0,
    lastTs: null,
    complete: true,
  };
  while (cursor < range.to) {
    if (ctx.stopping?.()) {
      result.complete = false;
      break;
    }
    const page: Page = await source.fetchPage(
      series.symbol,
      series.timeframe,
      cursor,
      range.to,
      { price: series.price },
    );
    const candles = page.candles.filter((c) => c.ts >= cursor && c.ts < range.to);
    const rejected = page.rejected.filter((r) => r.ts >= cursor && r.ts < range.to);
    if (page.rejected.length > 0) ctx.counters?.rejected(series, page.rejected.length);
    // Every timestamp the exchange answered for, valid or not, in order. Between two of them
    // (or before the first, once the series has data) the exchange confirmed it has nothing.
    const served = [...candles.map((c) => c.ts), ...rejected.map((r) => r.ts)].sort((a, b) => a - b);
    const holes: { from: number; to: number; reason: string }[] = [];
    let next: number;
    if (served.length > 0) {
      if (served[0] > cursor && seenData) holes.push({ from: cursor, to: served[0], reason: "no data from exchange" });
      for (let i = 1; i < served.length; i++) {
        if (served[i] - served[i - 1] > tf) {
          holes.push({ from: served[i - 1] + tf, to: served[i], reason: "no data from exchange" });
        }
      }
      next = served[served.length - 1] + tf;
      seenData = true;
      if (candles.length > 0) result.lastTs = candles[candles.length - 1].ts;
    } else {
      // Nothing in this window: move past it (the exchange answers from `since` forward).
      next = Math.min(cursor + windowMs, range.to);
      if (options.emptyIsHole && seenData) holes.push({ from: cursor, to: next, reason: "no data from exchange" });
    }
    for (const r of rejected) holes.push({ from: r.ts, to: r.ts + tf, reason: `invalid data: ${r.reason}` });

    const written = await ctx.db.retry(
      "write page",
      (sql) =>
        sql.begin(async (tx) => {
          if (options.checkpoint) await advanceCheckpoint(tx, ctx, series, next);
          const w = await writeCandles(tx, series.id, candles);
          for (const h of holes) {
            await tx`
            insert into confirmed_holes (series_id, from_ts, to_ts, reason)
            values (${series.id}, to_timestamp(${h.from} / 1000.0), to_timestamp(${h.to} / 1000.0), ${h.reason})
            on conflict (series_id, from_ts) do update
              set to_ts = greatest(confirmed_holes.to_ts, excluded.to_ts), reason = excluded.reason, checked_at = now()`;
          }
          return w;
        }),
    );
    ctx.counters?.written(series, written.inserted, written.updated);
    ctx.log.debug("{series}: page from {from}, {count} candles written", {
      series: describeSeries(series),
      from: new Date(cursor).toISOString(),
      count: written.inserted + written.updated,
    });
    result.pages++;
    result.written += written.inserted + written.updated;
    cursor = next;
    options.onPage?.(cursor);
  }
  return result;
}
