/**
 * The OpenAPI 3.1 document of the API, generated with `z.toJSONSchema` from the same zod
 * schemas that validate requests (`params.ts`), so it cannot drift from the checks.
 *
 * @module
 */
import { FundingQuery } from "./funding.ts";
import { z } from "zod";
import {
  AddSeriesBody,
  CandlesQuery,
  ExportQuery,
  MAX_LIMIT,
  MAX_SOURCE_ROWS,
  RemoveSeriesQuery,
  SeriesId,
} from "./params.ts";
import { OpenInterestQuery } from "./open_interest.ts";
import { MAX_STREAM_SERIES, StreamSubscription } from "./stream.ts";

type Json = Record<string, unknown>;

function schemaOf(schema: z.ZodType): Json {
  const out = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as Json;
  delete out.$schema;
  return out;
}

function queryParameters(schema: z.ZodType): Json[] {
  const doc = schemaOf(schema);
  const props = (doc.properties ?? {}) as Record<string, Json>;
  const required = new Set((doc.required ?? []) as string[]);
  return Object.entries(props).map(([name, s]) => ({
    name,
    in: "query",
    required: required.has(name),
    description: s.description,
    schema: s,
  }));
}

/** The `/v1/stream` parameters: each subscription field repeatable (once for all series, or once per series). */
function streamParameters(): Json[] {
  const each = queryParameters(StreamSubscription).map((p) => ({
    ...p,
    description: `${p.description}; repeat once per series (in order), or give once for every series`,
    style: "form",
    explode: true,
    schema: { type: "array", items: p.schema, minItems: 1, maxItems: MAX_STREAM_SERIES },
  }));
  return [
    ...each,
    {
      name: "last_event_id",
      in: "query",
      required: false,
      description: "resume after this event id (as the Last-Event-ID header; for clients that cannot set headers)",
      schema: { type: "string" },
    },
    {
      name: "Last-Event-ID",
      in: "header",
      required: false,
      description: "resume: the closed candles after this id (sent by EventSource on reconnect) are replayed first",
      schema: { type: "string" },
    },
  ];
}

const idParameter = (): Json => ({
  name: "id",
  in: "path",
  required: true,
  description: "series id",
  schema: schemaOf(SeriesId),
});

const error = (description: string): Json => ({
  description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
});

const jsonOk = (description: string, schema: Json = { type: "object" }): Json => ({
  description,
  content: { "application/json": { schema } },
});

/** A paged list of one symbol's rows: `{exchange, symbol, ...fields, [list]: [item], next}`, or CSV. */
const pagedRows = (description: string, page: { fields: Json; list: string; item: Json; csv: string }): Json => ({
  description,
  content: {
    "application/json": {
      schema: {
        type: "object",
        properties: {
          exchange: { type: "string" },
          symbol: { type: "string" },
          ...page.fields,
          [page.list]: { type: "array", items: page.item },
          next: { type: ["string", "null"], format: "uri" },
        },
      },
    },
    "text/csv": { schema: { type: "string", description: page.csv } },
  },
});

const str = (description: string): Json => ({ type: "string", description });
const int = (description: string): Json => ({ type: "integer", description });
const time = (description: string): Json => ({ type: ["string", "null"], format: "date-time", description });
const obj = (properties: Json): Json => ({ type: "object", required: Object.keys(properties), properties });

