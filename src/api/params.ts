/**
 * The zod schemas that validate every request parameter and body. `openapi.ts` renders the
 * same schemas with `z.toJSONSchema`, so the published document cannot drift from the checks.
 *
 * @module
 */
import { z } from "zod";
import { normalizeSymbol, parseBackfillSince } from "../config.ts";
import { isMonthTimeframe, isTimeframe, timeframeMs } from "../timeframe.ts";
import { BadRequestError, type ErrorDetail } from "./errors.ts";

/** Candles per page when `limit` is not given (fewer for coarse resampling, see {@linkcode maxLimitFor}). */
export const DEFAULT_LIMIT = 1000;
/** Largest `limit` accepted for stored timeframes. */
export const MAX_LIMIT = 10_000;
/** Stored candles one resampled page may read: bounds the work of any request. */
export const MAX_SOURCE_ROWS = 2_000_000;
/** Earliest instant accepted: 1970-01-01T00:00:00Z. */
export const MIN_TIME_MS = 0;
/** Latest instant accepted: 9999-12-31T23:59:59.999Z. */
export const MAX_TIME_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

const ISO_RE = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/**
 * Parses an instant given as ISO-8601 (`2024-01-01`, `2024-01-01T10:00Z`, a zone-less time
 * is UTC) or as epoch milliseconds. Returns null when malformed or outside 1970–9999.
 */
export function parseInstant(text: string): number | null {
  let ms: number;
  if (/^-?\d{1,16}$/.test(text)) {
    ms = Number(text);
  } else {
    const m = ISO_RE.exec(text);
    if (!m) return null;
    const [, y, mo, d, h = "00", mi = "00", s = "00", frac = "", zone = "Z"] = m;
    const month = Number(mo), day = Number(d), hour = Number(h), minute = Number(mi), second = Number(s);
    if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return null;
    if (day > new Date(Date.UTC(Number(y), month, 0)).getUTCDate()) return null;
    let offset = 0;
    if (zone !== "Z") {
      const zm = /^([+-])(\d{2}):?(\d{2})$/.exec(zone)!;
      const oh = Number(zm[2]), om = Number(zm[3]);
      if (oh > 23 || om > 59) return null;
      offset = (zm[1] === "+" ? 1 : -1) * (oh * 60 + om) * 60_000;
    }
    const base = Date.UTC(Number(y), month - 1, day, hour, minute, second);
    // Date.UTC maps years 0–99 to 1900–1999; those are rejected below as before 1970 anyway.
    ms = base + Math.floor(Number(`0.${frac || "0"}`) * 1000) - offset;
    if (Number(y) < 100) return null;
  }
  if (!Number.isSafeInteger(ms) || ms < MIN_TIME_MS || ms > MAX_TIME_MS) return null;
  return ms;
}

const INSTANT_PROBLEM =
  "must be an ISO-8601 UTC time such as 2024-01-01T00:00:00Z or epoch milliseconds, between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z";

/** An instant: ISO-8601 or epoch milliseconds, 1970–9999; parsed to epoch ms. */
export const Instant = z.string().max(40, { error: INSTANT_PROBLEM }).transform((text, ctx) => {
  const ms = parseInstant(text);
  if (ms === null) {
    ctx.issues.push({ code: "custom", message: `${INSTANT_PROBLEM}; current value is "${text}"`, input: text });
    return z.NEVER;
  }
  return ms;
}).describe("ISO-8601 UTC time (e.g. 2024-01-01T00:00:00Z) or epoch milliseconds; 1970 to 9999");

/** A ccxt exchange id such as `binance`; lower-cased. */
export const Exchange = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/, {
  error: "must be a ccxt exchange id such as binance (letters, digits, _ . -; at most 32 characters)",
}).transform((s) => s.toLowerCase()).describe("ccxt exchange id, e.g. binance");

/** A market symbol; `btc-usdt` and `BTCUSDT` are normalised to ccxt's `BTC/USDT`. */
export const MarketSymbol = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9/:._-]{0,63}$/, {
  error: "must be a market symbol such as BTC/USDT (letters, digits, / : . _ -; at most 64 characters)",
}).transform((s) => normalizeSymbol(s) ?? s).describe("market symbol in ccxt's unified form, e.g. BTC/USDT");

/** A fixed-length ccxt timeframe such as `1m`, `15m`, `4h`, `1d`, `1w`. */
export const Timeframe = z.string().max(8, { error: "must be a timeframe such as 1m, 15m, 4h, 1d or 1w" }).refine(
  isTimeframe,
  { error: "must be a timeframe such as 1m, 15m, 4h, 1d or 1w (a count and a unit s, m, h, d or w)" },
).describe("timeframe: a count and a unit s, m, h, d or w, e.g. 1m, 15m, 4h, 1d, 1w");

