import { resolveSince } from "../config.ts";
import type { BackfillSince } from "../config_types.ts";
import type { Database } from "../db/client.ts";
import type { Logger } from "../log.ts";
import { floorTo, timeframeMs } from "../timeframe.ts";
import type { CandleSource, Page } from "./source.ts";
import { writeCandles } from "./store.ts";

/** The series a job works on. */
export interface SeriesTarget {
  id: number;
  exchange: string;
  symbol: string;
  timeframe: string;
}

/** Counters the walkers report into (wired to Prometheus metrics by the engine). */
export interface IngestCounters {
  /** Candles written (inserted or changed). */
  written(series: SeriesTarget, inserted: number, updated: number): void;
  /** Candles rejected by validation. */
  rejected(series: SeriesTarget, count: number): void;
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

/** Progress of a backfill, reported after every page. */
export interface BackfillProgress {
  series: SeriesTarget;
  /** Candle slots covered so far in this run. */
  done: number;
  /** Candle slots this run has to cover. */
  expected: number;
  /** Open time of the next candle to fetch. */
  cursor: number;
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

/** `binance BTC/USDT 1m`, for messages. */
export function describeSeries(
  s: { exchange: string; symbol: string; timeframe: string },
): string {
  return `${s.exchange} ${s.symbol} ${s.timeframe}`;
}

interface WalkOptions {
  /** Advance backfill_checkpoints.cursor in each page's transaction. */
  checkpoint: boolean;
  /** Whether the series has stored candles before `from` (holes are only recorded after data). */
  hasEarlierData: boolean;
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
  const windowMs = source.pageLimit(series.timeframe) * tf;
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
    }
    for (const r of rejected) holes.push({ from: r.ts, to: r.ts + tf, reason: `invalid data: ${r.reason}` });

