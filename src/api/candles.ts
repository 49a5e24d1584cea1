/**
 * `GET /v1/candles`: one series' candles as JSON, CSV or ccxt arrays, stored or resampled.
 *
 * - `start` is inclusive, `end` exclusive, both on candle (bucket) open times.
 * - `order=desc` (default): a page holds the NEWEST `limit` candles in the range, listed
 *   oldest first, and `next` is the page before it (`end` = this page's first open time).
 *   `order=asc`: the OLDEST `limit`, and `next` is the page after it (`start` = the first
 *   open time after the page). Following `next` walks the range with no overlap and no loss;
 *   it is null on the last page. CSV and ccxt pages send it in a `Link: <…>; rel="next"` header.
 * - A timeframe that is not stored but is a whole multiple of a stored one (or `1M`) is
 *   resampled in SQL from the largest such stored timeframe. Buckets are aligned in UTC
 *   (weeks start on Monday, months on the 1st) and read whole, never clipped by `start`/`end`.
 *   Multiples of 1h or 1d read the hourly or daily rollup of the stored candles instead
 *   (`source_timeframe` says which; `stored_timeframe` is the series'), with the same values.
 * - `complete=true` (default): only closed candles and complete buckets (see
 *   `completeBucketsSql`); `complete=false` adds the others with `partial: true` (a CSV
 *   `partial` column). Values are the shortest exact decimals; `decimals=string` quotes them.
 * - Pages are streamed, JSON and CSV alike: written batch by batch from a database cursor
 *   as the client reads, never built as one string. At most a few pages run at once per
 *   database pool; the rest wait briefly or get 503 with `Retry-After` (`admission.ts`).
 *
 * @module
 */
import type { Sql } from "../db/client.ts";
export { admitRange, type ResolvedSource, resolveSource } from "./series_source.ts";
import {
  type CandleRow,
  closedBefore,
  pageFingerprint,
  type PagePlan,
  pageQuery,
  type PageSpec,
  planPage,
  rollupIsFresh,
} from "./candle_query.ts";
import { BadRequestError } from "./errors.ts";
import { admitRange } from "./series_source.ts";
import type { AdmissionGate, Permit } from "./admission.ts";
import { getLogger } from "../log.ts";
import { CandlesQuery, DEFAULT_LIMIT, MAX_LIMIT, maxLimitFor, parseQuery } from "./params.ts";
import { decimalText } from "./decimal_text.ts";
import { etagMatches, weakEtag } from "./http_manners.ts";

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * The URL of the next page: this request with `end` (desc) or `start` (asc) moved past this
 * page, relative (`/v1/candles?...`) unless `base` (a trusted proxy's `proto://host`) is given.
 */
function nextUrl(url: URL, plan: PagePlan, order: "asc" | "desc", base: string): string | null {
  const bound = order === "asc" ? plan.pageTo : plan.pageFrom;
  if (!plan.more || bound === null) return null;
  const params = new URLSearchParams(url.searchParams);
  params.set(order === "asc" ? "start" : "end", iso(bound));
  return `${base}${url.pathname}?${params}`;
}

/**
 * Pages that may read more stored candles than this get no ETag: its fingerprint is a scan of
 * the page's stored candles, which would double the work of a long resampled page.
 */
export const ETAG_MAX_SOURCE_ROWS = 100_000;

/** Rows read from the database cursor per chunk of a streamed page. */
export const CURSOR_ROWS = 500;

/**
 * A streamed page whose client has taken no chunk for this long is aborted, and its cursor's
 * connection and admission permit are freed (a stalled client, or a `HEAD` request whose
 * body is never read).
 */
export const STREAM_IDLE_MS = 30_000;

/** Options of {@linkcode getCandles}, for tests. */
export interface CandlesOptions {
  /** The admission gate (default: the pool's, see `admission.ts`). */
  gate?: AdmissionGate;
  /** See {@linkcode STREAM_IDLE_MS}. */
  idleMs?: number;
  /** Clock (epoch ms): what has closed (default `Date.now`). */
  now?: () => number;
  /** Prefix of `next`/`Link` URLs: `proto://host` behind a trusted proxy; default "" (relative). */
  base?: string;
  /** The request's `If-None-Match`: a complete page whose ETag matches answers 304. */
  ifNoneMatch?: string | null;
}

/** How a page is written: what comes before the rows, each batch of rows, and what comes after. */
interface PageFormat {
  head: string;
  /** Text of one batch; `first` is true for the page's first batch. */
  rows(rows: CandleRow[], first: boolean): string;
  tail: string;
}

/** How prices and volume are written: JSON numbers, or JSON strings (`decimals=string`). */
type Decimals = "number" | "string";

/** A value as JSON: its shortest exact decimal, as a number or a string; `null` for NaN. */
function jsonValue(value: number | string, decimals: Decimals): string {
  const text = decimalText(value);
  if (text === null) return "null";
  return decimals === "string" ? `"${text}"` : text;
}

function csvFormat(withPartial: boolean): PageFormat {
  return {
    head: withPartial ? "time,open,high,low,close,volume,partial\n" : "time,open,high,low,close,volume\n",
    rows(rows) {
      let text = "";
      for (const r of rows) {
        text += `${r.time},${decimalText(r.open) ?? ""},${decimalText(r.high) ?? ""},${decimalText(r.low) ?? ""},${
          decimalText(r.close) ?? ""
        },${decimalText(r.volume) ?? ""}${withPartial ? (r.partial ? ",true\n" : ",false\n") : "\n"}`;
      }
      return text;
    },
    tail: "",
  };
}

/** `[[ms,open,high,low,close,volume],...]`, ascending, as ccxt's `fetchOHLCV` returns. */
function ccxtFormat(decimals: Decimals): PageFormat {
  return {
    head: "[",
    rows(rows, first) {
      let text = "";
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i];
        text += `${first && i === 0 ? "" : ","}[${r.ms},${jsonValue(r.open, decimals)},${jsonValue(r.high, decimals)},${
          jsonValue(r.low, decimals)
        },${jsonValue(r.close, decimals)},${jsonValue(r.volume, decimals)}]`;
      }
      return text;
    },
    tail: "]",
  };
}

