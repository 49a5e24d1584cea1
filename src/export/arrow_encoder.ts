/**
 * Feather (Arrow IPC file) encoding with `apache-arrow`: freqtrade's columns and order,
 * `date` as timestamp[ms, UTC] then `open`, `high`, `low`, `close`, `volume` as float64.
 * Each chunk is one record batch, written out as soon as it is encoded: only the footer's
 * block list grows with the file.
 *
 * @module
 */
import {
  AsyncByteQueue,
  Field,
  Float64,
  makeData,
  RecordBatch,
  RecordBatchFileWriter,
  Schema,
  Struct,
  TimestampMillisecond,
} from "apache-arrow";
import type { Encoder } from "./formats.ts";
import type { CandleChunk } from "./read.ts";

const VALUES = ["open", "high", "low", "close", "volume"] as const;

/** The Feather schema: `date` (timestamp ms, UTC), then the five prices and volume. */
export function featherSchema(): Schema {
  return new Schema([
    new Field("date", new TimestampMillisecond("UTC"), false),
    ...VALUES.map((name) => new Field(name, new Float64(), false)),
  ]);
}

/** A byte sink that hands every written piece to the encoder at once (no async queue). */
class Collector extends AsyncByteQueue<Uint8Array> {
  pieces: Uint8Array[] = [];
  override write(value: Uint8Array): void {
    if (value.byteLength > 0) this.pieces.push(value.slice());
  }
  take(): Uint8Array[] {
    const out = this.pieces;
    this.pieces = [];
    return out;
  }
}

function batchOf(schema: Schema, c: CandleChunk): RecordBatch {
  const n = c.length;
  const time = new BigInt64Array(n);
  for (let i = 0; i < n; i++) time[i] = BigInt(c.time[i]);
  const children = [
    makeData({ type: schema.fields[0].type as TimestampMillisecond, length: n, data: time }),
    ...VALUES.map((name) => makeData({ type: new Float64(), length: n, data: c[name].subarray(0, n) })),
  ];
  return new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: n, children }));
}

/** An encoder of one Feather file. */
export function featherEncoder(): Encoder {
  const schema = featherSchema();
  const sink = new Collector();
  const writer = new RecordBatchFileWriter();
  writer.reset(sink, schema);
  let empty = true;
  return {
    encode(c) {
      if (c.length === 0) return [];
      writer.write(batchOf(schema, c));
      empty = false;
      return sink.take();
    },
    finish() {
      // A file needs its schema even with no rows: write an empty batch.
      if (empty) writer.write(batchOf(schema, { ...emptyColumns(), length: 0 }));
      writer.finish();
      return sink.take();
    },
  };
}

function emptyColumns(): Omit<CandleChunk, "length"> {
  const z = () => new Float64Array(0);
  return { time: z(), open: z(), high: z(), low: z(), close: z(), volume: z() };
}
