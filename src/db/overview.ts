/**
 * The state of every stored series for `GET /v1/series` and the metrics collector: first and
 * last candle, count, gaps, confirmed holes, lag and ingest state. Everything comes from
 * `series_stats` (kept exact on write, migration `003_series_stats.sql`) and its gap caches:
 * no request counts or scans a series' candles, except the candles written since the last read.
 *
 * @module
 */
import type { Sql } from "./client.ts";
import { summarizeGapsOfMany } from "../ingest/gaps.ts";
import type { SeriesKey, SeriesRow } from "../ingest/series.ts";

/** A series' id and key. */
type SeriesKeyed = SeriesKey & { id: number };
import { timeframeMs } from "../timeframe.ts";
import { marketTypeOf } from "../market_type.ts";

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
  /** Where its live candles come from now: a WebSocket stream or the REST live tick. */
  liveSource: "ws" | "rest";
}

/** {@linkcode SeriesStats} plus gap totals and lag. */
export interface SeriesOverview extends SeriesStats {
  /** Missing candles between the first and last stored one, outside confirmed holes. */
  gaps: { missing: number; ranges: number };
  /** now − close time of the last stored candle, in ms; null when empty. */
  lagMs: number | null;
}

/** The gap cache of one series (`series_stats`): totals of the candles before `gapsTo`. */
interface GapCache {
  gapsMissing: number;
  gapsRanges: number;
  /** Epoch ms of the stored candle the cached totals stop at; null: nothing cached. */
  gapsTo: number | null;
  /** Changes whenever the cache is dropped; a write-back with an older epoch is ignored. */
  gapsEpoch: string;
}

/** A row of {@linkcode seriesStats}' query: the series' own columns, its range, holes and gap cache. */
type StatsRow = Omit<SeriesStats, "holes"> & GapCache & { holeRanges: number; holeMs: number };

/** {@linkcode SeriesStats} with the series' gap cache. */
type CachedStats = SeriesStats & GapCache;

/**
 * Recounts `series_stats` exactly when writes it could not follow happened (SQL behind the
 * service's back, TimescaleDB retention); a key lookup otherwise. Returns whether it recounted.
 */
export async function refreshSeriesStats(sql: Sql, options: { force?: boolean } = {}): Promise<boolean> {
  const [row] = await sql<{ recounted: boolean }[]>`
    select series_stats_refresh(${options.force ?? false}) as recounted`;
  return row.recounted;
}

async function cachedStats(sql: Sql, seriesId?: number): Promise<CachedStats[]> {
  await refreshSeriesStats(sql);
  const rows = await sql<StatsRow[]>`
    select s.id, s.exchange, s.symbol, s.timeframe, s.price, s.active, s.state, s.state_reason as "stateReason",
           s.backfill_since as since, coalesce(s.live_source, 'rest') as "liveSource",
           (extract(epoch from st.first_ts) * 1000)::float8 as "firstTs",
           (extract(epoch from st.last_ts) * 1000)::float8 as "lastTs",
           coalesce(st.count, 0)::float8 as count,
           coalesce(st.gaps_missing, 0)::float8 as "gapsMissing",
           coalesce(st.gaps_ranges, 0)::int as "gapsRanges",
           (extract(epoch from st.gaps_to) * 1000)::float8 as "gapsTo",
           coalesce(st.gaps_epoch, 0)::text as "gapsEpoch",
           h.ranges::int as "holeRanges",
           coalesce(h.ms, 0)::float8 as "holeMs"
    from series s
    left join series_stats st on st.series_id = s.id
    left join lateral (
      select count(*) as ranges, sum(extract(epoch from (ch.to_ts - ch.from_ts)) * 1000) as ms
      from confirmed_holes ch where ch.series_id = s.id
    ) h on true
    where ${seriesId ?? null}::int is null or s.id = ${seriesId ?? null}::int
    order by s.id`;
  return rows.map(({ holeRanges, holeMs, ...row }) => ({ ...row, holes: { ranges: holeRanges, ms: holeMs } }));
}

/**
 * Per-series statistics read from `series_stats` (kept exact on write, see migration
 * `003_series_stats.sql`), never a count over the candles; `seriesId` narrows it to one series.
 */
export async function seriesStats(sql: Sql, seriesId?: number): Promise<SeriesStats[]> {
  const rows = await cachedStats(sql, seriesId);
  return rows.map(({ gapsMissing: _m, gapsRanges: _r, gapsTo: _t, gapsEpoch: _e, ...row }) => row);
}

