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
  /**
   * `json` lines, `pretty` text for terminals, or `auto` (default): pretty when standard error
   * is a terminal, JSON otherwise.
   */
  format?: "auto" | "json" | "pretty";
  /** Colours in pretty lines; default: standard error is a terminal and `NO_COLOR` is not set. */
  color?: boolean;
  /** See {@linkcode RepeatLimit}; the default lets 5 like warnings through a minute. */
  repeats?: RepeatLimit;
  /** Where lines go; standard error by default so stdout stays free for command output. */
  write?: (line: string) => void;
  /**
   * The redactor built from the loaded configuration; installed for every output path (see
   * secrets.ts). Until one is installed, lines are masked with the raw environment's secrets.
   */
  redactor?: Redactor;
}

const encoder = new TextEncoder();

/** Where log lines bound for standard error go instead while set ({@linkcode routeStderrLines}). */
let stderrRoute: ((line: string) => void) | null = null;

function writeStderr(line: string): void {
  if (stderrRoute) stderrRoute(line);
  else Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

/**
 * Sends the log lines bound for standard error through `route` (null: straight to standard error
 * again), e.g. so that progress bars drawn on the terminal are cleared before a line and redrawn
 * after it instead of overwriting it.
 */
export function routeStderrLines(route: ((line: string) => void) | null): void {
  stderrRoute = route;
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

const LEVEL_COLOR: Record<string, string> = {
  trace: "90",
  debug: "90",
  info: "32",
  warning: "33",
  error: "31",
  fatal: "1;31",
};

/**
 * Formats a record as one readable line for terminals: time (ISO-8601 UTC), level, category,
 * message, then the fields the message does not show; with `color`, in ANSI colours.
 */
export function formatPretty(record: LogRecord, options: { color?: boolean } = {}): string {
  const paint = (code: string, text: string) => options.color ? `\x1b[${code}m${text}\x1b[0m` : text;
  const fields = maskedFields(record);
  const extra = Object.entries(fields)
    .filter(([k]) => !String(record.rawMessage).includes(`{${k}}`))
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  const category = record.category.slice(1).join(".") || record.category.join(".");
  const level = LEVEL_LABEL[record.level] ?? record.level;
  return `${paint("2", new Date(record.timestamp).toISOString())} ${paint(LEVEL_COLOR[record.level] ?? "0", level)} ${
    paint("36", category)
  } ${renderMessage(record)}${extra ? "  " + paint("2", extra) : ""}`;
}

/** How often like warnings and errors are written; the rest are counted and dropped. */
export interface RepeatLimit {
  /** Lines of one kind written per window. */
  lines: number;
  /** The window, in ms. */
  windowMs: number;
}

/** The default {@linkcode RepeatLimit}: 5 like lines a minute. */
export const DEFAULT_REPEATS: Readonly<RepeatLimit> = Object.freeze({ lines: 5, windowMs: 60_000 });

/**
 * A filter over records: warnings and errors of one kind (same category, message template and
 * `series` or `exchange` field) pass at most `limit.lines` times per window; the first one
 * after a window that dropped some carries `suppressed: N`. Other levels always pass.
 */
export function repeatFilter(limit: RepeatLimit = DEFAULT_REPEATS): (record: LogRecord) => LogRecord | null {
  const windows = new Map<string, { start: number; count: number; dropped: number }>();
  return (record) => {
    if (record.level !== "warning" && record.level !== "error") return record;
    const p = record.properties;
    const key = `${record.category.join(".")}|${record.rawMessage}|${String(p.series ?? p.exchange ?? "")}`;
    const now = record.timestamp;
    const w = windows.get(key);
    if (!w || now - w.start >= limit.windowMs) {
      windows.set(key, { start: now, count: 1, dropped: 0 });
      if (windows.size > 10_000) windows.delete(windows.keys().next().value!);
      return w && w.dropped > 0 ? { ...record, properties: { ...p, suppressed: w.dropped } } : record;
    }
    if (++w.count <= limit.lines) return record;
    w.dropped++;
    return null;
  };
}

/** The format `auto` stands for: pretty on a terminal, JSON otherwise. */
export function resolveFormat(format: "auto" | "json" | "pretty", isTerminal: boolean): "json" | "pretty" {
  return format === "auto" ? (isTerminal ? "pretty" : "json") : format;
}

/** Configures logtape once for the process; safe to call again (it resets first). */
export function setupLogging(options: LoggingOptions): void {
  if (options.redactor) installRedactor(options.redactor);
  const write = options.write ?? writeStderr;
  const terminal = options.write === undefined && Deno.stderr.isTerminal();
  const color = options.color ?? (terminal && !Deno.env.get("NO_COLOR"));
  const format = resolveFormat(options.format ?? "auto", terminal) === "pretty"
    ? (record: LogRecord) => formatPretty(record, { color })
    : formatJson;
  const filter = repeatFilter(options.repeats);
  const sink: Sink = (record) => {
    const passed = filter(record);
    if (passed) write(format(passed));
  };
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

/** `n` and the noun it counts, singular for 1: `1 page`, `3 pages`. */
export function counted(n: number, singular: string, plural = `${singular}s`): string {
  return `${n.toLocaleString("en-US")} ${n === 1 ? singular : plural}`;
}
