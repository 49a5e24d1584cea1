import { assertEquals } from "./support/assert.ts";
import { isContractSymbol, marketLoads, marketTypeOf, parseUnifiedSymbol } from "../src/market_type.ts";

Deno.test("market type: from the unified symbol", () => {
  assertEquals(parseUnifiedSymbol("BTC/USDT"), { base: "BTC", quote: "USDT", type: "spot" });
  assertEquals(parseUnifiedSymbol("BTC/USDT:USDT"), {
    base: "BTC",
    quote: "USDT",
    settle: "USDT",
    expiry: undefined,
    type: "swap",
    margin: "linear",
  });
  assertEquals(parseUnifiedSymbol("BTC/USD:BTC")?.margin, "inverse");
  assertEquals(parseUnifiedSymbol("BTC/USDT:USDT-261225")?.type, "future");
  assertEquals(parseUnifiedSymbol("BTC/USDT:USDT-261225")?.expiry, "261225");
  assertEquals(marketTypeOf("BTC/USD:BTC-261225-60000-C"), "option");
  assertEquals(parseUnifiedSymbol("BTCUSDT"), null);
  assertEquals(marketTypeOf("BTCUSDT"), "spot");
  assertEquals(isContractSymbol("ETH/USDT:USDT"), true);
  assertEquals(isContractSymbol("ETH/BTC"), false);
});

Deno.test("market type: what to load", () => {
  assertEquals(marketLoads("spot", ["BTC/USDT", "ETH/USDT"]), ["spot"]);
  assertEquals(marketLoads("spot", ["BTC/USDT", "BTC/USDT:USDT"]), ["spot", "linear"]);
  assertEquals(marketLoads("spot", ["BTC/USD:BTC", "BTC/USDT:USDT-261225"]), ["spot", "inverse", "linear"]);
  assertEquals(marketLoads("swap", []), ["linear", "inverse"]);
});
