/**
 * Real ccxt against the fake exchange's derivatives dialects (Binance USDⓈ-M, Bybit v5 linear):
 * markets, trade/mark/index/premium-index klines, funding history, open interest.
 *
 * @module
 */
import ccxt from "ccxt";
import { createCcxtExchange, deepMerge } from "../../src/exchange/ccxt_instance.ts";
import type { Candle } from "../../src/candle.ts";
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { type FakeExchange, startFakeExchange } from "../support/fake_exchange.ts";
import type { PriceKind } from "../support/fake_derivatives.ts";
import type { FakeDialect } from "../support/fake_exchange.ts";

const HOUR = 3_600_000;
const DAY = 86_400_000;

type Ccxt = InstanceType<typeof ccxt.Exchange>;

/** Runs `fn` with a fake of `dialect` and a real ccxt instance loading spot + linear markets. */
async function withDerivatives(
  dialect: FakeDialect,
  fn: (fake: FakeExchange, ex: Ccxt) => Promise<void> | void,
  types: string[] = ["spot", "linear"],
): Promise<void> {
  const fake = await startFakeExchange({ dialect });
  const registry = ccxt as unknown as Record<string, new (c: Record<string, unknown>) => Ccxt>;
  const ex = new registry[dialect](deepMerge(
    { enableRateLimit: false, timeout: 10_000, options: { defaultType: "swap", fetchMarkets: { types } } },
    fake.ccxtConfig(),
  ));
  try {
    await ex.loadMarkets();
    await fn(fake, ex);
  } finally {
    await fake.close();
  }
}

function ohlcv(candles: Candle[], volume: boolean): (number | undefined)[][] {
  return candles.map((c) => [c.ts, c.open, c.high, c.low, c.close, ...(volume ? [c.volume] : [])]);
}

const hourAgo = (n: number) => Math.floor(Date.now() / HOUR) * HOUR - n * HOUR;

