/**
 * `LIVE_MODE=ws` end to end with the real ccxt.pro against the fake exchange's kline streams
 * (manual stream clock): closed candles written from the socket exactly as REST serves them,
 * no REST request while the stream is healthy, REST taking over while it is down, one REST
 * request per series per `LIVE_REST_CHECK`, and the latency histogram.
 */
import { Registry } from "../../src/metrics.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { ingestWorld, storedCandles } from "./helpers.ts";

const MIN = 60_000;

async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`Cannot wait for ${what}: still false after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

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
    await waitFor(() => w.fake.ws.connections().reduce((n, c) => n + c.streams.length, 0) >= 2, "subscribed");
    w.fake.ws.pump();
    await waitFor(() => connections() === 1, "the stream is up");
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

    // Two minutes pass on the stream: their closes are written at once, equal to REST's rows.
    const restBefore = klines();
    for (let i = 0; i < 2; i++) {
      w.advance(MIN);
      w.fake.ws.pump();
    }
    await waitFor(() => storedUpTo(before, before + 3 * MIN), "two closes");
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
    await waitFor(() => connections() === 0, "down");
    w.advance(2 * MIN);
    assert(await engine.liveTick(), "live tick ran");
    assert(klines() >= restBefore + 2, "REST took over");
    for (const symbol of symbols) {
      const stored = await storedCandles(w, { symbol, timeframe: "1m" });
      assertEquals(stored.slice(-5), w.fake.expected(symbol, "1m", before, before + 5 * MIN), symbol);
    }
    // It comes back by itself.
    await waitFor(() => w.fake.ws.connections().some((c) => c.streams.length >= 2), "resubscribed", 15_000);
    w.fake.ws.pump();
    await waitFor(() => connections() === 1, "up again");

    // 16 minutes later on the stream: one REST request per series confirms the interval.
    for (let i = 0; i < 16; i++) {
      w.advance(MIN);
      w.fake.ws.pump();
    }
    await waitFor(() => storedUpTo(before, before + 21 * MIN), "sixteen more closes");
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
    await waitFor(() => w.fake.ws.connections().some((c) => c.streams.length >= 1), "subscribed");
    w.fake.ws.pump();
    await waitFor(() => connections() === 1, "the stream is up");
    const last = async () => (await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" })).at(-1)!.ts;
    /** A minute (less `early` ms) passes on the stream; its close is stored before the tick. */
    const minutePasses = async (early: number) => {
      const before = await last();
      w.advance(MIN - early);
      w.fake.ws.pump();
      await waitFor(async () => (await last()) > before, "the close");
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
