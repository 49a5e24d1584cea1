/**
 * Open-interest ingest of one series (exchange, perpetual, period): the first run backfills as
 * far as the exchange keeps the history (Binance: 30 days, said once at info), later runs fetch
 * what is new since the last stored row, so the stored history grows beyond the exchange's
 * window. Each run gap-checks the period grid after the last checked point within that window:
 * missing points are refetched once, and those the exchange still does not have are left as
 * its holes (never asked for again).
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import type { BackfillSince } from "../config_types.ts";
import { resolveSince } from "../config_values.ts";
import type { Database } from "../db/client.ts";
import type { OpenInterestOffer, OpenInterestPage } from "../exchange/open_interest.ts";
import { timeframeMs } from "../timeframe.ts";
import {
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
  /** Where history starts when the exchange keeps all of it (`BACKFILL_SINCE`). */
  since: BackfillSince;
  /** Stops between pages when it returns true. */
  stopping?: () => boolean;
}

/** What one sync did. */
export interface OpenInterestSyncResult {
  /** Rows inserted or changed. */
  written: number;
  /** Requests made. */
  pages: number;
  /** Grid points missing within the exchange's window after the refetch (the exchange's holes). */
  holes: number;
  /** Why the series cannot be fetched, when it cannot. */
  unsupported?: string;
}

/** Clearance above the exchange's retention edge, so that a request never starts before it. */
const WINDOW_MARGIN_MS = 60_000;
const ceilTo = (t: number, step: number) => Math.ceil(t / step) * step;

/** Oldest point the exchange still serves (its window), or where history should start. */
function historyStart(ctx: OpenInterestContext, offer: OpenInterestOffer, stepMs: number): {
  start: number;
  windowFloor: number;
  clipped: boolean;
} {
  const now = ctx.now();
  const since = resolveSince(ctx.since, now);
  const wanted = Math.max(since === "earliest" ? 0 : since, offer.listedAt ?? 0);
  const windowFloor = offer.retentionMs === null ? 0 : ceilTo(now - offer.retentionMs + WINDOW_MARGIN_MS, stepMs);
  return { start: ceilTo(Math.max(wanted, windowFloor), stepMs), windowFloor, clipped: wanted < windowFloor };
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
  const walk = async (from: number, to: number) => {
    while (from < to && !(ctx.stopping?.() ?? false)) {
      const page = await source.fetchOpenInterestPage(key.symbol, key.period, from, to);
      result.pages++;
      result.written += await db.retry("write open interest", (sql) => writeOpenInterest(sql, key, page.rows));
      if (page.window.to <= from) break;
      from = page.window.to;
    }
  };
  const progress = await db.retry("open interest progress", (sql) => readProgress(sql, key));
  const { start, windowFloor, clipped } = historyStart(ctx, offer, step);
  const end = ctx.now() + 1;
  if (progress?.backfilledAt == null) {
    if (clipped) {
      ctx.log.info(
        "{exchange} keeps {days} days of open interest: {symbol} {period} history starts at {start} and grows from now on",
        { ...fields, days: Math.round(offer.retentionMs! / 86_400_000), start: new Date(start).toISOString() },
      );
    }
    // An interrupted first backfill resumes after its last stored row.
    const resumed = await db.retry("open interest last", (sql) => lastStored(sql, key));
    await walk(resumed === null ? start : Math.max(start, resumed + step), end);
    if (ctx.stopping?.()) return result;
    const last = await db.retry("open interest last", (sql) => lastStored(sql, key));
    // The walk asked for every point once: what is missing up to here is the exchange's hole.
    if (last !== null) {
      result.holes = (await db.retry("open interest gaps", (sql) =>
        missingTimes(sql, key, { from: start, to: last, stepMs: step }))).length;
    }
    await db.retry(
      "open interest progress",
      (sql) =>
        saveProgress(sql, key, { historyFrom: start, backfilledAt: ctx.now(), checkedThrough: last ?? undefined }),
    );
    ctx.log.info("Open interest of {exchange} {symbol} {period} backfilled: {written} rows in {pages} pages", {
      ...fields,
      written: result.written,
      pages: result.pages,
    });
    return result;
  }
  const before = await db.retry("open interest last", (sql) => lastStored(sql, key));
  if (before !== null && before + step < windowFloor) {
    ctx.log.warn(
      "{exchange} {symbol} {period}: open interest from {from} to {to} is no longer served by the exchange and stays missing",
      { ...fields, from: new Date(before + step).toISOString(), to: new Date(windowFloor).toISOString() },
    );
  }
  await walk(Math.max(before === null ? start : before + step, windowFloor), end);
  // Gap check within the exchange's window, after the last checked point only.
  const last = await db.retry("open interest last", (sql) => lastStored(sql, key));
  if (last === null) return result;
  const checkFrom = Math.max(windowFloor, progress.checkedThrough === null ? start : progress.checkedThrough + step);
  const missing = await db.retry(
    "open interest gaps",
    (sql) => missingTimes(sql, key, { from: checkFrom, to: last, stepMs: step }),
  );
  let i = 0;
  while (i < missing.length && !(ctx.stopping?.() ?? false)) {
    const page = await source.fetchOpenInterestPage(key.symbol, key.period, missing[i], last + 1);
    result.pages++;
    result.written += await db.retry("write open interest", (sql) => writeOpenInterest(sql, key, page.rows));
    while (i < missing.length && missing[i] < page.window.to) i++;
  }
  if (missing.length > 0) {
    const still = await db.retry(
      "open interest gaps",
      (sql) => missingTimes(sql, key, { from: checkFrom, to: last, stepMs: step }),
    );
    result.holes = still.length;
    if (still.length > 0) {
      ctx.log.info(
        "{exchange} {symbol} {period}: {count} open-interest points missing at the exchange, first {first}",
        {
          ...fields,
          count: still.length,
          first: new Date(still[0]).toISOString(),
        },
      );
    }
  }
  await db.retry("open interest progress", (sql) => saveProgress(sql, key, { checkedThrough: last }));
  return result;
}
