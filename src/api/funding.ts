/**
 * `GET /v1/funding-rates`: one perpetual's stored funding rates as JSON or CSV.
 *
 * - `start` is inclusive, `end` exclusive, on funding times (UTC).
 * - `order=desc` (default): a page holds the NEWEST `limit` rows of the range, listed oldest
 *   first, and `next` is the page before it (`end` = this page's first time); `order=asc`: the
 *   OLDEST `limit`, and `next` is the page after it (`start` = the first time after the page).
 *   `next` is null on the last page; CSV pages send it in a `Link: <…>; rel="next"` header.
 * - Rates and mark prices are the stored decimals, exactly as the exchange published them
 *   (JSON numbers written as that decimal text; `decimals=string` quotes them).
 *
 * @module
 */
import { z } from "zod";
import type { Sql } from "../db/client.ts";
import { decimalText } from "./decimal_text.ts";
import { NotFoundError } from "./errors.ts";
import { checkRange, DEFAULT_LIMIT, Exchange, Instant, Limit, MarketSymbol, parseQuery } from "./params.ts";

/** Query of `GET /v1/funding-rates`. */
export const FundingQuery = z.strictObject({
  exchange: Exchange,
  symbol: MarketSymbol,
  start: Instant.optional().describe("first funding time, inclusive (default: the first stored)"),
  end: Instant.optional().describe("funding times strictly before this (default: no bound)"),
  limit: Limit.optional(),
  order: z.enum(["asc", "desc"]).default("desc").describe(
    "desc (default): the newest `limit` rows of the range, next = older page; asc: the oldest, next = newer page",
  ),
  decimals: z.enum(["number", "string"]).default("number").describe(
    "number (default): rates and mark prices as JSON numbers; string: as exact decimal strings",
  ),
  format: z.enum(["json", "csv"]).default("json").describe("json (default) or csv"),
});

/** Validated query of `GET /v1/funding-rates`. */
export type FundingQuery = z.output<typeof FundingQuery>;

interface Row {
  ms: number;
  rate: string;
  mark: string | null;
}

/** Options of {@linkcode getFundingRates}. */
export interface FundingRatesOptions {
  /** Prefix of `next`/`Link` URLs: `proto://host` behind a trusted proxy; default "" (relative). */
  base?: string;
}

const iso = (ms: number) => new Date(ms).toISOString();

async function notStored(sql: Sql, q: FundingQuery): Promise<NotFoundError> {
  const stored = await sql<{ exchange: string; symbol: string }[]>`
    select distinct exchange, symbol from funding_rates order by exchange, symbol limit 20`;
  const names = stored.map((s) => `${s.exchange} ${s.symbol}`).join(", ");
  return new NotFoundError(
    `Cannot find funding rates of ${q.exchange} ${q.symbol}: ${
      names === ""
        ? "no funding rates are stored (list perpetuals in SYMBOLS; FUNDING_RATES is auto or true)"
        : `stored funding rates are of ${names}`
    }`,
  );
}

async function readPage(sql: Sql, q: FundingQuery, limit: number): Promise<Row[]> {
  const from = q.start === undefined ? null : iso(q.start);
  const to = q.end === undefined ? null : iso(q.end);
  const rows = await sql<{ ms: number; rate: string; mark: string | null }[]>`
    select extract(epoch from ts)::float8 * 1000 as ms, rate::text as rate, mark_price::text as mark
    from funding_rates
    where exchange = ${q.exchange} and symbol = ${q.symbol}
      and (${from}::timestamptz is null or ts >= ${from}::timestamptz)
      and (${to}::timestamptz is null or ts < ${to}::timestamptz)
    order by ${q.order === "asc" ? sql`ts asc` : sql`ts desc`}
    limit ${limit + 1}`;
  return rows.map((r) => ({ ms: Math.round(Number(r.ms)), rate: r.rate, mark: r.mark }));
}

function value(text: string | null, decimals: "number" | "string"): string {
  const exact = text === null ? null : decimalText(text);
  if (exact === null) return "null";
  return decimals === "string" ? `"${exact}"` : exact;
}

/** Answers `GET /v1/funding-rates`; 404 naming what is stored when the symbol has no funding rows. */
export async function getFundingRates(sql: Sql, url: URL, options: FundingRatesOptions = {}): Promise<Response> {
  const q = parseQuery(url, FundingQuery);
  checkRange(q);
  const limit = q.limit ?? DEFAULT_LIMIT;
  const fetched = await readPage(sql, q, limit);
  if (fetched.length === 0) {
    const [any] = await sql`
      select 1 from funding_rates where exchange = ${q.exchange} and symbol = ${q.symbol} limit 1`;
    if (!any) throw await notStored(sql, q);
  }
  const more = fetched.length > limit;
  const page = fetched.slice(0, limit);
  if (q.order === "desc") page.reverse();
  let next: string | null = null;
  if (more) {
    const params = new URLSearchParams(url.searchParams);
    if (q.order === "asc") params.set("start", iso(fetched[limit].ms));
    else params.set("end", iso(page[0].ms));
    next = `${options.base ?? ""}${url.pathname}?${params}`;
  }
  if (q.format === "csv") {
    let text = "time,rate,mark_price\n";
    for (const r of page) text += `${iso(r.ms)},${decimalText(r.rate) ?? ""},${decimalText(r.mark ?? "") ?? ""}\n`;
    const headers = new Headers({ "content-type": "text/csv; charset=utf-8" });
    if (next !== null) headers.set("link", `<${next}>; rel="next"`);
    return new Response(text, { headers });
  }
  const items = page.map((r) =>
    `{"time":"${iso(r.ms)}","rate":${value(r.rate, q.decimals)}${
      r.mark === null ? "" : `,"mark_price":${value(r.mark, q.decimals)}`
    }}`
  );
  const body = `{"exchange":${JSON.stringify(q.exchange)},"symbol":${JSON.stringify(q.symbol)},"funding_rates":[${
    items.join(",")
  }],"next":${JSON.stringify(next)}}`;
  return new Response(body, { headers: { "content-type": "application/json" } });
}
