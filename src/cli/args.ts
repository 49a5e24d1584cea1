/**
 * The command line: every command, its options and its help, parsed with `node:util`
 * `parseArgs`. List options (`--symbol`, `--exchange`, `--timeframe`) repeat and also take a
 * comma list; every problem is one line and a {@linkcode UsageError} (exit status 2).
 *
 * @module
 */
import { parseArgs as parseNodeArgs } from "node:util";

/** Thrown for a command line that cannot be understood (exit status 2). */
export class UsageError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

interface OptionSpec {
  type: "string" | "boolean";
  /** A list option: repeatable, and each value may be a comma list. */
  list?: boolean;
  /** Placeholder of the value in the help. */
  value?: string;
  help: string;
}

interface CommandSpec {
  summary: string;
  options: Record<string, OptionSpec>;
  /** More lines for `<command> --help`. */
  details?: string[];
}

const FILTERS: Record<string, OptionSpec> = {
  exchange: { type: "string", list: true, value: "ID", help: "only these exchanges (repeat, or a comma list)" },
  symbol: { type: "string", list: true, value: "SYMBOL", help: "only these symbols (repeat, or a comma list)" },
  timeframe: { type: "string", list: true, value: "TF", help: "only these timeframes (repeat, or a comma list)" },
};

const JSON_FLAG: OptionSpec = { type: "boolean", help: "print JSON instead of a table" };

/** Every command of `deno task cli`. */
export const COMMANDS: Readonly<Record<string, CommandSpec>> = {
  start: {
    summary: "migrate, register series, backfill, keep them live, repair gaps, serve the API (default)",
    options: {},
    details: ["What is collected comes from the environment (SYMBOLS, TIMEFRAMES, ...): see .env.example."],
  },
  migrate: { summary: "apply database migrations and exit", options: {} },
  backfill: {
    summary: "one-shot backfill and gap repair, then exit",
    options: {
      ...FILTERS,
      exchange: { ...FILTERS.exchange, help: "only these configured exchanges (repeat, or a comma list)" },
      symbol: { ...FILTERS.symbol, help: "these symbols instead of the configured ones (repeat, or a comma list)" },
      timeframe: { ...FILTERS.timeframe, help: "these timeframes instead of the configured ones" },
      since: { type: "string", value: "WHEN", help: "start: a date (2024-01-01), a duration back (30d) or earliest" },
    },
    details: [
      "Series held by a running service are skipped with a notice (the service keeps them).",
      "Binance spot and USDⓈ-M series take whole past days from the archive (ARCHIVE=auto, ARCHIVE_URL),",
      "checked against each file's SHA-256, and the rest from REST; ARCHIVE=off uses REST only.",
    ],
  },
  status: {
    summary: "table of series: first and last candle, count, gaps, holes, lag, state",
    options: { ...FILTERS, json: JSON_FLAG },
  },
  gaps: {
    summary: "list gaps and confirmed holes of candles, funding rates and open interest",
    options: {
      ...FILTERS,
      repair: { type: "boolean", help: "refetch the gaps first (every series, not only the listed ones)" },
      json: JSON_FLAG,
    },
    details: [
      "Funding and open-interest ranges name their first and last missing time; --timeframe also picks",
      "open-interest periods. Funding gaps follow the interval in force at each point of the stored history.",
    ],
  },
  export: {
    summary: "write series to files: parquet, feather, csv or json (a freqtrade user_data/data layout)",
    options: {
      ...FILTERS,
      timeframe: { ...FILTERS.timeframe, help: "these timeframes, stored or resampled (default: the stored ones)" },
      since: {
        type: "string",
        value: "WHEN",
        help: "first open time: ISO date/time, epoch ms or 30d back (or --start)",
      },
      start: { type: "string", value: "WHEN", help: "same as --since" },
      end: { type: "string", value: "WHEN", help: "open times before this (default: up to the last closed candle)" },
      format: { type: "string", value: "FMT", help: "feather (default), parquet, csv, json or freqtrade-json" },
      out: {
        type: "string",
        value: "PATH",
        help: "a folder (DIR/<exchange>/<PAIR>-<tf>.<ext>) or, for one series, a file",
      },
    },
    details: [
      "Only complete, closed candles are written; resampled timeframes only complete buckets.",
      "Example: deno task cli export --exchange binance --symbol BTC/USDT,ETH/USDT --timeframe 1h --out user_data/data",
    ],
  },
  help: { summary: "show this text, or the help of one command: help <command>", options: {} },
};

