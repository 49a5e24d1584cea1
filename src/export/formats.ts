/**
 * The export formats: what each is called, its file extension and media type, and an
 * encoder that turns chunks of candles into bytes as they come (never the whole file at once).
 *
 * - `csv`: `time,open,high,low,close,volume`, times ISO-8601 with `Z`;
 * - `json` / `freqtrade-json`: freqtrade's (and ccxt's) `[[ms,open,high,low,close,volume],...]`;
 * - `feather`: an Arrow IPC file (`arrow_encoder.ts`), freqtrade's default data format;
 * - `parquet`: a Parquet file (`parquet_encoder.ts`) for pandas, polars and DuckDB.
 *
 * @module
 */
import type { CandleChunk } from "./read.ts";
import { featherEncoder } from "./arrow_encoder.ts";
import { parquetEncoder } from "./parquet_encoder.ts";

/** Every export format. */
export const EXPORT_FORMATS = ["parquet", "feather", "csv", "json", "freqtrade-json"] as const;

/** One export format. */
export type ExportFormat = typeof EXPORT_FORMATS[number];

/** Turns chunks of candles into the bytes of one file, in order. */
export interface Encoder {
  /** Bytes of one chunk (possibly none). */
  encode(chunk: CandleChunk): Uint8Array[];
  /** The rest of the file, after the last chunk. */
  finish(): Uint8Array[];
}

/** File extension of a format (without the dot). */
export function extensionOf(format: ExportFormat): string {
  return format === "freqtrade-json" ? "json" : format;
}

/** Media type of a format. */
export function mediaTypeOf(format: ExportFormat): string {
  switch (format) {
    case "csv":
      return "text/csv; charset=utf-8";
    case "json":
    case "freqtrade-json":
      return "application/json; charset=utf-8";
    case "feather":
      return "application/vnd.apache.arrow.file";
    case "parquet":
      return "application/vnd.apache.parquet";
  }
}

const encoder = new TextEncoder();

/** Rows per encoded text piece: small strings keep V8's young generation (4 MB) cheap. */
const TEXT_ROWS = 2048;

const DAY_MS = 86_400_000;
let dayStart = NaN;
let dayPrefix = "";

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

/** `new Date(ms).toISOString()` for 1970–9999, with the date part computed once per day. */
export function isoTime(ms: number): string {
  const day = Math.floor(ms / DAY_MS) * DAY_MS;
  if (day !== dayStart) {
    dayStart = day;
    dayPrefix = new Date(day).toISOString().slice(0, 11);
  }
  let rest = ms - day;
  const h = Math.floor(rest / 3_600_000);
  rest -= h * 3_600_000;
  const m = Math.floor(rest / 60_000);
  rest -= m * 60_000;
  const sec = Math.floor(rest / 1000);
  return `${dayPrefix}${pad(h, 2)}:${pad(m, 2)}:${pad(sec, 2)}.${pad(rest - sec * 1000, 3)}Z`;
}

/** Encodes a chunk as text pieces of {@linkcode TEXT_ROWS} rows, `row(i)` giving each row's text. */
function textPieces(length: number, row: (i: number) => string): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let from = 0; from < length; from += TEXT_ROWS) {
    let text = "";
    const to = Math.min(length, from + TEXT_ROWS);
    for (let i = from; i < to; i++) text += row(i);
    out.push(encoder.encode(text));
  }
  return out;
}

function csvEncoder(): Encoder {
  let head = "time,open,high,low,close,volume\n";
  return {
    encode(c) {
      const pieces = textPieces(
        c.length,
        (i) => `${isoTime(c.time[i])},${c.open[i]},${c.high[i]},${c.low[i]},${c.close[i]},${c.volume[i]}\n`,
      );
      if (head !== "" && pieces.length > 0) pieces.unshift(encoder.encode(head));
      if (pieces.length > 0) head = "";
      return pieces;
    },
    finish: () => head === "" ? [] : [encoder.encode(head)],
  };
}

/** A number as JSON writes it (`null` for NaN and infinities). */
function num(n: number): string {
  return Number.isFinite(n) ? String(n) : "null";
}

function jsonEncoder(): Encoder {
  let sep = "[";
  return {
    encode(c) {
      return textPieces(c.length, (i) => {
        const text = `${sep}[${c.time[i]},${num(c.open[i])},${num(c.high[i])},${num(c.low[i])},${num(c.close[i])},${
          num(c.volume[i])
        }]`;
        sep = ",";
        return text;
      });
    },
    finish: () => [encoder.encode(sep === "[" ? "[]" : "]")],
  };
}

/** A fresh encoder for one file in `format`. */
export function encoderFor(format: ExportFormat): Encoder {
  switch (format) {
    case "csv":
      return csvEncoder();
    case "json":
    case "freqtrade-json":
      return jsonEncoder();
    case "feather":
      return featherEncoder();
    case "parquet":
      return parquetEncoder();
  }
}