/** The items of `GET /v1/series`: candle series, funding histories, open-interest histories. */
const SERIES_SCHEMAS: Json = {
  Series: obj({
    id: int("series id"),
    exchange: str("ccxt exchange id"),
    symbol: str("unified symbol"),
    timeframe: str("stored timeframe"),
    market_type: str("spot, swap, future or option, from the symbol"),
    price: str("trade, mark, index or premium"),
    active: { type: "boolean" },
    state: str("ingest state: new, backfilling, live, failed, stopped, invalid, ..."),
    state_reason: { type: ["string", "null"] },
    since: { type: ["string", "null"], description: "the series' own history start; null: BACKFILL_SINCE" },
    first: time("open time of the first stored candle"),
    last: time("open time of the last stored candle"),
    count: int("stored candles"),
    gaps: obj({ missing: int("missing candles"), ranges: int("gap ranges") }),
    holes: obj({ ranges: int("confirmed hole ranges"), ms: int("milliseconds they cover") }),
    lag_s: { type: ["integer", "null"], description: "seconds since the close of the last candle" },
    live_source: {
      type: "string",
      enum: ["ws", "rest"],
      description: "where its live candles come from now: a WebSocket stream (LIVE_MODE) or the REST live tick",
    },
  }),
  FundingHistory: obj({
    exchange: str("ccxt exchange id"),
    symbol: str("perpetual"),
    count: int("stored funding rows"),
    first: time("first funding time"),
    last: time("last funding time"),
    interval_ms: { type: ["integer", "null"], description: "funding interval in force (most common spacing)" },
    gaps: int("funding times missing between first and last, not confirmed as holes"),
    holes: int("funding times confirmed as never published"),
    backfilled: { type: "boolean", description: "the backfill reached the present (funding_checkpoints)" },
  }),
  OpenInterestHistory: obj({
    exchange: str("ccxt exchange id"),
    symbol: str("perpetual"),
    period: str("open-interest period (OPEN_INTEREST)"),
    first: time("first period start"),
    last: time("last period start"),
    count: int("stored rows"),
    missing: int("period starts missing between first and last (holes included)"),
    holes: int("of those, the ones gap-checked and still missing: the exchange's holes"),
    backfilled: { type: "boolean", description: "the first backfill finished (open_interest_progress)" },
    lag_s: { type: ["integer", "null"], description: "seconds since the end of the last period" },
  }),
};

const listOf = (name: string): Json => ({ type: "array", items: { $ref: `#/components/schemas/${name}` } });

