/**
 * Binance limits spot and USDⓈ-M futures separately (its `/fapi` host publishes its own
 * REQUEST_WEIGHT limit and used-weight header, and weighs klines by `limit`: 1, 2, 5, 10): spot
 * and contract requests of one client wait in separate limiters, each with its published limit
 * and ccxt's weights for its family.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { ExchangeClient } from "../../src/exchange/client.ts";
import { startFakeExchange } from "../support/fake_exchange.ts";
import { minutesAgo } from "./helpers.ts";

function klinesWeight(limit: number): number {
  return limit <= 99 ? 1 : limit <= 499 ? 2 : limit <= 1000 ? 5 : 10;
}

Deno.test("binance: spot and USDⓈ-M futures requests wait in their own limiters, with their own weights", async () => {
  const fake = await startFakeExchange({ dialect: "binance", behaviour: { futuresPublishedLimit: 1200 } });
  const client = await ExchangeClient.create("binance", {
    exchanges: ["binance"],
    ccxtConfig: { binance: fake.ccxtConfig() },
    symbols: ["BTC/USDT", "BTC/USDT:USDT"],
    topSymbols: 0,
    quote: "USDT",
    timeframes: ["1m"],
  }, { baseDelayMs: 10 });
  try {
    const limiters = client.limiters();
    const spot = limiters.get("spot")!;
    const fapi = limiters.get("fapi")!;
    assert(spot && fapi, `limiters: ${[...limiters.keys()].join(", ")}`);
    assertEquals(spot, client.limiter);
    // Each published its own limit (the fake: spot 6000, /fapi 1200 a minute).
    assertEquals([spot.capacity, fapi.capacity], [6000, 1200]);

    const spotBefore = spot.spent, fapiBefore = fapi.spent;
    const pages = 3;
    const futuresLimit = client.pageLimit("1m", "BTC/USDT:USDT");
    // The cheapest page per candle on Binance futures: 499 candles for weight 2 (500 weigh 5).
    assertEquals(futuresLimit, 499);
    const spotLimit = client.pageLimit("1m", "BTC/USDT");
    for (let i = 0; i < pages; i++) {
      const since = minutesAgo((i + 2) * futuresLimit);
      const page = await client.fetchPage("BTC/USDT:USDT", "1m", since, since + futuresLimit * 60_000);
      assertEquals(page.candles.length, futuresLimit);
    }
    // Futures klines cost their Binance weight by limit, in the futures limiter only.
    assertEquals(fapi.spent - fapiBefore, pages * klinesWeight(futuresLimit));
    assertEquals(spot.spent - spotBefore, 0);
    const since = minutesAgo(2 * spotLimit);
    await client.fetchPage("BTC/USDT", "1m", since, since + spotLimit * 60_000);
    // A spot klines request weighs 2 (ccxt cost 0.4 × 5) in the spot limiter.
    assertEquals(spot.spent - spotBefore, 2);
    assertEquals(fapi.spent - fapiBefore, pages * klinesWeight(futuresLimit));
  } finally {
    client.close();
    await fake.close();
  }
});
