/**
 * `GET /v1/open-interest`: the stored open-interest history of one perpetual and period
 * (`OPEN_INTEREST`), as JSON or CSV, paged like `/v1/candles`: `order=desc` (default) gives the
 * newest `limit` rows of `[start, end)` listed oldest first, `next` the older page; `order=asc`
 * the oldest, `next` the newer page; null on the last page (CSV: a `Link` header). `amount` and
 * `value` are the exchange's exact decimals, as JSON numbers or, with `decimals=string`, strings.
 *
 * @module
 */
import { z } from "zod";
import { OPEN_INTEREST_PERIODS } from "../config_derivatives.ts";
import type { Sql } from "../db/client.ts";
import { decimalText } from "./decimal_text.ts";
import { NotFoundError } from "./errors.ts";
import { checkRange, DEFAULT_LIMIT, Exchange, Instant, Limit, MarketSymbol, parseQuery } from "./params.ts";

/** Query of `GET /v1/open-interest`. */
export const OpenInterestQuery = z.strictObject({
  exchange: Exchange,
  symbol: MarketSymbol,
  period: z.enum(OPEN_INTEREST_PERIODS).describe(
    "open-interest period (OPEN_INTEREST): 5m, 15m, 30m, 1h, 2h, 4h, 6h, 12h or 1d",
  ),
  start: Instant.optional().describe("first time, inclusive (default: the first stored)"),
  end: Instant.optional().describe("times strictly before this (default: no bound)"),
  limit: Limit.optional().describe(`rows per page, 1 to 10000 (default ${DEFAULT_LIMIT})`),
  order: z.enum(["asc", "desc"]).default("desc").describe(
    "desc (default): the newest `limit` rows of the range, next = older page; asc: the oldest, next = newer page",
  ),
  decimals: z.enum(["number", "string"]).default("number").describe(
    "number (default): amount and value as JSON numbers; string: as exact decimal strings",
  ),
  format: z.enum(["json", "csv"]).default("json").describe("json (default) or csv"),
});

interface Row {
  ts: Date;
  amount: string;
  value: string | null;
}

/** Options of {@linkcode getOpenInterest}. */
export interface OpenInterestOptions {
  /** Prefix of `next`/`Link` URLs: `proto://host` behind a trusted proxy; default "" (relative). */
  base?: string;
}

async function notFound(sql: Sql, q: { exchange: string; symbol: string; period: string }): Promise<NotFoundError> {
  const stored = await sql<{ exchange: string; symbol: string; period: string }[]>`
    select exchange, symbol, period from open_interest_progress order by 1, 2, 3 limit 50`;
  const list = stored.map((s) => `${s.exchange} ${s.symbol} ${s.period}`).join(", ");
  return new NotFoundError(
    `Cannot find open interest of ${q.exchange} ${q.symbol} ${q.period}: ${
      list === ""
        ? "no open interest is stored (set OPEN_INTEREST to a period and list perpetuals in SYMBOLS)"
        : `stored open interest is ${list}`
    }`,
  );
}

/** Handles `GET /v1/open-interest` (see the module comment). */
export async function getOpenInterest(sql: Sql, url: URL, options: OpenInterestOptions = {}): Promise<Response> {
  const q = parseQuery(url, OpenInterestQuery);
  checkRange(q);
  const [known] = await sql<{ found: boolean }[]>`
    select exists (
      select 1 from open_interest_progress where exchange = ${q.exchange} and symbol = ${q.symbol} and period = ${q.period}
    ) or exists (
      select 1 from open_interest where exchange = ${q.exchange} and symbol = ${q.symbol} and period = ${q.period}
    ) as found`;
  if (!known.found) throw await notFound(sql, q);
  const limit = q.limit ?? DEFAULT_LIMIT;
  const from = q.start === undefined ? null : new Date(q.start);
  const to = q.end === undefined ? null : new Date(q.end);
  const desc = q.order === "desc";
  const rows = await sql<Row[]>`
    select ts, amount::text as amount, value::text as value from open_interest
    where exchange = ${q.exchange} and symbol = ${q.symbol} and period = ${q.period}
      and (${from}::timestamptz is null or ts >= ${from}::timestamptz)
      and (${to}::timestamptz is null or ts < ${to}::timestamptz)
    order by ts ${desc ? sql`desc` : sql`asc`}
    limit ${limit + 1}`;
  const more = rows.length > limit;
  const page = rows.slice(0, limit);
  if (desc) page.reverse();
  let next: string | null = null;
  if (more) {
    const params = new URLSearchParams(url.searchParams);
    if (desc) params.set("end", page[0].ts.toISOString());
    else params.set("start", rows[limit].ts.toISOString());
    next = `${options.base ?? ""}${url.pathname}?${params}`;
  }
  const text = (v: string | null) => v === null ? null : decimalText(v);
  if (q.format === "csv") {
    const lines = [
      "time,amount,value",
      ...page.map((r) => `${r.ts.toISOString()},${text(r.amount)},${text(r.value) ?? ""}`),
    ];
    const headers = new Headers({ "content-type": "text/csv; charset=utf-8" });
    if (next !== null) headers.set("link", `<${next}>; rel="next"`);
    return new Response(lines.join("\n") + "\n", { headers });
  }
  const num = (v: string | null) => {
    const t = text(v);
    return t === null ? "null" : q.decimals === "string" ? JSON.stringify(t) : t;
  };
  const items = page.map((r) =>
    `{"time":${JSON.stringify(r.ts.toISOString())},"amount":${num(r.amount)},"value":${num(r.value)}}`
  );
  const body = `{"exchange":${JSON.stringify(q.exchange)},"symbol":${JSON.stringify(q.symbol)},"period":${
    JSON.stringify(q.period)
  },"open_interest":[${items.join(",")}],"next":${JSON.stringify(next)}}`;
  return new Response(body, { headers: { "content-type": "application/json; charset=utf-8" } });
}
