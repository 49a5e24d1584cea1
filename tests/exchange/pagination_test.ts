import { ExchangeRequestError } from "../../src/exchange/errors.ts";
import { floorTo } from "../../src/timeframe.ts";
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { DIALECTS, minutesAgo, withFake } from "./helpers.ts";

for (const dialect of DIALECTS) {
  Deno.test(`${dialect}: pagination over many pages returns exactly the generated series, open candle never`, async () => {
    await withFake(dialect, {}, async (fake, client) => {
      const from = minutesAgo(6_300) + 17_000; // mid-minute: rounded up
      const until = Date.now(); // includes the still-open candle's start
      const range = await client.fetchRange("BTC/USDT", "1m", from, until);
      const expected = fake.expected("BTC/USDT", "1m", from, floorTo(until, 60_000));
      assertEquals(range.candles.length, expected.length, "candle count");
      assertEquals(range.candles, expected);
      assertEquals(range.rejected, []);
      const openTs = floorTo(until, 60_000);
      assert(range.candles.every((c) => c.ts < openTs), "the open candle was returned");
      assertEquals(range.pages, Math.ceil(expected.length / 1000), "pages = minimum");
      assertEquals(fake.stats.byPath[dialect === "binance" ? "/api/v3/klines" : "/v5/market/kline"], range.pages);
      // no request asked for the same start twice
      const starts = fake.stats.log.filter((l) => l.path.includes("kline")).map((l) => l.query);
      assertEquals(new Set(starts).size, starts.length, "repeated request");
    });
  });

  Deno.test(`${dialect}: fetchPage drops the still-open candle`, async () => {
    await withFake(dialect, {}, async (fake, client) => {
      const page = await client.fetchPage("ETH/USDT", "1m", minutesAgo(10), Date.now() + 60_000);
      const open = floorTo(Date.now(), 60_000);
      assert(page.candles.every((c) => c.ts + 60_000 <= page.requestedAt));
      assertEquals(page.openDropped, 1);
      assertEquals(page.candles, fake.expected("ETH/USDT", "1m", minutesAgo(10), open));
      assert(client.stats().openCandlesDropped === 1);
    });
  });

  Deno.test(`${dialect}: 1h and 1d pages are aggregated correctly`, async () => {
    await withFake(dialect, {}, async (fake, client) => {
      for (const tf of ["1h", "1d"]) {
        const step = tf === "1h" ? 3_600_000 : 86_400_000;
        const from = floorTo(Date.now(), step) - 30 * step;
        const r = await client.fetchRange("SOL/USDT", tf, from);
        assertEquals(r.candles, fake.expected("SOL/USDT", tf, from, floorTo(Date.now(), step)), tf);
      }
    });
  });

  Deno.test(`${dialect}: a historic hole neither stops the walk nor loops; empty windows are reported`, async () => {
    const from = minutesAgo(5_000);
    const hole = { from: from + 1_200 * 60_000, to: from + 3_500 * 60_000 };
    await withFake(dialect, { holes: [hole] }, async (fake, client) => {
      const to = minutesAgo(0);
      const r = await client.fetchRange("BTC/USDT", "1m", from, to);
      assertEquals(r.candles, fake.expected("BTC/USDT", "1m", from, to));
      assert(r.candles.every((c) => c.ts < hole.from || c.ts >= hole.to));
      assert(r.emptyWindows.length >= 1, "empty windows reported");
      assert(r.emptyWindows.every((w) => w.from >= hole.from && w.to <= hole.to + 1000 * 60_000));
      assert(r.pages <= 7, `too many pages: ${r.pages}`);
    });
  });

  Deno.test(`${dialect}: a duplicated candle on a page boundary appears once`, async () => {
    await withFake(dialect, { duplicateBoundary: true }, async (fake, client) => {
      const from = minutesAgo(2_500);
      const to = minutesAgo(0);
      const r = await client.fetchRange("BTC/USDT", "1m", from, to);
      assertEquals(r.candles, fake.expected("BTC/USDT", "1m", from, to));
    });
  });

  Deno.test(`${dialect}: malformed candles are rejected and counted, good ones on the page come through`, async () => {
    const from = minutesAgo(300);
    const bad = [
      { ts: from + 10 * 60_000, kind: "high-below-low" as const, reason: "low above high" },
      { ts: from + 20 * 60_000, kind: "negative-volume" as const, reason: "negative volume" },
      { ts: from + 30 * 60_000, kind: "nan" as const, reason: "close is not a finite number" },
    ];
    await withFake(dialect, { malformed: bad.map(({ ts, kind }) => ({ ts, kind })) }, async (fake, client) => {
      const to = minutesAgo(0);
      const page = await client.fetchPage("BTC/USDT", "1m", from, to);
      const badTs = new Set(bad.map((b) => b.ts));
      assertEquals(page.candles, fake.expected("BTC/USDT", "1m", from, to).filter((c) => !badTs.has(c.ts)));
      assertEquals(page.rejected.map((r) => r.ts), bad.map((b) => b.ts));
      for (const [i, b] of bad.entries()) assert(page.rejected[i].reason.startsWith(b.reason), page.rejected[i].reason);
      assertEquals(client.stats().rejectedCandles, 3);
    });
  });

  Deno.test(`${dialect}: findEarliest finds the listing time without scanning`, async () => {
    await withFake(dialect, {}, async (fake, client) => {
      const sol = fake.markets.find((m) => m.symbol === "SOL/USDT")!;
      const before = fake.stats.requests;
      assertEquals(await client.findEarliest("SOL/USDT", "1m"), sol.listedAt);
      assertEquals(fake.stats.requests - before, 2, "two requests");
      assertEquals(await client.findEarliest("SOL/USDT", "1h"), floorTo(sol.listedAt, 3_600_000));
      assertEquals(await client.findEarliest("SOL/USDT", "1d"), floorTo(sol.listedAt, 86_400_000));
    });
  });

  Deno.test(`${dialect}: top-N selection follows the fake's 24h quote volumes`, async () => {
    await withFake(dialect, {}, async (fake, client) => {
      const expected = fake.markets
        .filter((m) => m.active !== false && m.symbol.endsWith("/USDT"))
        .sort((a, b) => b.quoteVolume24h - a.quoteVolume24h)
        .slice(0, 3)
        .map((m) => m.symbol);
      assertEquals(await client.topSymbols(3, "USDT"), expected);
      // configured BTC/USDT merged with the top 3, de-duplicated
      assertEquals(client.symbols(), ["BTC/USDT", ...expected.filter((s) => s !== "BTC/USDT")]);
    }, { topSymbols: 3 });
  });

  Deno.test(`${dialect}: unknown symbol and unsupported timeframe are reported clearly`, async () => {
    await withFake(dialect, { klinesUnknown: ["ETH/USDT"] }, async (fake, client) => {
      const reason = client.validateSeries("NOPE/USDT", "1m");
      assert(reason !== null && reason.includes("NOPE/USDT") && reason.includes("does not list"), String(reason));
      const tfReason = client.validateSeries("BTC/USDT", "7m");
      assert(tfReason !== null && tfReason.includes("7m"), String(tfReason));
      assertEquals(client.validateSeries("BTC/USDT", "1m"), null);
      const before = fake.stats.requests;
      const invalid = await assertRejects(
        () => client.fetchPage("NOPE/USDT", "1m", minutesAgo(10)),
        ExchangeRequestError,
      );
      assertEquals(invalid.kind, "invalid_series");
      assertEquals(fake.stats.requests, before, "no request for an invalid series");
      // listed in the markets but refused by the klines endpoint: one request, not retried
      const error = await assertRejects(() => client.fetchPage("ETH/USDT", "1m", minutesAgo(10)), ExchangeRequestError);
      assertEquals(error.kind, "fatal");
      assertEquals(error.code, "BadSymbol");
      assert(error.message.includes(dialect === "binance" ? "Invalid symbol" : "Not supported symbols"), error.message);
      assertEquals(fake.stats.requests - before, 1, "not retried");
    });
  });
}
