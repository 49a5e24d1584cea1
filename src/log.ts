import {
  configureSync,
  getLogger as logtapeLogger,
  type Logger,
  type LogRecord,
  resetSync,
  type Sink,
} from "@logtape/logtape";
import type { LogLevel } from "./config_types.ts";
import { installRedactor, type Redactor, redactor } from "./secrets.ts";

export type { Logger } from "@logtape/logtape";

/** Options of {@linkcode setupLogging}. */
export interface LoggingOptions {
  /** Minimum level written. */
  level: LogLevel;
  /** `json` lines (default) or `pretty` text for terminals. */
  format: "json" | "pretty";
  /** Where lines go; standard error by default so stdout stays free for command output. */
  write?: (line: string) => void;
  /**
   * The redactor built from the loaded configuration; installed for every output path (see
   * secrets.ts). Until one is installed, lines are masked with the raw environment's secrets.
   */
  redactor?: Redactor;
}

const encoder = new TextEncoder();

function writeStderr(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

/** The message with its placeholders filled in, every value masked and the text scrubbed. */
function renderMessage(record: LogRecord): string {
  const r = redactor();
  return r.scrub(
    record.message.map((part, i) => {
      if (i % 2 === 0 || typeof part === "string") return String(part);
      if (part instanceof Error) return part.message;
      return JSON.stringify(jsonValue(r.mask(part)));
    }).join(""),
  );
}

function jsonValue(value: unknown): unknown {
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "bigint") return value.toString();
  return value;
}

/** The record's properties, masked (errors as name, message, code and cause). */
function maskedFields(record: LogRecord): Record<string, unknown> {
  return redactor().mask(
    Object.fromEntries(Object.entries(record.properties).map(([k, v]) => [k, jsonValue(v)])),
  ) as Record<string, unknown>;
}

/** Keys of the JSON line itself, which properties never overwrite. */
export const RESERVED_KEYS: ReadonlySet<string> = new Set(["time", "timestamp", "level", "category", "message"]);

/**
 * Formats a record as one JSON line: time (ISO-8601 UTC), level, category, message, fields.
 * A property named like one of the line's own keys ({@linkcode RESERVED_KEYS}) is written as
 * `field_<name>` (`message` → `field_message`), so the line keeps its message. Secrets are
 * masked by the installed redactor.
 */
export function formatJson(record: LogRecord): string {
  const line: Record<string, unknown> = {
    time: new Date(record.timestamp).toISOString(),
    level: record.level,
    category: record.category.join("."),
    message: renderMessage(record),
  };
  for (const [key, value] of Object.entries(maskedFields(record))) {
    let name = RESERVED_KEYS.has(key) ? `field_${key}` : key;
    while (name in line) name = `field_${name}`;
    line[name] = value;
  }
  return JSON.stringify(line);
}

const LEVEL_LABEL: Record<string, string> = {
  trace: "TRC",
  debug: "DBG",
  info: "INF",
  warning: "WRN",
  error: "ERR",
  fatal: "FTL",
};

/** Formats a record as one readable line for terminals. */
export function formatPretty(record: LogRecord): string {
  const fields = maskedFields(record);
  const extra = Object.entries(fields)
    .filter(([k]) => !String(record.rawMessage).includes(`{${k}}`))
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  return `${new Date(record.timestamp).toISOString()} ${LEVEL_LABEL[record.level] ?? record.level} ${
    record.category.slice(1).join(".") || record.category.join(".")
  }: ${renderMessage(record)}${extra ? "  " + extra : ""}`;
}

/** Configures logtape once for the process; safe to call again (it resets first). */
export function setupLogging(options: LoggingOptions): void {
  if (options.redactor) installRedactor(options.redactor);
  const write = options.write ?? writeStderr;
  const format = options.format === "pretty" ? formatPretty : formatJson;
  const sink: Sink = (record) => write(format(record));
  resetSync();
  configureSync({
    sinks: { main: sink },
    loggers: [
      { category: ["candlekeep"], lowestLevel: options.level, sinks: ["main"] },
      {
        category: ["logtape", "meta"],
        lowestLevel: "warning",
        sinks: ["main"],
      },
    ],
  });
}

/** A logger under the `candlekeep` category, e.g. `getLogger("db")`. */
export function getLogger(...category: string[]): Logger {
  return logtapeLogger(["candlekeep", ...category]);
}
