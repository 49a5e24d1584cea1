/**
 * SQL of `GET /v1/candles`: finding the page and reading its candles, stored or resampled.
 *
 * A page holds `limit` candles (or buckets) with open time in `[start, end)`, listed oldest
 * first. `desc` (the default) takes the newest ones and the next page is the same request
 * with `end` = this page's first open time; `asc` takes the oldest ones and the next page has
 * `start` = the open time of the first candle after the page. Either way consecutive pages
 * tile the range with no overlap and no loss, whatever is written meanwhile outside it.
 *
 * Complete buckets: see {@linkcode completeBucketsSql}.
 *
 * @module
 */
import type postgres from "postgres";
import type { Sql } from "../db/client.ts";
import { bucketOrigin, floorMonth, floorTo, nextMonth } from "../timeframe.ts";

/** One page request, after validation and source selection. */
export interface PageSpec {
  seriesId: number;
  /** Requested timeframe length in ms (31 days for `1M`, used for limits only). */
  stepMs: number;
  /** True for calendar months (`1M`): buckets are `date_trunc('month')` in UTC. */
  month?: boolean;
  /** Stored timeframe length in ms; equal to `stepMs` when no resampling is needed. */
  sourceStepMs: number;
  /** Inclusive lower bound of open times (epoch ms), null for none. */
  start: number | null;
  /** Exclusive upper bound of open times (epoch ms), null for none. */
  end: number | null;
  /** Candles (buckets) per page. */
  limit: number;
  /** `desc` (default): the newest `limit` of the range; `asc`: the oldest. */
  order?: "asc" | "desc";
  /** The current time (epoch ms): candles and buckets that end after it are forming (partial). */
  now: number;
  /** Only complete candles and buckets (default true); false marks the others `partial`. */
  complete?: boolean;
  /** Read this rollup of the stored candles instead of the candles themselves (see `rollups.ts`). */
  rollup?: RollupTable;
}

/** A rollup of the stored candles: one row per series and bucket of `stepMs`. */
export interface RollupTable {
  table: "candles_1h" | "candles_1d";
  /** The rollup's timeframe. */
  timeframe: "1h" | "1d";
  stepMs: number;
}

/** The page's bounds and whether candles remain beyond it in the walking direction. */
export interface PagePlan {
  /** Inclusive lower bound of the page's open times; null when unbounded. */
  pageFrom: number | null;
  /** Exclusive upper bound of the page's open times; null when unbounded. */
  pageTo: number | null;
  /**
   * True when candles remain: before `pageFrom` (desc; next page `end = pageFrom`) or at and
   * after `pageTo` (asc; next page `start = pageTo`).
   */
  more: boolean;
}

/** A candle row as the query returns it (`time` is ISO-8601 UTC). */
export interface CandleRow {
  time: string;
  /** Epoch ms of `time`. */
  ms: number;
  open: number;
  high: number;
  low: number;
  close: number;
  /** A double (stored timeframes) or an exact decimal text (resampled: a `numeric` sum). */
  volume: number | string;
  /** Forming, or a bucket missing stored candles (only with `complete: false`). */
  partial: boolean;
}

/** Whether `spec` is served by resampling. */
export function isResampled(spec: Pick<PageSpec, "stepMs" | "sourceStepMs" | "month">): boolean {
  return spec.month === true || spec.stepMs !== spec.sourceStepMs;
}

/** Start of the bucket (of the requested timeframe) containing `ms`. */
export function bucketFloor(ms: number, spec: Pick<PageSpec, "stepMs" | "month">): number {
  return spec.month ? floorMonth(ms) : floorTo(ms, spec.stepMs);
}

/** The open time of the first bucket at or after `ms` (calendar months for `1M`). */
export function bucketCeil(ms: number, spec: Pick<PageSpec, "stepMs" | "month">): number {
  const f = bucketFloor(ms, spec);
  if (f === ms) return ms;
  return spec.month ? nextMonth(ms) : f + spec.stepMs;
}

/**
 * The exclusive upper bound of closed candles at `now`: candles (buckets) opening before it
 * have ended. A page with `complete` (the default) never reads past it.
 */