/** A timeframe to read candles in: a fixed-length one, or `1M` (calendar months in UTC, resampled). */
export const CandleTimeframe = z.string().max(8, { error: "must be a timeframe such as 1m, 15m, 4h, 1d, 1w or 1M" })
  .refine((s) => isTimeframe(s) || isMonthTimeframe(s), {
    error: "must be a timeframe such as 1m, 15m, 4h, 1d, 1w or 1M (a count and a unit s, m, h, d or w; or 1M)",
  }).describe("timeframe: a count and a unit s, m, h, d or w (e.g. 1m, 15m, 4h, 1d, 1w), or 1M (calendar month, UTC)");

/** `limit`: a whole number 1–10000. */
export const Limit = z.string().regex(/^[0-9]{1,6}$/, { error: `must be a whole number between 1 and ${MAX_LIMIT}` })
  .transform((s) => Number(s))
  .refine((n) => n >= 1 && n <= MAX_LIMIT, { error: `must be a whole number between 1 and ${MAX_LIMIT}` })
  .describe(`candles per page, 1 to ${MAX_LIMIT} (default ${DEFAULT_LIMIT}); resampled pages may cap it lower`);

/** The fields naming a series and a range of its open times; `endDefault` says what no `end` means. */
function seriesRange<T extends z.ZodType>(timeframe: T, endDefault: string) {
  return {
    exchange: Exchange,
    symbol: MarketSymbol,
    timeframe,
    start: Instant.optional().describe("first candle open time, inclusive (default: the first stored)"),
    end: Instant.optional().describe(`candle open times strictly before this (default: ${endDefault})`),
  };
}

/** The klines of a market: `trade` candles (default), or a contract's `mark`, `index` or `premium` index. */
export const Price = z.enum(["trade", "mark", "index", "premium"]).describe(
  "price the candles are of: trade (default), or a contract's mark, index or premium index",
);

/** Query of `GET /v1/candles`. */
export const CandlesQuery = z.strictObject({
  ...seriesRange(CandleTimeframe, "no bound"),
  price: Price.default("trade"),
  limit: Limit.optional(),
  order: z.enum(["asc", "desc"]).default("desc").describe(
    "desc (default): the newest `limit` candles of the range, next = older page; asc: the oldest, next = newer page",
  ),
  complete: z.enum(["true", "false"]).default("true").transform((s) => s === "true").describe(
    "true (default): only closed, complete candles and buckets; false: also partial ones, marked partial",
  ),
  decimals: z.enum(["number", "string"]).default("number").describe(
    "number (default): prices and volume as JSON numbers; string: as exact decimal strings",
  ),
  format: z.enum(["json", "csv", "ccxt"]).default("json").describe(
    "json (default), csv, or ccxt ([[ms,open,high,low,close,volume],...]); all streamed",
  ),
});

/** Validated query of `GET /v1/candles`. */
export type CandlesQuery = z.output<typeof CandlesQuery>;

/** Query of `GET /v1/export`. */
export const ExportQuery = z.strictObject({
  ...seriesRange(CandleTimeframe, "up to the last closed candle"),
  price: Price.default("trade"),
  format: z.enum(["parquet", "feather", "csv", "json", "freqtrade-json"]).describe(
    "parquet (time as timestamp[ms, UTC], doubles), feather (Arrow IPC file, freqtrade's date,open,high,low,close,volume), csv, or json / freqtrade-json ([[ms,o,h,l,c,v],...])",
  ),
});

/** Validated query of `GET /v1/export`. */
export type ExportQuery = z.output<typeof ExportQuery>;

/** Body of `POST /v1/series`. */
export const AddSeriesBody = z.strictObject({
  exchange: Exchange,
  symbol: MarketSymbol,
  timeframe: Timeframe,
  price: Price.optional(),
  since: z.string().max(40).refine((s) => parseBackfillSince(s) !== null, {
    error: "must be an ISO date (2024-01-01), a duration back from now (30d) or earliest",
  }).optional().describe(
    "where the backfill starts, kept with the series: ISO date, duration back from this request such as 30d, or earliest; default BACKFILL_SINCE",
  ),
});

/** A series id in the path. */
export const SeriesId = z.string().regex(/^[1-9][0-9]{0,9}$/, { error: "must be a positive whole number" })
  .transform((s) => Number(s))
  .refine((n) => n <= 2_147_483_647, { error: "must be at most 2147483647" })
  .describe("series id from GET /v1/series");

/** Query of `DELETE /v1/series/{id}`. */
export const RemoveSeriesQuery = z.strictObject({
  purge: z.enum(["true", "false"]).default("false").describe("true also deletes the stored candles"),
});

/** Query of routes that take no parameters. */
export const NoQuery = z.strictObject({});

/** The largest `limit` for a timeframe served from `sourceStepMs` candles. */
export function maxLimitFor(stepMs: number, sourceStepMs: number): number {
  const ratio = stepMs / sourceStepMs;
  return Math.max(1, Math.min(MAX_LIMIT, Math.floor(MAX_SOURCE_ROWS / ratio)));
}

