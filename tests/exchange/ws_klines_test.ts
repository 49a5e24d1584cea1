/**
 * {@linkcode KlineStreams} with the real ccxt.pro against the fake exchange's kline streams:
 * closed candles reported once each, exactly the REST rows, at the x:true event; forming
 * updates; batches of connections; reconnection after a forced disconnect and after silence;
 * duplicate and out-of-order events dropped; USDⓈ-M perpetual and dated contracts on connections
 * of their own, their closes equal to `/fapi/v1/klines`.
 */
import { createCcxtExchange } from "../../src/exchange/ccxt_instance.ts";
import { canWatchCandles, connectionGroup, type KlineEvent, KlineStreams } from "../../src/exchange/ws_klines.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { type FakeExchange, startFakeExchange } from "../support/fake_exchange.ts";
import { nextQuarterlyExpiry, yymmdd } from "../support/fake_derivatives.ts";
import { waitUntil } from "../support/wait.ts";

const MINUTE = 60_000;

interface World {
  fake: FakeExchange;
  events: KlineEvent[];
  states: { batch: number; up: boolean; reason?: string }[];
  streams: KlineStreams;
  minute: number;
  /** The REST client whose markets the streams use. */
  rest: ReturnType<typeof createCcxtExchange>;
}

async function withStreams(
  fn: (w: World) => Promise<void>,
  options: { streamsPerConnection?: number; silenceMs?: number; symbols?: string[] } = {},
): Promise<void> {
  const fake = await startFakeExchange({ dialect: "binance", ws: { clock: "manual" } });
  const minute = Math.floor(Date.now() / MINUTE) * MINUTE;
  fake.behaviour.nowOffsetMs = minute + 10_000 - Date.now();
  const rest = createCcxtExchange("binance", {
    ccxtConfig: { binance: fake.ccxtConfig() },
    symbols: options.symbols,
  });
  await rest.loadMarkets();
  const events: KlineEvent[] = [];
  const states: World["states"] = [];
  const streams = new KlineStreams({
    id: "binance",
    ccxtConfig: fake.ccxtConfig(),
    markets: { markets: rest.markets, currencies: rest.currencies },
    onEvent: (e) => events.push(e),
    onState: (s) => states.push(s),
    sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 50))),
    ...options,
  });
  try {
    await fn({ fake, events, states, streams, minute, rest });
  } finally {
    await streams.close();
    await fake.close();
  }
}

const closedOf = (events: KlineEvent[], symbol: string) =>
  events.filter((e) => e.closed && e.symbol === symbol).map((e) => e.candle);

Deno.test("ws klines: ccxt.pro can watch Binance candles; an unknown id cannot", () => {
  assert(canWatchCandles("binance"));
  assertEquals(canWatchCandles("nosuchexchange"), false);
});

Deno.test("ws klines: connection groups keep spot, linear, inverse and option markets apart", () => {
  const symbols = [
    "BTC/USDT",
    "BTC/USDT:USDT",
    "BTC/USDT:USDT-261225",
    "BTC/USD:BTC",
    "BTC/USD:BTC-261225",
    "BTC/USD:BTC-261225-60000-C",
    "odd",
  ];
  assertEquals(symbols.map(connectionGroup), ["spot", "linear", "linear", "inverse", "inverse", "option", "spot"]);
});

Deno.test("ws klines: each closed candle once, at its x:true event, equal to REST; forming updates; batches", async () => {
  await withStreams(async ({ fake, events, states, streams, minute }) => {
    const subs = ["BTC/USDT", "ETH/USDT", "SOL/USDT"].map((symbol) => ({ symbol, timeframe: "1m" }));
    streams.start(subs);
    assertEquals(streams.batches.length, 2, "2 per connection: two connections");
    await waitUntil(() => fake.ws.connections().reduce((n, c) => n + c.streams.length, 0) >= 3, "3 streams");
    fake.ws.pump();
    await waitUntil(() => states.filter((s) => s.up).length >= 2, "both batches up");
    for (let i = 0; i < 3; i++) fake.ws.advance(MINUTE);
    await waitUntil(() => subs.every((s) => closedOf(events, s.symbol).length >= 3), "3 closes per series");
    for (const { symbol } of subs) {
      assertEquals(closedOf(events, symbol), fake.expected(symbol, "1m", minute, minute + 3 * MINUTE), symbol);
    }
    assert(events.some((e) => !e.closed), "forming updates are reported");
    // A duplicate of the last closed event and an out-of-order one change nothing.
    const before = events.filter((e) => e.closed).length;
    fake.ws.sendDuplicate("btcusdt@kline_1m");
    fake.ws.sendOutOfOrder("btcusdt@kline_1m", 2);
    fake.ws.pump();
    await new Promise((r) => setTimeout(r, 200));
    assertEquals(events.filter((e) => e.closed).length, before);
  }, { streamsPerConnection: 2 });
});