export function closedBefore(spec: Pick<PageSpec, "stepMs" | "month" | "now">): number {
  return bucketFloor(spec.now, spec);
}

/** Bounds of the stored candles to read, aligned to whole buckets when resampling. */
function sourceBounds(spec: PageSpec): { lo: number | null; hi: number | null } {
  let { start: lo, end: hi } = spec;
  if (isResampled(spec)) {
    // A bucket belongs to the page when its open time is in [start, end); it is read whole.
    lo = lo === null ? null : bucketCeil(lo, spec);
    hi = hi === null ? null : bucketCeil(hi, spec);
  }
  if (spec.complete !== false) {
    const closed = closedBefore(spec);
    hi = hi === null ? closed : Math.min(hi, closed);
  }
  return { lo, hi };
}

function tsParam(sql: Sql, ms: number | null, fallback: "-infinity" | "infinity") {
  return fallback === "-infinity"
    ? sql`coalesce(to_timestamp(${ms}::float8 / 1000), '-infinity'::timestamptz)`
    : sql`coalesce(to_timestamp(${ms}::float8 / 1000), 'infinity'::timestamptz)`;
}

/** SQL fragments that put a timestamp in its bucket and step to the next bucket. */
function bucketSql(sql: Sql, spec: Pick<PageSpec, "stepMs" | "month">) {
  if (spec.month) {
    return {
      bin: (ts: postgres.Fragment) => sql`date_trunc('month', ${ts}, 'UTC')`,
      after: (b: postgres.Fragment) => sql`((${b} at time zone 'UTC') + interval '1 month') at time zone 'UTC'`,
    };
  }
  const stride = sql`${spec.stepMs}::float8 * interval '1 millisecond'`;
  const origin = sql`to_timestamp(${bucketOrigin(spec.stepMs)}::float8 / 1000)`;
  return {
    bin: (ts: postgres.Fragment) => sql`date_bin(${stride}, ${ts}, ${origin})`,
    after: (b: postgres.Fragment) => sql`(${b} + ${stride})`,
  };
}

/**
 * Finds the page: the open time of the `limit`-th candle (bucket) from the walking end, with
 * an index probe (`offset`) for stored timeframes, or a walk of `limit` index probes (`max(ts)`
 * before the previous bucket, or `min(ts)` after it) for resampled ones. Work is O(limit).
 */
