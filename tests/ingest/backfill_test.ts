import { assert, assertEquals } from "../support/assert.ts";
import { floorTo, timeframeMs } from "../../src/timeframe.ts";
import { ingestWorld, storedCandles } from "./helpers.ts";

const DAY = 86_400_000;

Deno.test("backfill: several series × timeframes end with exactly the fake's candles", async () => {
  const w = await ingestWorld({
    env: { SYMBOLS: "BTC/USDT,ETH/USDT", TIMEFRAMES: "1m,5m,1h", BACKFILL_SINCE: "2d" },
  });
  try {
    const started = Date.now();
    const failures = await w.ingestor().backfillOnce();
    assertEquals(failures, []);
    for (const symbol of ["BTC/USDT", "ETH/USDT"]) {
      for (const tf of ["1m", "5m", "1h"]) {
        const step = timeframeMs(tf);
        const stored = await storedCandles(w, { symbol, timeframe: tf });
        const from = floorTo(started - 2 * DAY, step);
        const to = floorTo(stored.at(-1)!.ts + step, step);
        const expected = w.fake.expected(symbol, tf, from, to);
        assert(expected.length > 0);
        assertEquals(stored.length, expected.length, `${symbol} ${tf} count`);
        assertEquals(stored, expected, `${symbol} ${tf} values`);
        // Nothing still open was stored: the last candle closed before the run ended.
        assert(stored.at(-1)!.ts + step <= Date.now(), "an open candle was stored");
      }
    }
    const series = await w.t.sql<{ state: string }[]>`select state from series`;
    assertEquals(series.map((s) => s.state), ["live", "live", "live", "live", "live", "live"]);
  } finally {
    await w.close();
  }
});

Deno.test("backfill: re-running costs about one request per series; moving since earlier fetches only the older part", async () => {
  const w = await ingestWorld({ env: { SYMBOLS: "BTC/USDT", TIMEFRAMES: "1m", BACKFILL_SINCE: "1d" } });
  try {
    assertEquals(await w.ingestor().backfillOnce(), []);
    const first = await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" });
    w.fake.resetStats();
    assertEquals(await w.ingestor().backfillOnce(), []);
    const klines = () =>
      Object.entries(w.fake.stats.byPath).filter(([p]) => p.includes("kline")).reduce((n, [, c]) => n + c, 0);
    assert(klines() <= 2, `re-run made ${klines()} candle requests`);

    // Two days instead of one: only the older day is fetched (2 pages of 1000 minutes).
    w.fake.resetStats();
    const older = w.ingestor();
    assertEquals(await older.backfillOnce({ since: { kind: "duration", ms: 2 * DAY } }), []);
    assert(klines() <= 4, `extending by one day made ${klines()} candle requests`);
    const after = await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" });
    assert(after.length >= first.length + 1440 - 1, `${after.length} vs ${first.length}`);
    const from = after[0].ts;
    assertEquals(after, w.fake.expected("BTC/USDT", "1m", from, after.at(-1)!.ts + 60_000));
  } finally {
    await w.close();
  }
});
