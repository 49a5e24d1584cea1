/**
 * The options of `cli export` that are its own (`--format`, `--out`, `--since`/`--start`,
 * `--end`), checked before the database is opened, and the one line printed per file.
 *
 * @module
 */
import { parseInstant } from "../api/params.ts";
import { parseDuration } from "../config_values.ts";
import { EXPORT_FORMATS, type ExportFormat } from "../export/formats.ts";
import type { ExportResult } from "../export/files.ts";
import { type CommandArgs, UsageError } from "./args.ts";

/** `--format`, `--out` and the range of `cli export`. */
export interface ExportOptions {
  format: ExportFormat;
  out: string;
  start?: number;
  end?: number;
}

function instant(opts: CommandArgs, name: string, nowMs: number): number | undefined {
  const text = opts.values[name];
  if (text === undefined) return undefined;
  const ms = parseInstant(text.trim());
  if (ms !== null) return ms;
  const back = parseDuration(text.trim());
  if (back !== null) return nowMs - back;
  throw new UsageError(
    `Cannot parse --${name}: current value is "${text}", expected an ISO-8601 time (2024-01-01T00:00Z), epoch ms or a duration back (30d)`,
  );
}

/** Parses and checks the options of `cli export`; throws {@linkcode UsageError}. */
export function exportOptions(opts: CommandArgs, nowMs: number = Date.now()): ExportOptions {
  const format = (opts.values.format ?? "feather") as ExportFormat;
  if (!EXPORT_FORMATS.includes(format)) {
    throw new UsageError(`Cannot parse --format: current value is "${format}", expected ${EXPORT_FORMATS.join(", ")}`);
  }
  const out = opts.values.out;
  if (out === undefined) {
    throw new UsageError(
      "Cannot run export: --out is missing; give a folder (user_data/data) or, for one series, a file",
    );
  }
  if (Deno.permissions.querySync({ name: "write", path: out }).state !== "granted") {
    throw new UsageError(
      `Cannot write --out: current value is "${out}", outside the folders the "service" permission set in deno.json may write (./user_data, ./data, /tmp, /var/lib/candlekeep); add it to its "write" list`,
    );
  }
  if (opts.values.since !== undefined && opts.values.start !== undefined) {
    throw new UsageError("Cannot parse --start: --since is given too; give one of them");
  }
  const start = instant(opts, "since", nowMs) ?? instant(opts, "start", nowMs);
  const end = instant(opts, "end", nowMs);
  if (start !== undefined && end !== undefined && start >= end) {
    throw new UsageError(`Cannot parse --end: current value is "${opts.values.end}", expected a time after the start`);
  }
  return { format, out, start, end };
}

/**
 * Whether `out` names a file: one series and a path that is not an existing folder and does
 * not end in `/`. Several series into an existing file is a {@linkcode UsageError}.
 */
export async function outIsFile(out: string, targets: number): Promise<boolean> {
  let stat: Deno.FileInfo | null = null;
  try {
    stat = await Deno.stat(out);
  } catch { /* a new path */ }
  if (targets > 1 && stat?.isFile) {
    throw new UsageError(`Cannot write ${targets} series to --out: current value is "${out}", a file; give a folder`);
  }
  if (out.endsWith("/") || targets !== 1) return false;
  return !stat?.isDirectory;
}

/** The line printed for one exported series. */
export function resultLine(r: ExportResult): string {
  const name = `${r.exchange} ${r.symbol} ${r.timeframe}`;
  if (!r.ok) return `FAILED ${name}: ${r.reason}`;
  return `${name} → ${r.path} (${r.rows.toLocaleString("en-US")} candles, ${r.bytes.toLocaleString("en-US")} bytes)`;
}
