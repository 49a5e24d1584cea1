import { z } from "zod";
import type { Config } from "./config_types.ts";
import { isTimeframe } from "./timeframe.ts";
import { databaseUrlProblem } from "./config_redact.ts";
import { API_WEB_SCHEMA, API_WEB_VARIABLES, isCron, parseBackfillSince } from "./config_values.ts";
import { parseDuration, splitList, symbolList } from "./config_values.ts";
import { LIVE_SCHEMA, LIVE_VARIABLES, liveConfig } from "./config_live.ts";
import { DERIVATIVES_SCHEMA, DERIVATIVES_VARIABLES } from "./config_derivatives.ts";
import { ARCHIVE_SCHEMA, ARCHIVE_VARIABLES, archiveConfig } from "./config_archive.ts";

export type { BackfillSince, Config, LogLevel } from "./config_types.ts";

/** Every environment variable Candlekeep reads, in documentation order. */
export const CONFIG_VARIABLES = [
  "DATABASE_URL",
  "DATA_DIR",
  "EXCHANGES",
  "SYMBOLS",
  "TOP_SYMBOLS",
  "QUOTE",
  "TIMEFRAMES",
  "BACKFILL_SINCE",
  ...ARCHIVE_VARIABLES,
  "CCXT_CONFIG",
  "API_HOST",
  "API_PORT",
  "API_TOKEN",
  "LOG_LEVEL",
  "LOG_FORMAT",
  "LIVE_SCHEDULE",
  ...LIVE_VARIABLES,
  "REPAIR_SCHEDULE",
  "TIMESCALEDB",
  "COMPRESS_AFTER",
  "RETENTION",
  "MARKET_TYPE",
  ...DERIVATIVES_VARIABLES,
  "BACKFILL_CONCURRENCY",
  "LEASE_TTL",
  "DB_POOL_MAX",
  "TICK_BUDGET",
  "INSTANCE_ID",
  "HTTP_HEADER_TIMEOUT",
  "HTTP_BODY_TIMEOUT",
  "HTTP_IDLE_TIMEOUT",
  "HTTP_MAX_CONNECTIONS",
  "HTTP_MAX_PAGES",
  ...API_WEB_VARIABLES,
  "DENO_DEPLOY",
] as const;

/** Name of a configuration variable. */
export type ConfigVariable = typeof CONFIG_VARIABLES[number];

/** One problem found in the configuration. */
export interface ConfigIssue {
  variable: string;
  /** The value as given, or undefined when unset or when it is secret (see `hidden`). */
  value: string | undefined;
  expected: string;
  /** True for DATABASE_URL, CCXT_CONFIG and API_TOKEN, whose values are never shown. */
  hidden?: boolean;
}

/** Variables whose value may hold a secret: a problem with them never shows the value. */
export const SECRET_VARIABLES: ReadonlySet<string> = new Set(["DATABASE_URL", "CCXT_CONFIG", "API_TOKEN"]);

/** Thrown by {@linkcode loadConfig} when one or more variables are invalid. */
export class ConfigError extends Error {
  /** Every invalid variable with its (masked) value and what was expected. */
  readonly issues: ConfigIssue[];
  /** Creates the error from its issues. */
  constructor(issues: ConfigIssue[]) {
    const lines = issues.map((i) =>
      i.hidden
        ? `${i.variable} (value not shown): ${i.expected}`
        : `${i.variable}=${i.value === undefined ? "(unset)" : JSON.stringify(i.value)}: ${i.expected}`
    );
    // One bad variable is one line; several are listed one per line.
    super(
      issues.length === 1
        ? `Cannot start: invalid configuration: ${lines[0]}`
        : `Cannot start: invalid configuration (${issues.length} variables):\n${lines.map((l) => `  ${l}`).join("\n")}`,
    );
    this.name = "ConfigError";
    this.issues = issues;
  }
}

export {
  isCron,
  normalizeSymbol,
  parseBackfillSince,
  parseDuration,
  resolveSince,
  splitList,
} from "./config_values.ts";
export { databaseUrlProblem, maskSecrets, maskUrl, redactConfig } from "./config_redact.ts";

const MARKET_TYPES = ["spot", "margin", "swap", "future", "option"] as const;
const LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;

