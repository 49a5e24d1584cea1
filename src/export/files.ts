/**
 * `cli export`: many series written to files at once. With a folder (`--out DIR`) every
 * series goes to freqtrade's layout, `DIR/<exchange>/<PAIR>-<tf>.<ext>` (futures in
 * `DIR/<exchange>/futures/`), so `--out user_data/data` is what `freqtrade backtesting`
 * reads; with one series, `--out FILE` names the file. Each file is written to a temporary
 * name beside it and renamed when complete: an interrupted export never leaves a half file.
 *
 * @module
 */
import { dirname, join } from "node:path";
import type { Sql } from "../db/client.ts";
import { resolveSource } from "../api/candles.ts";
import { encoderFor, type ExportFormat } from "./formats.ts";
import { exportRelativePath } from "./names.ts";
import { readCandles } from "./read.ts";
import { isTimeframe, timeframeMs } from "../timeframe.ts";
import { type ExportProgress, exportStream } from "./stream.ts";

/** One (exchange, symbol, timeframe) to export. */
export interface ExportTarget {
  exchange: string;
  symbol: string;
  timeframe: string;
}

/** What `cli export` asked for. */
export interface ExportRequest {
  targets: ExportTarget[];
  format: ExportFormat;
  /** A folder (freqtrade layout) or, for one series, a file. */
  out: string;
  /** Write `out` as one file rather than a folder. */
  outIsFile: boolean;
  start?: number;
  end?: number;
  /** The clock (epoch ms), for tests. */
  nowMs?: number;
}

/** The outcome of one series. */
export type ExportResult =
  & ExportTarget
  & ({ ok: true; path: string; rows: number; bytes: number } | { ok: false; reason: string });

/**
 * The targets of `cli export`: every stored (exchange, symbol) narrowed to the given lists,
 * each with the given timeframes (stored or resampled) or, without `--timeframe`, its stored
 * ones. A symbol given but stored on none of the exchanges (or on a given exchange) is a
 * target too, so that it fails with the reason `resolveSource` gives (what is stored).
 */
export async function exportTargets(
  sql: Sql,
  filter: { exchanges?: string[]; symbols?: string[]; timeframes?: string[] },
): Promise<ExportTarget[]> {
  const rows = await sql<ExportTarget[]>`
    select exchange, symbol, timeframe from series order by exchange, symbol, timeframe`;
  // Shortest timeframe first (1m, 5m, 1h, ...), not text order.
  const length = (tf: string) => isTimeframe(tf) ? timeframeMs(tf) : Infinity;
  const stored = [...rows].sort((a, b) =>
    a.exchange.localeCompare(b.exchange) || a.symbol.localeCompare(b.symbol) ||
    length(a.timeframe) - length(b.timeframe)
  );
  const exchanges = filter.exchanges ?? [...new Set(stored.map((s) => s.exchange))];
  const targets: ExportTarget[] = [];
  const found = new Set<string>();
  const add = (exchange: string, symbol: string, timeframes: string[]) => {
    for (const timeframe of timeframes) targets.push({ exchange, symbol, timeframe });
  };
  for (const exchange of exchanges) {
    const onExchange = stored.filter((s) => s.exchange === exchange);
    for (const symbol of filter.symbols ?? [...new Set(onExchange.map((s) => s.symbol))]) {
      const storedTimeframes = onExchange.filter((s) => s.symbol === symbol).map((s) => s.timeframe);
      if (storedTimeframes.length > 0) found.add(symbol);
      // Without --exchange, a symbol is exported only from the exchanges that store it.
      if (storedTimeframes.length === 0 && filter.exchanges === undefined) continue;
      add(exchange, symbol, filter.timeframes ?? (storedTimeframes.length > 0 ? storedTimeframes : ["*"]));
    }
  }
  const first = exchanges[0];
  if (filter.exchanges === undefined && first !== undefined) {
    for (const symbol of filter.symbols ?? []) if (!found.has(symbol)) add(first, symbol, filter.timeframes ?? ["*"]);
  }
  return targets;
}

async function writeOne(sql: Sql, target: ExportTarget, path: string, request: ExportRequest): Promise<ExportProgress> {
  const source = await resolveSource(sql, target.exchange, target.symbol, target.timeframe);
  await Deno.mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.partial`;
  const progress: ExportProgress = { rows: 0, bytes: 0 };
  const file = await Deno.open(temporary, { write: true, create: true, truncate: true });
  try {
    const chunks = readCandles(sql, source, { start: request.start, end: request.end, nowMs: request.nowMs });
    await exportStream(chunks, encoderFor(request.format), { progress }).pipeTo(file.writable);
  } catch (error) {
    await Deno.remove(temporary).catch(() => {});
    throw error;
  }
  await Deno.rename(temporary, path);
  return progress;
}

/**
 * Writes every target, one after the other; a failing series is reported with its reason
 * and the others still complete. `onResult` is called as each one ends.
 */
export async function exportFiles(
  sql: Sql,
  request: ExportRequest,
  onResult: (result: ExportResult) => void = () => {},
): Promise<ExportResult[]> {
  const results: ExportResult[] = [];
  for (const target of request.targets) {
    const path = request.outIsFile ? request.out : join(request.out, exportRelativePath(target, request.format));
    let result: ExportResult;
    try {
      const { rows, bytes } = await writeOne(sql, target, path, request);
      result = { ...target, ok: true, path, rows, bytes };
    } catch (error) {
      result = { ...target, ok: false, reason: error instanceof Error ? error.message : String(error) };
    }
    results.push(result);
    onResult(result);
  }
  return results;
}
