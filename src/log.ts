import {
  configureSync,
  getLogger as logtapeLogger,
  type Logger,
  type LogRecord,
  resetSync,
  type Sink,
} from "@logtape/logtape";
import { maskSecrets } from "./config.ts";
import type { LogLevel } from "./config_types.ts";

export type { Logger } from "@logtape/logtape";

/** Options of {@linkcode setupLogging}. */
export interface LoggingOptions {
  /** Minimum level written. */
  level: LogLevel;
  /** `json` lines (default) or `pretty` text for terminals. */
  format: "json" | "pretty";
  /** Where lines go; standard error by default so stdout stays free for command output. */
  write?: (line: string) => void;
}

const encoder = new TextEncoder();

function writeStderr(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

function renderMessage(record: LogRecord): string {
  return record.message.map((part, i) =>
    i % 2 === 0 ? String(part) : typeof part === "string" ? part : JSON.stringify(part)
  ).join("");
}

function jsonValue(value: unknown): unknown {
  if (value instanceof Error) {
    return {
      name: value.name,
      message: value.message,
      code: (value as { code?: unknown }).code,
    };
  }
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "bigint") return value.toString();
  return value;
}

/** Formats a record as one JSON line: time (ISO-8601 UTC), level, category, message, fields. */
export function formatJson(record: LogRecord): string {
  const fields = maskSecrets(
    Object.fromEntries(
      Object.entries(record.properties).map(([k, v]) => [k, jsonValue(v)]),
    ),
  ) as Record<string, unknown>;
  return JSON.stringify({
    time: new Date(record.timestamp).toISOString(),
    level: record.level,
    category: record.category.join("."),
    message: renderMessage(record),
    ...fields,
  });
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
  const fields = maskSecrets(
    Object.fromEntries(
      Object.entries(record.properties).map(([k, v]) => [k, jsonValue(v)]),
    ),
  ) as Record<string, unknown>;
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
