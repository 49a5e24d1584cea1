import { counted } from "../log.ts";
import { timeframeMs } from "../timeframe.ts";
import { describeSeries, type IngestContext, type SeriesTarget, walkRange } from "./walk.ts";
import { findGaps } from "./gaps.ts";
import type { CandleSource } from "./source.ts";

/** What one repair run did for a series. */
export interface RepairResult {
  series: SeriesTarget;
  /** Gaps found before the repair. */
  gaps: number;
  /** Candles fetched into them. */
  filled: number;
  /** Ranges confirmed as holes (the exchange has no data there). */
  confirmed: number;
}

/**
 * Refetches every gap inside the series' stored range. What the exchange still does not
 * serve is recorded as a confirmed hole (with the time it was checked) so it is not refetched
 * on every run; candles it serves but validation rejects are recorded as holes with the reason.
 */
export async function repairSeries(
  ctx: IngestContext,
  source: CandleSource,
  series: SeriesTarget,
): Promise<RepairResult> {
  const tf = timeframeMs(series.timeframe);
  const gaps = await ctx.db.retry(
    "find gaps",
    (sql) => findGaps(sql, series.id, tf),
  );
  const result: RepairResult = {
    series,
    gaps: gaps.length,
    filled: 0,
    confirmed: 0,
  };
  for (const gap of gaps) {
    if (ctx.stopping?.()) break;
    const walk = await walkRange(ctx, source, series, {
      from: gap.from,
      to: gap.to,
    }, {
      checkpoint: false,
      hasEarlierData: true,
    });
    result.filled += walk.written;
    const missingFrom = walk.lastTs === null ? gap.from : walk.lastTs + tf;
    if (walk.complete && missingFrom < gap.to) {
      await ctx.db.retry("confirm hole", (sql) =>
        sql`
          insert into confirmed_holes (series_id, from_ts, to_ts, reason)
          values (${series.id}, to_timestamp(${missingFrom} / 1000.0), to_timestamp(${gap.to} / 1000.0),
                  'no data from exchange')
          on conflict (series_id, from_ts) do update
            set to_ts = greatest(confirmed_holes.to_ts, excluded.to_ts), checked_at = now()`);
      result.confirmed++;
    }
  }
  if (result.gaps > 0) {
    ctx.log.info(
      "Repaired {series}: {gapsText}, {filled} candles filled, {confirmed} confirmed holes",
      {
        series: describeSeries(series),
        gaps: result.gaps,
        gapsText: counted(result.gaps, "gap"),
        filled: result.filled,
        confirmed: result.confirmed,
      },
    );
  }
  return result;
}