/** The options of one command line, after parsing. */
export interface CommandArgs {
  /** Single values (`--since`). */
  values: Record<string, string>;
  /** List options, split on commas and de-duplicated, in the order given. */
  lists: Record<string, string[]>;
  /** Boolean flags given. */
  flags: Set<string>;
  /** `--help` or `-h` was given. */
  help: boolean;
}

/** The general usage text. */
export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Candlekeep: gap-free crypto candles in PostgreSQL.

Usage: deno task cli <command> [options]      (deno task start = deno task cli start)

Commands:
${lines.join("\n")}

deno task cli <command> --help shows a command's options. Settings come from the environment
(and .env): see README.md and .env.example; options narrow them.
Exit status: 0 done, 1 some series failed (each named with its reason), 2 usage or configuration error.
`;
}

/** The help of one command; throws {@linkcode UsageError} for an unknown one. */
export function commandHelp(command: string): string {
  const spec = commandSpec(command);
  const options = Object.entries(spec.options).map(([name, o]) => [
    `--${name}${o.type === "string" ? ` ${o.value ?? "VALUE"}` : ""}`,
    o.help,
  ]);
  options.push(["--help, -h", "show this text"]);
  const width = Math.max(...options.map(([flag]) => flag.length));
  return [
    `Usage: deno task cli ${command}${Object.keys(spec.options).length > 0 ? " [options]" : ""}`,
    "",
    spec.summary.replace(/^./, (c) => c.toUpperCase()) + ".",
    ...(spec.details ?? []),
    "",
    "Options:",
    ...options.map(([flag, help]) => `  ${flag.padEnd(width)}  ${help}`),
    "",
  ].join("\n");
}

function commandSpec(command: string): CommandSpec {
  const spec = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (!spec) {
    throw new UsageError(
      `Cannot run "${command}": unknown command; commands are ${Object.keys(COMMANDS).join(", ")} (deno task cli help)`,
    );
  }
  return spec;
}

/** Why node's parser refused the arguments, as one line that names the option. */
function problem(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const unknown = /Unknown option '([^']+)'/.exec(text);
  if (unknown) return `unknown option ${unknown[1]}`;
  const needs = /Option '(?:-\w, )?(--[\w-]+)[^']*' argument missing/.exec(text);
  if (needs) return `${needs[1]} needs a value`;
  const positional = /Unexpected argument '([^']*)'/.exec(text);
  if (positional) return `unexpected argument "${positional[1]}" (options start with --)`;
  const flag = /Option '(--[\w-]+)' does not take an argument/.exec(text);
  if (flag) return `${flag[1]} takes no value`;
  return text.split("\n")[0];
}

/**
 * Parses the options of `command` (`--name value`, `--name=value`, boolean `--flag`, `-h`).
 * Throws {@linkcode UsageError} with one line for an unknown command or option, a missing
 * value, a value given to a flag, or a positional argument.
 */
export function parseCommandArgs(command: string, args: readonly string[]): CommandArgs {
  const spec = commandSpec(command);
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }> = {
    help: { type: "boolean", short: "h" },
  };
  for (const [name, o] of Object.entries(spec.options)) {
    options[name] = o.type === "string" ? { type: "string", multiple: true } : { type: "boolean" };
  }
  let parsed: { values: Record<string, string | boolean | (string | boolean)[] | undefined> };
  try {
    parsed = parseNodeArgs({ args: [...args], options, strict: true, allowPositionals: false });
  } catch (error) {
    throw new UsageError(
      `Cannot parse the options of ${command}: ${problem(error)}; see deno task cli ${command} --help`,
    );
  }
  const result: CommandArgs = { values: {}, lists: {}, flags: new Set(), help: parsed.values.help === true };
  for (const [name, o] of Object.entries(spec.options)) {
    const raw = parsed.values[name];
    if (raw === undefined) continue;
    if (o.type === "boolean") {
      if (raw === true) result.flags.add(name);
      continue;
    }
    const given = (Array.isArray(raw) ? raw : [raw]).map(String);
    if (o.list) {
      const items = [...new Set(given.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== ""))];
      if (items.length === 0) throw new UsageError(`Cannot parse --${name}: it needs a value`);
      result.lists[name] = items;
    } else {
      if (given.length > 1) {
        throw new UsageError(`Cannot parse --${name}: it was given ${given.length} times; give it once`);
      }
      if (given[0].trim() === "") throw new UsageError(`Cannot parse --${name}: it needs a value`);
      result.values[name] = given[0];
    }
  }
  return result;
}
