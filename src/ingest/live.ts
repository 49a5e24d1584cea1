import { counted } from "../log.ts";
import { closedTarget, describeSeries, type IngestContext, type SeriesTarget, walkRange } from "./walk.ts";
import type { CandleSource } from "./source.ts";

/** What one live update did. */
export interface LiveResult {
  series: SeriesTarget;
  pages: number;
  written: number;
  /** Now minus the end of the last stored candle, in ms (null when nothing is stored). */
  lagMs: number | null;
}

/** Open time of the last stored candle of a series, or null. */
export async function lastStored(
  ctx: IngestContext,
  seriesId: number,
): Promise<number | null> {
  const [row] = await ctx.db.retry(
    "last stored candle",
    (sql) =>
      sql<
        { ts: Date }[]
      >`select ts from candles where series_id = ${seriesId} order by ts desc limit 1`,
  );
  return row?.ts.getTime() ?? null;
}

/**
 * Fetches the closed candles after the series' last stored one, whatever the gap since then
 * (an outage of hours is caught up page by page), and returns the lag afterwards.
 */
export async function updateSeries(
  ctx: IngestContext,
  source: CandleSource,
  series: SeriesTarget,
): Promise<LiveResult> {
  const { tf, target } = closedTarget(ctx, series.timeframe);
  const last = await lastStored(ctx, series.id);
  if (last === null) return { series, pages: 0, written: 0, lagMs: null };
  let pages = 0;
  let written = 0;
  let newest = last;
  if (last + tf < target) {
    const walk = await walkRange(ctx, source, series, {
      from: last + tf,
      to: target,
    }, {
      checkpoint: false,
      hasEarlierData: true,
    });
    pages = walk.pages;
    written = walk.written;
    if (walk.lastTs !== null) newest = Math.max(newest, walk.lastTs);
    if (walk.pages > 1) {
      ctx.log.info("Caught up {series}: {written} candles in {pagesText}", {
        series: describeSeries(series),
        written,
        pages,
        pagesText: counted(pages, "page"),
      });
    }
  }
  return {
    series,
    pages,
    written,
    lagMs: (ctx.now?.() ?? Date.now()) - (newest + tf),
  };
}

/**
 * The REST check of a series fed by a WebSocket: the closed candles from `from` on, in one
 * request for any interval shorter than a page, written idempotently: what the socket wrote
 * is confirmed, what it missed or got wrong is written (and counted).
 */
export async function checkSeries(
  ctx: IngestContext,
  source: CandleSource,
  series: SeriesTarget,
  from: number,
): Promise<LiveResult> {
  const { tf, target } = closedTarget(ctx, series.timeframe);
  const start = Math.floor(from / tf) * tf;
  if (start >= target) return { series, pages: 0, written: 0, lagMs: null };
  const walk = await walkRange(ctx, source, series, { from: start, to: target }, {
    checkpoint: false,
    hasEarlierData: true,
  });
  if (walk.written > 0) {
    ctx.log.info("REST check of {series}: {written} candles were missing or different from the stream's", {
      series: describeSeries(series),
      written: walk.written,
    });
  }
  const newest = walk.lastTs ?? await lastStored(ctx, series.id);
  return {
    series,
    pages: walk.pages,
    written: walk.written,
    lagMs: newest === null ? null : (ctx.now?.() ?? Date.now()) - (newest + tf),
  };
}
