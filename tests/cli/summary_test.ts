import { assert, assertEquals } from "../support/assert.ts";
import { progressLine, type SeriesFrontier, seriesFrontier, startSummary } from "../../src/cli/summary.ts";
import { loadConfig } from "../../src/config.ts";
import { migrate } from "../../src/db/migrate.ts";
import { registerSeries } from "../../src/ingest/series.ts";
import { createTestDatabase } from "../support/pg.ts";
import { makeCandles, seed, SETTINGS } from "../api/helpers.ts";

const MIN = 60_000;
const NOW = Date.UTC(2026, 11, 3, 12, 0);

function frontier(state: string, firstMs: number | null, lastMs: number | null, symbol = "BTC/USDT"): SeriesFrontier {
  return { exchange: "binance", symbol, timeframe: "1m", state, firstMs, lastMs };
}

Deno.test("summary: the first lines say where the dashboard, API and data are, and what is collected", () => {
  const lines = startSummary(loadConfig({ API_HOST: "0.0.0.0" }), {
    port: 8123,
    database: "embedded PostgreSQL in ./data",
  });
  assertEquals(lines, [
    "Dashboard http://127.0.0.1:8123/  ·  API http://127.0.0.1:8123/v1/candles  ·  OpenAPI http://127.0.0.1:8123/openapi.json",
    "Database: embedded PostgreSQL in ./data",
    "Series: binance × BTC/USDT, ETH/USDT × 1m, from 30 days back",
  ]);
  const top = startSummary(loadConfig({ TOP_SYMBOLS: "20", TIMEFRAMES: "1m,1h", BACKFILL_SINCE: "2024-01-01" }), {
    port: 1,
    database: "x",
  });
  assertEquals(top[2], "Series: binance × the top 20 USDT markets × 1m, 1h, from 2024-01-01T00:00:00.000Z");
  assert(startSummary(loadConfig({ SYMBOLS: "none" }), { port: 1, database: "x" })[2].includes("none configured"));
});

Deno.test("summary: progress from the stored range, done once every series is live or failed", () => {
  const day = 86_400_000;
  const half = progressLine(
    [frontier("backfilling", NOW - 10 * day, NOW - 5 * day), frontier("new", null, null, "ETH/USDT")],
    NOW,
  );
  assertEquals(half, {
    line: "Backfill 25%: 0 of 2 series live: BTC/USDT 1m 50% (at 2026-11-28T12:00Z), ETH/USDT 1m 0%",
    done: false,
  });
  assertEquals(progressLine([frontier("live", NOW - day, NOW - MIN)], NOW), {
    line: "All 1 series are backfilled and live",
    done: true,
  });
  const failed = progressLine([frontier("live", 0, NOW), frontier("invalid", null, null, "NOPE/USDT")], NOW);
  assert(failed?.done && failed.line.startsWith("1 of 2 series are backfilled and live; NOPE/USDT 1m (invalid)"));
  assertEquals(progressLine([], NOW), null);
  // A contract's mark series is told apart from its trade series.
  const mark = progressLine([{ ...frontier("new", null, null, "BTC/USDT:USDT"), price: "mark" }], NOW);
  assert(mark?.line.endsWith("BTC/USDT:USDT 1m mark 0%"), mark?.line);
});

Deno.test("summary: the frontier query reads first and last candle and state of active series", async () => {
  const t = await createTestDatabase();
  try {
    await migrate(t.sql, SETTINGS);
    const a = await registerSeries(t.sql, { exchange: "binance", symbol: "BTC/USDT", timeframe: "1m" });
    await registerSeries(t.sql, { exchange: "binance", symbol: "ETH/USDT", timeframe: "1m" });
    const from = Date.UTC(2026, 0, 1);
    await seed(t.sql, a.id, makeCandles(from, 500));
    const rows = await seriesFrontier(t.sql);
    assertEquals(rows.map((r) => [r.symbol, r.firstMs, r.lastMs]), [
      ["BTC/USDT", from, from + 499 * MIN],
      ["ETH/USDT", null, null],
    ]);
  } finally {
    await t.drop();
  }
});
