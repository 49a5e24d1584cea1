/**
 * The one document `GET /v1/series` and `status --json` share: every candle series, every funding
 * history and every open-interest history, each through its own JSON helper.
 *
 * @module
 */
import type { Sql } from "../db/client.ts";
import { overviewJson, type SeriesOverview, seriesOverview } from "../db/overview.ts";
import { fundingJson, type FundingOverview, fundingOverview } from "./funding_status.ts";
import { openInterestJson, type OpenInterestOverview, openInterestOverview } from "./open_interest_overview.ts";

/** What {@linkcode seriesDocument} renders. */
export interface StoredHistories {
  series: readonly SeriesOverview[];
  funding: readonly FundingOverview[];
  openInterest: readonly OpenInterestOverview[];
}

/** Reads every series, funding history and open-interest history (lag relative to `nowMs`). */
export async function storedHistories(sql: Sql, nowMs: number): Promise<StoredHistories> {
  const series = await seriesOverview(sql, { nowMs });
  const funding = await fundingOverview(sql);
  const openInterest = await openInterestOverview(sql, nowMs);
  return { series, funding, openInterest };
}

/** `{series, funding_rates, open_interest}`: the body of `GET /v1/series`, the core of `status --json`. */
export function seriesDocument(h: StoredHistories) {
  return {
    series: h.series.map(overviewJson),
    funding_rates: fundingJson(h.funding),
    open_interest: h.openInterest.map(openInterestJson),
  };
}