/**
 * The JSON page, byte for byte what `JSON.stringify` gives for
 * `{exchange, symbol, timeframe, source_timeframe, stored_timeframe, candles, next}`, written
 * batch by batch.
 */
function jsonFormat(
  fields: {
    exchange: string;
    symbol: string;
    timeframe: string;
    source_timeframe: string;
    stored_timeframe: string;
  },
  next: string | null,
  decimals: Decimals,
): PageFormat {
  const head = JSON.stringify(fields);
  const v = (x: number | string) => jsonValue(x, decimals);
  return {
    head: `${head.slice(0, -1)},"candles":[`,
    rows(rows, first) {
      // Built as text (no object per candle): the same bytes JSON.stringify writes.
      let text = "";
      for (let i = 0; i < rows.length; i++) {
        const r = rows[i];
        text += `${first && i === 0 ? "" : ","}{"time":${JSON.stringify(r.time)},"open":${v(r.open)},"high":${
          v(r.high)
        },"low":${v(r.low)},"close":${v(r.close)},"volume":${v(r.volume)}${r.partial ? ',"partial":true' : ""}}`;
      }
      return text;
    },
    tail: `],"next":${JSON.stringify(next)}}`,
  };
}

/**
 * Opens the page's cursor and reads its first batch (so that a failing query is still an
 * error status), then streams the rest: one chunk per batch, read only when the client has
 * taken the previous one. The permit is released when the stream ends, fails, is cancelled
 * (client gone) or idles for `idleMs`. After the headers are sent, a failure aborts the body
 * (the client sees a truncated response) and is logged.
 */
async function pageStream(
  query: ReturnType<typeof pageQuery>,
  format: PageFormat,
  permit: Permit,
  idleMs: number,
  what: string,
): Promise<ReadableStream<Uint8Array>> {
  const log = getLogger("api");
  const encoder = new TextEncoder();
  const iterator = query.cursor(CURSOR_ROWS)[Symbol.asyncIterator]();
  let pending: IteratorResult<CandleRow[]> | undefined = await iterator.next();
  let first = true;
  let ended = false;
  let idle: ReturnType<typeof setTimeout> | undefined;
  const closeCursor = async () => {
    try {
      await iterator.return?.();
    } catch { /* the query has already ended */ }
  };
  const finish = () => {
    if (ended) return;
    ended = true;
    clearTimeout(idle);
    permit.release();
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode(format.head));
      idle = setTimeout(() => stalled(controller), idleMs);
    },
    async pull(controller) {
      clearTimeout(idle);
      let step: IteratorResult<CandleRow[]>;
      try {
        step = pending ?? await iterator.next();
        pending = undefined;
      } catch (error) {
        if (ended) return;
        log.error("Cannot finish {what}: the query failed after the headers were sent: {error}", { what, error });
        finish();
        controller.error(error);
        return;
      }
      if (ended) {
        // Cancelled while the batch was read: close the cursor that batch left open.
        await closeCursor();
        return;
      }
      if (step.done) {
        finish();
        controller.enqueue(encoder.encode(format.tail));
        controller.close();
        return;
      }
      controller.enqueue(encoder.encode(format.rows(step.value, first)));
      first = false;
      idle = setTimeout(() => stalled(controller), idleMs);
    },
    async cancel() {
      finish();
      await closeCursor();
    },
  });

  function stalled(controller: ReadableStreamDefaultController<Uint8Array>) {
    if (ended) return;
    log.warn("Aborting {what}: current value is {idleMs} ms without the client reading", { what, idleMs });
    finish();
    controller.error(new Error(`Cannot keep ${what} open: current value is ${idleMs} ms without the client reading`));
    closeCursor();
  }
}