/** Length of a validated timeframe in ms (31 days, the longest, for `1M`). */
export function stepOf(timeframe: string): number {
  return isMonthTimeframe(timeframe) ? 31 * 86_400_000 : timeframeMs(timeframe);
}

/**
 * Checks that a range's `end` is later than its `start` (when both are given); throws
 * {@linkcode BadRequestError} naming `end` otherwise, the same for every route.
 */
export function checkRange(range: { start?: number; end?: number }): void {
  if (range.start === undefined || range.end === undefined || range.start < range.end) return;
  const start = new Date(range.start).toISOString(), end = new Date(range.end).toISOString();
  const detail = { parameter: "end", problem: `must be later than start (${start}); current value is ${end}` };
  throw new BadRequestError(`Cannot accept the query: end ${detail.problem}`, [detail]);
}

/** `value` as shown after "current value is": a string quoted, anything else as JSON; cut to 64 characters. */
function shown(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  const cut = text.length > 64 ? `${text.slice(0, 64)}…` : text;
  return typeof value === "string" ? JSON.stringify(cut) : cut;
}

/**
 * A zod issue of a parameter as a problem sentence: "is required" when `raw` (the input) lacks
 * it, else what it must be and its current value (`must be one of json, csv; current value is "x"`).
 */
export function problemOf(issue: z.core.$ZodIssue, raw: Record<string, unknown>): string {
  const top = String(issue.path[0] ?? "");
  if (issue.path.length > 0 && !(top in raw)) return "is required";
  let value: unknown = raw;
  for (const key of issue.path) value = (value as Record<PropertyKey, unknown> | undefined)?.[key];
  let must = issue.message;
  if (issue.code === "invalid_value") must = `must be one of ${issue.values.map(String).join(", ")}`;
  else if (issue.code === "invalid_type") {
    must = `must be ${/^[aeiou]/.test(issue.expected) ? "an" : "a"} ${issue.expected}`;
  }
  // A whole body of the wrong shape has no value of its own to show.
  if (issue.path.length === 0 || must.includes("current value is")) return must;
  return `${must}; current value is ${shown(value)}`;
}

/** Each issue of `error` as a parameter and its problem; `where` says what an unknown name is not. */
function details(error: z.ZodError, raw: Record<string, unknown>, prefix: string, where: string): ErrorDetail[] {
  const out: ErrorDetail[] = [];
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const k of issue.keys) out.push({ parameter: prefix + k, problem: `is not ${where}` });
      continue;
    }
    const name = issue.path.map(String).join(".");
    out.push({
      parameter: name === "" ? prefix.replace(/\.$/, "") || "(query)" : prefix + name,
      problem: problemOf(issue, raw),
    });
  }
  return out;
}

function summary(what: string, list: ErrorDetail[]): string {
  return `Cannot accept the ${what}: ${list.map((d) => `${d.parameter} ${d.problem}`).join("; ")}`;
}

/** The {@linkcode BadRequestError} of query problems found outside a schema (repeated parameters, say). */
export function queryError(list: ErrorDetail[]): BadRequestError {
  return new BadRequestError(summary("query", list), list);
}

/**
 * Validates URL query parameters: every name at most once, then `schema`. Throws
 * {@linkcode BadRequestError} naming each parameter and its problem.
 */
export function parseQuery<S extends z.ZodType>(url: URL, schema: S): z.output<S> {
  const raw: Record<string, string> = {};
  const dup: ErrorDetail[] = [];
  for (const [k, v] of url.searchParams) {
    if (k in raw) {
      if (!dup.some((d) => d.parameter === k)) {
        dup.push({ parameter: k, problem: "is given more than once; pass it once" });
      }
    } else {
      raw[k] = v;
    }
  }
  if (dup.length > 0) throw new BadRequestError(summary("query", dup), dup);
  const result = schema.safeParse(raw);
  if (!result.success) {
    const list = details(result.error, raw, "", `a parameter of ${url.pathname}`);
    throw new BadRequestError(summary("query", list), list);
  }
  return result.data;
}

/** Validates a JSON body (already parsed) with `schema`; parameter names start with `body.`. */
export function parseBody<S extends z.ZodType>(body: unknown, schema: S): z.output<S> {
  const result = schema.safeParse(body);
  if (!result.success) {
    const raw = body !== null && typeof body === "object" ? body as Record<string, unknown> : {};
    const list = details(result.error, raw, "body.", "a field of the body");
    throw new BadRequestError(summary("body", list), list);
  }
  return result.data;
}

/** Validates one path parameter with `schema`. */
export function parsePathParam<S extends z.ZodType>(name: string, value: string, schema: S): z.output<S> {
  const result = schema.safeParse(value);
  if (!result.success) {
    const list = result.error.issues.map((i) => ({
      parameter: name,
      problem: `${i.message}; current value is "${value}"`,
    }));
    throw new BadRequestError(summary("path", list), list);
  }
  return result.data;
}