for (const dialect of ["binance", "bybit"] as const) {
  Deno.test(`${dialect} derivatives: markets list spot pairs and linear perpetual and dated contracts`, async () => {
    await withDerivatives(dialect, async (fake, ex) => {
      assertEquals(ex.market("BTC/USDT").type, "spot");
      const perp = ex.market("BTC/USDT:USDT");
      assertEquals(
        [perp.type, perp.swap, perp.linear, perp.inverse, perp.contractSize, perp.expiry, perp.settle],
        ["swap", true, true, false, 1, undefined, "USDT"],
      );
      const dated = fake.derivatives.contracts.find((c) => c.expiry !== undefined)!;
      const future = ex.market(dated.symbol);
      assertEquals(
        [future.type, future.future, future.linear, future.inverse, future.contractSize, future.expiry],
        ["future", true, true, false, 1, dated.expiry],
      );
      assert(/^BTC\/USDT:USDT-[0-9]{6}$/.test(dated.symbol));
      const sol = fake.derivatives.contracts.find((c) => c.symbol === "SOL/USDT:USDT")!;
      assertEquals(ex.market("SOL/USDT:USDT").created, sol.listedAt);
      if (dialect === "bybit") {
        assertEquals(ex.market("ETH/USDT:USDT").info.fundingInterval, 240);
        assertEquals(ex.market("BTC/USDT:USDT").info.fundingInterval, 480);
      } else {
        const intervals = await ex.fetchFundingIntervals(["BTC/USDT:USDT", "ETH/USDT:USDT"]);
        assertEquals([intervals["BTC/USDT:USDT"].interval, intervals["ETH/USDT:USDT"].interval], ["8h", "4h"]);
      }
    });
  });

  Deno.test(`${dialect} derivatives: the inverse perpetual BTC/USD:BTC: market, klines, funding`, async () => {
    await withDerivatives(dialect, async (fake, ex) => {
      const inv = ex.market("BTC/USD:BTC");
      assertEquals(
        [inv.type, inv.linear, inv.inverse, inv.contractSize, inv.settle, inv.id],
        ["swap", false, true, 100, "BTC", dialect === "binance" ? "BTCUSD_PERP" : "BTCUSD"],
      );
      assertEquals(ex.market("ETH/USDT:USDT").linear, true);
      const from = hourAgo(50);
      for (const price of ["trade", "mark", "index", "premiumIndex"] as PriceKind[]) {
        const got = await ex.fetchOHLCV("BTC/USD:BTC", "1h", from, 40, price === "trade" ? {} : { price });
        const expected = fake.derivatives.expectedCandles("BTC/USD:BTC", "1h", { from, to: from + 40 * HOUR, price });
        // ccxt reads the base volume of inverse klines (Binance [7], Bybit [6])
        const withVolume = price === "trade" || dialect === "binance";
        assertEquals(got.map((r) => r.slice(0, withVolume ? 6 : 5)), ohlcv(expected, withVolume), price);
      }
      const funding = await ex.fetchFundingRateHistory("BTC/USD:BTC", from - 10 * DAY, 20);
      const expected = fake.derivatives.expectedFunding(
        "BTC/USD:BTC",
        from - 10 * DAY,
        from - 10 * DAY + 20 * 8 * HOUR,
      );
      assertEquals(funding.map((r) => [r.timestamp, r.fundingRate]), expected.map((r) => [r.ts, Number(r.rate)]));
      if (dialect === "binance") assert((fake.stats.byPath["/dapi/v1/klines"] ?? 0) > 0, "not served by /dapi");
    }, ["spot", "linear", "inverse"]);
  });

  for (const price of ["trade", "mark", "index", "premiumIndex"] as PriceKind[]) {
    Deno.test(`${dialect} derivatives: fetchOHLCV price=${price} equals the expected candles`, async () => {
      await withDerivatives(dialect, async (fake, ex) => {
        for (const symbol of ["BTC/USDT:USDT", fake.derivatives.contracts[3].symbol]) {
          const from = hourAgo(120);
          const params = price === "trade" ? {} : { price };
          const got = await ex.fetchOHLCV(symbol, "1h", from, 100, params);
          const expected = fake.derivatives.expectedCandles(symbol, "1h", { from, to: from + 100 * HOUR, price });
          assertEquals(expected.length, 100);
          const withVolume = price === "trade" || dialect === "binance";
          assertEquals(got.map((r) => r.slice(0, withVolume ? 6 : 5)), ohlcv(expected, withVolume));
          if (price !== "trade") {
            const trade = fake.derivatives.expectedCandles(symbol, "1h", { from, to: from + 100 * HOUR });
            assert(trade.every((t, i) => t.close !== expected[i].close), `${price} candles equal trade candles`);
          }
          assert(expected.every((c) => c.high >= Math.max(c.open, c.close) && c.low <= Math.min(c.open, c.close)));
        }
      });
    });
  }

  Deno.test(`${dialect} derivatives: klines holes by price kind`, async () => {
    await withDerivatives(dialect, async (fake, ex) => {
      const from = hourAgo(30);
      fake.behaviour.priceHoles.push({
        symbol: "BTC/USDT:USDT",
        price: "mark",
        from: from + 3 * HOUR,
        to: from + 5 * HOUR,
      });
      const mark = await ex.fetchOHLCV("BTC/USDT:USDT", "1h", from, 10, { price: "mark" });
      const trade = await ex.fetchOHLCV("BTC/USDT:USDT", "1h", from, 10);
      assertEquals(trade.length, 10);
      assertEquals(mark.length, 10);
      assert(!mark.some((r) => r[0] === from + 3 * HOUR || r[0] === from + 4 * HOUR), "hole served");
      const expected = fake.derivatives.expectedCandles("BTC/USDT:USDT", "1h", {
        from,
        to: from + 12 * HOUR,
        price: "mark",
      });
      assertEquals(mark.map((r) => r.slice(0, 5)), ohlcv(expected, false));
    });
  });

  Deno.test(`${dialect} derivatives: funding history paged across a page boundary equals the expected rows`, async () => {
    await withDerivatives(dialect, async (fake, ex) => {
      for (const [symbol, hours] of [["BTC/USDT:USDT", 8], ["ETH/USDT:USDT", 4]] as const) {
        const step = hours * HOUR;
        const pageSize = dialect === "binance" ? 100 : 50;
        // off the grid by 1 ms so that Bybit's inclusive [since, since + limit × interval] holds `limit` rows
        const from = Math.floor((Date.now() - 90 * DAY) / step) * step + 1;
        const to = from + 2 * pageSize * step;
        const missing = Math.ceil(from / step) * step + 7 * step;
        fake.behaviour.fundingHoles = [{ symbol, from: missing, to: missing + 1 }];
        const rows: { timestamp?: number; fundingRate?: number }[] = [];
        let since = from;
        let pages = 0;
        // no `until`: with an endTime Bybit answers the newest `limit` rows of the range, so
        // paging forward relies on ccxt's endTime = since + limit × fundingInterval
        while (since < to) {
          const page = await ex.fetchFundingRateHistory(symbol, since, pageSize);
          pages++;
          if (page.length === 0) break;
          rows.push(...page.filter((r) => r.timestamp! < to));
          since = page[page.length - 1].timestamp! + 1;
        }
        const expected = fake.derivatives.expectedFunding(symbol, from, to);
        assertEquals(expected.length, 2 * pageSize - 1, "expected rows (one hole)");
        assert(!expected.some((r) => r.ts === missing), "hole in expected");
        assert(expected.every((r) => r.ts % step === 0), "funding off its grid");
        assert(pages >= 2, "one page only");
        assertEquals(rows.map((r) => [r.timestamp, r.fundingRate]), expected.map((r) => [r.ts, Number(r.rate)]));
        if (dialect === "binance") {
          const info = rows.map((r) => (r as { info: { markPrice: string; fundingRate: string } }).info);
          assertEquals(info.map((i) => [i.fundingRate, i.markPrice]), expected.map((r) => [r.rate, r.markPrice]));
        }
      }
    });
  });

  Deno.test(`${dialect} derivatives: a contract listed mid-range has nothing before its listing`, async () => {
    await withDerivatives(dialect, async (fake, ex) => {
      const sol = fake.derivatives.contracts.find((c) => c.symbol === "SOL/USDT:USDT")!;
      const from = hourAgo(20 * 24);
      const candles = await ex.fetchOHLCV(sol.symbol, "1h", from, 200);
      assert(candles.length > 0, "no candles after listing");
      const listedHour = Math.floor(sol.listedAt / HOUR) * HOUR;
      assertEquals(candles[0][0], listedHour);
      // the exchange answers the first 200 candles that exist from `since`: those from the listing
      assertEquals(fake.derivatives.expectedCandles(sol.symbol, "1h", { from, to: listedHour }), []);
      const expected = fake.derivatives.expectedCandles(sol.symbol, "1h", { from, to: listedHour + 200 * HOUR });
      assertEquals(candles.map((r) => r.slice(0, 6)), ohlcv(expected, true));
      const mark = await ex.fetchOHLCV(sol.symbol, "1h", from, 200, { price: "mark" });
      assertEquals(mark[0][0], Math.floor(sol.listedAt / HOUR) * HOUR);
      const funding = await ex.fetchFundingRateHistory(sol.symbol, from, 100, { until: from + 100 * 8 * HOUR });
      assert(funding.length > 0, "no funding after listing");
      assertEquals(funding[0].timestamp, Math.ceil(sol.listedAt / (8 * HOUR)) * 8 * HOUR);
      assert(funding[0].timestamp! > sol.listedAt, "listing is off the grid in the default contracts");
      const early = await ex.fetchFundingRateHistory(sol.symbol, from, 10, { until: sol.listedAt - 1 });
      assertEquals(early, []);
    });
  });
}