/**
 * Handles `GET /v1/candles` (see the module documentation for the paging contract). Pages
 * are admitted by the pool's {@linkcode AdmissionGate} (a full gate answers 503 with
 * `Retry-After`) and streamed from a database cursor, JSON and CSV alike.
 */
export async function getCandles(sql: Sql, url: URL, options: CandlesOptions = {}): Promise<Response> {
  const q = parseQuery(url, CandlesQuery);
  const { permit, source } = await admitRange(sql, q, options.gate);
  try {
    // A page from a rollup reads a row per rollup bucket, so its limit is that of the rollup.
    const readStep = source.rollup?.stepMs ?? source.sourceStepMs;
    const cap = maxLimitFor(source.stepMs, readStep);
    if (q.limit !== undefined && q.limit > cap) {
      const from = source.rollup ? `the ${source.rollup.timeframe} rollup` : source.sourceTimeframe;
      const problem = `must be at most ${cap} for ${q.timeframe} resampled from ${from} ` +
        `(a page reads at most ${cap * (source.stepMs / readStep)} stored rows; ` +
        `${MAX_LIMIT} for stored timeframes)`;
      throw new BadRequestError(`Cannot accept the query: limit ${problem}`, [{ parameter: "limit", problem }]);
    }
    const spec: PageSpec = {
      seriesId: source.seriesId,
      stepMs: source.stepMs,
      month: source.month,
      sourceStepMs: source.sourceStepMs,
      start: q.start ?? null,
      end: q.end ?? null,
      limit: q.limit ?? Math.min(DEFAULT_LIMIT, cap),
      order: q.order,
      now: (options.now ?? Date.now)(),
      complete: q.complete,
    };
    if (source.rollup && await rollupIsFresh(sql, spec, source.rollup)) spec.rollup = source.rollup;
    else if (source.rollup) {
      // Aggregating the stored candles instead: the page holds fewer buckets (`next` goes on).
      spec.limit = Math.min(spec.limit, maxLimitFor(source.stepMs, source.sourceStepMs));
    }
    const read = spec.rollup?.timeframe ?? source.sourceTimeframe;
    const plan = await planPage(sql, spec);
    const base = options.base ?? "";
    const next = nextUrl(url, plan, q.order, base);
    const headers = new Headers({ "x-source-timeframe": read });
    if (next) headers.set("link", `<${next}>; rel="next"`);
    const sourceRows = spec.limit * (spec.stepMs / (spec.rollup?.stepMs ?? spec.sourceStepMs));
    if (q.complete && q.end !== undefined && q.end <= closedBefore(spec) && sourceRows <= ETAG_MAX_SOURCE_ROWS) {
      // A closed range of complete candles: the same rows (and holes) give the same bytes.
      const fingerprint = await pageFingerprint(sql, spec, plan);
      const etag = await weakEtag([String(spec.seriesId), url.search, base, JSON.stringify(plan), fingerprint]);
      headers.set("etag", etag);
      if (etagMatches(options.ifNoneMatch, etag)) {
        permit.release();
        return new Response(null, { status: 304, headers });
      }
    }
    const query = pageQuery(sql, spec, plan);
    const what = `the ${q.format} page ${q.exchange} ${q.symbol} ${q.timeframe}`;
    const idleMs = options.idleMs ?? STREAM_IDLE_MS;
    let format: PageFormat;
    if (q.format === "csv") {
      headers.set("content-type", "text/csv; charset=utf-8");
      format = csvFormat(!q.complete);
    } else if (q.format === "ccxt") {
      headers.set("content-type", "application/json; charset=utf-8");
      format = ccxtFormat(q.decimals);
    } else {
      headers.set("content-type", "application/json; charset=utf-8");
      const fields = {
        exchange: q.exchange,
        symbol: q.symbol,
        timeframe: q.timeframe,
        price: q.price,
        source_timeframe: read,
        stored_timeframe: source.sourceTimeframe,
      };
      format = jsonFormat(fields, next, q.decimals);
    }
    return new Response(await pageStream(query, format, permit, idleMs, what), { headers });
  } catch (error) {
    permit.release();
    throw error;
  }
}