export async function planPage(sql: Sql, spec: PageSpec): Promise<PagePlan> {
  const { lo, hi } = sourceBounds(spec);
  if (lo !== null && hi !== null && lo >= hi) return { pageFrom: lo, pageTo: hi, more: false };
  const loTs = tsParam(sql, lo, "-infinity");
  const hiTs = tsParam(sql, hi, "infinity");
  const id = spec.seriesId;
  const asc = spec.order === "asc";
  // A rollup has a row per bucket of its own timeframe: one per page bucket when they are equal.
  const candles = sql(spec.rollup?.table ?? "candles");
  const tableStepMs = spec.rollup?.stepMs ?? spec.sourceStepMs;
  if (!spec.month && spec.stepMs === tableStepMs) {
    if (asc) {
      // The first candle after the page (the `limit`+1-th): the page ends before it.
      const rows = await sql<{ to_ms: number }[]>`
        select (extract(epoch from c.ts) * 1000)::float8 as to_ms from ${candles} c
        where c.series_id = ${id} and c.ts >= ${loTs} and c.ts < ${hiTs}
        order by c.ts offset ${spec.limit} limit 1`;
      if (rows.length === 0) return { pageFrom: lo, pageTo: hi, more: false };
      return { pageFrom: lo, pageTo: rows[0].to_ms, more: true };
    }
    const rows = await sql<{ from_ms: number; more: boolean }[]>`
      with b as (
        select c.ts from ${candles} c
        where c.series_id = ${id} and c.ts >= ${loTs} and c.ts < ${hiTs}
        order by c.ts desc offset ${spec.limit - 1} limit 1
      )
      select (extract(epoch from b.ts) * 1000)::float8 as from_ms,
             exists(select 1 from ${candles} c where c.series_id = ${id} and c.ts >= ${loTs} and c.ts < b.ts) as more
      from b`;
    if (rows.length === 0) return { pageFrom: lo, pageTo: hi, more: false };
    return { pageFrom: rows[0].from_ms, pageTo: hi, more: rows[0].more };
  }
  const { bin, after } = bucketSql(sql, spec);
  if (spec.rollup) {
    // A page bucket holds at most `ratio` rollup rows, so the `limit` + 1 buckets nearest the
    // walking end lie in that many times as many rows, read in one index-ordered scan.
    const ratio = Math.ceil(spec.stepMs / spec.rollup.stepMs);
    const rows = await sql<{ ms: number; n: number }[]>`
      with w as (
        select c.ts from ${candles} c
        where c.series_id = ${id} and c.ts >= ${loTs} and c.ts < ${hiTs}
        order by c.ts ${asc ? sql`asc` : sql`desc`} limit ${(spec.limit + 1) * ratio}
      ), b as (
        select distinct ${bin(sql`w.ts`)} as bucket from w
      )
      select (extract(epoch from bucket) * 1000)::float8 as ms,
             row_number() over (order by bucket ${asc ? sql`asc` : sql`desc`})::int as n
      from b order by n limit ${spec.limit + 1}`;
    if (asc) {
      return rows.length > spec.limit
        ? { pageFrom: lo, pageTo: rows[spec.limit].ms, more: true }
        : { pageFrom: lo, pageTo: hi, more: false };
    }
    if (rows.length < spec.limit) return { pageFrom: lo, pageTo: hi, more: false };
    return { pageFrom: rows[spec.limit - 1].ms, pageTo: hi, more: rows.length > spec.limit };
  }
  if (asc) {
    const rows = await sql<{ to_ms: number }[]>`
      with recursive walk(bucket, n) as (
        select ${bin(sql`min(c.ts)`)}, 1
        from ${candles} c where c.series_id = ${id} and c.ts >= ${loTs} and c.ts < ${hiTs}
        union all
        select (select ${bin(sql`min(c.ts)`)} from ${candles} c
                where c.series_id = ${id} and c.ts >= ${after(sql`w.bucket`)} and c.ts < ${hiTs}),
               w.n + 1
        from walk w
        where w.bucket is not null and w.n <= ${spec.limit}
      )
      select (extract(epoch from bucket) * 1000)::float8 as to_ms
      from walk where bucket is not null and n = ${spec.limit + 1}`;
    if (rows.length === 0) return { pageFrom: lo, pageTo: hi, more: false };
    return { pageFrom: lo, pageTo: rows[0].to_ms, more: true };
  }
  const rows = await sql<{ from_ms: number; n: number }[]>`
    with recursive walk(bucket, n) as (
      select ${bin(sql`max(c.ts)`)}, 1
      from ${candles} c where c.series_id = ${id} and c.ts >= ${loTs} and c.ts < ${hiTs}
      union all
      select (select ${bin(sql`max(c.ts)`)} from ${candles} c
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
 * The resampled buckets of one series with open time in `[lo, hi)`, as SQL (a subquery to
 * select from). Shared by `/v1/candles` and the exporter. Columns: `bucket` (timestamptz),
 * `open`, `high`, `low`, `close` (double precision, the exchange's values unchanged),
 * `volume` (`numeric`: the exact sum of the stored volumes, each read as its shortest
 * round-trip decimal, which is the exchange's decimal), `n` (stored candles) and `partial`.
 *
 * A bucket is **complete** when it has ended at `now` and each of its source periods has a
 * stored candle or lies in a hole the exchange confirmed (`confirmed_holes`: the exchange has
 * no data there, so nothing is missing). Buckets at the edges of the stored history or over
 * an unconfirmed gap miss candles and are partial, as is the bucket still forming at `now`.
 */
export function completeBucketsSql(
  sql: Sql,
  range: { seriesId: number; lo: number | null; hi: number | null; now: number },
  step: { stepMs: number; sourceStepMs: number; month?: boolean; rollup?: RollupTable },
): postgres.Fragment {
  const id = range.seriesId;
  const loTs = tsParam(sql, range.lo, "-infinity");
  const hiTs = tsParam(sql, range.hi, "infinity");
  const { bin, after } = bucketSql(sql, step);
  const src = sql`${step.sourceStepMs}::float8`;
  // A rollup row already holds its bucket's exact volume (numeric) and stored-candle count.
  const table = sql(step.rollup?.table ?? "candles");
  const volume = step.rollup ? sql`sum(c.volume)` : sql`sum(c.volume::text::numeric)`;
  const count = step.rollup ? sql`sum(c.n)::int` : sql`count(*)::int`;
  // A rollup of the requested timeframe already is the page: a row per bucket, no grouping.
  const whole = step.rollup !== undefined && !step.month && step.rollup.stepMs === step.stepMs;
  // Stored candles: aggregate without ordering (a hash aggregate, no sort of the source rows),
  // then fetch the first open and last close by primary key: O(rows) + 2 index probes per
  // bucket. Rollup rows (a few per bucket): take them from the rows, ordered within the bucket.
  const g = whole
    ? sql`select c.ts as bucket, c.open, c.close, c.high, c.low, c.volume, c.n
      from ${table} c
      where c.series_id = ${id} and c.ts >= ${loTs} and c.ts < ${hiTs}`
    : sql`select ${bin(sql`c.ts`)} as bucket, min(c.ts) as first_ts, max(c.ts) as last_ts,
             max(c.high) as high, min(c.low) as low, ${volume} as volume, ${count} as n
             ${
      step.rollup
        ? sql`, (array_agg(c.open order by c.ts))[1] as open, (array_agg(c.close order by c.ts desc))[1] as close`
        : sql``
    }
      from ${table} c
      where c.series_id = ${id} and c.ts >= ${loTs} and c.ts < ${hiTs}
      group by 1`;
  const open = step.rollup
    ? sql`b.open`
    : sql`(select o.open from ${table} o where o.series_id = ${id} and o.ts = b.first_ts)`;
  const close = step.rollup
    ? sql`b.close`
    : sql`(select l.close from ${table} l where l.series_id = ${id} and l.ts = b.last_ts)`;
  return sql`(
    with g as materialized (${g}), h as (
      select coalesce(range_agg(tstzrange(h.from_ts, h.to_ts)), '{}'::tstzmultirange) as m
      from confirmed_holes h
      where h.series_id = ${id} and h.from_ts < ${hiTs} and h.to_ts > ${loTs} and h.from_ts < h.to_ts
    ), b as (
      select g.*, ${after(sql`g.bucket`)} as bucket_end from g
    )
    select b.bucket, b.high, b.low, b.volume, b.n, ${open} as open, ${close} as close,
           b.bucket_end > to_timestamp(${range.now}::float8 / 1000)
             or b.n + case when isempty(h.m) then 0 else coalesce((
               select sum(extract(epoch from upper(r) - lower(r)) * 1000) / ${src}
               from unnest(h.m * tstzmultirange(tstzrange(b.bucket, b.bucket_end))) r
             ), 0) end < extract(epoch from b.bucket_end - b.bucket) * 1000 / ${src} as partial
    from b, h
  )`;
}

/**
 * The candles of a planned page, oldest first, as a lazy postgres.js query (await it, or
 * stream it with `.cursor()`). Resampling runs in SQL ({@linkcode completeBucketsSql}).
 * Without `complete: false`, partial candles and buckets are left out, so a resampled page
 * may hold fewer than `limit` buckets; its `next` still continues where it ends.
 */
export function pageQuery(sql: Sql, spec: PageSpec, plan: PagePlan): postgres.PendingQuery<CandleRow[]> {
  const loTs = tsParam(sql, plan.pageFrom, "-infinity");
  const hiTs = tsParam(sql, plan.pageTo, "infinity");
  const id = spec.seriesId;
  const iso = sql`'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;
  const onlyComplete = spec.complete !== false;
  const nowTs = sql`to_timestamp(${spec.now}::float8 / 1000)`;
  if (!isResampled(spec)) {
    const step = sql`${spec.stepMs}::float8 * interval '1 millisecond'`;
    // With `complete`, the plan already ends before the forming candle (`closedBefore`).
    return sql<CandleRow[]>`
      select to_char(c.ts at time zone 'UTC', ${iso}) as time, (extract(epoch from c.ts) * 1000)::float8 as ms,
             c.open, c.high, c.low, c.close, c.volume, c.ts + ${step} > ${nowTs} as partial
      from candles c
      where c.series_id = ${id} and c.ts >= ${loTs} and c.ts < ${hiTs}
        ${onlyComplete ? sql`and c.ts + ${step} <= ${nowTs}` : sql``}
      order by c.ts
      limit ${spec.limit}`;
  }
  const buckets = completeBucketsSql(sql, { seriesId: id, lo: plan.pageFrom, hi: plan.pageTo, now: spec.now }, spec);
  return sql<CandleRow[]>`
    select * from (
      select to_char(k.bucket at time zone 'UTC', ${iso}) as time,
             (extract(epoch from k.bucket) * 1000)::float8 as ms,
             k.open, k.high, k.low, k.close, k.volume::text as volume, k.partial
      from ${buckets} k
      order by k.bucket
      limit ${spec.limit}
    ) p ${onlyComplete ? sql`where not p.partial` : sql``}`;
}