Deno.test("binance derivatives: open interest keeps 30 days; older is a BadRequest", async () => {
  await withDerivatives("binance", async (fake, ex) => {
    const from = hourAgo(48);
    const got = await ex.fetchOpenInterestHistory("BTC/USDT:USDT", "1h", from, 48);
    const expected = fake.derivatives.expectedOpenInterest("BTC/USDT:USDT", "1h", { from, to: from + 48 * HOUR });
    assertEquals(expected.length, 48);
    assertEquals(
      got.map((r) => [r.timestamp, r.openInterestAmount, r.openInterestValue]),
      expected.map((r) => [r.ts, Number(r.amount), Number(r.value)]),
    );
    await assertRejects(
      () => ex.fetchOpenInterestHistory("BTC/USDT:USDT", "1h", Date.now() - 31 * DAY, 10),
      ccxt.BadRequest,
    );
    assertEquals(
      fake.derivatives.expectedOpenInterest("BTC/USDT:USDT", "1d", { from: 0, to: Date.now() - 30 * DAY }),
      [],
    );
    const fiveMin = await ex.fetchOpenInterestHistory("BTC/USDT:USDT", "5m", undefined, 500);
    assertEquals(fiveMin.length, 500);
  });
});

Deno.test("binance derivatives: /futures/data has its own request limit, answered with 429", async () => {
  await withDerivatives("binance", async (fake, ex) => {
    fake.behaviour.dataRequestLimit = 3;
    fake.behaviour.dataWindowMs = 1e12;
    fake.behaviour.weightLimit = 1_000_000;
    for (let i = 0; i < 3; i++) await ex.fetchOpenInterestHistory("ETH/USDT:USDT", "5m", undefined, 10);
    const weightBefore = fake.stats.weight;
    await assertRejects(
      () => ex.fetchOpenInterestHistory("ETH/USDT:USDT", "5m", undefined, 10),
      ccxt.DDoSProtection,
    );
    assertEquals(fake.stats.weight, weightBefore, "/futures/data counted in the request weight");
    const rejection = fake.stats.rejections.at(-1)!;
    assertEquals([rejection.status, rejection.path], [429, "/futures/data/openInterestHist"]);
    assert(rejection.retryAfterMs! >= 1000);
    // klines and funding are unaffected
    assertEquals((await ex.fetchOHLCV("ETH/USDT:USDT", "1m", undefined, 5)).length, 5);
    assert((await ex.fetchFundingRateHistory("ETH/USDT:USDT", undefined, 5)).length === 5);
    assertEquals(fake.stats.byPath["/futures/data/openInterestHist"], 4);
  });
});

