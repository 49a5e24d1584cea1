/**
 * A backfill range walked through the exchange's archive: archive files for whole past days,
 * REST for the rest, in time order so the backfill checkpoint's cursor only moves forward.
 *
 * Each file's candles, its `archive_files` row and the cursor (the file's end) are written in one
 * transaction: an interrupted import resumes after the last finished file. A few files are
 * downloaded ahead of the one being written. A file the archive does not have (404) or that fails
 * twice (checksum, corrupt zip, download) has its range fetched over REST; so do slots a file
 * lacks after the series' first candle (rejected rows, gaps), so that the stored series, and the
 * holes recorded, are what REST alone would have stored.
 *
 * @module
 */
import type { Candle } from "../candle.ts";
import {
  type ArchiveFile,
  type ArchiveFileDownload,
  ArchiveFileError,
  type ArchiveFileMissing,
  type ArchiveFileRows,
  type ArchivePlan,
} from "../exchange/archive.ts";
import type { TimeRange } from "../exchange/archive_plan.ts";
import { timeframeMs } from "../timeframe.ts";
import { counted } from "../log.ts";
import type { CandleSource } from "./source.ts";
import { writeCandles } from "./store.ts";
import {
  advanceCheckpoint,
  describeSeries,
  type IngestContext,
  type SeriesTarget,
  walkRange,
  type WalkResult,
} from "./walk.ts";

/** The archive as the backfill uses it (implemented by `BinanceArchive`). */
export interface ArchiveReader {
  /** The files of `range` for a series, or null when the archive does not serve it now. */
  plan(series: SeriesTarget, range: TimeRange, options: { now: number; dailyOnly?: boolean }): ArchivePlan | null;
  /**
   * Downloads one file and verifies its checksum; `read()` of the result parses it. Throws an
   * `ArchiveFileError` when it fails twice.
   */
  download(file: ArchiveFile, options?: { signal?: AbortSignal }): Promise<ArchiveFileDownload | ArchiveFileMissing>;
  /** Until when the archive is paused as unreachable (0 or absent: it is not). */
  readonly pausedUntil?: number;
  /** Bounds files parsed and written at once in the process (parsed files are what takes memory). */
  readonly writes?: { run<T>(task: () => Promise<T>): Promise<T> };
}

/** What happened to one archive file. */
export type ArchiveOutcome = "imported" | "missing" | "failed";

/** Archive counts of one walk or backfill. */
export interface ArchiveTally {
  /** Files planned. */
  planned: number;
  imported: number;
  /** 404: REST covered the range. */
  missing: number;
  /** Failed twice: REST covered the range. */
  failed: number;
  /** Missing and before the exchange's first candle of the series (not listed yet): nothing to fetch. */
  beforeListing: number;
  /** Bytes of the verified zips. */
  bytes: number;
  /** Candles written from archive files. */
  candles: number;
}

/** An empty {@linkcode ArchiveTally}. */
export function emptyTally(): ArchiveTally {
  return { planned: 0, imported: 0, missing: 0, failed: 0, beforeListing: 0, bytes: 0, candles: 0 };
}

/** Options of {@linkcode walkWithArchive}. */
export interface ArchiveWalkOptions {
  archive: ArchiveReader;
  /** The files of the range (from `archive.plan` for exactly this range). */
  plan: ArchivePlan;
  /** Whether the series has stored candles before the range. */
  hasEarlierData: boolean;
  /** Called with the open time everything before which is done (after each page or file). */
  onPage?: (cursor: number) => void;
  /** Called after each file with the walk's counts so far (`planned` grows when a month is split into days). */
  onFiles?: (tally: ArchiveTally) => void;
  /** Files downloaded (not parsed: compressed, small) ahead of the one being written (default 3). */
  ahead?: number;
}

/** What {@linkcode walkWithArchive} did. */
export interface ArchiveWalkResult extends WalkResult {
  archive: ArchiveTally;
}

type Downloaded = ArchiveFileDownload | ArchiveFileMissing | { status: "failed"; error: ArchiveFileError };
type Fetched = ArchiveFileRows | ArchiveFileMissing | { status: "failed"; error: ArchiveFileError };
type Segment = { rest: TimeRange } | { file: ArchiveFile; fetched?: Promise<Downloaded> };

