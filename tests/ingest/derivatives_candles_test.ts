/**
 * Contract series beside spot ones (issue 13, parts 1 and 2): `SYMBOLS` mixes spot and
 * perpetual symbols, `CANDLE_PRICES` adds mark, index and premium-index klines for contracts
 * (spot keeps trade only), each its own gap-checked series, equal to the exchange's rows, for
 * Binance USDⓈ-M and Bybit linear through real ccxt; an unknown contract is invalid with a
 * message naming it while the others complete; the API serves each price.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { floorTo } from "../../src/timeframe.ts";
import { marketTypeOf } from "../../src/market_type.ts";
import { getCandles } from "../../src/api/candles.ts";
import { renderStatusTable } from "../../src/cli/status.ts";
import { seriesOverview } from "../../src/db/overview.ts";
import { ingestWorld, storedCandles } from "./helpers.ts";

const MIN = 60_000;
const DAY = 86_400_000;
const FAKE_PRICE = { trade: "trade", mark: "mark", index: "index", premium: "premiumIndex" } as const;

for (const dialect of ["binance", "bybit"] as const) {
  Deno.test(`derivatives (${dialect}): spot and perpetual series side by side, trade/mark/index/premium exact`, async () => {
    const w = await ingestWorld({
      dialect,
      env: {
        SYMBOLS: "BTC/USDT,BTC/USDT:USDT,SOL/USDT:USDT,XRP/USDT:USDT",
        CANDLE_PRICES: "trade,mark,index,premium",
        TIMEFRAMES: "1m",
        BACKFILL_SINCE: "1d",
      },
    });
    try {
      const started = Date.now();
      const failures = await w.ingestor().backfillOnce();
      // XRP has no contract on the fake: its four series are invalid, named, and nothing else fails.
      assertEquals(failures.length, 4, JSON.stringify(failures));
      for (const f of failures) {
        assert(JSON.stringify(f).includes("does not list XRP/USDT:USDT as a swap market"), JSON.stringify(f));
      }
      const series = await w.t.sql<{ symbol: string; price: string; state: string }[]>`
        select symbol, price, state from series order by symbol, price`;
      assertEquals(series.map((s) => `${s.symbol} ${s.price} ${s.state}`), [
        "BTC/USDT trade live",
        "BTC/USDT:USDT index live",
        "BTC/USDT:USDT mark live",
        "BTC/USDT:USDT premium live",
        "BTC/USDT:USDT trade live",
        "SOL/USDT:USDT index live",
        "SOL/USDT:USDT mark live",
        "SOL/USDT:USDT premium live",
        "SOL/USDT:USDT trade live",
        "XRP/USDT:USDT index invalid",
        "XRP/USDT:USDT mark invalid",
        "XRP/USDT:USDT premium invalid",
        "XRP/USDT:USDT trade invalid",
      ]);
      const from = floorTo(started - DAY, MIN);
      const spot = await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" });
      const spotTo = spot.at(-1)!.ts + MIN;
      assertEquals(spot, w.fake.expected("BTC/USDT", "1m", from, spotTo), "spot BTC/USDT");
      for (const symbol of ["BTC/USDT:USDT", "SOL/USDT:USDT"]) {
        for (const price of ["trade", "mark", "index", "premium"] as const) {
          const stored = await storedCandles(w, { symbol, timeframe: "1m", price });
          assert(stored.length > 1000, `${symbol} ${price}: ${stored.length} candles`);
          const to = stored.at(-1)!.ts + MIN;
          const expected = w.fake.derivatives.expectedCandles(symbol, "1m", { from, to, price: FAKE_PRICE[price] })
            // Bybit sends no volume for mark/index/premium klines; stored as 0.
            .map((c) => ({ ...c, volume: c.volume ?? 0 }));
          assertEquals(stored, expected, `${dialect} ${symbol} ${price}`);
        }
      }
      // Mark candles differ from trade candles (they are their own series).
      const trade = await storedCandles(w, { symbol: "BTC/USDT:USDT", timeframe: "1m" });
      const mark = await storedCandles(w, { symbol: "BTC/USDT:USDT", timeframe: "1m", price: "mark" });
      assert(trade[0].close !== mark[0].close, "mark candles equal trade candles");

      // `status` names each price; /v1/series says the market type.
      const overview = await seriesOverview(w.t.sql, { nowMs: Date.now() });
      const table = renderStatusTable(overview, Date.now());
      for (const price of ["mark", "index", "premium"]) {
        assert(new RegExp(`BTC/USDT:USDT\\s+1m ${price}`).test(table), table);
      }
      assertEquals(
        [...new Set(overview.map((o) => `${o.symbol} ${marketTypeOf(o.symbol)}`))],
        ["BTC/USDT spot", "BTC/USDT:USDT swap", "SOL/USDT:USDT swap", "XRP/USDT:USDT swap"],
      );

      // The API serves each price; spot has trade candles only.
      const q = (extra: string) =>
        new URL(`http://x/v1/candles?exchange=${w.fake.exchangeId}&symbol=BTC/USDT:USDT&timeframe=1h&${extra}`);
      const markPage = await (await getCandles(w.t.sql, q("price=mark"))).json();
      assert(markPage.candles.length > 20, `mark 1h page: ${markPage.candles.length}`);
      const tradePage = await (await getCandles(w.t.sql, q("price=trade"))).json();
      assert(markPage.candles[0].close !== tradePage.candles[0].close, "price=mark served trade candles");
      const spotMark = await getCandles(
        w.t.sql,
        new URL(`http://x/v1/candles?exchange=${w.fake.exchangeId}&symbol=BTC/USDT&timeframe=1m&price=mark`),
      ).catch((e) => e as Error);
      assert(spotMark instanceof Error && spotMark.message.includes("stored prices are trade"), String(spotMark));
    } finally {
      await w.close();
    }
  });
}
