/**
 * Parses the kline CSV rows of Binance Data Vision files, as published: spot files have no
 * header, USDⓈ-M files have an `open_time,...` header from 2022 on; spot open times are in
 * microseconds from 2025-01-01 on and in milliseconds before. USDⓈ-M mark, index and
 * premium-index files have the same twelve columns with `0` in the volume columns, as
 * `/fapi/v1/markPriceKlines` and its siblings send them.
 *
 * @module
 */
import type { Candle } from "../candle.ts";
import type { PriceOption } from "../market_type.ts";
import type { RejectedCandle } from "./validate.ts";

/** What one CSV line is. */
export type KlineLine =
  | { kind: "candle"; candle: Candle }
  | { kind: "rejected"; rejected: RejectedCandle }
  | { kind: "header" }
  | { kind: "blank" };

const INTEGER = /^[0-9]+$/;
/** A plain decimal as Binance writes it (`4.15070000`); no exponent, no sign but minus. */
const DECIMAL = /^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$/;

/** Millisecond open times from 1973 to 5138; microsecond ones from 1973 on (≥ 1e14). */
const MIN_MS = 1e11;
const MIN_US = 1e14;
const MAX_US = 1e17;

/**
 * The open time in ms of a raw open-time field, detected per row by magnitude: 13-digit values
 * are milliseconds, 15- and 16-digit values microseconds (which must fall on a whole millisecond).
 * Returns a reason string instead when the value cannot be an open time.
 */
export function openTimeMs(field: string): number | string {
  if (!INTEGER.test(field)) return `open time is not an integer (${JSON.stringify(field)})`;
  const value = Number(field);
  if (value < MIN_MS || value >= MAX_US) {
    return `open time ${field} is neither milliseconds nor microseconds`;
  }
  if (value < MIN_US) return value;
  if (value % 1000 !== 0) return `open time ${field} (microseconds) is not on a whole millisecond`;
  return value / 1000;
}

/**
 * Classifies one CSV line. Prices and volume are read as ccxt reads Binance's REST strings
 * (`Number` of the decimal string, identical to `parseFloat` for these strings), so an archived
 * candle equals the REST candle to the bit. The header is recognised by its first field
 * `open_time`; anything else non-numeric is a rejected row. Mark, index and premium-index rows
 * (`options.price`) trade nothing: a missing or empty volume is 0, as the REST reader stores it.
 */
export function parseKlineLine(line: string, options: PriceOption = {}): KlineLine {
  const text = line.endsWith("\r") ? line.slice(0, -1) : line;
  if (text.trim() === "") return { kind: "blank" };
  const fields = text.split(",");
  if (fields[0].trim().toLowerCase() === "open_time") return { kind: "header" };
  const ts = openTimeMs(fields[0].trim());
  if (typeof ts === "string") return { kind: "rejected", rejected: { ts: NaN, reason: ts } };
  const priced = options.price !== undefined && options.price !== "trade";
  const least = priced ? 5 : 6;
  if (fields.length < least) {
    return {
      kind: "rejected",
      rejected: { ts, reason: `row has ${fields.length} fields, expected at least ${least}` },
    };
  }
  const names = ["open", "high", "low", "close", "volume"] as const;
  const values: number[] = [];
  for (let i = 0; i < names.length; i++) {
    const raw = fields[i + 1]?.trim() ?? "";
    if (priced && names[i] === "volume" && raw === "") {
      values.push(0);
      continue;
    }
    if (!DECIMAL.test(raw)) {
      return {
        kind: "rejected",
        rejected: { ts, reason: `${names[i]} is not a decimal number (${JSON.stringify(raw)})` },
      };
    }
    values.push(Number(raw));
  }
  const [open, high, low, close, volume] = values;
  return { kind: "candle", candle: { ts, open, high, low, close, volume } };
}

/** Splits a stream of text chunks into lines without holding more than one partial line. */
export class LineSplitter {
  #rest = "";

  /** Feeds a chunk; calls `onLine` for every complete line in it. */
  push(chunk: string, onLine: (line: string) => void): void {
    const text = this.#rest + chunk;
    let start = 0;
    for (let end = text.indexOf("\n"); end !== -1; end = text.indexOf("\n", start)) {
      onLine(text.slice(start, end));
      start = end + 1;
    }
    this.#rest = text.slice(start);
  }

  /** Ends the stream: the last line when it had no newline. */
  end(onLine: (line: string) => void): void {
    if (this.#rest !== "") onLine(this.#rest);
    this.#rest = "";
  }
}
