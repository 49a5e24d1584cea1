/**
 * Gap detection, computed in SQL: a gap is a run of missing candles between two stored
 * candles of a series (never before the first or after the last one), minus the ranges the
 * exchange confirmed it has no data for (`confirmed_holes`). Used by the API and by gap repair.
 *
 * @module
 */
import type postgres from "postgres";
import { bucketOrigin } from "../timeframe.ts";
import type { Queryable } from "./store.ts";

/** A range `[from, to)` of missing candles, in epoch milliseconds, aligned to the timeframe. */
export interface Gap {
  /** Open time of the first missing candle. */
  from: number;
  /** Open time of the next stored (or confirmed-missing) candle: exclusive. */
  to: number;
  /** Number of missing candles, `(to - from) / step`. */
  count: number;
}

/** A range `[from, to)` the exchange confirmed it has no (valid) data for. */
export interface Hole {
  /** Start, epoch milliseconds. */
  from: number;
  /** End (exclusive), epoch milliseconds. */
  to: number;
  /** Why it is a hole, e.g. `no data from exchange`. */
  reason: string;
  /** When it was last checked, epoch milliseconds. */
  checkedAt: number;
}

/** Options of {@linkcode findGaps} and {@linkcode summarizeGaps}. */
export interface GapOptions {
  /** Only report missing candles at or after this instant (epoch ms). */
  from?: number;
  /** Only report missing candles before this instant (epoch ms). */
  to?: number;
  /** At most this many ranges, oldest first (findGaps only; default unlimited). */
  limit?: number;
}

/** Totals of {@linkcode summarizeGaps}. */
export interface GapSummary {
  /** Missing candles in every gap. */
  missing: number;
  /** Number of gap ranges. */
  ranges: number;
}

function checkStep(stepMs: number): void {
  if (!Number.isSafeInteger(stepMs) || stepMs <= 0) {
    throw new RangeError(`Cannot find gaps: current step is ${stepMs}, expected a positive whole number of ms`);
  }
}

/** SQL expressions naming one gap scan: a series, its step and grid origin, and `[from, to)` (ms or null). */
interface GapScan {
  seriesId: postgres.PendingQuery<postgres.Row[]>;
  step: postgres.PendingQuery<postgres.Row[]>;
  origin: postgres.PendingQuery<postgres.Row[]>;
  from: postgres.PendingQuery<postgres.Row[]>;
  to: postgres.PendingQuery<postgres.Row[]>;
}

/** {@linkcode GapScan} of one series with its values as parameters. */
function scanOf(sql: Queryable, seriesId: number, stepMs: number, options: GapOptions): GapScan {
  return {
    seriesId: sql`${seriesId}::int`,
    step: sql`${stepMs}::float8`,
    origin: sql`${bucketOrigin(stepMs)}::float8`,
    from: sql`${options.from ?? null}::float8`,
    to: sql`${options.to ?? null}::float8`,
  };
}

/**
 * The query of aligned missing ranges `(from_ms, to_ms, count)`: consecutive stored candles
 * further apart than one step (`lead(ts) over (order by ts)`), minus confirmed holes,
 * intersected with `[from, to)`, snapped to the timeframe's grid. The scan's expressions may
 * be parameters or columns of an outer query (a `lateral` join over many series).
 */
function gapRanges(sql: Queryable, g: GapScan): postgres.PendingQuery<postgres.Row[]> {
  return sql`
    with bounds as (
      select coalesce(to_timestamp(${g.from} / 1000), '-infinity'::timestamptz) as lo,
             coalesce(to_timestamp(${g.to} / 1000), 'infinity'::timestamptz) as hi
    ), span as (
      -- Widen the scan by one stored candle on each side so a gap crossing from/to is seen.
      select coalesce((select max(c.ts) from candles c where c.series_id = ${g.seriesId} and c.ts < b.lo), b.lo) as lo,
             coalesce((select min(c.ts) from candles c where c.series_id = ${g.seriesId} and c.ts >= b.hi), b.hi) as hi,
             b.lo as want_lo, b.hi as want_hi
      from bounds b
    ), seq as (
      select c.ts, lead(c.ts) over (order by c.ts) as next_ts
      from candles c, span
      where c.series_id = ${g.seriesId} and c.ts >= span.lo and c.ts <= span.hi
    ), missing as (
      select coalesce(range_agg(tstzrange(ts + ${g.step} * interval '1 millisecond', next_ts)),
                      '{}'::tstzmultirange) as m
      from seq
      where next_ts > ts + ${g.step} * interval '1 millisecond'
    ), holes as (
      select coalesce(range_agg(tstzrange(h.from_ts, h.to_ts)), '{}'::tstzmultirange) as m
      from confirmed_holes h, span
      where h.series_id = ${g.seriesId} and h.from_ts < span.hi and h.to_ts > span.lo and h.from_ts < h.to_ts
    ), pieces as (
      select (extract(epoch from lower(r)) * 1000)::float8 as lo_ms,
             (extract(epoch from upper(r)) * 1000)::float8 as hi_ms
      from missing, holes, span,
           unnest((missing.m - holes.m) * tstzmultirange(tstzrange(span.want_lo, span.want_hi))) as r
    ), aligned as (
      select ${g.origin} + ceil((lo_ms - ${g.origin}) / ${g.step}) * ${g.step} as from_ms,
             ${g.origin} + ceil((hi_ms - ${g.origin}) / ${g.step}) * ${g.step} as to_ms
      from pieces
    )
    select from_ms, to_ms, ((to_ms - from_ms) / ${g.step})::float8 as n
    from aligned
    where to_ms > from_ms`;
}

