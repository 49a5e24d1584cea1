/**
 * Open-interest ingest of one series (exchange, perpetual, period): the first run backfills from
 * the wanted start (`BACKFILL_SINCE` or a backfill's `--since`, aligned down to the period grid)
 * or as far as the exchange keeps the history (Binance: 30 days, said once at info); later runs
 * fetch what is new since the last stored row, so the stored history grows beyond the
 * exchange's window. When the wanted start moves earlier than where the stored history starts
 * (`history_from`), the older part is fetched back in page-sized chunks, newest first,
 * `history_from` moving down after each (an interrupted extension resumes there).
 *
 * A point becomes a confirmed hole (open_interest_holes) only once the exchange was asked for
 * it and did not have it: a backfill or extension page that covered it, or the refetch of a
 * gap. Each run refetches the missing points after the last checked point; the repair run
 * (`check`) refetches every missing point within the exchange's window that is not a confirmed
 * hole. Points older than the window that were never stored stay gaps (the exchange no longer
 * serves them).
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import type { BackfillSince } from "../config_types.ts";
import { resolveSince } from "../config_values.ts";
import type { Database } from "../db/client.ts";
import type { OpenInterestOffer, OpenInterestPage } from "../exchange/open_interest.ts";
import { floorTo, timeframeMs } from "../timeframe.ts";
import { counted } from "../log.ts";
import {
  insertOpenInterestHoles,
  lastStored,
  missingTimes,
  type OpenInterestKey,
  readProgress,
  saveProgress,
  writeOpenInterest,
} from "./open_interest_store.ts";

/** What open-interest ingest needs from an exchange (the exchange client implements it). */
export interface OpenInterestSource {
  /** ccxt exchange id. */
  readonly id: string;
  /** What the exchange offers for `symbol` per `period`. */
  openInterestOffer(symbol: string, period: string): OpenInterestOffer;
  /** One validated page with `since <= ts < until`. */
  fetchOpenInterestPage(symbol: string, period: string, since: number, until?: number): Promise<OpenInterestPage>;
}

/** Whether `source` can serve open interest. */
export function isOpenInterestSource(source: unknown): source is OpenInterestSource {
  const s = source as Partial<OpenInterestSource> | null;
  return typeof s?.fetchOpenInterestPage === "function" && typeof s?.openInterestOffer === "function";
}

/** What one sync needs besides the source and the series. */
export interface OpenInterestContext {
  db: Database;
  log: Logger;
  now: () => number;
  /** Where history starts (`BACKFILL_SINCE`, or a backfill's `--since`). */
  since: BackfillSince;
  /** When the run started: the start is resolved from it (default: now), like the candles'. */
  startedAt?: number;
  /** The repair run: refetch every missing point within the exchange's window (not holes). */
  check?: boolean;
  /** Stops between pages when it returns true. */
  stopping?: () => boolean;
}

/** What one sync did. */
export interface OpenInterestSyncResult {
  /** Rows inserted or changed. */
  written: number;
  /** Requests made. */
  pages: number;
  /** Points recorded as confirmed holes in this run (asked for, not served). */
  holes: number;
  /** Why the series cannot be fetched, when it cannot. */
  unsupported?: string;
}

/** Clearance above the exchange's retention edge, so that a request never starts before it. */
const WINDOW_MARGIN_MS = 60_000;
const ceilTo = (t: number, step: number) => Math.ceil(t / step) * step;
const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Where the history should start (the wanted start aligned down to the period grid, not before
 * the listing) and the oldest point the exchange still serves (its window).
 */
function historyStart(ctx: OpenInterestContext, offer: OpenInterestOffer, stepMs: number): {
  start: number;
  windowFloor: number;
  clipped: boolean;
} {
  const now = ctx.now();
  const since = resolveSince(ctx.since, ctx.startedAt ?? now);
  const wanted = Math.max(since === "earliest" ? 0 : floorTo(since, stepMs), ceilTo(offer.listedAt ?? 0, stepMs));
  const windowFloor = offer.retentionMs === null ? 0 : ceilTo(now - offer.retentionMs + WINDOW_MARGIN_MS, stepMs);
  return { start: Math.max(wanted, windowFloor), windowFloor, clipped: wanted < windowFloor };
}

