/**
 * `GET /v1/candles`: one series' candles as JSON or streamed CSV, stored or resampled.
 *
 * - `start` is inclusive, `end` exclusive, both on candle (bucket) open times.
 * - A page holds the NEWEST `limit` candles in the range, listed oldest first. `next` is the
 *   URL of the page before it (`end` = this page's first open time) or null on the last one:
 *   following `next` walks backward through history with no overlap and no loss. For CSV the
 *   same URL is sent in a `Link: <…>; rel="next"` header.
 * - A timeframe that is not stored but is a whole multiple of a stored one is resampled in
 *   SQL from the largest such stored timeframe. Buckets are aligned in UTC (weeks start on
 *   Monday) and read whole, never clipped by `start`/`end`. A bucket with fewer stored
 *   candles than it spans (the still-open newest one, or one over a gap) is returned with
 *   `partial: true` in JSON; complete buckets carry no flag. CSV has the fixed six columns.
 *
 * @module
 */
import type { Sql } from "../db/client.ts";
import { type CandleRow, type PagePlan, pageQuery, type PageSpec, planPage } from "./candle_query.ts";
import { BadRequestError, json, NotFoundError } from "./errors.ts";
import { CandlesQuery, DEFAULT_LIMIT, MAX_LIMIT, maxLimitFor, parseQuery, stepOf } from "./params.ts";
import { bucketOrigin } from "../timeframe.ts";

/** The series chosen to serve a request. */
export interface ResolvedSource {
  seriesId: number;
  /** The stored timeframe read. */
  sourceTimeframe: string;
  stepMs: number;
  sourceStepMs: number;
}

const LIST_CAP = 30;

function listText(items: string[]): string {
  if (items.length === 0) return "none";
  const shown = items.slice(0, LIST_CAP).join(", ");
  return items.length > LIST_CAP ? `${shown} and ${items.length - LIST_CAP} more` : shown;
}

/**
 * Picks the stored series for (exchange, symbol, timeframe): the timeframe itself, else the
 * largest stored timeframe that divides it (on the same UTC grid). Throws NotFoundError
 * naming what exists.
 */
export async function resolveSource(
  sql: Sql,
  exchange: string,
  symbol: string,
  timeframe: string,
): Promise<ResolvedSource> {
  const rows = await sql<{ id: number; timeframe: string }[]>`
    select id, timeframe from series where exchange = ${exchange} and symbol = ${symbol}`;
  if (rows.length === 0) {
    const symbols = await sql<{ symbol: string }[]>`
      select distinct symbol from series where exchange = ${exchange} order by symbol limit ${LIST_CAP + 1}`;
    if (symbols.length === 0) {
      const exchanges = await sql<{ exchange: string }[]>`
        select distinct exchange from series order by exchange limit ${LIST_CAP + 1}`;
      throw new NotFoundError(
        `Cannot find series ${exchange} ${symbol}: no series on exchange ${exchange}; stored exchanges: ${
          listText(exchanges.map((r) => r.exchange))
        }`,
      );
    }
    throw new NotFoundError(
      `Cannot find series ${exchange} ${symbol}: stored symbols on ${exchange}: ${
        listText(symbols.map((r) => r.symbol))
      }`,
    );
  }
  const stepMs = stepOf(timeframe);
  const stored = rows
    .map((r) => {
      let ms = 0;
      try {
        ms = stepOf(r.timeframe);
      } catch { /* a timeframe without fixed length cannot be a source */ }
      return { ...r, ms };
    })
    .filter((r) => r.ms > 0)
    .sort((a, b) => b.ms - a.ms);
  const exact = stored.find((r) => r.ms === stepMs);
  if (exact) return { seriesId: exact.id, sourceTimeframe: exact.timeframe, stepMs, sourceStepMs: stepMs };
  const source = stored.find((r) => stepMs % r.ms === 0 && (bucketOrigin(stepMs) - bucketOrigin(r.ms)) % r.ms === 0);
  if (!source) {
    throw new NotFoundError(
      `Cannot serve timeframe ${timeframe} for ${exchange} ${symbol}: stored timeframes are ${
        listText(rows.map((r) => r.timeframe))
      }; a timeframe must be stored or a whole multiple of a stored one`,
    );
  }
  return { seriesId: source.id, sourceTimeframe: source.timeframe, stepMs, sourceStepMs: source.ms };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function nextUrl(url: URL, plan: PagePlan): string | null {
  if (!plan.more || plan.pageFrom === null) return null;
  const next = new URL(url.pathname, url);
  for (const [k, v] of url.searchParams) if (k !== "end") next.searchParams.set(k, v);
  next.searchParams.set("end", iso(plan.pageFrom));
  return next.toString();
}

const CSV_HEADER = "time,open,high,low,close,volume\n";

function csvLine(r: CandleRow): string {
  return `${r.time},${r.open},${r.high},${r.low},${r.close},${r.volume}\n`;
}

/** Streams the rows of a page as CSV through a postgres.js cursor. */
function csvStream(query: ReturnType<typeof pageQuery>): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let iterator: AsyncIterator<CandleRow[]> | undefined;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(CSV_HEADER));
    },
    async pull(controller) {
      iterator ??= query.cursor(500)[Symbol.asyncIterator]();
      const step = await iterator.next();
      if (step.done) {
        controller.close();
        return;
      }
      let text = "";
      for (const row of step.value) text += csvLine(row);
      controller.enqueue(encoder.encode(text));
    },
    async cancel() {
      await iterator?.return?.();
    },
  });
}

