/**
 * Parsers of configuration values (durations, comma lists, symbols, backfill starts, cron
 * expressions), shared by `config.ts` and the command line.
 *
 * @module
 */
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