const DAY_MS = 86_400_000;
/** A monthly file missing for a month that ended this recently is looked for as daily files. */
const RECENT_MONTH_MS = 40 * DAY_MS;
/** Rows written per statement. */
const CHUNK = 10_000;
/** More separate REST fills than this in one file are fetched as one range. */
const MAX_FILLS = 50;

function segmentsOf(range: TimeRange, files: readonly ArchiveFile[]): Segment[] {
  const out: Segment[] = [];
  let cursor = range.from;
  for (const file of files) {
    if (file.range.from > cursor) out.push({ rest: { from: cursor, to: file.range.from } });
    out.push({ file });
    cursor = file.range.to;
  }
  if (cursor < range.to) out.push({ rest: { from: cursor, to: range.to } });
  return out;
}

/**
 * The slots of `range` without a candle that REST must fetch: every one after the series' first
 * candle (`seenData`: stored before the range), else those after the file's first candle.
 */
function missingSlots(candles: readonly Candle[], range: TimeRange, tf: number, seenData: boolean): TimeRange[] {
  const out: TimeRange[] = [];
  if (candles.length === 0) return seenData ? [range] : [];
  let expected = seenData ? range.from : candles[0].ts;
  for (const c of candles) {
    if (c.ts > expected) out.push({ from: expected, to: c.ts });
    expected = c.ts + tf;
  }
  if (expected < range.to) out.push({ from: expected, to: range.to });
  if (out.length > MAX_FILLS) return [{ from: out[0].from, to: out[out.length - 1].to }];
  return out;
}

async function recordFile(
  ctx: IngestContext,
  series: SeriesTarget,
  file: ArchiveFile,
  fields: { status: ArchiveOutcome; detail: string | null },
): Promise<void> {
  await ctx.db.retry("record archive file", (sql) =>
    sql`
      insert into archive_files (series_id, file, range_from, range_to, status, detail)
      values (${series.id}, ${file.name}, to_timestamp(${file.range.from} / 1000.0),
              to_timestamp(${file.range.to} / 1000.0), ${fields.status}, ${fields.detail})
      on conflict (series_id, file) do update
        set status = excluded.status, detail = excluded.detail, candles = 0, bytes = 0, sha256 = null,
            updated_at = now()`);
}

/** Writes a verified file's candles, its record and the cursor (its end) in one transaction. */
async function commitFile(
  ctx: IngestContext,
  series: SeriesTarget,
  file: ArchiveFile,
  rows: ArchiveFileRows,
): Promise<{ inserted: number; updated: number }> {
  return await ctx.db.retry("write archive file", (sql) =>
    sql.begin(async (tx) => {
      await advanceCheckpoint(tx, ctx, series, file.range.to);
      let inserted = 0;
      let updated = 0;
      for (let i = 0; i < rows.candles.length; i += CHUNK) {
        const w = await writeCandles(tx, series.id, rows.candles.slice(i, i + CHUNK));
        inserted += w.inserted;
        updated += w.updated;
      }
      await tx`
        insert into archive_files (series_id, file, range_from, range_to, status, candles, bytes, sha256, detail)
        values (${series.id}, ${file.name}, to_timestamp(${file.range.from} / 1000.0),
                to_timestamp(${file.range.to} / 1000.0), 'imported', ${rows.candles.length}, ${rows.bytes},
                ${rows.sha256}, ${rows.rejected.length > 0 ? `${counted(rows.rejected.length, "row")} rejected` : null})
        on conflict (series_id, file) do update
          set status = 'imported', candles = excluded.candles, bytes = excluded.bytes, sha256 = excluded.sha256,
              detail = excluded.detail, updated_at = now()`;
      return { inserted, updated };
    }));
}

/**
 * Walks `[range.from, range.to)` of a series through the archive files of `options.plan` and
 * REST for everything they do not cover, in time order, advancing the backfill checkpoint. See
 * the module notes.
 */