/**
 * A fingerprint of what a planned page is built from: the count and a hash of every row it
 * reads in its range (stored candles: open time and values; a rollup: bucket, values and
 * candle count) and of the confirmed holes over it. A repaired gap, a rewritten candle or a
 * newly confirmed hole changes it. Used for `ETag`s; reads the range's rows once more but
 * keeps nothing in memory.
 */
export async function pageFingerprint(sql: Sql, spec: PageSpec, plan: PagePlan): Promise<string> {
  const loTs = tsParam(sql, plan.pageFrom, "-infinity");
  const hiTs = tsParam(sql, plan.pageTo, "infinity");
  const id = spec.seriesId;
  // Each row's open time and values hashed together (one more hash mixes them, so values moved
  // between rows still change it), combined over the rows with XOR: exact, and a third of the
  // cost of hashing each row's text.
  const hashed = spec.rollup
    ? sql`hashint8extended(
        hashint8extended((extract(epoch from c.ts) * 1000)::int8, 0) # hashfloat8extended(c.open, 1)
          # hashfloat8extended(c.high, 2) # hashfloat8extended(c.low, 3) # hashfloat8extended(c.close, 4)
          # hash_numeric_extended(c.volume, 5) # hashint4extended(c.n, 6),
        7
      )`
    : sql`hashint8extended(
        hashint8extended((extract(epoch from c.ts) * 1000)::int8, 0) # hashfloat8extended(c.open, 1)
          # hashfloat8extended(c.high, 2) # hashfloat8extended(c.low, 3) # hashfloat8extended(c.close, 4)
          # hashfloat8extended(c.volume, 5),
        7
      )`;
  const [row] = await sql<{ n: number; h: string; holes: string }[]>`
    select count(*)::int as n, coalesce(bit_xor(${hashed}), 0)::text as h,
           (select coalesce(string_agg(concat_ws(',', h.from_ts, h.to_ts), ';' order by h.from_ts), '')
            from confirmed_holes h
            where h.series_id = ${id} and h.from_ts < ${hiTs} and h.to_ts > ${loTs}) as holes
    from ${sql(spec.rollup?.table ?? "candles")} c
    where c.series_id = ${id} and c.ts >= ${loTs} and c.ts < ${hiTs}`;
  return `${spec.rollup?.table ?? "candles"}:${row.n}:${row.h}:${row.holes}`;
}

/**
 * Whether `rollup` holds exactly what the stored candles give over the range `spec` may read
 * (`candles_rollup_fresh`: always for the plain tables, which triggers keep; continuous
 * aggregates lag behind a write into the past until they are refreshed).
 */
export async function rollupIsFresh(sql: Sql, spec: PageSpec, rollup: RollupTable): Promise<boolean> {
  const { lo, hi } = sourceBounds(spec);
  const [row] = await sql<{ fresh: boolean }[]>`
    select candles_rollup_fresh(${rollup.timeframe}, ${tsParam(sql, lo, "-infinity")}, ${
    tsParam(sql, hi, "infinity")
  }) as fresh`;
  return row.fresh === true;
}
