/**
 * The OpenAPI schemas of `GET /v1/series` items (candle series, funding histories,
 * open-interest histories), used by `openapi.ts`.
 *
 * @module
 */

type Json = Record<string, unknown>;

const str = (description: string): Json => ({ type: "string", description });
const int = (description: string): Json => ({ type: "integer", description });
const time = (description: string): Json => ({ type: ["string", "null"], format: "date-time", description });
/** An object schema whose every property is required. */
export const obj = (properties: Json): Json => ({ type: "object", required: Object.keys(properties), properties });

/** The items of `GET /v1/series`: candle series, funding histories, open-interest histories. */
export const SERIES_SCHEMAS: Json = {
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
    holes: int("confirmed holes: points the exchange was asked for and did not have (open_interest_holes)"),
    backfilled: { type: "boolean", description: "the first backfill finished (open_interest_progress)" },
    lag_s: { type: ["integer", "null"], description: "seconds since the end of the last period" },
  }),
};
