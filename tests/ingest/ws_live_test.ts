/**
 * `LIVE_MODE=ws` end to end with the real ccxt.pro against the fake exchange's kline streams
 * (manual stream clock): closed candles written from the socket exactly as REST serves them,
 * no REST request while the stream is healthy, REST taking over while it is down, one REST
 * request per series per `LIVE_REST_CHECK`, and the latency histogram; a USDⓈ-M perpetual
 * beside a spot pair, each on its own connection, while mark and inverse series stay on REST.
 */
import { Registry } from "../../src/metrics.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { ingestWorld, storedCandles } from "./helpers.ts";
import { waitUntil } from "../support/wait.ts";

const MIN = 60_000;

Deno.test("ws live: closes written from the socket, exact; REST only when down and for the periodic check", async () => {
  const w = await ingestWorld({
    env: {
      SYMBOLS: "BTC/USDT,ETH/USDT",
      TIMEFRAMES: "1m",
      BACKFILL_SINCE: "1h",
      LIVE_MODE: "ws",
      LIVE_REST_CHECK: "15m",
    },
    ws: { clock: "manual" },
  });
  const registry = new Registry();
  const symbols = ["BTC/USDT", "ETH/USDT"];
  try {
    const engine = w.ingestor({ registry });
    await engine.start({ cron: false });
    const klines = () => w.fake.stats.byPath["/api/v3/klines"] ?? 0;
    const connections = () => registry.gauge("candlekeep_ws_connections", "").get({ exchange: w.fake.exchangeId });
    // The start's live tick subscribes both series on one connection.
    await waitUntil(() => w.fake.ws.connections().reduce((n, c) => n + c.streams.length, 0) >= 2, "subscribed");
    w.fake.ws.pump();
    await waitUntil(() => connections() === 1, "the stream is up");
    const last = async (symbol: string) => (await storedCandles(w, { symbol, timeframe: "1m" })).at(-1)!.ts;
    /** Whether every candle of both series up to `to` (exclusive) is stored. */
    const storedUpTo = async (from: number, to: number) => {
      for (const symbol of symbols) {
        const have = new Set((await storedCandles(w, { symbol, timeframe: "1m" })).map((c) => c.ts));
        for (let t = from; t < to; t += MIN) if (!have.has(t)) return false;
      }
      return true;
    };
    const before = await last("BTC/USDT");
    const sources = async () =>
      (await w.t.sql<{ s: string }[]>`select live_source as s from series order by id`).map((r) => r.s);
    await waitUntil(async () => (await sources()).every((s) => s === "ws"), "status says ws");

    // Two minutes pass on the stream: their closes are written at once, equal to REST's rows.
    const restBefore = klines();
    for (let i = 0; i < 2; i++) {
      w.advance(MIN);
      w.fake.ws.pump();
    }
    await waitUntil(() => storedUpTo(before, before + 3 * MIN), "two closes");
    for (const symbol of symbols) {
      const stored = await storedCandles(w, { symbol, timeframe: "1m" });
      assertEquals(stored.slice(-3), w.fake.expected(symbol, "1m", before, before + 3 * MIN), symbol);
    }
    // The live tick asks REST for nothing while the stream is healthy.
    assert(await engine.liveTick(), "live tick ran");
    assertEquals(
      klines(),
      restBefore,
      `no REST klines request: ${
        JSON.stringify(w.fake.stats.log.filter((l) => l.path === "/api/v3/klines").slice(-3))
      }`,
    );
    const latency = await registry.render();
    assert(/candlekeep_ws_close_to_commit_seconds_count\{exchange="binance"\} 4\b/.test(latency), latency);

    // The socket drops: while it is down the live tick updates over REST.
    w.fake.ws.disconnect();
    await waitUntil(() => connections() === 0, "down");
    await waitUntil(async () => (await sources()).every((s) => s === "rest"), "status says rest");
    w.advance(2 * MIN);
    assert(await engine.liveTick(), "live tick ran");
    assert(klines() >= restBefore + 2, "REST took over");
    for (const symbol of symbols) {
      const stored = await storedCandles(w, { symbol, timeframe: "1m" });
      assertEquals(stored.slice(-5), w.fake.expected(symbol, "1m", before, before + 5 * MIN), symbol);
    }
    // It comes back by itself.
    await waitUntil(() => w.fake.ws.connections().some((c) => c.streams.length >= 2), "resubscribed", 15_000);
    w.fake.ws.pump();
    await waitUntil(() => connections() === 1, "up again");

    // 16 minutes later on the stream: one REST request per series confirms the interval.
    for (let i = 0; i < 16; i++) {
      w.advance(MIN);
      w.fake.ws.pump();
    }
    await waitUntil(() => storedUpTo(before, before + 21 * MIN), "sixteen more closes");
    const restChecks = klines();
    assert(await engine.liveTick(), "live tick ran");
    assertEquals(klines(), restChecks + 2, "one REST check per series");
    assert(await engine.liveTick(), "live tick ran");
    assertEquals(klines(), restChecks + 2, "and none right after");
    for (const symbol of symbols) {
      const stored = await storedCandles(w, { symbol, timeframe: "1m" });
      assertEquals(stored.slice(-21), w.fake.expected(symbol, "1m", before, before + 21 * MIN), symbol);
    }
  } finally {
    await w.close();
  }
});

