/**
 * What the `gaps` command lists of the derivatives histories, from the database alone: per
 * funding history the missing funding times (the ingest's check, following the interval in
 * force at each point of the stored history) and the confirmed holes; per open-interest series
 * the missing points of the period grid between the first and last stored row that are not
 * confirmed holes (gaps: the repair run refetches those within the exchange's window; older ones
 * the exchange no longer serves) and the confirmed holes (open_interest_holes: asked for, not
 * served, never asked for again), with the ingest's own queries.
 *
 * @module
 */
import { counted } from "../log.ts";
import type { Sql } from "../db/client.ts";
import { timeframeMs } from "../timeframe.ts";
import { findFundingGaps, fundingSlot } from "./funding_gaps.ts";
import { fundingExtent, fundingHoles, type FundingKey, storedFundingTimes } from "./funding_store.ts";
import { missingTimes, openInterestHoles, type OpenInterestKey } from "./open_interest_store.ts";

/** Missing times `from` to `to` (both included, ms) and how many; `intervalMs` for funding gaps. */
export interface MissingRange {
  from: number;
  to: number;
  count: number;
  intervalMs?: number;
}

/** The gaps and holes of one funding or open-interest history. */
export interface DerivativeGaps {
  kind: "funding" | "open_interest";
  exchange: string;
  symbol: string;
  /** The open-interest period; null for funding. */
  period: string | null;
  gaps: MissingRange[];
  holes: MissingRange[];
}

/** Which histories to list (each list unset: all); `periods` narrows open interest only. */
export interface DerivativeGapFilter {
  exchanges?: readonly string[];
  symbols?: readonly string[];
  periods?: readonly string[];
}

/** The most missing open-interest points listed per series and kind. */
const OPEN_INTEREST_LIMIT = 1_000_000;

/** Groups sorted times into ranges of consecutive `stepMs` points. */
function ranges(times: readonly number[], stepMs: number): MissingRange[] {
  const out: MissingRange[] = [];
  for (const t of times) {
    const last = out[out.length - 1];
    if (last && t - last.to === stepMs) {
      last.to = t;
      last.count++;
    } else out.push({ from: t, to: t, count: 1 });
  }
  return out;
}

/** Confirmed funding holes grouped into ranges not broken by a stored row. */
function holeRanges(stored: readonly number[], holes: readonly number[]): MissingRange[] {
  const rows = stored.map(fundingSlot);
  const out: MissingRange[] = [];
  let r = 0;
  for (const hole of [...holes].map(fundingSlot).sort((a, b) => a - b)) {
    const last = out[out.length - 1];
    let between = false;
    for (; r < rows.length && rows[r] < hole; r++) if (last && rows[r] > last.to) between = true;
    if (last && !between) {
      last.to = hole;
      last.count++;
    } else out.push({ from: hole, to: hole, count: 1 });
  }
  return out;
}

const wanted = (filter: DerivativeGapFilter, r: { exchange: string; symbol: string }) =>
  (!filter.exchanges || filter.exchanges.includes(r.exchange)) &&
  (!filter.symbols || filter.symbols.includes(r.symbol));

/** Funding gaps and holes of every stored funding history, by exchange and symbol. */
export async function fundingGapReport(sql: Sql, filter: DerivativeGapFilter = {}): Promise<DerivativeGaps[]> {
  const keys = await sql<FundingKey[]>`
    select exchange, symbol from funding_rates group by exchange, symbol
    union select exchange, symbol from funding_holes group by exchange, symbol
    order by 1, 2`;
  const out: DerivativeGaps[] = [];
  for (const key of keys.filter((k) => wanted(filter, k))) {
    const extent = await fundingExtent(sql, key);
    const stored = extent === null ? [] : await storedFundingTimes(sql, key, { from: extent.first, to: extent.last });
    const holes = await fundingHoles(sql, key);
    const { gaps } = findFundingGaps(stored, { holes });
    out.push({
      kind: "funding",
      exchange: key.exchange,
      symbol: key.symbol,
      period: null,
      gaps: gaps.map((g) => ({
        from: g.times[0],
        to: g.times[g.times.length - 1],
        count: g.times.length,
        intervalMs: g.intervalMs,
      })),
      holes: holeRanges(stored, holes),
    });
  }
  return out;
}

/**
 * Open-interest gaps (grid points missing between the first and the last stored row, not
 * confirmed holes) and confirmed holes (the exchange did not have them when asked).
 */
export async function openInterestGapReport(sql: Sql, filter: DerivativeGapFilter = {}): Promise<DerivativeGaps[]> {
  const keys = await sql<(OpenInterestKey & { first: Date | null; last: Date | null })[]>`
    select k.exchange, k.symbol, k.period, min(o.ts) as first, max(o.ts) as last
    from (select exchange, symbol, period from open_interest group by 1, 2, 3
          union select exchange, symbol, period from open_interest_holes group by 1, 2, 3) k
    left join open_interest o using (exchange, symbol, period)
    group by 1, 2, 3 order by 1, 2, 3`;
  const out: DerivativeGaps[] = [];
  for (const k of keys) {
    if (!wanted(filter, k) || (filter.periods && !filter.periods.includes(k.period))) continue;
    const key = { exchange: k.exchange, symbol: k.symbol, period: k.period };
    const step = timeframeMs(k.period);
    const holes = await openInterestHoles(sql, key);
    const gaps = k.first === null || k.last === null ? [] : await missingTimes(sql, key, {
      from: k.first.getTime(),
      to: k.last.getTime(),
      stepMs: step,
      limit: OPEN_INTEREST_LIMIT,
    });
    out.push({ kind: "open_interest", ...key, gaps: ranges(gaps, step), holes: ranges(holes, step) });
  }
  return out;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The text lines `gaps` prints for one history. */
export function renderDerivativeGaps(r: DerivativeGaps): string[] {
  const funding = r.kind === "funding";
  const what = funding ? "funding" : `open interest ${r.period}`;
  const unit = (n: number) => counted(n, funding ? "funding time" : "point");
  const lines = [
    `${r.exchange} ${r.symbol} ${what}: ${counted(r.gaps.length, "gap")}, ${counted(r.holes.length, "hole")}`,
  ];
  for (const g of r.gaps) {
    const every = g.intervalMs === undefined ? "" : ` (every ${g.intervalMs / 3_600_000}h)`;
    lines.push(`  gap  ${iso(g.from)} .. ${iso(g.to)}  ${unit(g.count)} missing${every}`);
  }
  for (const h of r.holes) {
    lines.push(`  hole ${iso(h.from)} .. ${iso(h.to)}  ${unit(h.count)} the exchange does not have`);
  }
  return lines;
}

/** One entry of `gaps --json` for a funding or open-interest history. */
export function derivativeGapsJson(r: DerivativeGaps) {
  const range = (x: MissingRange) => ({
    from: iso(x.from),
    to: iso(x.to),
    count: x.count,
    ...(x.intervalMs === undefined ? {} : { interval_ms: x.intervalMs }),
  });
  return {
    kind: r.kind,
    series: r.period === null
      ? { exchange: r.exchange, symbol: r.symbol }
      : { exchange: r.exchange, symbol: r.symbol, period: r.period },
    gaps: r.gaps.map(range),
    holes: r.holes.map(range),
  };
}