Deno.test("ws klines: a forced disconnect and a silent socket reconnect; closes continue exactly", async () => {
  await withStreams(async ({ fake, events, states, streams, minute }) => {
    streams.start([{ symbol: "BTC/USDT", timeframe: "1m" }]);
    await waitUntil(() => fake.ws.connections().some((c) => c.streams.length > 0), "subscribed");
    fake.ws.pump();
    await waitUntil(() => states.some((s) => s.up), "up");
    const live = () => fake.ws.connections().filter((c) => c.streams.length > 0).map((c) => c.id);
    const first = live();
    fake.ws.disconnect();
    await waitUntil(() => states.some((s) => !s.up), "down after the disconnect");
    await waitUntil(() => streams.connects >= 2 && live().some((id) => !first.includes(id)), "again");
    fake.ws.pump();
    await waitUntil(() => states.filter((s) => s.up).length >= 2, "up again");
    fake.ws.advance(MINUTE);
    await waitUntil(() => closedOf(events, "BTC/USDT").some((c) => c.ts === minute), "the close after reconnecting");
    // Silence: the socket stays open but sends nothing; after silenceMs the stream reconnects.
    fake.ws.silence(true);
    const downs = states.filter((s) => !s.up).length;
    await waitUntil(() => states.filter((s) => !s.up).length > downs, "down after silence");
    assert(states.at(-1)!.reason!.includes("no message for"), states.at(-1)!.reason);
    fake.ws.silence(false);
    const second = live();
    await waitUntil(() => streams.connects >= 3 && live().some((id) => !second.includes(id)), "back");
    fake.ws.pump();
    await waitUntil(() => states.filter((s) => s.up).length >= 3, "up a third time");
    fake.ws.advance(MINUTE);
    await waitUntil(() => closedOf(events, "BTC/USDT").some((c) => c.ts === minute + MINUTE), "closes go on");
    assertEquals(
      closedOf(events, "BTC/USDT").filter((c) => c.ts <= minute + MINUTE),
      fake.expected("BTC/USDT", "1m", minute, minute + 2 * MINUTE),
    );
  }, { silenceMs: 1500 });
});

Deno.test("ws klines: USDⓈ-M perpetual and dated closes equal /fapi/v1/klines; spot and contracts on their own connections", async () => {
  const dated = `BTC/USDT:USDT-${yymmdd(nextQuarterlyExpiry(Date.now()))}`;
  const symbols = ["BTC/USDT", "BTC/USDT:USDT", "ETH/USDT:USDT", dated];
  await withStreams(async ({ fake, events, states, streams, minute, rest }) => {
    // Interleaved on purpose: batches are split by connection group, not by order.
    streams.start(["BTC/USDT:USDT", "BTC/USDT", dated, "ETH/USDT:USDT"].map((symbol) => ({ symbol, timeframe: "1m" })));
    assertEquals(streams.batches.map((b) => b.map((s) => s.symbol)), [
      ["BTC/USDT:USDT", dated],
      ["ETH/USDT:USDT"],
      ["BTC/USDT"],
    ]);
    await waitUntil(() => fake.ws.connections().reduce((n, c) => n + c.streams.length, 0) >= 4, "4 streams");
    const byKind = fake.ws.connections().filter((c) => c.streams.length > 0)
      .map((c) => `${c.futures ? "futures" : "spot"} ${c.path.replace(/\/\d+$/, "")} ${c.streams.join(",")}`)
      .sort();
    const datedId = dated.split("-")[1];
    assertEquals(byKind, [
      `futures /fstream.binance/market/ws btcusdt@kline_1m,btcusdt_${datedId}@kline_1m`,
      "futures /fstream.binance/market/ws ethusdt@kline_1m",
      "spot /stream.binance/ws btcusdt@kline_1m",
    ]);
    fake.ws.pump();
    await waitUntil(() => states.filter((s) => s.up).length >= 3, "three batches up");
    for (let i = 0; i < 3; i++) fake.ws.advance(MINUTE);
    await waitUntil(() => symbols.every((s) => closedOf(events, s).length >= 3), "3 closes per series");
    // The REST rows, read through ccxt from /fapi/v1/klines (contracts) and /api/v3/klines (spot).
    fake.resetStats();
    for (const symbol of symbols) {
      const rows = await rest.fetchOHLCV(symbol, "1m", minute, 3) as number[][];
      const restCandles = rows.map(([ts, open, high, low, close, volume]) => ({ ts, open, high, low, close, volume }));
      assertEquals(closedOf(events, symbol), restCandles, symbol);
      const model = symbol === "BTC/USDT"
        ? fake.expected(symbol, "1m", minute, minute + 3 * MINUTE)
        : fake.derivatives.expectedCandles(symbol, "1m", { from: minute, to: minute + 3 * MINUTE });
      assertEquals(restCandles, model, symbol);
    }
    assertEquals(fake.stats.byPath["/fapi/v1/klines"], 3);
    assertEquals(fake.stats.byPath["/api/v3/klines"], 1);
    // The perpetual is its own market: its candles are not the spot ones of the same id.
    assert(closedOf(events, "BTC/USDT:USDT")[0].close !== closedOf(events, "BTC/USDT")[0].close);
    assertEquals(
      events.filter((e) => !symbols.includes(e.symbol)).map((e) => e.symbol),
      [],
      "every event maps to a watched symbol",
    );
  }, { streamsPerConnection: 2, symbols });
});