/** Keeps the open-interest history of one series current (see the module comment). */
export async function syncOpenInterest(
  ctx: OpenInterestContext,
  source: OpenInterestSource,
  key: OpenInterestKey,
): Promise<OpenInterestSyncResult> {
  const result: OpenInterestSyncResult = { written: 0, pages: 0, holes: 0 };
  const offer = source.openInterestOffer(key.symbol, key.period);
  if (offer.unsupported !== null) return { ...result, unsupported: offer.unsupported };
  const step = timeframeMs(key.period);
  const db = ctx.db;
  const fields = { exchange: key.exchange, symbol: key.symbol, period: key.period };
  const stopped = () => ctx.stopping?.() ?? false;
  /** Points of `[from, to]` (up to the last stored row) still missing after pages covered them: holes. */
  const confirmHoles = async (from: number, to: number) => {
    const last = await db.retry("open interest last", (sql) => lastStored(sql, key));
    if (last === null) return;
    const missing = await db.retry(
      "open interest gaps",
      (sql) => missingTimes(sql, key, { from, to: Math.min(to, last), stepMs: step }),
    );
    await db.retry("open interest holes", (sql) => insertOpenInterestHoles(sql, key, missing));
    result.holes += missing.length;
  };
  /** Fetches `[from, to)` page by page; `holes`: what the pages did not bring is a hole. Returns whether it got to `to`. */
  const walk = async (from: number, to: number, holes: boolean) => {
    while (from < to) {
      if (stopped()) return false;
      const page = await source.fetchOpenInterestPage(key.symbol, key.period, from, to);
      result.pages++;
      result.written += await db.retry("write open interest", (sql) => writeOpenInterest(sql, key, page.rows));
      if (holes) await confirmHoles(from, Math.min(page.window.to, to) - 1);
      if (page.window.to <= from) break;
      from = page.window.to;
    }
    return true;
  };
  let progress = await db.retry("open interest progress", (sql) => readProgress(sql, key));
  const { start, windowFloor, clipped } = historyStart(ctx, offer, step);
  const end = ctx.now() + 1;
  if (progress?.historyFrom == null) {
    // Where this history starts, saved first: a wanted start moved earlier later is an extension.
    await db.retry("open interest progress", (sql) => saveProgress(sql, key, { historyFrom: start }));
    progress = {
      historyFrom: start,
      backfilledAt: progress?.backfilledAt ?? null,
      checkedThrough: progress?.checkedThrough ?? null,
    };
  }
  const historyFrom = progress.historyFrom!;
  if (start < historyFrom) {
    // Older history wanted (BACKFILL_SINCE or --since earlier than before): newest chunk first.
    const before = { written: result.written, pages: result.pages };
    let upper = historyFrom;
    while (upper > start) {
      const lower = Math.max(start, upper - offer.pageLimit * step);
      if (!await walk(lower, upper, true)) return result;
      await db.retry("open interest progress", (sql) => saveProgress(sql, key, { historyFrom: lower }));
      upper = lower;
    }
    ctx.log.info(
      "Open interest of {exchange} {symbol} {period} extended back to {start}: {written} rows in {pagesText}",
      {
        ...fields,
        start: iso(start),
        written: result.written - before.written,
        pages: result.pages - before.pages,
        pagesText: counted(result.pages - before.pages, "page"),
      },
    );
  }
  if (progress.backfilledAt === null) {
    if (clipped) {
      ctx.log.info(
        "{exchange} keeps {days} days of open interest: {symbol} {period} history starts at {start} and grows from now on",
        { ...fields, days: Math.round(offer.retentionMs! / 86_400_000), start: iso(start) },
      );
    }
    // An interrupted first backfill resumes after its last stored row.
    const resumed = await db.retry("open interest last", (sql) => lastStored(sql, key));
    const from = Math.max(historyFrom, windowFloor);
    if (!await walk(resumed === null ? from : Math.max(from, resumed + step), end, true)) return result;
    const last = await db.retry("open interest last", (sql) => lastStored(sql, key));
    await db.retry(
      "open interest progress",
      (sql) => saveProgress(sql, key, { backfilledAt: ctx.now(), checkedThrough: last ?? undefined }),
    );
    ctx.log.info("Open interest of {exchange} {symbol} {period} backfilled: {written} rows in {pagesText}", {
      ...fields,
      written: result.written,
      pages: result.pages,
      pagesText: counted(result.pages, "page"),
    });
    return result;
  }
  const before = await db.retry("open interest last", (sql) => lastStored(sql, key));
  if (before !== null && before + step < windowFloor) {
    ctx.log.warn(
      "{exchange} {symbol} {period}: open interest from {from} to {to} is no longer served by the exchange and stays missing",
      { ...fields, from: iso(before + step), to: iso(windowFloor) },
    );
  }
  await walk(Math.max(before === null ? start : before + step, windowFloor), end, false);
  // Gap check within the exchange's window: after the last checked point, or all of it (repair).
  const last = await db.retry("open interest last", (sql) => lastStored(sql, key));
  if (last === null) return result;
  const checkFrom = Math.max(
    windowFloor,
    ctx.check || progress.checkedThrough === null ? historyFrom : progress.checkedThrough + step,
  );
  const missing = await db.retry(
    "open interest gaps",
    (sql) => missingTimes(sql, key, { from: checkFrom, to: last, stepMs: step }),
  );
  let i = 0;
  let covered = checkFrom;
  const filled = result.written;
  while (i < missing.length && !stopped()) {
    const page = await source.fetchOpenInterestPage(key.symbol, key.period, missing[i], last + 1);
    result.pages++;
    result.written += await db.retry("write open interest", (sql) => writeOpenInterest(sql, key, page.rows));
    while (i < missing.length && missing[i] < page.window.to) i++;
    covered = Math.max(covered, page.window.to);
  }
  if (missing.length > 0) {
    const holes = result.holes;
    await confirmHoles(missing[0], Math.min(covered, last + 1) - 1);
    ctx.log.info(
      "Repaired {exchange} {symbol} {period} open interest: {gaps} points missing, {filled} rows filled, {holes} confirmed holes",
      { ...fields, gaps: missing.length, filled: result.written - filled, holes: result.holes - holes },
    );
  }
  if (!stopped()) await db.retry("open interest progress", (sql) => saveProgress(sql, key, { checkedThrough: last }));
  return result;
}
