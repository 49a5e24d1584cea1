/**
 * Backfill of one series: plans what is missing between its start and the last closed candle
 * (resuming an interrupted range from its checkpoint) and walks it.
 *
 * @module
 */
import { resolveSince } from "../config.ts";
import type { BackfillSince } from "../config_types.ts";
import { floorTo } from "../timeframe.ts";
import { counted } from "../log.ts";
import type { CandleSource } from "./source.ts";
import {
  closedTarget,
  describeSeries,
  type IngestContext,
  type SeriesTarget,
  walkRange,
  type WalkResult,
} from "./walk.ts";
import { type ArchiveReader, type ArchiveTally, emptyTally, walkWithArchive } from "./archive_import.ts";

export { describeSeries, type IngestContext, LeaseLostError, type SeriesTarget } from "./walk.ts";

/** Progress of a backfill, reported after every page. */
export interface BackfillProgress {
  series: SeriesTarget;
  /** Candle slots covered so far in this run. */
  done: number;
  /** Candle slots this run has to cover. */
  expected: number;
  /** Open time of the next candle to fetch. */
  cursor: number;
  /** Archive files handled (imported, or fallen back to REST) and planned so far; absent without any. */
  files?: { done: number; total: number };
}

/** Options of {@linkcode backfillSeries}. */
export interface BackfillOptions {
  /** Where history starts (`BACKFILL_SINCE`, or a CLI `--since`). */
  since: BackfillSince;
  /** The moment the run started; durations count back from it. */
  runStartedAt: number;
  onProgress?: (progress: BackfillProgress) => void;
  /** Whole past days come from this archive where it serves the series (`ARCHIVE=auto`). */
  archive?: ArchiveReader;
}

/** What a backfill did. */
export interface BackfillResult {
  series: SeriesTarget;
  pages: number;
  written: number;
  complete: boolean;
  /** True when history was due (a first backfill, a resumed one, or `since` moved earlier). */
  history: boolean;
  /** What the archive contributed. */
  archive: ArchiveTally;
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
  const { tf, target } = closedTarget(ctx, series.timeframe);
  const result: BackfillResult = {
    series,
    pages: 0,
    written: 0,
    complete: true,
    history: false,
    archive: emptyTally(),
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
      await source.findEarliest(series.symbol, series.timeframe, { price: series.price });
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
  // The newer part starts after the last stored candle and after every planned range (a resumed
  // range already reaches its old target).
  const newerStart = Math.max(
    state.last === null ? -Infinity : state.last + tf,
    ...ranges.map((r) => r.to),
  );
  const expected = ranges.reduce((n, r) => n + Math.max(0, r.to - r.from) / tf, 0) +
    (Number.isFinite(newerStart) ? Math.max(0, target - newerStart) / tf : 0);
  result.history = ranges.length > 0;
  const fresh = resumeTo === undefined ? ranges[0] : ranges[1];
  if (fresh) {
    ctx.log.info("Backfilling {series} from {from}: about {expected} candles", {
      series: describeSeries(series),
      from: new Date(fresh.from).toISOString(),
      expected: Math.round(expected),
    });
  }
  let done = 0;
  let files: { done: number; total: number } | undefined;
  const report = (cursor: number) =>
    options.onProgress?.({
      series,
      done,
      expected: Math.max(expected, done),
      cursor,
      ...(files ? { files: { ...files } } : {}),
    });
  const tallyFiles = (before: ArchiveTally, walk: ArchiveTally) => {
    const handled = (t: ArchiveTally) => t.imported + t.missing + t.failed + t.beforeListing;
    files = { done: handled(before) + handled(walk), total: before.planned + walk.planned };
  };

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
    const onPage = (cursor: number) => {
      done += (cursor - last) / tf;
      last = cursor;
      report(cursor);
    };
    const plan = options.archive?.plan(series, { from, to }, { now: ctx.now?.() ?? Date.now() }) ?? null;
    let walk: WalkResult;
    if (options.archive && plan && plan.files.length > 0) {
      const first = plan.files[0].range.from;
      const end = plan.files[plan.files.length - 1].range.to;
      ctx.log.info("{series}: {files} from the archive cover {from} to {to}; REST fetches the rest", {
        series: describeSeries(series),
        files: counted(plan.files.length, "file"),
        from: new Date(first).toISOString(),
        to: new Date(end).toISOString(),
      });
      const before = { ...result.archive };
      const archived = await walkWithArchive(ctx, source, series, { from, to }, {
        archive: options.archive,
        plan,
        hasEarlierData,
        onPage,
        // Shown with the next page's report: a file counts once its candles are written.
        onFiles: (tally) => tallyFiles(before, tally),
      });
      for (const key of Object.keys(result.archive) as (keyof ArchiveTally)[]) {
        result.archive[key] += archived.archive[key];
      }
      walk = archived;
    } else {
      walk = await walkRange(ctx, source, series, { from, to }, { checkpoint: true, hasEarlierData, onPage });
    }
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
