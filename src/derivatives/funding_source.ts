/**
 * What the funding ingest needs from an exchange (the exchange client implements it).
 *
 * @module
 */

/** One funding row from the exchange: time (ms UTC), rate and mark price as decimal text. */
export interface FundingSourceRow {
  ts: number;
  rate: string;
  markPrice: string | null;
}

/** One page of funding rows with `window.from <= ts < window.to`, oldest first. */
export interface FundingSourcePage {
  rows: FundingSourceRow[];
  window: { from: number; to: number };
  requestedAt: number;
}

/** An exchange as the funding ingest sees it. */
export interface FundingSource {
  readonly id: string;
  /** The funding interval (ms) the exchange states for `symbol`, or null. */
  fundingInterval(symbol: string): Promise<number | null>;
  /** When `symbol` was listed (ms), or null. */
  listedAt(symbol: string): number | null;
  /** Most funding rows one request returns (100 when not given). */
  fundingPageLimit?(): number;
  /** One page from `since`: a window of at most one page of funding times of `intervalMs`. */
  fetchFundingPage(symbol: string, since: number, until?: number, intervalMs?: number): Promise<FundingSourcePage>;
}

/** `source` as a {@linkcode FundingSource}, or null when it cannot read funding history. */
export function fundingSourceOf(source: object): FundingSource | null {
  const s = source as Partial<FundingSource>;
  return typeof s.fetchFundingPage === "function" && typeof s.fundingInterval === "function" &&
      typeof s.listedAt === "function"
    ? s as FundingSource
    : null;
}
