/**
 * Reading one series' complete, closed candles for export, in columnar chunks from a database
 * cursor. The SQL is `GET /v1/candles`' own (`pageQuery` of `candle_query.ts`, one page over
 * the whole range); this module only chooses the bounds and keeps complete candles:
 *
 * - a stored timeframe never yields the forming candle (open time + timeframe after now);
 * - a resampled timeframe yields a bucket only when every stored candle it spans is present
 *   (and its period has ended), so a half-built bucket never reaches a backtest.
 *
 * @module
 */
import type { Sql } from "../db/client.ts";
import {
  bucketCeil,
  type CandleRow,
  closedBefore,
  isResampled,
  pageQuery,
  type PageSpec,
  rollupIsFresh,
} from "../api/candle_query.ts";
import type { ResolvedSource } from "../api/candles.ts";

/** Candles in columns: `time` is the open time in epoch ms; all arrays have `length` items. */
export interface CandleChunk {
  length: number;
  time: Float64Array;
  open: Float64Array;
  high: Float64Array;
  low: Float64Array;
  close: Float64Array;
  volume: Float64Array;
}

/** Rows per chunk handed to an encoder (one Parquet row group, one Arrow record batch). */
export const CHUNK_ROWS = 65_536;
/** Rows fetched from the cursor per round trip. */
export const CURSOR_BATCH = 5_000;
/** Upper bound passed as the page's `limit`: an export is one page over its whole range. */
const NO_LIMIT = 2_147_483_647;

/** Range and clock of one export. */
export interface ReadOptions {
  /** Inclusive lower bound of open times (epoch ms). */
  start?: number;
  /** Exclusive upper bound of open times (epoch ms). */
  end?: number;
  /** The clock (epoch ms), for tests; default `Date.now()`. */
  nowMs?: number;
  /** Rows per chunk (default {@linkcode CHUNK_ROWS}). */
  chunkRows?: number;
}

function emptyChunk(size: number): CandleChunk {
  return {
    length: 0,
    time: new Float64Array(size),
    open: new Float64Array(size),
    high: new Float64Array(size),
    low: new Float64Array(size),
    close: new Float64Array(size),
    volume: new Float64Array(size),
  };
}

/** The open-time bounds `[lo, hi)` an export reads: whole buckets, closed ones only. */
export function exportBounds(source: ResolvedSource, options: ReadOptions = {}): { lo: number | null; hi: number } {
  const shape = { stepMs: source.stepMs, month: source.month };
  const closed = closedBefore({ ...shape, now: options.nowMs ?? Date.now() });
  const resampled = isResampled({ ...shape, sourceStepMs: source.sourceStepMs });
  const align = (ms: number) => resampled ? bucketCeil(ms, shape) : ms;
  const lo = options.start === undefined ? null : align(options.start);
  const hi = options.end === undefined ? closed : align(options.end);
  return { lo, hi: Math.min(hi, closed) };
}

/**
 * Yields the complete, closed candles of `source` in `[start, end)`, oldest first, in chunks
 * of at most `chunkRows`. Stop iterating (or call `return()`) to close the cursor early.
 */
export async function* readCandles(
  sql: Sql,
  source: ResolvedSource,
  options: ReadOptions = {},
): AsyncGenerator<CandleChunk> {
  const size = options.chunkRows ?? CHUNK_ROWS;
  const { lo, hi } = exportBounds(source, options);
  if (lo !== null && lo >= hi) return;
  // Complete candles and buckets only (a bucket missing a stored candle outside a confirmed
  // hole is left out), oldest first, as one page over the whole range.
  const spec: PageSpec = {
    seriesId: source.seriesId,
    stepMs: source.stepMs,
    sourceStepMs: source.sourceStepMs,
    month: source.month,
    start: lo,
    end: hi,
    limit: NO_LIMIT,
    order: "asc",
    now: options.nowMs ?? Date.now(),
    complete: true,
  };
  // Multiples of 1h and 1d read the hourly or daily rollup when it is known to be exact.
  if (source.rollup && await rollupIsFresh(sql, spec, source.rollup)) spec.rollup = source.rollup;
  const query = pageQuery(sql, spec, { pageFrom: lo, pageTo: hi, more: false });
  let chunk = emptyChunk(size);
  for await (const rows of query.cursor(CURSOR_BATCH) as AsyncIterable<CandleRow[]>) {
    for (const r of rows) {
      if (r.partial) continue;
      const i = chunk.length++;
      // ISO text today; an epoch-ms number is taken as is should the page query return one.
      chunk.time[i] = typeof r.time === "number" ? r.time : Date.parse(r.time);
      chunk.open[i] = Number(r.open);
      chunk.high[i] = Number(r.high);
      chunk.low[i] = Number(r.low);
      chunk.close[i] = Number(r.close);
      chunk.volume[i] = Number(r.volume);
      if (chunk.length === size) {
        yield chunk;
        chunk = emptyChunk(size);
      }
    }
  }
  if (chunk.length > 0) yield chunk;
}
