/** One OHLCV candle; `ts` is the UTC open time in epoch milliseconds. */
export interface Candle {
  ts: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
}

/** Converts a ccxt OHLCV row `[ts, o, h, l, c, v]` to a {@linkcode Candle} without checking it. */
export function fromOhlcvRow(row: readonly unknown[]): Candle {
  return {
    ts: row[0] as number,
    open: row[1] as number,
    high: row[2] as number,
    low: row[3] as number,
    close: row[4] as number,
    volume: row[5] as number,
  };
}
