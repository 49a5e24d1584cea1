/**
 * Parsers of configuration values (durations, comma lists, symbols, backfill starts, cron
 * expressions), shared by `config.ts` and the command line.
 *
 * @module
 */
import { z } from "zod";
import type { BackfillSince } from "./config_types.ts";

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
 * `BTCUSDT` → `BTC/USDT`; a contract's settle suffix is kept: `BTC/USDT:USDT`, `BTC/USD:BTC`,
 * dated `BTC/USDT:USDT-261225`, options `BTC/USD:BTC-261225-60000-C`). Null when it cannot be.
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
    if (!new RegExp(`^${part}(-\\d{6}(-[0-9.]+-[CP])?)?$`).test(settle)) return null;
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

/** The API's proxy and cross-origin variables (listed in `CONFIG_VARIABLES`). */
export const API_WEB_VARIABLES = ["API_TRUSTED_PROXY", "API_CORS_ORIGINS"] as const;

/**
 * Parses `API_CORS_ORIGINS`: a comma list of origins (`https://app.example`, `http://localhost:3000`)
 * or `*`. Returns a problem text when an item is not an origin.
 */
export function parseCorsOrigins(text: string): string[] | string {
  const out: string[] = [];
  for (const item of splitList(text)) {
    if (item === "*") {
      out.push(item);
      continue;
    }
    let url: URL | null = null;
    try {
      url = new URL(item);
    } catch { /* reported below */ }
    if (url === null || !/^https?:$/.test(url.protocol) || url.origin !== item.replace(/\/$/, "").toLowerCase()) {
      return `"${item}" is not an origin such as https://app.example or http://localhost:3000 (scheme, host, port; no path)`;
    }
    out.push(url.origin);
  }
  return out;
}

/** The zod schema of {@linkcode API_WEB_VARIABLES}, spread into the configuration schema. */
export const API_WEB_SCHEMA = {
  API_TRUSTED_PROXY: z.string().default("false").transform((t) => t.trim().toLowerCase()).pipe(
    z.enum(["true", "false"], { message: "true or false" }),
  ).transform((t) => t === "true"),
  API_CORS_ORIGINS: z.string().default("").transform((text, ctx) => {
    const origins = parseCorsOrigins(text);
    if (typeof origins === "string") {
      ctx.addIssue({ code: "custom", message: `a comma list of origins, or *; ${origins}` });
      return z.NEVER;
    }
    return origins;
  }),
};

/** The normalised, de-duplicated symbols of a comma list, or what is wrong with it. */
export function symbolList(text: string): string[] | string {
  const out: string[] = [];
  const bad: string[] = [];
  for (const item of splitList(text)) {
    const n = normalizeSymbol(item);
    if (n === null) bad.push(item);
    else if (!out.includes(n)) out.push(n);
  }
  if (bad.length > 0) return `not valid: ${bad.join(", ")}`;
  return out;
}