    const written = await ctx.db.retry(
      "write page",
      (sql) =>
        sql.begin(async (tx) => {
          if (options.checkpoint) {
            const updated = await tx`
            update backfill_checkpoints set cursor = to_timestamp(${next} / 1000.0), updated_at = now()
            where series_id = ${series.id}
              and exists (select 1 from series where id = ${series.id} and lease_owner = ${ctx.owner})`;
            if (updated.count === 0) throw new LeaseLostError(series);
          }
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
    result.pages++;
    result.written += written.inserted + written.updated;
    cursor = next;
    options.onPage?.(cursor);
  }
  return result;
}

/** Options of {@linkcode backfillSeries}. */
export interface BackfillOptions {
  /** Where history starts (`BACKFILL_SINCE`, or a CLI `--since`). */
  since: BackfillSince;
  /** The moment the run started; durations count back from it. */
  runStartedAt: number;
  onProgress?: (progress: BackfillProgress) => void;
}

/** What a backfill did. */
export interface BackfillResult {
  series: SeriesTarget;
  pages: number;
  written: number;
  complete: boolean;
}

interface Checkpoint {
  rangeFrom: number;
  cursor: number;
  target: number;
  coveredFrom: number | null;
  status: string;
}

async function loadState(ctx: IngestContext, seriesId: number) {
  return await ctx.db.retry("load backfill state", async (sql) => {
    const [cp] = await sql<
      {
        rangeFrom: Date;
        cursor: Date;
        target: Date;
        coveredFrom: Date | null;
        status: string;
      }[]
    >`
      select range_from as "rangeFrom", cursor, target, covered_from as "coveredFrom", status
      from backfill_checkpoints where series_id = ${seriesId}`;
    const [bounds] = await sql<{ first: Date | null; last: Date | null }[]>`
      select
        (select ts from candles where series_id = ${seriesId} order by ts asc limit 1) as first,
        (select ts from candles where series_id = ${seriesId} order by ts desc limit 1) as last`;
    const checkpoint: Checkpoint | null = cp
      ? {
        rangeFrom: cp.rangeFrom.getTime(),
        cursor: cp.cursor.getTime(),
        target: cp.target.getTime(),
        coveredFrom: cp.coveredFrom?.getTime() ?? null,
        status: cp.status,
      }
      : null;
    return {
      checkpoint,
      first: bounds.first?.getTime() ?? null,
      last: bounds.last?.getTime() ?? null,
    };
  });
}

async function startRange(
  ctx: IngestContext,
  series: SeriesTarget,
  from: number,
  to: number,
): Promise<void> {
  await ctx.db.retry("start backfill range", (sql) =>
    sql`
      insert into backfill_checkpoints (series_id, range_from, cursor, target, status)
      values (${series.id}, to_timestamp(${from} / 1000.0), to_timestamp(${from} / 1000.0),
              to_timestamp(${to} / 1000.0), 'running')
      on conflict (series_id) do update
        set range_from = excluded.range_from, cursor = excluded.cursor, target = excluded.target,
            status = 'running', updated_at = now()`);
}

async function finishRange(
  ctx: IngestContext,
  series: SeriesTarget,
  coveredFrom: number | null,
): Promise<void> {
  await ctx.db.retry("finish backfill range", (sql) =>
    sql`
      update backfill_checkpoints
      set status = 'done', cursor = target, updated_at = now(),
          covered_from = case
            when ${coveredFrom}::float8 is null then covered_from
            else least(coalesce(covered_from, to_timestamp(${coveredFrom}::float8 / 1000.0)),
                       to_timestamp(${coveredFrom}::float8 / 1000.0))
          end
      where series_id = ${series.id}`);
}

/**
 * Backfills one series from `since` up to its last closed candle. Resumes an interrupted run
 * from its checkpoint; with history already stored it fetches only what is missing before
 * the first stored candle (when `since` moved earlier) and after the last one, so re-running a
 * finished backfill costs about one request.
 */
export async function backfillSeries(
  ctx: IngestContext,
  source: CandleSource,
  series: SeriesTarget,
  options: BackfillOptions,
): Promise<BackfillResult> {
  const tf = timeframeMs(series.timeframe);
  const now = ctx.now?.() ?? Date.now();
  const target = floorTo(now, tf);
  const result: BackfillResult = {
    series,
    pages: 0,
    written: 0,
    complete: true,
  };
  let state = await loadState(ctx, series.id);

  // Plan the ranges still to do, oldest first.
  const ranges: { from: number; to: number; older: boolean }[] = [];
  if (
    state.checkpoint?.status === "running" &&
    state.checkpoint.cursor < state.checkpoint.target
  ) {
    ctx.log.info("Resuming backfill of {series} from {cursor}", {
      series: describeSeries(series),
      cursor: new Date(state.checkpoint.cursor).toISOString(),
    });
    ranges.push({
      from: state.checkpoint.cursor,
      to: state.checkpoint.target,
      older: true,
    });
  }
  const resolved = resolveSince(options.since, options.runStartedAt);
  let start: number | null;
  if (resolved === "earliest") {
    start = state.checkpoint?.coveredFrom ??
      await source.findEarliest(series.symbol, series.timeframe);
    if (start === null) {
      ctx.log.warn("{series}: the exchange has no candles at all", {
        series: describeSeries(series),
      });
    }
  } else {
    start = floorTo(resolved, tf);
  }
  const resumeTo = ranges[0]?.to;
  if (start !== null) {
    const lower = Math.min(
      state.checkpoint?.coveredFrom ?? Infinity,
      state.first ?? Infinity,
      state.checkpoint?.status === "running" ? state.checkpoint.rangeFrom : Infinity,
    );
    if (lower === Infinity) {
      if (resumeTo === undefined) {
        ranges.push({ from: start, to: target, older: true });
      }
    } else if (start < lower) {
      ranges.push({ from: start, to: lower, older: true });
    }
  }
  const expected = ranges.reduce((n, r) => n + Math.max(0, r.to - r.from) / tf, 0) +
    Math.max(0, target - ((state.last ?? target - tf) + tf)) / tf;
  let done = 0;
  const report = (cursor: number) =>
    options.onProgress?.({
      series,
      done,
      expected: Math.max(expected, done),
      cursor,
    });

  const run = async (
    from: number,
    to: number,
    coveredFrom: number | null,
    fresh: boolean,
  ) => {
    if (from >= to) return;
    if (fresh) await startRange(ctx, series, from, to);
    const hasEarlierData = state.first !== null && state.first < from;
    let last = from;
    const walk = await walkRange(ctx, source, series, { from, to }, {
      checkpoint: true,
      hasEarlierData,
      onPage: (cursor) => {
        done += (cursor - last) / tf;
        last = cursor;
        report(cursor);
      },
    });
    result.pages += walk.pages;
    result.written += walk.written;
    if (!walk.complete) {
      result.complete = false;
      return;
    }
    await finishRange(ctx, series, coveredFrom);
  };

  for (const [i, r] of ranges.entries()) {
    const resumed = i === 0 && resumeTo !== undefined;
    const coveredFrom = resumed ? state.checkpoint!.rangeFrom : r.from;
    await run(r.from, r.to, r.older ? coveredFrom : null, !resumed);
    if (!result.complete) return result;
    state = await loadState(ctx, series.id);
  }
  // Newer part: everything after the last stored candle (or the end of what was covered).
  const coveredTo = state.checkpoint?.status === "done" ? state.checkpoint.target : null;
  const newerFrom = Math.max(
    state.last === null ? -Infinity : state.last + tf,
    coveredTo ?? -Infinity,
  );
  if (Number.isFinite(newerFrom) && newerFrom < target) {
    await run(newerFrom, target, null, true);
  }
  if (!result.complete) return result;
  report(target);
  return result;
}