/** Builds the OpenAPI 3.1 document; `serverUrl` goes into `servers`. */
export function openApiDocument(serverUrl?: string): Json {
  const auth = [{ bearer: [] }];
  const mutatingErrors = {
    "400": error("Invalid body or parameters; `details` names each parameter and problem"),
    "401": error("Missing or wrong bearer token"),
    "403": error("API_TOKEN is not configured: mutating routes are disabled"),
    "404": error("Unknown series or market"),
    "409": error("Conflict reported by the ingest engine"),
    "413": error("Body larger than 16 KiB"),
    "415": error("Content type is not application/json"),
    "503": error("The ingest engine is not running or the database is unavailable"),
  };
  return {
    openapi: "3.1.0",
    info: {
      title: "Candlekeep API",
      version: "1",
      description:
        "OHLCV candles collected through ccxt. Times are ISO-8601 UTC in responses; requests accept ISO-8601 or epoch milliseconds.",
    },
    servers: serverUrl ? [{ url: serverUrl }] : [],
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", description: "API_TOKEN" } },
      schemas: {
        ...SERIES_SCHEMAS,
        Error: {
          type: "object",
          required: ["error"],
          properties: {
            error: { type: "string" },
            details: {
              type: "array",
              items: {
                type: "object",
                properties: { parameter: { type: "string" }, problem: { type: "string" } },
              },
            },
          },
        },
        Candle: {
          type: "object",
          required: ["time", "open", "high", "low", "close", "volume"],
          properties: {
            time: { type: "string", format: "date-time", description: "open time, UTC" },
            open: { type: ["number", "string"], description: "shortest exact decimal; a string with decimals=string" },
            high: { type: ["number", "string"], description: "shortest exact decimal; a string with decimals=string" },
            low: { type: ["number", "string"], description: "shortest exact decimal; a string with decimals=string" },
            close: { type: ["number", "string"], description: "shortest exact decimal; a string with decimals=string" },
            volume: {
              type: ["number", "string"],
              description: "shortest exact decimal; a string with decimals=string",
            },
            partial: {
              type: "boolean",
              description:
                "only with complete=false: the candle is still forming, or the resampled bucket misses stored candles outside confirmed holes (absent when complete)",
            },
          },
        },
      },
    },
    paths: {
      "/v1/candles": {
        get: {
          summary: "Candles of one series",
          description: `The newest (order=desc, default) or oldest (order=asc) \`limit\` candles with open time ` +
            `in [start, end), oldest first. \`next\` (and the CSV/ccxt \`Link\` header) is the URL of the following ` +
            `page (desc: older, end = this page's first time; asc: newer, start = the first time after the page), ` +
            `null on the last page: following it walks the range with no overlap or loss. A timeframe that is a whole ` +
            `multiple of a stored one, or 1M, is resampled in SQL (UTC buckets, weeks from Monday, calendar months). ` +
            `Only closed, complete candles unless complete=false. Pages hold at most ` +
            `${MAX_LIMIT} candles, and a resampled page reads at most ${MAX_SOURCE_ROWS} stored candles.`,
          parameters: queryParameters(CandlesQuery),
          responses: {
            "200": pagedRows("A page of candles", {
              fields: {
                timeframe: { type: "string" },
                source_timeframe: {
                  type: "string",
                  description:
                    "The timeframe read: the stored one, or 1h / 1d when the page came from the hourly or daily rollup",
                },
                stored_timeframe: { type: "string", description: "The timeframe stored for the series" },
              },
              list: "candles",
              item: { $ref: "#/components/schemas/Candle" },
              csv: "time,open,high,low,close,volume (,partial with complete=false)",
            }),
            "304": { description: "Not modified: If-None-Match matches the ETag of a closed, complete range" },
            "400": error("Invalid parameter"),
            "404": error("Unknown series, or timeframe neither stored nor derivable; the message names what exists"),
          },
        },
      },
      "/v1/open-interest": {
        get: {
          summary: "Open-interest history of one perpetual",
          description: "Stored open interest (OPEN_INTEREST) with time in [start, end), oldest first, paged like " +
            "/v1/candles (desc: the newest `limit` rows, next = older page; asc: the oldest, next = newer page; " +
            "CSV: a Link header). amount (contracts, base units) and value (quote; null where the exchange does " +
            "not give it) are the exchange's exact decimals.",
          parameters: queryParameters(OpenInterestQuery),
          responses: {
            "200": pagedRows("A page of open interest", {
              fields: { period: { type: "string" } },
              list: "open_interest",
              item: {
                type: "object",
                properties: {
                  time: { type: "string", format: "date-time" },
                  amount: { type: ["number", "string"], description: "contracts (base units), exact" },
                  value: { type: ["number", "string", "null"], description: "in quote, exact; null if not given" },
                },
              },
              csv: "time,amount,value",
            }),
            "400": error("Invalid parameter"),
            "404": error("No open interest stored for this exchange, symbol and period; the message names what is"),
          },
        },
      },
      "/v1/export": {
        get: {
          summary: "One series as a file: Parquet, Feather, CSV or freqtrade JSON",
          description: "Complete, closed candles with open time in [start, end), oldest first, streamed as one " +
            "attachment named as freqtrade expects (`BTC_USDT-1h.feather`, futures `BTC_USDT_USDT-1h-futures.feather`). " +
            "A stored timeframe never includes the forming candle; a resampled one only buckets with every stored " +
            "candle present.",
          parameters: queryParameters(ExportQuery),
          responses: {
            "200": {
              description: "The file (Content-Disposition: attachment; filename=...)",
              content: {
                "application/vnd.apache.parquet": {
                  schema: { type: "string", format: "binary", description: "time (timestamp ms UTC), open..volume" },
                },
                "application/vnd.apache.arrow.file": {
                  schema: { type: "string", format: "binary", description: "date (timestamp ms UTC), open..volume" },
                },
                "text/csv": { schema: { type: "string", description: "time,open,high,low,close,volume" } },
                "application/json": {
                  schema: {
                    type: "array",
                    items: { type: "array", items: { type: "number" }, minItems: 6, maxItems: 6 },
                  },
                },
              },
            },
            "400": error("Invalid parameter"),
            "404": error("Unknown series, or timeframe neither stored nor derivable; the message names what exists"),
            "503": error("Too many pages and exports at once; retry after Retry-After"),
          },
        },
      },
      "/v1/stream": {
        get: {
          summary: "Live candles of one or more series as Server-Sent Events",
          description:
            "`candle` events with data `{exchange, symbol, timeframe, price, time, open, high, low, close, " +
            "volume, closed}`: the last closed candle of each series first, then updates of the forming candle " +
            "(`closed: false`, no id) and each closed candle once (`closed: true`, with an id). Reconnecting with " +
            "`Last-Event-ID` replays every closed candle after it from the database, so nothing is lost. A comment " +
            "line every 15 s keeps proxies from closing the stream; a client that leaves over 1 MiB unread is dropped.",
          parameters: streamParameters(),
          responses: {
            "200": {
              description: "An event stream (text/event-stream) that stays open",
              content: { "text/event-stream": { schema: { type: "string" } } },
            },
            "400": error("Invalid parameter, or a Last-Event-ID that does not fit these series"),
            "404": error("Unknown series, or timeframe neither stored nor derivable; the message names what exists"),
          },
        },
      },
      "/v1/funding-rates": {
        get: {
          summary: "Funding rates of one perpetual",
          description:
            "The newest (order=desc, default) or oldest (order=asc) `limit` funding rows with funding time " +
            "in [start, end), oldest first; `next` (and the CSV `Link` header) is the following page, null on the last. " +
            "Rates and mark prices are the exchange's decimals exactly.",
          parameters: queryParameters(FundingQuery),
          responses: {
            "200": pagedRows("A page of funding rates", {
              fields: {},
              list: "funding_rates",
              item: {
                type: "object",
                required: ["time", "rate"],
                properties: {
                  time: { type: "string", format: "date-time", description: "funding time, UTC" },
                  rate: { type: ["number", "string"], description: "exact decimal; a string with decimals=string" },
                  mark_price: {
                    type: ["number", "string"],
                    description: "mark price at funding time, when the exchange gives one",
                  },
                },
              },
              csv: "time,rate,mark_price",
            }),
            "400": error("Invalid parameter"),
            "404": error("No funding rates stored for this exchange and symbol; the message names what is stored"),
          },
        },
      },
      "/v1/series": {
        get: {
          summary: "Every series with coverage, gaps, holes, lag and state; funding and open-interest histories",
          responses: {
            "200": jsonOk(
              "Series overview",
              obj({
                series: listOf("Series"),
                funding_rates: listOf("FundingHistory"),
                open_interest: listOf("OpenInterestHistory"),
              }),
            ),
          },
        },
        post: {
          summary: "Add a series to collect",
          security: auth,
          requestBody: { required: true, content: { "application/json": { schema: schemaOf(AddSeriesBody) } } },
          responses: {
            "201": jsonOk("Created"),
            "200": jsonOk("Already existed"),
            ...mutatingErrors,
          },
        },
      },
      "/v1/series/{id}": {
        delete: {
          summary: "Stop updating a series (its data stays unless purge=true)",
          security: auth,
          parameters: [idParameter(), ...queryParameters(RemoveSeriesQuery)],
          responses: { "200": jsonOk("Removed"), ...mutatingErrors },
        },
      },
      "/v1/series/{id}/gaps": {
        get: {
          summary: "Gap ranges and confirmed holes of one series (at most 10000 each)",
          parameters: [idParameter()],
          responses: { "200": jsonOk("Gaps and holes"), "400": error("Invalid id"), "404": error("Unknown series") },
        },
      },
      "/health": { get: { summary: "Liveness", responses: { "200": jsonOk("Alive") } } },
      "/ready": {
        get: {
          summary: "Readiness: database reachable, migrations applied, exchanges answering",
          responses: {
            "200": jsonOk("Ready, or degraded: some exchanges unreachable for 60 s or more (named, with the reason)"),
            "503": jsonOk("Not ready: database down, migrations missing, or every exchange unreachable for 60 s"),
          },
        },
      },
      "/metrics": {
        get: {
          summary: "Prometheus metrics",
          responses: { "200": { description: "Text format 0.0.4", content: { "text/plain": {} } } },
        },
      },
      "/openapi.json": { get: { summary: "This document", responses: { "200": jsonOk("OpenAPI 3.1") } } },
      "/": {
        get: { summary: "Dashboard", responses: { "200": { description: "HTML", content: { "text/html": {} } } } },
      },
    },
  };
}
