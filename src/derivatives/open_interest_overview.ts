/**
 * What the `status` command shows of the open-interest history: per stored series its first
 * and last row, row count, points missing on the period grid between them, and lag.
 *
 * @module
 */
import type { Sql } from "../db/client.ts";
import { timeframeMs } from "../timeframe.ts";

/** One open-interest series as `status` shows it. */
export interface OpenInterestOverview {
  exchange: string;
  symbol: string;
  period: string;
  firstTs: number | null;
  lastTs: number | null;
  count: number;
  /** Grid points between the first and the last row without a row (the exchange's holes included). */
  missing: number;
  /** Confirmed holes (open_interest_holes): the exchange was asked for them and did not have them. */
  holes: number;
  /** Whether the first backfill finished. */
  backfilled: boolean;
  /** now minus the end of the last row's period, or null without rows. */
  lagMs: number | null;
}

/** Every open-interest series with progress or rows, ordered by exchange, symbol, period. */
export async function openInterestOverview(sql: Sql, nowMs: number): Promise<OpenInterestOverview[]> {
  const rows = await sql<
    {
      exchange: string;
      symbol: string;
      period: string;
      first: Date | null;
      last: Date | null;
      n: number;
      done: boolean;
      holes: number;
    }[]
  >`
    with recursive stored as (
      -- the distinct keys of open_interest by skipping along its primary key (no full scan)
      (select exchange, symbol, period from open_interest order by exchange, symbol, period limit 1)
      union all
      select n.exchange, n.symbol, n.period from stored s, lateral (
        select o.exchange, o.symbol, o.period from open_interest o
        where (o.exchange, o.symbol, o.period) > (s.exchange, s.symbol, s.period)
        order by o.exchange, o.symbol, o.period limit 1
      ) n
    )
    select k.exchange, k.symbol, k.period, a.first, a.last, coalesce(a.n, 0) as n,
      coalesce(p.backfilled_at is not null, false) as done,
      (select count(*)::int from open_interest_holes h
        where h.exchange = k.exchange and h.symbol = k.symbol and h.period = k.period) as holes
    from (select exchange, symbol, period from open_interest_progress union select * from stored) k
    left join open_interest_progress p using (exchange, symbol, period)
    left join lateral (
      select min(o.ts) as first, max(o.ts) as last, count(*)::int as n
      from open_interest o where o.exchange = k.exchange and o.symbol = k.symbol and o.period = k.period
    ) a on true
    order by 1, 2, 3`;
  return rows.map((r) => {
    const step = timeframeMs(r.period);
    const first = r.first?.getTime() ?? null;
    const last = r.last?.getTime() ?? null;
    return {
      exchange: r.exchange,
      symbol: r.symbol,
      period: r.period,
      firstTs: first,
      lastTs: last,
      count: r.n,
      missing: first === null || last === null ? 0 : (last - first) / step + 1 - r.n,
      holes: r.holes,
      backfilled: r.done ?? false,
      lagMs: last === null ? null : Math.max(0, nowMs - (last + step)),
    };
  });
}

const iso = (ms: number | null) => ms === null ? "-" : new Date(ms).toISOString().replace(".000Z", "Z");

/** The open-interest table printed after the series table by `status` (empty when none is stored). */
export function renderOpenInterestTable(rows: readonly OpenInterestOverview[]): string {
  if (rows.length === 0) return "";
  const header = ["exchange", "symbol", "period", "first", "last", "count", "missing", "state"];
  const body = rows.map((r) => [
    r.exchange,
    r.symbol,
    r.period,
    iso(r.firstTs),
    iso(r.lastTs),
    r.count.toLocaleString("en-US"),
    String(r.missing),
    r.backfilled ? "live" : "backfilling",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i])).join("  ");
  return ["", "Open interest", line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}

/** One entry of the `open_interest` list of `GET /v1/series` and `status --json`. */
export function openInterestJson(r: OpenInterestOverview) {
  return {
    exchange: r.exchange,
    symbol: r.symbol,
    period: r.period,
    first: r.firstTs === null ? null : new Date(r.firstTs).toISOString(),
    last: r.lastTs === null ? null : new Date(r.lastTs).toISOString(),
    count: r.count,
    missing: r.missing,
    holes: r.holes,
    backfilled: r.backfilled,
    lag_s: r.lagMs === null ? null : Math.round(r.lagMs / 1000),
  };
}
