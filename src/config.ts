import { z } from "zod";
import type { BackfillSince, Config } from "./config_types.ts";
import { isTimeframe } from "./timeframe.ts";
import { configSecrets, createRedactor, MASK, structureSecrets } from "./secrets.ts";

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
  "CCXT_CONFIG",
  "API_HOST",
  "API_PORT",
  "API_TOKEN",
  "LOG_LEVEL",
  "LOG_FORMAT",
  "LIVE_SCHEDULE",
  "REPAIR_SCHEDULE",
  "TIMESCALEDB",
  "COMPRESS_AFTER",
  "RETENTION",
  "MARKET_TYPE",
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

const UNIT_MS: Record<string, number> = {
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** Parses a duration such as `90s`, `15m`, `12h`, `30d` or `2w` into milliseconds; null when malformed. */
export function parseDuration(text: string): number | null {
  const match = /^([0-9]+)\s*([smhdw])$/.exec(text.trim());
  if (!match) return null;
  const ms = Number(match[1]) * UNIT_MS[match[2]];
  return Number.isSafeInteger(ms) && ms > 0 ? ms : null;
}

/** Splits a comma list, trimming spaces and dropping empty items. */
export function splitList(text: string): string[] {
  return text.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
}

const KNOWN_QUOTES = [
  "USDT",
  "USDC",
  "FDUSD",
  "BUSD",
  "TUSD",
  "DAI",
  "USD",
  "EUR",
  "GBP",
  "TRY",
  "BRL",
  "JPY",
  "BTC",
  "ETH",
  "BNB",
];

/**
 * Normalises a symbol to ccxt's unified `BASE/QUOTE` form (`btc-usdt`, `BTC_USDT`,
 * `BTCUSDT` → `BTC/USDT`; a settle suffix such as `BTC/USDT:USDT` is kept). Null when it cannot be.
 */
export function normalizeSymbol(text: string): string | null {
  const upper = text.trim().toUpperCase();
  const [pair, settle, ...rest] = upper.split(":");
  if (rest.length > 0 || settle === "") return null;
  const part = "[A-Z0-9]{1,20}";
  let normal: string | null = null;
  const split = new RegExp(`^(${part})[/\\-_](${part})$`).exec(pair);
  if (split) {
    normal = `${split[1]}/${split[2]}`;
  } else if (new RegExp(`^${part}$`).test(pair)) {
    const quote = KNOWN_QUOTES.find((q) => pair.endsWith(q) && pair.length > q.length);
    if (quote) normal = `${pair.slice(0, -quote.length)}/${quote}`;
  }
  if (normal === null) return null;
  if (settle !== undefined) {
    if (!new RegExp(`^${part}$`).test(settle)) return null;
    return `${normal}:${settle}`;
  }
  return normal;
}

/** Parses `BACKFILL_SINCE`: an ISO date, a duration back from now (`30d`) or `earliest`. */
export function parseBackfillSince(text: string): BackfillSince | null {
  const value = text.trim();
  if (value.toLowerCase() === "earliest") return { kind: "earliest" };
  const duration = parseDuration(value);
  if (duration !== null) return { kind: "duration", ms: duration };
  if (/^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value)) {
    // A date without a zone is UTC: append Z when the time has none.
    const iso = /T|\s/.test(value) && !/(Z|[+-]\d{2}:?\d{2})$/.test(value)
      ? `${value.replace(" ", "T")}Z`
      : value.replace(" ", "T");
    const ms = Date.parse(iso);
    if (Number.isFinite(ms) && ms >= 0) return { kind: "date", ms };
  }
  return null;
}

/** Resolves a {@linkcode BackfillSince} to an instant, given the moment the run starts. */
export function resolveSince(
  since: BackfillSince,
  nowMs: number,
): number | "earliest" {
  switch (since.kind) {
    case "date":
      return since.ms;
    case "duration":
      return nowMs - since.ms;
    case "earliest":
      return "earliest";
  }
}

const CRON_FIELD = /^(\*|[0-9]+(-[0-9]+)?)(\/[0-9]+)?(,(\*|[0-9]+(-[0-9]+)?)(\/[0-9]+)?)*$/;

/** Whether `text` is a five-field cron expression of the kind `Deno.cron` accepts. */
export function isCron(text: string): boolean {
  const fields = text.trim().split(/\s+/);
  return fields.length === 5 && fields.every((f) => CRON_FIELD.test(f));
}

/**
 * Masks the password in a postgres URL (the user name stays). A text that does not parse as a
 * URL keeps only its scheme, the user name and what follows the last `@`.
 */
export function maskUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = MASK;
    return parsed.toString();
  } catch {
    const m = /^([a-z][a-z0-9+.-]*:\/\/)(.*)@([^@]*)$/is.exec(url.trim());
    if (!m) return url;
    return `${m[1]}${m[2].split(":")[0]}:${MASK}@${m[3]}`;
  }
}

/**
 * Returns a deep copy of `value` with every secret-looking key (apiKey, secret, password, uid,
 * privateKey, token, twofa, login, walletAddress, secret headers, see `isSecretKey` in
 * secrets.ts) masked, and the userinfo of every URL in it (proxy URLs) replaced by `***`.
 */
export function maskSecrets(value: unknown): unknown {
  return createRedactor(structureSecrets(value)).mask(value);
}

/** The configuration with every secret masked, safe to log. */
export function redactConfig(config: Config): Record<string, unknown> {
  return createRedactor(configSecrets(config)).mask({
    ...config,
    databaseUrl: config.databaseUrl === undefined ? undefined : maskUrl(config.databaseUrl),
    apiToken: config.apiToken === undefined ? undefined : MASK,
  }) as Record<string, unknown>;
}