Deno.test("bybit derivatives: open interest pages by cursor and goes back beyond 30 days", async () => {
  await withDerivatives("bybit", async (fake, ex) => {
    const from = hourAgo(60 * 24);
    const to = from + 300 * HOUR;
    const got = await ex.fetchOpenInterestHistory("BTC/USDT:USDT", "1h", from, 200, { until: to - 1 });
    const expected = fake.derivatives.expectedOpenInterest("BTC/USDT:USDT", "1h", { from, to });
    assertEquals(expected.length, 300);
    // newest 200 of the range first, then the cursor for the older rows
    assertEquals(
      got.map((r) => [r.timestamp, r.openInterestAmount]),
      expected.slice(100).map((r) => [r.ts, Number(r.amount)]),
    );
    const cursor = got.map((r) => (r.info as { nextPageCursor?: string }).nextPageCursor).find((c) => c);
    assert(cursor, "no nextPageCursor");
    const older = await ex.fetchOpenInterestHistory("BTC/USDT:USDT", "1h", from, 200, { until: to - 1, cursor });
    assertEquals(older.map((r) => r.timestamp), expected.slice(0, 100).map((r) => r.ts));
    assert(older.every((r) => !(r.info as { nextPageCursor?: string }).nextPageCursor), "a cursor after the last page");
  });
});

for (const dialect of ["binance", "bybit"] as const) {
  Deno.test(`${dialect} derivatives: our ccxt instance with MARKET_TYPE=swap loads the contracts and their klines`, async () => {
    const fake = await startFakeExchange({ dialect });
    try {
      const ex = createCcxtExchange(dialect, { marketType: "swap", ccxtConfig: { [dialect]: fake.ccxtConfig() } });
      await ex.loadMarkets();
      assertEquals(ex.market("ETH/USDT:USDT").type, "swap");
      assert(Object.values(ex.markets ?? {}).every((m) => m.contract), "a spot market was loaded");
      assertEquals(ex.market("BTC/USD:BTC").inverse, true);
      const from = hourAgo(10);
      const got = await ex.fetchOHLCV("ETH/USDT:USDT", "1h", from, 5, { price: "mark" });
      const expected = fake.derivatives.expectedCandles("ETH/USDT:USDT", "1h", {
        from,
        to: from + 5 * HOUR,
        price: "mark",
      });
      assertEquals(got.map((r) => r.slice(0, 5)), ohlcv(expected, false));
      const paths = Object.keys(fake.stats.byPath);
      assert(paths.every((p) => !p.startsWith("/api/v3/exchangeInfo")), `spot markets requested: ${paths.join(", ")}`);
    } finally {
      await fake.close();
    }
  });
}

Deno.test("binance derivatives: /fapi weight has its own window, header and 429, apart from spot", async () => {
  await withDerivatives("binance", async (fake, ex) => {
    fake.behaviour.weightLimit = 30; // spot window
    fake.behaviour.futuresWeightLimit = 12;
    fake.behaviour.futuresWindowMs = 1e12; // one window for the whole test: no boundary to cross
    fake.resetStats();
    // limit 500..1000 costs 5: two pass (10), the ping makes 11, the third klines is over 12
    await ex.fetchOHLCV("BTC/USDT:USDT", "1m", undefined, 500);
    const markPage = await ex.fetchOHLCV("BTC/USDT:USDT", "1m", undefined, 1000, { price: "mark" });
    assertEquals(markPage.length, 1000);
    assertEquals(fake.stats.weight, 10);
    const ping = await fetch(`${fake.url}/fapi/v1/ping`);
    await ping.body?.cancel();
    assertEquals(ping.headers.get("x-mbx-used-weight-1m"), "11");
    await assertRejects(() => ex.fetchOHLCV("BTC/USDT:USDT", "1m", undefined, 500), ccxt.DDoSProtection);
    assertEquals(fake.stats.weight, 16); // counted, then refused
    assertEquals(fake.stats.rejections.map((r) => [r.status, r.path]), [[429, "/fapi/v1/klines"]]);
    // the spot window is untouched by the futures weight
    assertEquals((await ex.fetchOHLCV("BTC/USDT", "1m", undefined, 5)).length, 5);
    assertEquals(fake.derivatives.futuresWeight("/fapi/v1/klines", new URLSearchParams("limit=1500")), 10);
  });
});
