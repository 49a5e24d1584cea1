import type postgres from "postgres";
import type { Candle } from "../candle.ts";
import type { Sql } from "../db/client.ts";

/** Channel notified with a series id when candles of that series were written ({@linkcode writeCandles}). */
export const CANDLES_CHANNEL = "candlekeep_candles";
/**
 * Channel carrying forming (not yet closed) candles as JSON `{s, t, o, h, l, c, v}`: series
 * id, open time in ms and the values so far.
 */
export const FORMING_CHANNEL = "candlekeep_forming";

/** What one write changed. */
export interface WriteResult {
  /** Rows that did not exist before. */
  inserted: number;
  /** Existing rows whose values differed and were replaced. */
  updated: number;
}

/** A pool or a transaction: anything that runs tagged-template queries. */
export type Queryable = Sql | postgres.TransactionSql;

/**
 * Writes one page of candles of one series in a single statement (arrays through `unnest`),
 * idempotently: `ON CONFLICT (series_id, ts)` updates only rows whose values changed, so
 * re-writing stored history changes nothing. Candles must be validated beforehand.
 *
 * The same statement keeps `series_stats` exact: it adds the rows it inserted (not the ones it
 * re-wrote) to the series' count, widens first/last, and drops the series' gap cache when a
 * candle lands at or before the cached part (appending after it keeps the cache).
 *
 * When rows changed it notifies `candlekeep_candles` with the series id (delivered when the
 * caller's transaction commits): open `/v1/stream` responses of every instance wake on it.
 */
export async function writeCandles(
  sql: Queryable,
  seriesId: number,
  candles: readonly Candle[],
): Promise<WriteResult> {
  if (candles.length === 0) return { inserted: 0, updated: 0 };
  const n = candles.length;
  const ts = new Array<number>(n);
  const open = new Array<number>(n);
  const high = new Array<number>(n);
  const low = new Array<number>(n);
  const close = new Array<number>(n);
  const volume = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const c = candles[i];
    ts[i] = c.ts;
    open[i] = c.open;
    high[i] = c.high;
    low[i] = c.low;
    close[i] = c.close;
    volume[i] = c.volume;
  }
  const channelId = String(seriesId);
  const [row] = await sql<{ inserted: number; updated: number }[]>`
    with written as (
      insert into candles as c (series_id, ts, open, high, low, close, volume)
      select ${seriesId}::int, to_timestamp(t / 1000.0), o, h, l, cl, v
      from unnest(
        ${ts}::float8[], ${open}::float8[], ${high}::float8[], ${low}::float8[], ${close}::float8[], ${volume}::float8[]
      ) as u(t, o, h, l, cl, v)
      on conflict (series_id, ts) do update
        set open = excluded.open, high = excluded.high, low = excluded.low,
            close = excluded.close, volume = excluded.volume
        where (c.open, c.high, c.low, c.close, c.volume)
          is distinct from (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume)
      returning c.ts, (xmax = 0) as fresh
    ), counted as (
      insert into series_stats as st (series_id, first_ts, last_ts, count)
      select ${seriesId}::int, min(ts), max(ts), count(*) from written where fresh having count(*) > 0
      on conflict (series_id) do update
        set first_ts = least(st.first_ts, excluded.first_ts), last_ts = greatest(st.last_ts, excluded.last_ts),
            count = st.count + excluded.count,
            gaps_to = case when excluded.first_ts > st.gaps_to then st.gaps_to end,
            gaps_epoch = case when excluded.first_ts > st.gaps_to then st.gaps_epoch else excluded.gaps_epoch end,
            updated_at = now()
    )
    select count(*) filter (where fresh)::int as inserted, count(*) filter (where not fresh)::int as updated,
           set_config('candlekeep.stats_token', 'iu', true) as token,
           case when count(*) > 0 then (select 1 from pg_notify(${CANDLES_CHANNEL}, ${channelId})) end as notified
    from written`;
  return { inserted: row.inserted, updated: row.updated };
}

/**
 * Deletes every candle of a series and its statistics (`series_stats`), accounted for so the
 * statistics stay exact; run it inside the caller's transaction.
 */
export async function deleteSeriesCandles(tx: Queryable, seriesId: number): Promise<number> {
  const [row] = await tx<{ deleted: number }[]>`
    with gone as (delete from candles where series_id = ${seriesId} returning 1),
    stats as (delete from series_stats where series_id = ${seriesId})
    select count(*)::int as deleted, set_config('candlekeep.stats_token', 'd', true) as token from gone`;
  return row.deleted;
}
