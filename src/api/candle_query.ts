/**
 * SQL of `GET /v1/candles`: finding the page and reading its candles, stored or resampled.
 *
 * Pages walk BACKWARD from `end`: a page holds the newest `limit` candles (or buckets) with
 * open time in `[start, end)`, listed oldest first; the next page is the same request with
 * `end` set to the open time of this page's first candle. Consecutive pages therefore
 * tile the range with no overlap and no loss, whatever was written meanwhile after `end`.
 *
 * @module
 */
import type postgres from "postgres";
import type { Sql } from "../db/client.ts";
import { bucketOrigin, floorTo } from "../timeframe.ts";

/** One page request, after validation and source selection. */
export interface PageSpec {
  seriesId: number;
  /** Requested timeframe length in ms. */
  stepMs: number;
  /** Stored timeframe length in ms; equal to `stepMs` when no resampling is needed. */
  sourceStepMs: number;
  /** Inclusive lower bound of open times (epoch ms), null for none. */
  start: number | null;
  /** Exclusive upper bound of open times (epoch ms), null for none. */
  end: number | null;
  /** Candles (buckets) per page. */
  limit: number;
}

/** Where the page starts and whether older candles remain in `[start, pageFrom)`. */
export interface PagePlan {
  /** Inclusive lower bound of the page's open times; null when unbounded. */
  pageFrom: number | null;
  /** Exclusive upper bound of the page's open times; null when unbounded. */
  pageTo: number | null;
  /** True when candles exist before `pageFrom`: the next page is `end = pageFrom`. */
  more: boolean;
}

/** A candle row as the API returns it (`time` is ISO-8601 UTC). */
export interface CandleRow {
  time: string;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  /** Stored candles in the bucket (resampled pages only). */
  n?: number;
}

function ceilTo(ms: number, stepMs: number): number {
  const f = floorTo(ms, stepMs);
  return f === ms ? ms : f + stepMs;
}

/** Bounds of the stored candles to read, aligned to whole buckets when resampling. */
function sourceBounds(spec: PageSpec): { lo: number | null; hi: number | null } {
  if (spec.stepMs === spec.sourceStepMs) return { lo: spec.start, hi: spec.end };
  // A bucket belongs to the page when its open time is in [start, end); it is read whole.
  return {
    lo: spec.start === null ? null : ceilTo(spec.start, spec.stepMs),
    hi: spec.end === null ? null : ceilTo(spec.end, spec.stepMs),
  };
}

function tsParam(sql: Sql, ms: number | null, fallback: "-infinity" | "infinity") {
  return fallback === "-infinity"
    ? sql`coalesce(to_timestamp(${ms}::float8 / 1000), '-infinity'::timestamptz)`
    : sql`coalesce(to_timestamp(${ms}::float8 / 1000), 'infinity'::timestamptz)`;
}

/**
 * Finds the page: the open time of the `limit`-th newest candle (bucket) before `end`, with
 * an index probe (`offset`) for stored timeframes, or a walk of `limit` index probes
 * (`max(ts)` before the previous bucket) for resampled ones. Work is O(limit), not O(range).
 */
export async function planPage(sql: Sql, spec: PageSpec): Promise<PagePlan> {
  const { lo, hi } = sourceBounds(spec);
  const loTs = tsParam(sql, lo, "-infinity");
  const hiTs = tsParam(sql, hi, "infinity");
  const id = spec.seriesId;
  if (spec.stepMs === spec.sourceStepMs) {
    const rows = await sql<{ from_ms: number; more: boolean }[]>`
      with b as (
        select c.ts from candles c
        where c.series_id = ${id} and c.ts >= ${loTs} and c.ts < ${hiTs}
        order by c.ts desc offset ${spec.limit - 1} limit 1
      )
      select (extract(epoch from b.ts) * 1000)::float8 as from_ms,
             exists(select 1 from candles c where c.series_id = ${id} and c.ts >= ${loTs} and c.ts < b.ts) as more
      from b`;
    if (rows.length === 0) return { pageFrom: lo, pageTo: hi, more: false };
    return { pageFrom: rows[0].from_ms, pageTo: hi, more: rows[0].more };
  }
  const stride = sql`${spec.stepMs}::float8 * interval '1 millisecond'`;
  const origin = sql`to_timestamp(${bucketOrigin(spec.stepMs)}::float8 / 1000)`;
  const rows = await sql<{ from_ms: number; n: number }[]>`
    with recursive walk(bucket, n) as (
      select date_bin(${stride}, max(c.ts), ${origin}), 1
      from candles c where c.series_id = ${id} and c.ts >= ${loTs} and c.ts < ${hiTs}
      union all
      select (select date_bin(${stride}, max(c.ts), ${origin}) from candles c
              where c.series_id = ${id} and c.ts >= ${loTs} and c.ts < w.bucket),
             w.n + 1
      from walk w
      where w.bucket is not null and w.n <= ${spec.limit}
    )
    select (extract(epoch from bucket) * 1000)::float8 as from_ms, n
    from walk where bucket is not null and n >= ${spec.limit}
    order by n`;
  if (rows.length === 0) return { pageFrom: lo, pageTo: hi, more: false };
  return { pageFrom: rows[0].from_ms, pageTo: hi, more: rows.length > 1 };
}

/**
 * The candles of a planned page, oldest first, as a lazy postgres.js query (await it, or
 * stream it with `.cursor()`). Resampling runs in SQL with `date_bin` on buckets aligned in
 * UTC (weeks on Mondays): first open, max high, min low, last close, summed volume, and `n`,
 * the number of stored candles in the bucket.
 */
export function pageQuery(sql: Sql, spec: PageSpec, plan: PagePlan): postgres.PendingQuery<CandleRow[]> {
  const loTs = tsParam(sql, plan.pageFrom, "-infinity");
  const hiTs = tsParam(sql, plan.pageTo, "infinity");
  const id = spec.seriesId;
  const iso = sql`'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;
  if (spec.stepMs === spec.sourceStepMs) {
    return sql<CandleRow[]>`
      select to_char(c.ts at time zone 'UTC', ${iso}) as time, c.open, c.high, c.low, c.close, c.volume
      from candles c
      where c.series_id = ${id} and c.ts >= ${loTs} and c.ts < ${hiTs}
      order by c.ts
      limit ${spec.limit}`;
  }
  const stride = sql`${spec.stepMs}::float8 * interval '1 millisecond'`;
  const origin = sql`to_timestamp(${bucketOrigin(spec.stepMs)}::float8 / 1000)`;
  // Aggregate without ordering (a hash aggregate, no sort of the source rows), then fetch the
  // first open and last close by primary key: O(rows) + 2 index probes per bucket.
  return sql<CandleRow[]>`
    with g as materialized (
      select date_bin(${stride}, c.ts, ${origin}) as bucket, min(c.ts) as first_ts, max(c.ts) as last_ts,
             max(c.high) as high, min(c.low) as low, sum(c.volume) as volume, count(*)::int as n
      from candles c
      where c.series_id = ${id} and c.ts >= ${loTs} and c.ts < ${hiTs}
      group by 1
    )
    select to_char(g.bucket at time zone 'UTC', ${iso}) as time,
           (select o.open from candles o where o.series_id = ${id} and o.ts = g.first_ts) as open,
           g.high, g.low,
           (select l.close from candles l where l.series_id = ${id} and l.ts = g.last_ts) as close,
           g.volume, g.n
    from g
    order by g.bucket
    limit ${spec.limit}`;
}