export async function walkWithArchive(
  ctx: IngestContext,
  source: CandleSource,
  series: SeriesTarget,
  range: TimeRange,
  options: ArchiveWalkOptions,
): Promise<ArchiveWalkResult> {
  const tf = timeframeMs(series.timeframe);
  const now = ctx.now?.() ?? Date.now();
  const name = describeSeries(series);
  const result: ArchiveWalkResult = { pages: 0, written: 0, lastTs: null, complete: true, archive: emptyTally() };
  result.archive.planned = options.plan.files.length;
  const segments = segmentsOf(range, options.plan.files);
  const ahead = options.ahead ?? 3;
  const abort = new AbortController();
  let seenData = options.hasEarlierData;
  // Before the series' first candle, a file the archive lacks is usually a day before the listing:
  // the exchange's first candle (two requests, asked once) tells whether REST has anything there.
  let earliest: Promise<number | null> | undefined;
  // Files missing after the first candle, in a row: a mirror without them, or a wrong ARCHIVE_URL.
  let missingInARow = 0;
  let warnedMissing = false;

  const fetchAhead = (from: number) => {
    let started = 0;
    for (let j = from; j < segments.length && started <= ahead; j++) {
      const seg = segments[j];
      if (!("file" in seg)) continue;
      started++;
      seg.fetched ??= options.archive.download(seg.file, { signal: abort.signal }).catch((error) => {
        if (error instanceof ArchiveFileError) return { status: "failed" as const, error };
        throw error;
      });
      seg.fetched.catch(() => {});
    }
  };
  const writeSlot = <T>(task: () => Promise<T>): Promise<T> => options.archive.writes?.run(task) ?? task();
  // Parsed only when written: at most one parsed file per series in memory.
  const parse = async (downloaded: Downloaded): Promise<Fetched> => {
    if (downloaded.status !== "downloaded") return downloaded;
    try {
      return await downloaded.read();
    } catch (error) {
      if (error instanceof ArchiveFileError) return { status: "failed", error };
      throw error;
    }
  };
  const rest = async (part: TimeRange, fill: boolean) => {
    const walk = await walkRange(ctx, source, series, part, {
      checkpoint: !fill,
      hasEarlierData: fill || seenData,
      emptyIsHole: fill,
      onPage: fill ? undefined : options.onPage,
    });
    result.pages += walk.pages;
    result.written += walk.written;
    if (walk.lastTs !== null) {
      seenData = true;
      result.lastTs = Math.max(result.lastTs ?? -Infinity, walk.lastTs);
    }
    return walk.complete;
  };

  /** Writes a parsed file (REST first for the slots it lacks); false when stopped. */
  const importRows = async (file: ArchiveFile, rows: ArchiveFileRows): Promise<boolean> => {
    if (rows.rejected.length > 0) {
      ctx.counters?.rejected(series, rows.rejected.length);
      ctx.log.warn("{series}: {rows} of archive file {file} rejected ({reason}); REST fetches them", {
        series: name,
        rows: counted(rows.rejected.length, "row"),
        count: rows.rejected.length,
        file: file.name,
        reason: rows.rejected[0].reason,
      });
    }
    // REST first for what the file lacks, then the file with the cursor: a crash in between redoes both.
    for (const part of missingSlots(rows.candles, file.range, tf, seenData)) {
      if (!await rest(part, true)) return false;
    }
    const w = await commitFile(ctx, series, file, rows);
    ctx.counters?.written(series, w.inserted, w.updated);
    ctx.counters?.archiveFile?.(series, { outcome: "imported", bytes: rows.bytes });
    result.written += w.inserted + w.updated;
    result.archive.imported++;
    result.archive.bytes += rows.bytes;
    result.archive.candles += rows.candles.length;
    if (rows.candles.length > 0) {
      seenData = true;
      result.lastTs = Math.max(result.lastTs ?? -Infinity, rows.candles[rows.candles.length - 1].ts);
    }
    ctx.log.debug("{series}: archive file {file}: {count} candles, {bytes} bytes", {
      series: name,
      file: file.name,
      count: rows.candles.length,
      bytes: rows.bytes,
    });
    options.onFiles?.(result.archive);
    options.onPage?.(file.range.to);
    return true;
  };

  try {
    for (let i = 0; i < segments.length; i++) {
      if (ctx.stopping?.()) {
        result.complete = false;
        break;
      }
      fetchAhead(i);
      const seg = segments[i];
      if ("rest" in seg) {
        if (!await rest(seg.rest, false)) {
          result.complete = false;
          break;
        }
        continue;
      }
      const { file } = seg;
      const paused = () => (options.archive.pausedUntil ?? 0) > 0;
      let fetched: Downloaded | Fetched | null = paused() ? null : await seg.fetched!;
      if (fetched?.status === "downloaded") {
        // Parsed and written in one of the process's few write slots: few parsed files in memory at once.
        const downloaded = fetched;
        const written = await writeSlot(async () => {
          const rows = await parse(downloaded);
          if (rows.status !== "ok") return rows;
          return await importRows(file, rows) ? "written" : "stopped";
        });
        if (written === "stopped") {
          result.complete = false;
          break;
        }
        if (written === "written") {
          missingInARow = 0;
          continue;
        }
        fetched = written;
      }
      // A download failure that paused the archive is said once, by the pause's warning.
      if (fetched?.status === "failed" && fetched.error.code === "download_failed" && paused()) fetched = null;
      if (fetched === null) {
        // The archive became unreachable: REST for the rest of the range, said once.
        const left = segments.slice(i).filter((s) => "file" in s).length;
        result.archive.planned -= left;
        options.onFiles?.(result.archive);
        ctx.log.info("{series}: the archive is paused; REST fetches {from} to {to}", {
          series: name,
          from: new Date(file.range.from).toISOString(),
          to: new Date(range.to).toISOString(),
        });
        if (!await rest({ from: file.range.from, to: range.to }, false)) result.complete = false;
        break;
      }
      if (fetched.status !== "missing" || !seenData) missingInARow = 0;

      // Last month's file is published some days into this month: its days are there already.
      const days =
        fetched.status === "missing" && file.granularity === "monthly" && now - file.range.to < RECENT_MONTH_MS
          ? options.archive.plan(series, file.range, { now, dailyOnly: true })?.files ?? []
          : [];
      if (days.length > 0) {
        segments.splice(i + 1, 0, ...days.map((d) => ({ file: d })));
        result.archive.planned += days.length - 1;
        ctx.log.info("{series}: {file} is not published yet; its {count} daily files are used instead", {
          series: name,
          file: file.name,
          count: days.length,
        });
        options.onFiles?.(result.archive);
        continue;
      }
      const outcome = fetched.status === "missing" ? "missing" : "failed";
      const detail = fetched.status === "missing" ? "not in the archive (404)" : fetched.error.message;
      if (fetched.status === "failed") {
        ctx.log.warn("{reason}; REST fetches {series} from {from} to {to} instead", {
          reason: fetched.error.message,
          series: name,
          file: file.name,
          from: new Date(file.range.from).toISOString(),
          to: new Date(file.range.to).toISOString(),
        });
      } else {
        ctx.log.debug("{series}: {file} is not in the archive; REST covers it", { series: name, file: file.name });
      }
      let restFrom = file.range.from;
      if (!seenData && fetched.status === "missing") {
        earliest ??= source.findEarliest(series.symbol, series.timeframe, { price: series.price });
        const first = await earliest;
        if (first === null || first >= file.range.to) {
          await recordFile(ctx, series, file, { status: outcome, detail: `${detail}, before the first candle` });
          await ctx.db.retry("skip an archive file", (sql) => advanceCheckpoint(sql, ctx, series, file.range.to));
          ctx.counters?.archiveFile?.(series, { outcome, bytes: 0, reason: "before_listing" });
          result.archive.beforeListing++;
          options.onFiles?.(result.archive);
          options.onPage?.(file.range.to);
          continue;
        }
        restFrom = Math.max(restFrom, first);
      }
      if (fetched.status === "missing" && seenData && ++missingInARow === 3 && !warnedMissing) {
        warnedMissing = true;
        ctx.log.warn(
          "{series}: 3 archive files in a row are not in the archive (the last: {url}) although the exchange has candles there; REST fetches them. Check ARCHIVE_URL if this repeats",
          { series: name, url: file.url },
        );
      }
      await recordFile(ctx, series, file, { status: outcome, detail });
      ctx.counters?.archiveFile?.(series, {
        outcome,
        bytes: 0,
        reason: fetched.status === "failed" ? fetched.error.code : "missing",
      });
      result.archive[outcome]++;
      options.onFiles?.(result.archive);
      if (restFrom > file.range.from) {
        await ctx.db.retry("skip to the first candle", (sql) => advanceCheckpoint(sql, ctx, series, restFrom));
        options.onPage?.(restFrom);
      }
      if (!await rest({ from: restFrom, to: file.range.to }, false)) {
        result.complete = false;
        break;
      }
    }
  } finally {
    abort.abort(new Error("the archive walk ended"));
  }
  return result;
}
