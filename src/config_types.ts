import type { LiveConfig } from "./config_live.ts";
import type { ArchiveConfig } from "./config_archive.ts";
/** Where a backfill starts: a fixed instant, a duration before the run, or the exchange's first candle. */
export type BackfillSince =
  | { kind: "date"; ms: number }
  | { kind: "duration"; ms: number }
  | { kind: "earliest" };

/** Log levels accepted by `LOG_LEVEL`. */
export type LogLevel =
  | "trace"
  | "debug"
  | "info"
  | "warning"
  | "error"
  | "fatal";

/** Limits on API clients: timeouts and connection cap of the TCP front, pages served at once. */
export interface HttpLimits {
  /** A request head must arrive whole within this many ms (`HTTP_HEADER_TIMEOUT`). */
  headerTimeoutMs: number;
  /** A request body must arrive whole within this many ms of its head (`HTTP_BODY_TIMEOUT`). */
  bodyTimeoutMs: number;
  /** An idle keep-alive connection is closed after this many ms (`HTTP_IDLE_TIMEOUT`). */
  idleTimeoutMs: number;
  /** Open client connections at most (`HTTP_MAX_CONNECTIONS`). */
  maxConnections: number;
  /** Candle pages served at once, at most (`HTTP_MAX_PAGES`; also capped by the pool size). */
  maxPages: number;
  /** Build absolute `next`/`Link` URLs from `X-Forwarded-Proto`/`-Host` (`API_TRUSTED_PROXY`); else relative. */
  trustedProxy?: boolean;
  /** Origins allowed to read the API from a browser (`API_CORS_ORIGINS`; `*` for any); empty: CORS off. */
  corsOrigins?: string[];
}

/** The validated configuration, loaded once in `main.ts` and passed down. */
export interface Config {
  /** postgres connection string; absent means the embedded PostgreSQL. */
  databaseUrl?: string;
  /** Folder for the embedded database and other local state. */
  dataDir: string;
  /** ccxt exchange ids, e.g. `["binance"]`. */
  exchanges: string[];
  /** Symbols in ccxt's unified `BASE/QUOTE` form. */
  symbols: string[];
  /** Also take the top N markets by 24h quote volume (0 = off). */
  topSymbols: number;
  /** Quote currency for the top-N selection. */
  quote: string;
  /** ccxt timeframes, e.g. `["1m", "1h"]`. */
  timeframes: string[];
  /** Where backfills start. */
  backfillSince: BackfillSince;
  /** Options deep-merged into each ccxt constructor, keyed by exchange id. */
  ccxtConfig: Record<string, Record<string, unknown>>;
  /** API listen host. */
  apiHost: string;
  /** API listen port. */
  apiPort: number;
  /** Bearer token for mutating API routes; absent disables them. */
  apiToken?: string;
  /** Minimum log level. */
  logLevel: LogLevel;
  /** `auto` (pretty on a terminal, JSON otherwise), `json` lines, or `pretty`. */
  logFormat: "auto" | "json" | "pretty";
  /** Cron expression of the live update tick. */
  liveSchedule: string;
  /** Cron expression of the gap repair run. */
  repairSchedule: string;
  /** TimescaleDB mode. */
  timescaledb: "auto" | "require" | "off";
  /** Compress chunks older than this many milliseconds. */
  compressAfterMs: number;
  /** Drop chunks older than this many milliseconds (TimescaleDB only). */
  retentionMs?: number;
  /** ccxt market type to load, e.g. `spot`. */
  marketType: "spot" | "margin" | "swap" | "future" | "option";
  /** Klines stored for contract series (`CANDLE_PRICES`; default trade only). Spot series store trade. */
  candlePrices?: ("trade" | "mark" | "index" | "premium")[];
  /** Funding-rate history of perpetuals (`FUNDING_RATES`; `auto`: on when a perpetual symbol is configured). */
  fundingRates?: "auto" | boolean;
  /** Deep history from the exchange's public archive (`ARCHIVE`, `ARCHIVE_URL`); default off. */
  archive?: ArchiveConfig;
  /** How live candles arrive (`LIVE_MODE`, `LIVE_REST_CHECK`, `LIVE_WS_SILENCE`); default REST. */
  live?: LiveConfig;
  /** Open-interest period stored per perpetual (`OPEN_INTEREST`), or `off` (default). */
  openInterest?: "off" | "5m" | "15m" | "30m" | "1h" | "2h" | "4h" | "6h" | "12h" | "1d";
  /** Series of one exchange backfilled at once. */
  backfillConcurrency: number;
  /** How long a series lease (and an instance heartbeat) lives without renewal, in ms. */
  leaseTtlMs: number;
  /** Maximum connections in the postgres pool. */
  dbPoolMax: number;
  /** On a Deploy-style host: how long one cron run may keep starting exchange requests, in ms. */
  tickBudgetMs: number;
  /** This instance's lease identity; by default derived from the host name and API port. */
  instanceId?: string;
  /** Limits of the HTTP front (see the README's Security section). */
  http: HttpLimits;
  /** True when `DENO_DEPLOY` is set: crons at top level, bounded work per run, no files. */
  deploy: boolean;
}