type Env = Partial<Record<ConfigVariable, string>>;

/** What is collected when neither `SYMBOLS` nor `TOP_SYMBOLS` is set (on `binance`, `1m`, 30 days back). */
export const DEFAULT_SYMBOLS: readonly string[] = Object.freeze(["BTC/USDT", "ETH/USDT"]);

/** Builds the zod schema over the raw environment. */
function schema() {
  const opt = (s: z.ZodString) => s.optional();
  const list = (
    what: string,
    check: (item: string) => boolean,
    fallback: string,
  ) =>
    z.string().default(fallback).transform((text, ctx) => {
      const items = splitList(text);
      const bad = items.filter((i) => !check(i));
      if (bad.length > 0) {
        ctx.addIssue({
          code: "custom",
          message: `${what}; not valid: ${bad.join(", ")}`,
        });
        return z.NEVER;
      }
      return [...new Set(items)];
    });
  const int = (min: number, max: number, fallback: number) =>
    z.string().default(String(fallback)).transform((text, ctx) => {
      const n = Number(text.trim());
      if (!/^\s*[0-9]+\s*$/.test(text) || n < min || n > max) {
        ctx.addIssue({
          code: "custom",
          message: `an integer from ${min} to ${max}`,
        });
        return z.NEVER;
      }
      return n;
    });
  const duration = (what: string, examples = "12h, 7d or 2w") =>
    z.string().transform((text, ctx) => {
      const ms = parseDuration(text);
      if (ms === null) {
        ctx.addIssue({
          code: "custom",
          message: `${what}: a duration such as ${examples}`,
        });
        return z.NEVER;
      }
      return ms;
    });
  const httpTimeout = (what: string, fallback: number) =>
    duration(what, "10s, 30s or 2m").default(fallback).refine(
      (ms) => ms >= 1_000 && ms <= 3_600_000,
      { message: "from 1s to 1h" },
    );
  const cron = (fallback: string) =>
    z.string().default(fallback).refine(isCron, {
      message: "a five-field cron expression such as '* * * * *' (minute hour day month weekday)",
    });
  const oneOf = <T extends readonly [string, ...string[]]>(
    values: T,
    fallback: T[number],
  ) =>
    z.string().default(fallback).transform((t) => t.trim().toLowerCase()).pipe(
      z.enum(values, { message: `one of ${values.join(", ")}` }),
    );

  return z.object({
    DATABASE_URL: opt(z.string()).superRefine((v, ctx) => {
      const problem = v === undefined || v.trim() === "" ? null : databaseUrlProblem(v);
      if (problem !== null) ctx.addIssue({ code: "custom", message: problem });
    }),
    DATA_DIR: z.string().default("./data").refine((v) => v.trim() !== "", {
      message: "a folder path",
    }),
    EXCHANGES: list(
      "comma list of ccxt exchange ids (lowercase letters and digits)",
      (i) => /^[a-z][a-z0-9]*$/.test(i),
      "binance",
    ).refine((l) => l.length > 0, { message: "at least one exchange id" }),
    SYMBOLS: z.string().optional().transform((text, ctx) => {
      if (text === undefined) return undefined;
      if (text.trim().toLowerCase() === "none") return [];
      const parsed = symbolList(text);
      if (typeof parsed === "string") {
        ctx.addIssue({
          code: "custom",
          message: `comma list of symbols such as BTC/USDT,ETH/USDT, or none; ${parsed}`,
        });
        return z.NEVER;
      }
      return parsed;
    }),
    TOP_SYMBOLS: z.string().optional().transform((text, ctx): number | string[] | undefined => {
      if (text === undefined) return undefined;
      if (/^\s*[0-9]+\s*$/.test(text)) {
        const n = Number(text);
        if (n <= 1000) return n;
      }
      const parsed = /^\s*[0-9]+\s*$/.test(text) ? "more than 1000" : symbolList(text);
      if (typeof parsed === "string") {
        ctx.addIssue({
          code: "custom",
          message:
            `a number from 0 to 1000 (the top N markets by 24h quote volume) or a comma list of symbols such as BTC/USDT,ETH/USDT; ${parsed}`,
        });
        return z.NEVER;
      }
      return parsed;
    }),
    QUOTE: z.string().default("USDT").transform((t) => t.trim().toUpperCase())
      .refine((t) => /^[A-Z0-9]{1,20}$/.test(t), { message: "a currency code such as USDT" }),
    TIMEFRAMES: list(
      "comma list of timeframes such as 1m,5m,1h,1d",
      isTimeframe,
      "1m",
    ).refine((l) => l.length > 0, { message: "at least one timeframe" }),
    BACKFILL_SINCE: z.string().default("30d").transform((text, ctx) => {
      const since = parseBackfillSince(text);
      if (since === null) {
        ctx.addIssue({
          code: "custom",
          message:
            "an ISO date (2024-01-01 or 2024-01-01T00:00:00Z), a duration back from now (30d, 12h, 2w) or 'earliest'",
        });
        return z.NEVER;
      }
      return since;
    }),
    CCXT_CONFIG: z.string().default("{}").transform((text, ctx) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (e) {
        // The parser's message may quote the text (and the secrets in it): keep the position only.
        const at = /position ([0-9]+)/.exec((e as Error).message)?.[1];
        ctx.addIssue({
          code: "custom",
          message: `a JSON object keyed by exchange id; it is not valid JSON${at ? ` (error at character ${at})` : ""}`,
        });
        return z.NEVER;
      }
      const isObject = (v: unknown): v is Record<string, unknown> =>
        v !== null && typeof v === "object" && !Array.isArray(v);
      if (!isObject(parsed) || !Object.values(parsed).every(isObject)) {
        ctx.addIssue({
          code: "custom",
          message: 'a JSON object keyed by exchange id whose values are objects, e.g. {"binance":{"timeout":10000}}',
        });
        return z.NEVER;
      }
      return parsed as Record<string, Record<string, unknown>>;
    }),
    API_HOST: z.string().default("127.0.0.1").refine((v) => /^[A-Za-z0-9.:\-\[\]]+$/.test(v), {
      message: "a host name or IP address such as 127.0.0.1 or 0.0.0.0",
    }),
    API_PORT: int(0, 65535, 8000),
    API_TOKEN: opt(z.string()).refine((v) => v === undefined || v === "" || v.length >= 16, {
      message: "at least 16 characters (or unset to disable the mutating routes)",
    }),
    LOG_LEVEL: oneOf(LOG_LEVELS, "info"),
    LOG_FORMAT: oneOf(["auto", "json", "pretty"] as const, "auto"),
    LIVE_SCHEDULE: cron("* * * * *"),
    REPAIR_SCHEDULE: cron("17 * * * *"),
    TIMESCALEDB: oneOf(["auto", "require", "off"] as const, "auto"),
    COMPRESS_AFTER: duration("how old a chunk must be to be compressed")
      .default(7 * 86_400_000),
    RETENTION: duration("how long candles are kept").optional(),
    MARKET_TYPE: oneOf(MARKET_TYPES, "spot"),
    BACKFILL_CONCURRENCY: int(1, 64, 4),
    LEASE_TTL: duration("how long a series lease lives without renewal").default(30_000).refine(
      (ms) => ms >= 3000,
      { message: "at least 3s" },
    ),
    DB_POOL_MAX: int(2, 200, 10),
    TICK_BUDGET: duration("how long one cron run may keep starting exchange requests", "5s, 30s or 2m").default(5_000)
      .refine(
        (ms) => ms <= 15 * 60_000,
        { message: "at most 15m" },
      ),
    INSTANCE_ID: opt(z.string()).refine((v) => v === undefined || /^[\w.:@-]{1,100}$/.test(v.trim()), {
      message: "1 to 100 letters, digits or . : @ _ -",
    }),
    HTTP_HEADER_TIMEOUT: httpTimeout("how long a client may take to send a request head", 10_000),
    HTTP_BODY_TIMEOUT: httpTimeout("how long a client may take to send a request body", 30_000),
    HTTP_IDLE_TIMEOUT: httpTimeout("how long an idle keep-alive connection stays open", 30_000),
    HTTP_MAX_CONNECTIONS: int(1, 100_000, 256),
    HTTP_MAX_PAGES: int(1, 200, 8),
    ...API_WEB_SCHEMA,
    ...DERIVATIVES_SCHEMA,
    ...LIVE_SCHEMA,
    ...ARCHIVE_SCHEMA,
    DENO_DEPLOY: opt(z.string()),
  }).superRefine((v, ctx) => {
    if (v.DENO_DEPLOY !== undefined && !v.DATABASE_URL?.trim()) {
      ctx.addIssue({
        code: "custom",
        path: ["DATABASE_URL"],
        message:
          "a postgres:// connection URL: required when DENO_DEPLOY is set (a Deploy-style host runs no embedded database and writes no files)",
      });
    }
  });
}

