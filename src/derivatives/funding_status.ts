/**
 * Funding histories for the `status` command: per stored perpetual the row count, first and
 * last funding time, funding times missing (following the interval in force at each point of
 * the history, see funding_gaps.ts), and confirmed holes.
 *
 * @module
 */
import type { Sql } from "../db/client.ts";
import { findFundingGaps, inferFundingInterval } from "./funding_gaps.ts";

/** One perpetual's funding history. */
export interface FundingOverview {
  exchange: string;
  symbol: string;
  count: number;
  /** First and last funding time (ms). */
  first: number;
  last: number;
  /** The interval in force at the recent end, read from the stored rows (ms), or null. */
  intervalMs: number | null;
  /** Funding times missing between the first and last rows, not confirmed as holes. */
  gaps: number;
  /** Funding times confirmed as never published. */
  holes: number;
  /** Whether the backfill reached the present. */
  backfilled: boolean;
}

/** The funding history of every stored (exchange, symbol), ordered by exchange and symbol. */
export async function fundingOverview(sql: Sql): Promise<FundingOverview[]> {
  const rows = await sql<{ exchange: string; symbol: string; times: number[]; holes: number[]; done: boolean }[]>`
    select f.exchange, f.symbol,
      array_agg(extract(epoch from f.ts)::float8 * 1000 order by f.ts) as times,
      coalesce((select array_agg(extract(epoch from h.ts)::float8 * 1000) from funding_holes h
        where h.exchange = f.exchange and h.symbol = f.symbol), '{}') as holes,
      coalesce((select c.completed_at is not null from funding_checkpoints c
        where c.exchange = f.exchange and c.symbol = f.symbol), false) as done
    from funding_rates f group by f.exchange, f.symbol order by f.exchange, f.symbol`;
  return rows.map((r) => {
    const times = r.times.map((t) => Math.round(Number(t)));
    const holes = r.holes.map((t) => Math.round(Number(t)));
    const analysis = findFundingGaps(times, { holes });
    const intervalMs = analysis.currentMs ?? inferFundingInterval(times);
    return {
      exchange: r.exchange,
      symbol: r.symbol,
      count: times.length,
      first: times[0],
      last: times[times.length - 1],
      intervalMs,
      gaps: analysis.gaps.reduce((n, g) => n + g.times.length, 0),
      holes: holes.length,
      backfilled: r.done,
    };
  });
}

const iso = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");

/** A plain-text table of funding histories (empty string when there are none). */
export function renderFundingTable(rows: readonly FundingOverview[]): string {
  if (rows.length === 0) return "";
  const header = ["exchange", "symbol (funding)", "every", "first", "last", "count", "gaps", "holes", "state"];
  const body = rows.map((r) => [
    r.exchange,
    r.symbol,
    r.intervalMs === null ? "-" : `${r.intervalMs / 3_600_000}h`,
    iso(r.first),
    iso(r.last),
    r.count.toLocaleString("en-US"),
    String(r.gaps),
    String(r.holes),
    r.backfilled ? "live" : "backfilling",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i])).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}

/** The `funding_rates` list of `GET /v1/series` and `status --json`. */
export function fundingJson(rows: readonly FundingOverview[]) {
  return rows.map((r) => ({
    exchange: r.exchange,
    symbol: r.symbol,
    count: r.count,
    first: new Date(r.first).toISOString(),
    last: new Date(r.last).toISOString(),
    interval_ms: r.intervalMs,
    gaps: r.gaps,
    holes: r.holes,
    backfilled: r.backfilled,
  }));
}