/**
 * Ranges `[from, to)` of missing candles of a series with candles every `stepMs`, oldest
 * first, inside the stored range and outside confirmed holes, optionally within
 * `[options.from, options.to)`. Computed in SQL with `lead(ts)`; no rows are read into JS.
 */
export async function findGaps(
  sql: Queryable,
  seriesId: number,
  stepMs: number,
  options: GapOptions = {},
): Promise<Gap[]> {
  checkStep(stepMs);
  const limit = options.limit ?? null;
  const rows = await sql<{ from_ms: number; to_ms: number; n: number }[]>`
    select * from (${gapRanges(sql, scanOf(sql, seriesId, stepMs, options))}) g
    order by from_ms
    limit ${limit}::bigint`;
  return rows.map((r) => ({ from: r.from_ms, to: r.to_ms, count: r.n }));
}

/** Number of gap ranges and missing candles of a series, as {@linkcode findGaps} would list them. */
export async function summarizeGaps(
  sql: Queryable,
  seriesId: number,
  stepMs: number,
  options: GapOptions = {},
): Promise<GapSummary> {
  checkStep(stepMs);
  const [row] = await sql<{ missing: number; ranges: number }[]>`
    select coalesce(sum(n), 0)::float8 as missing, count(*)::int as ranges
    from (${gapRanges(sql, scanOf(sql, seriesId, stepMs, options))}) g`;
  return row;
}

/** One series of {@linkcode summarizeGapsOfMany}: its id, step and optional `[from, to)`. */
export interface GapWindow extends GapOptions {
  seriesId: number;
  stepMs: number;
}

/**
 * {@linkcode summarizeGaps} of many series (or windows of them) in one statement, in the
 * order given: the same query, joined laterally over the list.
 */
export async function summarizeGapsOfMany(sql: Queryable, windows: readonly GapWindow[]): Promise<GapSummary[]> {
  if (windows.length === 0) return [];
  for (const w of windows) checkStep(w.stepMs);
  const scan: GapScan = {
    seriesId: sql`w.id`,
    step: sql`w.step`,
    origin: sql`w.origin`,
    from: sql`w.from_ms`,
    to: sql`w.to_ms`,
  };
  const rows = await sql<{ missing: number; ranges: number }[]>`
    select coalesce(sum(g.n), 0)::float8 as missing, count(g.n)::int as ranges
    from unnest(
      ${windows.map((w) => w.seriesId)}::int[], ${windows.map((w) => w.stepMs)}::float8[],
      ${windows.map((w) => bucketOrigin(w.stepMs))}::float8[], ${windows.map((w) => w.from ?? null)}::float8[],
      ${windows.map((w) => w.to ?? null)}::float8[]
    ) with ordinality as w(id, step, origin, from_ms, to_ms, i)
    left join lateral (${gapRanges(sql, scan)}) g on true
    group by w.i
    order by w.i`;
  return rows.map((r) => ({ missing: r.missing, ranges: r.ranges }));
}

/** Confirmed holes of a series, oldest first (at most `limit`, default unlimited). */
export async function listHoles(
  sql: Queryable,
  seriesId: number,
  options: { limit?: number } = {},
): Promise<Hole[]> {
  const rows = await sql<{ from_ms: number; to_ms: number; reason: string; checked_ms: number }[]>`
    select (extract(epoch from from_ts) * 1000)::float8 as from_ms,
           (extract(epoch from to_ts) * 1000)::float8 as to_ms,
           reason,
           floor(extract(epoch from checked_at) * 1000)::float8 as checked_ms
    from confirmed_holes
    where series_id = ${seriesId}
    order by from_ts
    limit ${options.limit ?? null}::bigint`;
  return rows.map((r) => ({ from: r.from_ms, to: r.to_ms, reason: r.reason, checkedAt: r.checked_ms }));
}