/** Handles `GET /v1/candles` (see the module documentation for the paging contract). */
export async function getCandles(sql: Sql, url: URL): Promise<Response> {
  const q = parseQuery(url, CandlesQuery);
  if (q.start !== undefined && q.end !== undefined && q.start >= q.end) {
    const detail = { parameter: "end", problem: "must be later than start" };
    throw new BadRequestError(`Cannot accept the query: end must be later than start`, [detail]);
  }
  const source = await resolveSource(sql, q.exchange, q.symbol, q.timeframe);
  const cap = maxLimitFor(source.stepMs, source.sourceStepMs);
  if (q.limit !== undefined && q.limit > cap) {
    const problem = `must be at most ${cap} for ${q.timeframe} resampled from ${source.sourceTimeframe} ` +
      `(a page reads at most ${cap * (source.stepMs / source.sourceStepMs)} stored candles; ` +
      `${MAX_LIMIT} for stored timeframes)`;
    throw new BadRequestError(`Cannot accept the query: limit ${problem}`, [{ parameter: "limit", problem }]);
  }
  const spec: PageSpec = {
    seriesId: source.seriesId,
    stepMs: source.stepMs,
    sourceStepMs: source.sourceStepMs,
    start: q.start ?? null,
    end: q.end ?? null,
    limit: q.limit ?? Math.min(DEFAULT_LIMIT, cap),
  };
  const plan = await planPage(sql, spec);
  const next = nextUrl(url, plan);
  const query = pageQuery(sql, spec, plan);
  if (q.format === "csv") {
    const headers = new Headers({
      "content-type": "text/csv; charset=utf-8",
      "x-source-timeframe": source.sourceTimeframe,
    });
    if (next) headers.set("link", `<${next}>; rel="next"`);
    return new Response(csvStream(query), { headers });
  }
  const rows = await query;
  const full = source.stepMs / source.sourceStepMs;
  const resampled = source.stepMs !== source.sourceStepMs;
  const candles = rows.map((r) => {
    const c: Record<string, unknown> = {
      time: r.time,
      open: r.open,
      high: r.high,
      low: r.low,
      close: r.close,
      volume: r.volume,
    };
    if (resampled && (r.n ?? 0) < full) c.partial = true;
    return c;
  });
  return json({
    exchange: q.exchange,
    symbol: q.symbol,
    timeframe: q.timeframe,
    source_timeframe: source.sourceTimeframe,
    candles,
    next,
  });
}