Deno.test("ws live: after a restart the candles closed meanwhile come over REST, then the stream takes over", async () => {
  const w = await ingestWorld({
    env: { SYMBOLS: "BTC/USDT", TIMEFRAMES: "1m", BACKFILL_SINCE: "1h", LIVE_MODE: "ws" },
    ws: { clock: "manual" },
  });
  try {
    const streams = () => w.fake.ws.connections().reduce((n, c) => n + c.streams.length, 0);
    const first = w.ingestor({ owner: "host:1" });
    await first.start({ cron: false });
    await waitUntil(() => streams() >= 1, "subscribed");
    const before = (await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" })).at(-1)!.ts;
    await first.stop(2000);
    await waitUntil(() => streams() === 0, "the stopped instance's stream closed");

    // Three minutes pass while nothing runs.
    w.advance(3 * MIN);
    const registry = new Registry();
    const second = w.ingestor({ owner: "host:1", registry });
    await second.start({ cron: false });
    const all = async (to: number) => {
      const have = new Set((await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" })).map((c) => c.ts));
      for (let t = before; t < to; t += MIN) if (!have.has(t)) return false;
      return true;
    };
    await waitUntil(() => all(before + 4 * MIN), "caught up over REST");
    await waitUntil(() => streams() >= 1, "subscribed again");
    w.fake.ws.pump();
    const up = () => registry.gauge("candlekeep_ws_connections", "").get({ exchange: w.fake.exchangeId }) === 1;
    await waitUntil(up, "the stream is up");
    w.advance(MIN);
    w.fake.ws.pump();
    try {
      await waitUntil(() => all(before + 5 * MIN), "the next close from the stream");
    } catch (e) {
      console.log(
        "DBG",
        before,
        JSON.stringify(w.fake.ws.connections().map((c) => [c.id, c.streams, c.sent.slice(-3)])),
      );
      console.log(
        "DBG stored",
        (await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" })).slice(-3).map((c) => c.ts),
      );
      throw e;
    }
    const stored = await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" });
    assertEquals(stored.filter((c) => c.ts >= before), w.fake.expected("BTC/USDT", "1m", before, before + 5 * MIN));
    const latency = await registry.render();
    assert(/candlekeep_ws_close_to_commit_seconds_count\{exchange="binance"\} 1\b/.test(latency), latency);
  } finally {
    await w.close();
  }
});

Deno.test("ws live: spot and USDⓈ-M perpetual closes both from the socket, exact; mark and inverse stay on REST", async () => {
  const w = await ingestWorld({
    env: {
      SYMBOLS: "BTC/USDT,BTC/USDT:USDT,BTC/USD:BTC",
      CANDLE_PRICES: "trade,mark",
      TIMEFRAMES: "1m",
      BACKFILL_SINCE: "1h",
      LIVE_MODE: "ws",
      LIVE_REST_CHECK: "15m",
    },
    ws: { clock: "manual" },
  });
  const registry = new Registry();
  const streamed = ["BTC/USDT", "BTC/USDT:USDT"];
  try {
    const engine = w.ingestor({ registry });
    await engine.start({ cron: false });
    const requests = (path: string) => w.fake.stats.byPath[path] ?? 0;
    const connections = () => registry.gauge("candlekeep_ws_connections", "").get({ exchange: w.fake.exchangeId });
    await waitUntil(() => w.fake.ws.connections().filter((c) => c.streams.length > 0).length >= 2, "subscribed");
    // Spot and the perpetual each on a connection of their own, on their own URLs.
    assertEquals(
      w.fake.ws.connections().filter((c) => c.streams.length > 0)
        .map((c) => `${c.futures ? "futures" : "spot"} ${c.streams.join(",")}`).sort(),
      ["futures btcusdt@kline_1m", "spot btcusdt@kline_1m"],
    );
    w.fake.ws.pump();
    await waitUntil(() => connections() === 2, "both streams up");
    const sources = async () =>
      (await w.t.sql<{ k: string }[]>`
        select symbol || ' ' || price || ' ' || coalesce(live_source, 'rest') as k from series order by symbol, price`)
        .map((r) => r.k);
    const expectedSources = [
      "BTC/USD:BTC mark rest",
      "BTC/USD:BTC trade rest",
      "BTC/USDT trade ws",
      "BTC/USDT:USDT mark rest",
      "BTC/USDT:USDT trade ws",
    ];
    await waitUntil(async () => JSON.stringify(await sources()) === JSON.stringify(expectedSources), "status");

    const expected = (symbol: string, from: number, to: number) =>
      symbol === "BTC/USDT"
        ? w.fake.expected(symbol, "1m", from, to)
        : w.fake.derivatives.expectedCandles(symbol, "1m", { from, to });
    const before = (await storedCandles(w, { symbol: "BTC/USDT:USDT", timeframe: "1m" })).at(-1)!.ts;
    const storedUpTo = async (to: number) => {
      for (const symbol of streamed) {
        const have = new Set((await storedCandles(w, { symbol, timeframe: "1m" })).map((c) => c.ts));
        for (let t = before; t < to; t += MIN) if (!have.has(t)) return false;
      }
      return true;
    };
    const spotBefore = requests("/api/v3/klines");
    const futuresBefore = requests("/fapi/v1/klines");
    const markBefore = requests("/fapi/v1/markPriceKlines");
    const inverseBefore = requests("/dapi/v1/klines");
    for (let i = 0; i < 2; i++) {
      w.advance(MIN);
      w.fake.ws.pump();
    }
    await waitUntil(() => storedUpTo(before + 3 * MIN), "two closes of each");
    // Nothing asked REST for trade klines: the closes came from the socket, equal to REST's rows.
    assertEquals(requests("/api/v3/klines"), spotBefore);
    assertEquals(requests("/fapi/v1/klines"), futuresBefore);
    for (const symbol of streamed) {
      const stored = await storedCandles(w, { symbol, timeframe: "1m" });
      assertEquals(stored.slice(-3), expected(symbol, before, before + 3 * MIN), symbol);
    }
    // The live tick asks REST for the mark and inverse series only.
    assert(await engine.liveTick(), "live tick ran");
    assertEquals(requests("/api/v3/klines"), spotBefore, "no spot klines request");
    assertEquals(requests("/fapi/v1/klines"), futuresBefore, "no futures klines request");
    assert(requests("/fapi/v1/markPriceKlines") > markBefore, "mark klines over REST");
    assert(requests("/dapi/v1/klines") > inverseBefore, "inverse klines over REST");
    const latency = await registry.render();
    assert(/candlekeep_ws_close_to_commit_seconds_count\{exchange="binance"\} 4\b/.test(latency), latency);

    // Both sockets drop: REST takes over the perpetual too, exactly.
    w.fake.ws.disconnect();
    await waitUntil(() => connections() === 0, "down");
    w.advance(2 * MIN);
    assert(await engine.liveTick(), "live tick ran");
    assert(requests("/fapi/v1/klines") > futuresBefore, "REST took over the perpetual");
    for (const symbol of streamed) {
      const stored = await storedCandles(w, { symbol, timeframe: "1m" });
      assertEquals(stored.slice(-5), expected(symbol, before, before + 5 * MIN), symbol);
    }
    for (const [symbol, price] of [["BTC/USDT:USDT", "mark"], ["BTC/USD:BTC", "trade"]] as const) {
      const stored = await storedCandles(w, { symbol, timeframe: "1m", price });
      assertEquals(
        stored.slice(-5),
        w.fake.derivatives.expectedCandles(symbol, "1m", { from: before, to: before + 5 * MIN, price }),
        `${symbol} ${price}`,
      );
    }
  } finally {
    await w.close();
  }
});

Deno.test("ws live: the REST check comes every LIVE_REST_CHECK even when the next tick starts a little earlier", async () => {
  const w = await ingestWorld({
    env: { SYMBOLS: "BTC/USDT", TIMEFRAMES: "1m", BACKFILL_SINCE: "1h", LIVE_MODE: "ws", LIVE_REST_CHECK: "1m" },
    ws: { clock: "manual" },
  });
  const registry = new Registry();
  try {
    const engine = w.ingestor({ registry });
    await engine.start({ cron: false });
    const klines = () => w.fake.stats.byPath["/api/v3/klines"] ?? 0;
    const connections = () => registry.gauge("candlekeep_ws_connections", "").get({ exchange: w.fake.exchangeId });
    await waitUntil(() => w.fake.ws.connections().some((c) => c.streams.length >= 1), "subscribed");
    w.fake.ws.pump();
    await waitUntil(() => connections() === 1, "the stream is up");
    const last = async () => (await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" })).at(-1)!.ts;
    /** A minute (less `early` ms) passes on the stream; its close is stored before the tick. */
    const minutePasses = async (early: number) => {
      const before = await last();
      w.advance(MIN - early);
      w.fake.ws.pump();
      await waitUntil(async () => (await last()) > before, "the close");
    };
    // A minute after the stream opened, the tick checks over REST (this sets when the check ran).
    await minutePasses(0);
    let requests = klines();
    assert(await engine.liveTick(), "live tick ran");
    assertEquals(klines(), requests + 1, "the first check");
    // The next tick runs one interval later, but a second earlier in its minute than the one
    // before (its lease renewal was faster): the check is due all the same, not a minute later.
    await minutePasses(1000);
    requests = klines();
    assert(await engine.liveTick(), "live tick ran");
    assertEquals(klines(), requests + 1, "the check after 59 s");
    // And none right after it.
    assert(await engine.liveTick(), "live tick ran");
    assertEquals(klines(), requests + 1, "no check right after one");
  } finally {
    await w.close();
  }
});