function stepOf(timeframe: string): number | null {
  try {
    return timeframeMs(timeframe);
  } catch {
    return null;
  }
}

type GapTotals = { missing: number; ranges: number };

/**
 * The gap totals of every series: the cached totals of the candles before `gapsTo` plus
 * {@linkcode summarizeGapsOfMany} of `[gapsTo, lastTs)` only (all of it when nothing is
 * cached), for the series whose cache is behind, in `concurrency` statements; the sums are
 * written back so the next reader starts from `lastTs`. Sound because `gapsTo` is a stored
 * candle (no gap crosses it) and every write before it drops the cache.
 */
async function gapTotals(sql: Sql, stats: readonly CachedStats[], concurrency: number): Promise<GapTotals[]> {
  const out: GapTotals[] = stats.map(() => ({ missing: 0, ranges: 0 }));
  const behind: { i: number; step: number }[] = [];
  stats.forEach((s, i) => {
    const step = stepOf(s.timeframe);
    if (step === null || s.count < 2 || s.lastTs === null) return;
    if (s.gapsTo !== null) out[i] = { missing: s.gapsMissing, ranges: s.gapsRanges };
    if (s.gapsTo === null || s.gapsTo < s.lastTs) behind.push({ i, step });
  });
  const batches = Array.from(
    { length: Math.min(concurrency, behind.length) },
    (_, b) => behind.filter((_, k) => k % concurrency === b),
  );
  await Promise.all(batches.map(async (batch) => {
    const deltas = await summarizeGapsOfMany(
      sql,
      batch.map(({ i, step }) => ({
        seriesId: stats[i].id,
        stepMs: step,
        from: stats[i].gapsTo ?? undefined,
        to: stats[i].lastTs!,
      })),
    );
    batch.forEach(({ i }, k) => {
      out[i] = { missing: out[i].missing + deltas[k].missing, ranges: out[i].ranges + deltas[k].ranges };
    });
    await sql`
      update series_stats st
      set gaps_missing = u.missing, gaps_ranges = u.ranges, gaps_to = to_timestamp(u.to_ms / 1000)
      from unnest(
        ${batch.map(({ i }) => stats[i].id)}::int[], ${batch.map(({ i }) => out[i].missing)}::float8[],
        ${batch.map(({ i }) => out[i].ranges)}::int[], ${batch.map(({ i }) => stats[i].lastTs!)}::float8[],
        ${batch.map(({ i }) => stats[i].gapsEpoch)}::bigint[]
      ) as u(id, missing, ranges, to_ms, epoch)
      where st.series_id = u.id and st.gaps_epoch = u.epoch`;
  }));
  return out;
}

/**
 * Every series (or one) with its statistics, gap totals (cached per series, see
 * {@linkcode gapTotals}; `concurrency` statements at a time) and lag relative to `nowMs`.
 */
export async function seriesOverview(
  sql: Sql,
  options: { nowMs: number; seriesId?: number; concurrency?: number },
): Promise<SeriesOverview[]> {
  const stats = await cachedStats(sql, options.seriesId);
  const gaps = await gapTotals(sql, stats, Math.max(1, options.concurrency ?? 4));
  return stats.map(({ gapsMissing: _m, gapsRanges: _r, gapsTo: _t, gapsEpoch: _e, ...s }, i) => {
    const step = stepOf(s.timeframe);
    return {
      ...s,
      gaps: gaps[i],
      lagMs: s.lastTs === null || step === null ? null : Math.max(0, options.nowMs - (s.lastTs + step)),
    };
  });
}

/** Last candle and count of one series, for metrics. */
export interface SeriesFreshness extends SeriesKeyed {
  /** Open time of the last stored candle (epoch ms), null when empty. */
  lastTs: number | null;
  /** Stored candles. */
  count: number;
}

/** Last candle and count per series, for metrics: read from `series_stats`, no count, no gap analysis. */
export async function seriesFreshness(sql: Sql): Promise<SeriesFreshness[]> {
  await refreshSeriesStats(sql);
  return await sql<SeriesFreshness[]>`
    select s.id, s.exchange, s.symbol, s.timeframe, s.price,
           (extract(epoch from st.last_ts) * 1000)::float8 as "lastTs", coalesce(st.count, 0)::float8 as count
    from series s
    left join series_stats st on st.series_id = s.id
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
    market_type: marketTypeOf(s.symbol),
    price: s.price,
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
    live_source: s.liveSource,
  };
}
