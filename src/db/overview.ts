/**
 * The state of every stored series for `GET /v1/series` and the metrics collector: first and
 * last candle, count, gaps, confirmed holes, lag and ingest state.
 *
 * @module
 */
import type { Sql } from "./client.ts";
import { summarizeGaps } from "../ingest/gaps.ts";
import type { SeriesKey, SeriesRow } from "../ingest/series.ts";

/** A series' id and key. */
type SeriesKeyed = SeriesKey & { id: number };
import { timeframeMs } from "../timeframe.ts";

/** Storage statistics of one series. */
export interface SeriesStats extends SeriesRow {
  /** Open time of the first stored candle (epoch ms), null when empty. */
  firstTs: number | null;
  /** Open time of the last stored candle (epoch ms), null when empty. */
  lastTs: number | null;
  /** Stored candles. */
  count: number;
  /** Confirmed holes: number of ranges and the milliseconds they cover. */
  holes: { ranges: number; ms: number };
  /** Where the series' own history starts (an ISO-8601 instant or `earliest`); null: `BACKFILL_SINCE`. */
  since: string | null;
}

/** {@linkcode SeriesStats} plus gap totals and lag. */
export interface SeriesOverview extends SeriesStats {
  /** Missing candles between the first and last stored one, outside confirmed holes. */
  gaps: { missing: number; ranges: number };
  /** now − close time of the last stored candle, in ms; null when empty. */
  lagMs: number | null;
}

/** A row of {@linkcode seriesStats}' query: the series' own columns, its range and its holes. */
type StatsRow = Omit<SeriesStats, "holes"> & { holeRanges: number; holeMs: number };

/**
 * Per-series statistics in one statement (a `min`/`max`/`count` over the primary key per
 * series); `seriesId` narrows it to one series.
 */
export async function seriesStats(sql: Sql, seriesId?: number): Promise<SeriesStats[]> {
  const rows = await sql<StatsRow[]>`
    select s.id, s.exchange, s.symbol, s.timeframe, s.active, s.state, s.state_reason as "stateReason",
           s.backfill_since as since,
           (extract(epoch from st.first_ts) * 1000)::float8 as "firstTs",
           (extract(epoch from st.last_ts) * 1000)::float8 as "lastTs",
           st.n::float8 as count,
           h.ranges::int as "holeRanges",
           coalesce(h.ms, 0)::float8 as "holeMs"
    from series s
    left join lateral (
      select min(c.ts) as first_ts, max(c.ts) as last_ts, count(*) as n from candles c where c.series_id = s.id
    ) st on true
    left join lateral (
      select count(*) as ranges, sum(extract(epoch from (ch.to_ts - ch.from_ts)) * 1000) as ms
      from confirmed_holes ch where ch.series_id = s.id
    ) h on true
    where ${seriesId ?? null}::int is null or s.id = ${seriesId ?? null}::int
    order by s.id`;
  return rows.map(({ holeRanges, holeMs, ...row }) => ({ ...row, holes: { ranges: holeRanges, ms: holeMs } }));
}

function stepOf(timeframe: string): number | null {
  try {
    return timeframeMs(timeframe);
  } catch {
    return null;
  }
}

/**
 * Every series (or one) with its statistics, gap totals ({@linkcode summarizeGaps}, run for
 * `concurrency` series at a time) and lag relative to `nowMs`.
 */
export async function seriesOverview(
  sql: Sql,
  options: { nowMs: number; seriesId?: number; concurrency?: number },
): Promise<SeriesOverview[]> {
  const stats = await seriesStats(sql, options.seriesId);
  const out: SeriesOverview[] = new Array(stats.length);
  let next = 0;
  const worker = async () => {
    while (next < stats.length) {
      const i = next++;
      const s = stats[i];
      const step = stepOf(s.timeframe);
      const gaps = step === null || s.count < 2 ? { missing: 0, ranges: 0 } : await summarizeGaps(sql, s.id, step);
      out[i] = {
        ...s,
        gaps,
        lagMs: s.lastTs === null || step === null ? null : Math.max(0, options.nowMs - (s.lastTs + step)),
      };
    }
  };
  const workers = Math.max(1, Math.min(options.concurrency ?? 4, stats.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return out;
}

/** Last candle and count of one series, for metrics. */
export interface SeriesFreshness extends SeriesKeyed {
  /** Open time of the last stored candle (epoch ms), null when empty. */
  lastTs: number | null;
  /** Stored candles. */
  count: number;
}

/** Last candle and count per series, for metrics: one grouped scan, no gap analysis. */
export function seriesFreshness(sql: Sql): Promise<SeriesFreshness[]> {
  return sql<SeriesFreshness[]>`
    select s.id, s.exchange, s.symbol, s.timeframe,
           (extract(epoch from st.last_ts) * 1000)::float8 as "lastTs", st.n::float8 as count
    from series s
    left join lateral (select max(c.ts) as last_ts, count(*) as n from candles c where c.series_id = s.id) st on true
    order by s.id`;
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

/** The JSON shape of one series in `GET /v1/series` and `status --json`: times in ISO-8601 UTC. */
export function overviewJson(s: SeriesOverview): Record<string, unknown> {
  return {
    id: s.id,
    exchange: s.exchange,
    symbol: s.symbol,
    timeframe: s.timeframe,
    active: s.active,
    state: s.state,
    state_reason: s.stateReason,
    since: s.since,
    first: iso(s.firstTs),
    last: iso(s.lastTs),
    count: s.count,
    gaps: { missing: s.gaps.missing, ranges: s.gaps.ranges },
    holes: { ranges: s.holes.ranges, ms: s.holes.ms },
    lag_s: s.lagMs === null ? null : Math.round(s.lagMs / 1000),
  };
}
