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

function csvEncoder(): Encoder {
  let head = "time,open,high,low,close,volume\n";
  return {
    encode(c) {
      let text = head;
      head = "";
      for (let i = 0; i < c.length; i++) {
        text += `${new Date(c.time[i]).toISOString()},${c.open[i]},${c.high[i]},${c.low[i]},${c.close[i]},${
          c.volume[i]
        }\n`;
      }
      return [encoder.encode(text)];
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
      let text = "";
      for (let i = 0; i < c.length; i++) {
        text += `${sep}[${c.time[i]},${num(c.open[i])},${num(c.high[i])},${num(c.low[i])},${num(c.close[i])},${
          num(c.volume[i])
        }]`;
        sep = ",";
      }
      return [encoder.encode(text)];
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
