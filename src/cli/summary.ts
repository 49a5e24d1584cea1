/**
 * The short, human summary a person reads in the first minute of `deno task start`: where the
 * dashboard, API and data are, what is collected, and how far the backfill has come.
 *
 * @module
 */
import type { Config } from "../config_types.ts";
import type { Sql } from "../db/client.ts";

/** Where the service runs, for {@linkcode startSummary}. */
export interface ServiceWhere {
  /** The port the API listens on (the real one when `API_PORT=0`). */
  port: number;
  /** The database, as `DatabaseHandle.where` describes it. */
  database: string;
}

/** A host people can type: a wildcard address becomes 127.0.0.1. */
function displayHost(host: string): string {
  if (host === "0.0.0.0" || host === "::" || host === "[::]") return "127.0.0.1";
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/** How `BACKFILL_SINCE` reads in a sentence. */
export function describeSince(config: Config): string {
  const s = config.backfillSince;
  if (s.kind === "earliest") return "from the first candle each exchange has";
  if (s.kind === "date") return `from ${new Date(s.ms).toISOString()}`;
  const days = s.ms / 86_400_000;
  return Number.isInteger(days) ? `from ${days} day${days === 1 ? "" : "s"} back` : `from ${s.ms / 3_600_000} h back`;
}

/** The lines printed once the service serves: dashboard and API, database, series. */
export function startSummary(config: Config, where: ServiceWhere): string[] {
  const base = `http://${displayHost(config.apiHost)}:${where.port}`;
  const lines = [
    `Dashboard ${base}/  ·  API ${base}/v1/candles  ·  OpenAPI ${base}/openapi.json`,
    `Database: ${where.database}`,
  ];
  const symbols = [...config.symbols];
  if (config.topSymbols > 0) symbols.push(`the top ${config.topSymbols} ${config.quote} markets`);
  if (symbols.length === 0) {
    lines.push("Series: none configured (SYMBOLS=none); add one with POST /v1/series or set SYMBOLS");
  } else {
    const shown = symbols.length > 6 ? [...symbols.slice(0, 6), `${symbols.length - 6} more`] : symbols;
    lines.push(
      `Series: ${config.exchanges.join(", ")} × ${shown.join(", ")} × ${config.timeframes.join(", ")}, ${
        describeSince(config)
      }`,
    );
  }
  return lines;
}

/** How far one series has come: its stored range and state. */
export interface SeriesFrontier {
  exchange: string;
  symbol: string;
  timeframe: string;
  /** The price its candles are of (`trade`, or a contract's mark, index, premium). */
  price?: string;
  state: string;
  /** Open time of the first stored candle (epoch ms), null when empty. */
  firstMs: number | null;
  /** Open time of the last stored candle (epoch ms), null when empty. */
  lastMs: number | null;
}

/**
 * First and last stored candle and state of every active series: two index look-ups per
 * series (no row counting), cheap enough to run every few seconds on a large table.
 */
export async function seriesFrontier(sql: Sql): Promise<SeriesFrontier[]> {
  const rows = await sql<
    {
      exchange: string;
      symbol: string;
      timeframe: string;
      price: string;
      state: string;
      first_ms: number | null;
      last_ms: number | null;
    }[]
  >`
    select s.exchange, s.symbol, s.timeframe, s.price, s.state,
           (extract(epoch from (select c.ts from candles c where c.series_id = s.id order by c.ts limit 1)) * 1000)::float8
             as first_ms,
           (extract(epoch from (select c.ts from candles c where c.series_id = s.id order by c.ts desc limit 1)) * 1000)::float8
             as last_ms
    from series s where s.active order by s.id`;
  return rows.map((r) => ({
    exchange: r.exchange,
    symbol: r.symbol,
    timeframe: r.timeframe,
    price: r.price,
    state: r.state,
    firstMs: r.first_ms,
    lastMs: r.last_ms,
  }));
}

/** `BTC/USDT 1m`, or `BTC/USDT:USDT 1m mark` for a contract's other prices. */
function label(f: SeriesFrontier): string {
  return `${f.symbol} ${f.timeframe}${f.price && f.price !== "trade" ? ` ${f.price}` : ""}`;
}

/** Share (0 to 1) of a series' history from its first stored candle to now that is stored. */
function share(f: SeriesFrontier, nowMs: number): number {
  if (f.state === "live") return 1;
  if (f.firstMs === null || f.lastMs === null || nowMs <= f.firstMs) return 0;
  return Math.max(0, Math.min(1, (f.lastMs - f.firstMs) / (nowMs - f.firstMs)));
}

/**
 * One progress line, or null when there is nothing to report (no series). `done` is true when
 * every series is live: the caller prints that line once and stops reporting.
 */
export function progressLine(frontier: SeriesFrontier[], nowMs: number): { line: string; done: boolean } | null {
  if (frontier.length === 0) return null;
  const live = frontier.filter((f) => f.state === "live").length;
  const stuck = frontier.filter((f) => f.state === "failed" || f.state === "invalid");
  if (live + stuck.length === frontier.length) {
    if (stuck.length === 0) return { line: `All ${live} series are backfilled and live`, done: true };
    const names = stuck.slice(0, 4).map((f) => `${label(f)} (${f.state})`).join(", ");
    return {
      line: `${live} of ${frontier.length} series are backfilled and live; ${names}${
        stuck.length > 4 ? ` and ${stuck.length - 4} more` : ""
      }: see GET /v1/series for the reason`,
      done: true,
    };
  }
  const overall = frontier.reduce((sum, f) => sum + share(f, nowMs), 0) / frontier.length;
  const pending = frontier.filter((f) => f.state !== "live" && !stuck.includes(f));
  const detail = pending.length <= 4
    ? `: ${
      pending.map((f) =>
        `${label(f)} ${Math.floor(share(f, nowMs) * 100)}%${
          f.lastMs === null ? "" : ` (at ${new Date(f.lastMs).toISOString().slice(0, 16)}Z)`
        }`
      ).join(", ")
    }`
    : "";
  return {
    line: `Backfill ${Math.floor(overall * 100)}%: ${live} of ${frontier.length} series live${detail}`,
    done: false,
  };
}
