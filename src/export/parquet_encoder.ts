/**
 * Parquet encoding with `hyparquet-writer`: `time` as INT64 timestamp (ms, adjusted to UTC),
 * then `open`, `high`, `low`, `close`, `volume` as DOUBLE, Snappy-compressed. Each chunk is
 * one row group, handed out as soon as it is written; only the footer's row-group list grows
 * with the file.
 *
 * @module
 */
import { ByteWriter, ParquetWriter } from "hyparquet-writer";
import type { Encoder } from "./formats.ts";
import type { CandleChunk } from "./read.ts";

const VALUES = ["open", "high", "low", "close", "volume"] as const;

/** A ByteWriter whose `flush` (called after each row group) hands the bytes out and restarts. */
class Collector extends ByteWriter {
  pieces: Uint8Array[] = [];
  flush(): void {
    if (this.index > 0) this.pieces.push(new Uint8Array(this.buffer.slice(0, this.index)));
    this.index = 0;
  }
  override finish(): void {
    this.flush();
  }
  take(): Uint8Array[] {
    const out = this.pieces;
    this.pieces = [];
    return out;
  }
}

function schema() {
  return [
    { name: "root", num_children: 1 + VALUES.length },
    {
      name: "time",
      type: "INT64" as const,
      repetition_type: "REQUIRED" as const,
      converted_type: "TIMESTAMP_MILLIS" as const,
      logical_type: { type: "TIMESTAMP" as const, isAdjustedToUTC: true, unit: "MILLIS" as const },
    },
    ...VALUES.map((name) => ({ name, type: "DOUBLE" as const, repetition_type: "REQUIRED" as const })),
  ];
}

/** An encoder of one Parquet file. */
export function parquetEncoder(): Encoder {
  const sink = new Collector(1 << 20);
  const writer = new ParquetWriter({ writer: sink, schema: schema(), createdBy: "candlekeep" });
  return {
    encode(c: CandleChunk) {
      if (c.length === 0) return [];
      const n = c.length;
      const time = new BigInt64Array(n);
      for (let i = 0; i < n; i++) time[i] = BigInt(c.time[i]);
      writer.write({
        columnData: [
          { name: "time", data: time },
          ...VALUES.map((name) => ({ name, data: c[name].subarray(0, n) })),
        ],
        rowGroupSize: n,
      });
      return sink.take();
    },
    finish() {
      writer.finish();
      return sink.take();
    },
  };
}