/**
 * What is wrong with a `DATABASE_URL`, or null when postgres.js can use it. The answer never
 * quotes the value (it holds the password): an unencoded character in the user name or
 * password, a malformed IPv6 host, a port outside 1 to 65535, or a text that is no URL.
 */
export function databaseUrlProblem(text: string): string | null {
  const value = text.trim();
  if (!/^postgres(ql)?:\/\/./i.test(value)) {
    return "a postgres:// or postgresql:// connection URL, or unset for the embedded database";
  }
  try {
    // A URL that parses with no '@' after its host (a sign of an unencoded '/' in a password).
    const url = new URL(value);
    if (!`${url.pathname}${url.hash}`.includes("@") && url.port !== "0") return null;
  } catch { /* find out why below */ }
  const cannot = (what: string) => `cannot be parsed: ${what}`;
  const scheme = /^[a-z]+:\/\//i.exec(value)![0];
  const rest = value.slice(scheme.length);
  const at = rest.lastIndexOf("@");
  const userinfo = at >= 0 ? rest.slice(0, at) : "";
  const afterUser = at >= 0 ? rest.slice(at + 1) : rest;
  if (/[/?#\s]/.test(userinfo)) {
    return cannot(
      "the user name or password holds an unencoded '/', '?', '#' or space (percent-encode it, e.g. with encodeURIComponent)",
    );
  }
  const hostList = afterUser.split(/[/?#]/)[0];
  const hosts = hostList.split(",");
  for (const host of hosts) {
    let name = host;
    let port = "";
    if (host.startsWith("[")) {
      const end = host.indexOf("]");
      if (end < 0) return cannot("malformed IPv6 host (no closing ']')");
      name = host.slice(0, end + 1);
      const after = host.slice(end + 1);
      if (after !== "" && !after.startsWith(":")) return cannot("malformed IPv6 host (text after ']')");
      port = after.slice(1);
      try {
        new URL(`http://${name}/`);
      } catch {
        return cannot("malformed IPv6 host (not an IPv6 address between '[' and ']')");
      }
    } else {
      const colon = host.lastIndexOf(":");
      if (colon >= 0) [name, port] = [host.slice(0, colon), host.slice(colon + 1)];
      if (name.includes(":")) return cannot("malformed IPv6 host (an IPv6 address must be written in brackets: [::1])");
    }
    if (port !== "" && (!/^[0-9]+$/.test(port) || Number(port) < 1 || Number(port) > 65535)) {
      return cannot("invalid port (expected a number from 1 to 65535)");
    }
  }
  // The check postgres.js makes: the URL with its first host must parse.
  const single = `${scheme}${at >= 0 ? `${userinfo}@` : ""}${hosts[0]}${afterUser.slice(hostList.length)}`;
  try {
    new URL(single);
  } catch {
    return cannot("it is not a valid URL");
  }
  return null;
}

const MARKET_TYPES = ["spot", "margin", "swap", "future", "option"] as const;
const LOG_LEVELS = [
  "trace",
  "debug",
  "info",
  "warning",
  "error",
  "fatal",
] as const;

type Env = Partial<Record<ConfigVariable, string>>;

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
    SYMBOLS: z.string().default("").transform((text, ctx) => {
      const items = splitList(text);
      const out: string[] = [];
      const bad: string[] = [];
      for (const item of items) {
        const n = normalizeSymbol(item);
        if (n === null) bad.push(item);
        else if (!out.includes(n)) out.push(n);
      }
      if (bad.length > 0) {
        ctx.addIssue({
          code: "custom",
          message: `comma list of symbols such as BTC/USDT,ETH/USDT; not valid: ${bad.join(", ")}`,
        });
        return z.NEVER;
      }
      return out;
    }),
    TOP_SYMBOLS: int(0, 1000, 0),
    QUOTE: z.string().default("USDT").transform((t) => t.trim().toUpperCase())
      .refine(
        (t) => /^[A-Z0-9]{1,20}$/.test(t),
        { message: "a currency code such as USDT" },
      ),
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
    API_HOST: z.string().default("127.0.0.1").refine(
      (v) => /^[A-Za-z0-9.:\-\[\]]+$/.test(v),
      {
        message: "a host name or IP address such as 127.0.0.1 or 0.0.0.0",
      },
    ),
    API_PORT: int(0, 65535, 8000),
    API_TOKEN: opt(z.string()).refine(
      (v) => v === undefined || v === "" || v.length >= 16,
      {
        message: "at least 16 characters (or unset to disable the mutating routes)",
      },
    ),
    LOG_LEVEL: oneOf(LOG_LEVELS, "info"),
    LOG_FORMAT: oneOf(["json", "pretty"] as const, "json"),
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
  return {
    databaseUrl: v.DATABASE_URL?.trim(),
    dataDir: v.DATA_DIR.trim(),
    exchanges: v.EXCHANGES,
    symbols: v.SYMBOLS,
    topSymbols: v.TOP_SYMBOLS,
    quote: v.QUOTE,
    timeframes: v.TIMEFRAMES,
    backfillSince: v.BACKFILL_SINCE,
    ccxtConfig: v.CCXT_CONFIG,
    apiHost: v.API_HOST,
    apiPort: v.API_PORT,
    apiToken: v.API_TOKEN,
    logLevel: v.LOG_LEVEL,
    logFormat: v.LOG_FORMAT,
    liveSchedule: v.LIVE_SCHEDULE.trim(),
    repairSchedule: v.REPAIR_SCHEDULE.trim(),
    timescaledb: v.TIMESCALEDB,
    compressAfterMs: v.COMPRESS_AFTER,
    retentionMs: v.RETENTION,
    marketType: v.MARKET_TYPE,
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
    },
    deploy: v.DENO_DEPLOY !== undefined,
  };
}
