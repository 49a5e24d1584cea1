import { createCcxtExchange, createExchangeClients, deepMerge } from "../../src/exchange/client.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../support/assert.ts";

Deno.test("unknown exchange id: a clear start-up error naming it", async () => {
  assertThrows(() => createCcxtExchange("notanexchange", { ccxtConfig: {} }), Error, '"notanexchange"');
  await assertRejects(
    () =>
      createExchangeClients({
        exchanges: ["nope"],
        ccxtConfig: {},
        symbols: [],
        topSymbols: 0,
        quote: "USDT",
        timeframes: ["1m"],
      }),
    Error,
    "nope",
  );
});

Deno.test("ccxtConfig is deep-merged over the defaults and ccxt's own description", () => {
  const ex = createCcxtExchange("binance", {
    ccxtConfig: {
      binance: { timeout: 1234, urls: { api: { public: "http://127.0.0.1:1/api/v3" } }, options: { recvWindow: 7000 } },
    },
    marketType: "spot",
  });
  assertEquals(ex.timeout, 1234);
  assertEquals((ex.urls.api as Record<string, string>).public, "http://127.0.0.1:1/api/v3");
  assert(String((ex.urls.api as Record<string, string>).sapi).startsWith("https://"), "other URLs kept");
  assertEquals(ex.options.fetchMarkets.types, ["spot"]);
  assertEquals(ex.options.recvWindow, 7000);
  assert(ex.enableRateLimit, "enableRateLimit");
  const plain = createCcxtExchange("bybit", { ccxtConfig: {} });
  assertEquals(plain.timeout, 15_000);
  assertEquals(plain.options.fetchMarkets.types, ["spot"]);
});

Deno.test("deepMerge merges nested objects and replaces arrays", () => {
  assertEquals(
    deepMerge({ a: { b: 1, c: [1, 2] }, d: 1 }, { a: { c: [3], e: 2 } }),
    { a: { b: 1, c: [3], e: 2 }, d: 1 },
  );
});

Deno.test("ExchangeClient satisfies the ingest engine's ExchangeSource (compile-time)", () => {
  type Source = import("../../src/ingest/engine.ts").ExchangeSource;
  const check = (client: import("../../src/exchange/client.ts").ExchangeClient): Source => client;
  assert(typeof check === "function");
});