/** Reads every known variable from `Deno.env` (only those, so `--allow-env` can list them). */
export function readEnv(): Env {
  const env: Env = {};
  for (const name of CONFIG_VARIABLES) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/**
 * Validates the environment into a {@linkcode Config}. Empty strings count as unset.
 * Throws {@linkcode ConfigError} listing every invalid variable at once.
 */
export function loadConfig(env: Env = readEnv()): Config {
  const cleaned: Env = {};
  for (const [k, v] of Object.entries(env)) {
    if (v !== undefined && v.trim() !== "") cleaned[k as ConfigVariable] = v;
  }
  const result = schema().safeParse(cleaned);
  if (!result.success) {
    const seen = new Set<string>();
    const issues: ConfigIssue[] = [];
    for (const issue of result.error.issues) {
      const variable = String(issue.path[0] ?? "configuration");
      const key = `${variable}:${issue.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const value = cleaned[variable as ConfigVariable];
      const hidden = SECRET_VARIABLES.has(variable) && value !== undefined;
      issues.push({ variable, value: hidden ? undefined : value, expected: issue.message, hidden });
    }
    throw new ConfigError(issues);
  }
  const v = result.data;
  const topList = Array.isArray(v.TOP_SYMBOLS) ? v.TOP_SYMBOLS : [];
  const topCount = typeof v.TOP_SYMBOLS === "number" ? v.TOP_SYMBOLS : 0;
  // The defaults apply only when neither SYMBOLS nor TOP_SYMBOLS says what to collect.
  const symbols = v.SYMBOLS ?? (v.TOP_SYMBOLS === undefined ? [...DEFAULT_SYMBOLS] : []);
  return {
    databaseUrl: v.DATABASE_URL?.trim(),
    dataDir: v.DATA_DIR.trim(),
    exchanges: v.EXCHANGES,
    symbols: [...new Set([...symbols, ...topList])],
    topSymbols: topCount,
    quote: v.QUOTE,
    timeframes: v.TIMEFRAMES,
    backfillSince: v.BACKFILL_SINCE,
    archive: archiveConfig(v),
    ccxtConfig: v.CCXT_CONFIG,
    apiHost: v.API_HOST,
    apiPort: v.API_PORT,
    apiToken: v.API_TOKEN,
    logLevel: v.LOG_LEVEL,
    logFormat: v.LOG_FORMAT,
    liveSchedule: v.LIVE_SCHEDULE.trim(),
    live: liveConfig(v),
    repairSchedule: v.REPAIR_SCHEDULE.trim(),
    timescaledb: v.TIMESCALEDB,
    compressAfterMs: v.COMPRESS_AFTER,
    retentionMs: v.RETENTION,
    marketType: v.MARKET_TYPE,
    candlePrices: v.CANDLE_PRICES,
    fundingRates: v.FUNDING_RATES,
    openInterest: v.OPEN_INTEREST,
    backfillConcurrency: v.BACKFILL_CONCURRENCY,
    leaseTtlMs: v.LEASE_TTL,
    dbPoolMax: v.DB_POOL_MAX,
    tickBudgetMs: v.TICK_BUDGET,
    instanceId: v.INSTANCE_ID?.trim(),
    http: {
      headerTimeoutMs: v.HTTP_HEADER_TIMEOUT,
      bodyTimeoutMs: v.HTTP_BODY_TIMEOUT,
      idleTimeoutMs: v.HTTP_IDLE_TIMEOUT,
      maxConnections: v.HTTP_MAX_CONNECTIONS,
      maxPages: v.HTTP_MAX_PAGES,
      trustedProxy: v.API_TRUSTED_PROXY,
      corsOrigins: v.API_CORS_ORIGINS,
    },
    deploy: v.DENO_DEPLOY !== undefined,
  };
}
