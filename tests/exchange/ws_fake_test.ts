/**
 * The real ccxt.pro (`ccxt.pro.binance`) against the fake exchange's kline streams
 * (tests/support/fake_ws.ts): closed candles equal the REST rows, and what ccxt does on a forced
 * disconnect, a silent socket, a duplicate or out-of-order event, and the message limit.
 *
 * @module
 */
import ccxt from "ccxt";
import { deepMerge } from "../../src/exchange/ccxt_instance.ts";
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { type FakeExchange, type FakeWsBehaviour, startFakeExchange } from "../support/fake_exchange.ts";
import { waitUntil, within } from "../support/wait.ts";

const MINUTE = 60_000;

type Pro = InstanceType<typeof ccxt.pro.binance>;
type Row = number[];

/** ccxt's OHLCV rows as plain number arrays. */
function rows(list: readonly (readonly unknown[])[]): Row[] {
  return list.map((c) => c.map((v) => v as number));
}

/** Runs `fn` with a fake (manual stream clock at 10 s into a minute) and a ccxt.pro binance on it. */
async function withPro(
  fn: (fake: FakeExchange, ex: Pro, minute: number) => Promise<void>,
  ws: Partial<FakeWsBehaviour> = {},
  config: Record<string, unknown> = {},
): Promise<void> {
  const fake = await startFakeExchange({ dialect: "binance", ws: { clock: "manual", ...ws } });
  const minute = Math.floor(Date.now() / MINUTE) * MINUTE;
  fake.behaviour.nowOffsetMs = minute + 10_000 - Date.now();
  const ex = new ccxt.pro.binance(
    deepMerge(deepMerge({ enableRateLimit: true, timeout: 10_000 }, fake.ccxtConfig()), config),
  );
  try {
    await ex.loadMarkets();
    await fn(fake, ex, minute);
  } finally {
    await ex.close();
    await fake.close();
  }
}

/** ccxt's candle cache of (symbol, timeframe), the store `watchOHLCV` answers from. */
function cached(ex: Pro, symbol: string, timeframe: string): Row[] {
  const ohlcvs = (ex as unknown as { ohlcvs: Record<string, Record<string, Row[]>> }).ohlcvs;
  return [...(ohlcvs[symbol]?.[timeframe] ?? [])].map((c) => [...c]);
}

/** Waits until the fake carries `count` streams over its connections. */
function subscribed(fake: FakeExchange, count: number): Promise<void> {
  return waitUntil(
    () => fake.ws.connections().reduce((n, c) => n + c.streams.length, 0) >= count,
    `${count} subscribed streams`,
  );
}

/** The kline events the fake sent on its first connection. */
function klines(fake: FakeExchange, id?: number): Record<string, unknown>[] {
  const conn = fake.ws.connections().find((c) => id === undefined || c.id === id)!;
  return conn.sent.filter((p) => typeof p === "string").map((p) => JSON.parse(p as string))
    .map((e) => (e.data ?? e) as Record<string, unknown>).filter((e) => e.e === "kline");
}

Deno.test("ccxt.pro watchOHLCV: forming updates, then one x:true event whose candle equals the REST row", async () => {
  await withPro(async (fake, ex, minute) => {
    const first = ex.watchOHLCV("BTC/USDT", "1m");
    await subscribed(fake, 1);
    fake.ws.pump();
    const forming = rows(await first).at(-1)!;
    fake.ws.advance(20_000);
    const later = rows(await ex.watchOHLCV("BTC/USDT", "1m"));
    const closing = ex.watchOHLCV("BTC/USDT", "1m");
    fake.ws.advance(40_000);
    const closed = rows(await closing).at(-1)!;
    for (let i = 0; i < 2; i++) {
      const next = ex.watchOHLCV("BTC/USDT", "1m");
      fake.ws.advance(MINUTE);
      await next;
    }
    await waitUntil(
      () => cached(ex, "BTC/USDT", "1m").some((c) => c[0] === minute + 3 * MINUTE),
      "the last forming candle",
    );

    const rest = rows(await ex.fetchOHLCV("BTC/USDT", "1m", minute, 3));
    assertEquals(rest.map((r) => r[0]), [minute, minute + MINUTE, minute + 2 * MINUTE]);
    assertEquals(closed, rest[0]);
    assertEquals(cached(ex, "BTC/USDT", "1m").slice(0, 3), rest);
    assertEquals(
      rest,
      fake.expected("BTC/USDT", "1m", minute, minute + 3 * MINUTE).map((
        c,
      ) => [c.ts, c.open, c.high, c.low, c.close, c.volume]),
    );
    // The forming candle grew toward the closed one: same open, volume rising.
    assertEquals([forming[0], forming[1], later.at(-1)![0]], [minute, rest[0][1], minute]);
    assert(forming[5] < later.at(-1)![5] && later.at(-1)![5] < rest[0][5], "forming volume grows to the closed volume");

    // The raw events: exactly one x:true per candle, its fields the REST row's strings.
    const events = klines(fake);
    const finals = events.filter((e) => (e.k as { x: boolean }).x);
    assertEquals(finals.map((e) => (e.k as { t: number }).t), [minute, minute + MINUTE, minute + 2 * MINUTE]);
    const raw = await (await fetch(`${fake.url}/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime=${minute}&limit=3`))
      .json() as unknown[][];
    for (const [i, e] of finals.entries()) {
      const k = e.k as Record<string, unknown>;
      assertEquals([k.t, k.o, k.h, k.l, k.c, k.v, k.T, k.q, k.n, k.V, k.Q], raw[i].slice(0, 11));
      assertEquals([e.e, e.s, k.s, k.i, k.B], ["kline", "BTCUSDT", "BTCUSDT", "1m", "0"]);
    }
    assert(
      events.filter((e) => (e.k as { t: number; x: boolean }).t === minute && !(e.k as { x: boolean }).x).length >= 2,
    );
  });
});

Deno.test("ccxt.pro watchOHLCVForSymbols: one SUBSCRIBE for all series; 5 minutes of closed 1m and 5m candles equal REST", async () => {
  await withPro(async (fake, ex, minute) => {
    const series = [["BTC/USDT", "1m"], ["ETH/USDT", "1m"], ["SOL/USDT", "1m"], ["BTC/USDT", "5m"], ["ETH/USDT", "5m"]];
    const first = ex.watchOHLCVForSymbols(series);
    await subscribed(fake, series.length);
    fake.ws.pump();
    const got = await first;
    const [symbol] = Object.keys(got);
    assert(series.some(([s]) => s === symbol), `resolved for a watched symbol, got ${symbol}`);

    const conns = fake.ws.connections();
    assertEquals(conns.length, 1);
    assertEquals(conns[0].path, "/stream.binance/ws/0");
    assertEquals(conns[0].received, [{
      method: "SUBSCRIBE",
      params: ["btcusdt@kline_1m", "ethusdt@kline_1m", "solusdt@kline_1m", "btcusdt@kline_5m", "ethusdt@kline_5m"],
      id: 1,
    }]);
    const fiveMinute = Math.ceil((minute + 10_000) / (5 * MINUTE)) * 5 * MINUTE;
    const end = fiveMinute + 5 * MINUTE;
    while (fake.now() < end + 10_000) {
      fake.ws.advance(MINUTE);
      await ex.watchOHLCVForSymbols(series);
    }
    const last1m = Math.floor((fake.now() - MINUTE) / MINUTE) * MINUTE;
    await waitUntil(
      () => series.every(([s, tf]) => cached(ex, s, tf).some((c) => c[0] === (tf === "1m" ? last1m : end))),
      "every series' last close",
    );
    for (const [s, tf] of series) {
      const from = tf === "1m" ? minute : fiveMinute;
      const to = tf === "1m" ? last1m + MINUTE : end;
      const rest = rows(await ex.fetchOHLCV(s, tf, from, 1000, { endTime: to - 1 }));
      assert(rest.length >= (tf === "1m" ? 5 : 1), `${s} ${tf}: ${rest.length} REST rows`);
      assertEquals(cached(ex, s, tf).filter((c) => c[0] >= from && c[0] < to), rest, `${s} ${tf}`);
    }
  });
});

Deno.test("ccxt.pro on a forced disconnect: NetworkError 1001, client dropped, no re-subscription until watched again", async () => {
  await withPro(async (fake, ex) => {
    const btc = ex.watchOHLCV("BTC/USDT", "1m");
    const eth = ex.watchOHLCV("ETH/USDT", "1m");
    await subscribed(fake, 2);
    fake.ws.pump();
    await Promise.all([btc, eth]);
    const btcAgain = ex.watchOHLCV("BTC/USDT", "1m");
    const ethAgain = ex.watchOHLCV("ETH/USDT", "1m");
    fake.ws.disconnect();
    const error = await assertRejects(() => within(btcAgain, 3000, "the watcher to see the close"), ccxt.NetworkError);
    assertEquals(error.message, "connection closed by remote server, closing code 1001");
    await assertRejects(() => ethAgain, ccxt.NetworkError);
    assertEquals(Object.keys((ex as unknown as { clients: object }).clients), []);

    const started = Date.now();
    const reconnected = ex.watchOHLCV("BTC/USDT", "1m");
    await subscribed(fake, 1);
    const backoffMs = Date.now() - started;
    fake.ws.pump();
    assertEquals((await reconnected).at(-1)![0], Math.floor(fake.now() / MINUTE) * MINUTE);
    const conns = fake.ws.connections();
    assertEquals([conns.length, conns[0].id, conns[0].streams], [1, 2, ["btcusdt@kline_1m"]]);
    // ccxt's reconnect backoff: 1 s × (0.8..1.2) on the second dial of the same URL.
    assert(backoffMs >= 700 && backoffMs < 2500, `reconnect after ${backoffMs} ms`);
    assertEquals(fake.ws.stats.closes, [{ id: 1, code: 1001, reason: "Service restarting" }]);
  });
});

Deno.test("ccxt.pro: disconnecting one of two connections leaves the other streaming", async () => {
  await withPro(async (fake, ex) => {
    const other = new ccxt.pro.binance(deepMerge({ enableRateLimit: true }, fake.ccxtConfig()));
    try {
      await other.loadMarkets();
      const a = ex.watchOHLCV("BTC/USDT", "1m");
      const b = other.watchOHLCV("ETH/USDT", "1m");
      await subscribed(fake, 2);
      fake.ws.pump();
      await Promise.all([a, b]);
      const [first] = fake.ws.connections().filter((c) => c.streams.includes("btcusdt@kline_1m"));
      const lost = ex.watchOHLCV("BTC/USDT", "1m");
      const kept = other.watchOHLCV("ETH/USDT", "1m");
      fake.ws.disconnect(first.id);
      await assertRejects(() => lost, ccxt.NetworkError);
      fake.ws.advance(1000);
      assertEquals((await kept).length, 1);
      assertEquals(fake.ws.connections().map((c) => c.streams), [["ethusdt@kline_1m"]]);
    } finally {
      await other.close();
    }
  });
});

Deno.test("ccxt.pro on a silent socket: no error and no reconnect even past its keepAlive (Deno has no ping())", async () => {
  await withPro(
    async (fake, ex, minute) => {
      const first = ex.watchOHLCV("BTC/USDT", "1m");
      await subscribed(fake, 1);
      fake.ws.pump();
      await first;
      fake.ws.silence(true);
      let settled = "pending";
      const waiting = ex.watchOHLCV("BTC/USDT", "1m").then(
        () => (settled = "resolved"),
        (e) => (settled = `rejected: ${e}`),
      );
      fake.ws.advance(MINUTE);
      await new Promise((r) => setTimeout(r, 800));
      assertEquals(settled, "pending");
      assertEquals([fake.ws.connections().length, fake.ws.stats.connections], [1, 1]);
      fake.ws.silence(false);
      fake.ws.advance(1000);
      await waiting;
      assertEquals(settled, "resolved");
      // The close of `minute` fell in the silence: ccxt never saw it (the REST safety net's job).
      const rest = rows(await ex.fetchOHLCV("BTC/USDT", "1m", minute, 1));
      const seen = cached(ex, "BTC/USDT", "1m").find((c) => c[0] === minute)!;
      assert(seen[5] < rest[0][5], "the cached candle is the last forming update, not the closed one");
    },
    {},
    { streaming: { keepAlive: 200 } },
  );
});

Deno.test("ccxt.pro delivers a duplicate and an out-of-order event as-is (an old update overwrites a closed candle)", async () => {
  await withPro(async (fake, ex, minute) => {
    const first = ex.watchOHLCV("BTC/USDT", "1m");
    await subscribed(fake, 1);
    fake.ws.pump();
    await first;
    const closing = ex.watchOHLCV("BTC/USDT", "1m");
    fake.ws.advance(50_000);
    await closing;
    await waitUntil(() => cached(ex, "BTC/USDT", "1m").length === 2, "the next forming candle");
    const before = cached(ex, "BTC/USDT", "1m");
    const rest = rows(await ex.fetchOHLCV("BTC/USDT", "1m", minute, 1));
    assertEquals(before[0], rest[0]);

    const dup = ex.watchOHLCV("BTC/USDT", "1m");
    fake.ws.sendDuplicate("btcusdt@kline_1m");
    assertEquals(rows(await dup).at(-1), before[1]);
    assertEquals(cached(ex, "BTC/USDT", "1m"), before);

    // History: [forming(minute) at :10, x:true(minute), forming(minute+1)]: two back is the stale forming one.
    const stale = ex.watchOHLCV("BTC/USDT", "1m");
    fake.ws.sendOutOfOrder("btcusdt@kline_1m", 2);
    const got = await stale;
    const overwritten = cached(ex, "BTC/USDT", "1m");
    assertEquals(overwritten.length, 2);
    assertEquals(overwritten[1], before[1]);
    assertEquals(overwritten[0][0], minute);
    assert(overwritten[0][5] < rest[0][5], "the closed candle was replaced by the stale forming update");
    assert(got.length >= 1);
  });
});

Deno.test("ccxt.pro and the 5 messages/s limit: throttled subscribes pass, unthrottled ones get the socket closed (1008)", async () => {
  const timeframes = ["1m", "3m", "5m", "15m", "30m", "1h", "2h"];
  await withPro(async (fake, ex) => {
    const watches = timeframes.map((tf) => ex.watchOHLCV("BTC/USDT", tf));
    await subscribed(fake, timeframes.length);
    fake.ws.pump();
    await Promise.all(watches);
    assertEquals(fake.ws.stats.closes, []);
    assertEquals(fake.ws.connections()[0].received.length, timeframes.length);
  });
  await withPro(
    async (fake, ex) => {
      const outcomes = await within(
        Promise.allSettled(timeframes.map((tf) => ex.watchOHLCV("BTC/USDT", tf))),
        5000,
        "the watchers to see the close",
      );
      assert(outcomes.every((o) => o.status === "rejected"), "every watcher saw the close");
      // Deno's client reports the close frame (1008) or, when it was still writing, the dropped TCP stream.
      const reason = (outcomes[0] as PromiseRejectedResult).reason;
      assert(reason instanceof ccxt.NetworkError, `a NetworkError, got ${reason}`);
      assert(
        /^(connection closed by remote server, closing code 1008|Unexpected EOF)$/.test(reason.message),
        `close reported as ${reason.message}`,
      );
      assertEquals(fake.ws.stats.closes, [{ id: 1, code: 1008, reason: "Too many messages: more than 5 per second" }]);
    },
    {},
    { enableRateLimit: false },
  );
});

Deno.test("ccxt.pro maps events to spot markets only on a URL containing /stream (binance.isSpotUrl)", async () => {
  await withPro(async (fake, ex) => {
    const plain = new ccxt.pro.binance(deepMerge(fake.ccxtConfig(), {
      urls: { api: { ws: { spot: `ws://127.0.0.1:${fake.port}/ws` } } },
    }));
    try {
      await plain.loadMarkets();
      let settled = false;
      const spot = plain.watchOHLCV("BTC/USDT", "1m").then(() => (settled = true), () => (settled = true));
      await subscribed(fake, 1);
      fake.ws.pump();
      await waitUntil(() => cached(plain, "BTC/USDT:USDT", "1m").length === 1, "the event filed under the perpetual");
      assertEquals([settled, cached(plain, "BTC/USDT", "1m")], [false, []]);
      fake.ws.disconnect();
      await spot;
      assert(ex.market("BTC/USDT:USDT").swap);
    } finally {
      await plain.close();
    }
  });
});

Deno.test("fake streams on the wall clock: x:true within closeDelayMs of the real close, equal to REST", async () => {
  const fake = await startFakeExchange({ dialect: "binance", ws: { updateMs: 300, closeDelayMs: 20 } });
  const ex = new ccxt.pro.binance(deepMerge({ enableRateLimit: true }, fake.ccxtConfig()));
  try {
    await ex.loadMarkets();
    const minute = Math.floor(Date.now() / MINUTE) * MINUTE;
    fake.behaviour.nowOffsetMs = minute + MINUTE - 1500 - Date.now();
    const close = minute + MINUTE;
    let closedAt = 0;
    while (closedAt === 0) {
      await ex.watchOHLCV("BTC/USDT", "1m");
      if (cached(ex, "BTC/USDT", "1m").some((c) => c[0] === close)) closedAt = fake.now();
      assert(fake.now() < close + 3000, "the close arrived within 3 s");
    }
    const latencyMs = closedAt - close;
    assert(latencyMs >= 0 && latencyMs < 500, `close seen ${latencyMs} ms after it happened`);
    const events = klines(fake).map((e) => e.k as { t: number; x: boolean });
    assertEquals(events.filter((k) => k.x).map((k) => k.t), [minute]);
    assert(events.filter((k) => !k.x && k.t === minute).length >= 3, "forming updates every 300 ms before the close");
    const rest = rows(await ex.fetchOHLCV("BTC/USDT", "1m", minute, 1));
    assertEquals(cached(ex, "BTC/USDT", "1m").find((c) => c[0] === minute), rest[0]);
  } finally {
    await ex.close();
    await fake.close();
  }
});

Deno.test("ccxt.pro and the stream limit: a refused SUBSCRIBE rejects the watch, and ccxt then believes it subscribed", async () => {
  await withPro(async (fake, ex) => {
    const series = [["BTC/USDT", "1m"], ["ETH/USDT", "1m"], ["SOL/USDT", "1m"], ["DOGE/USDT", "1m"]];
    const refused = await within(ex.watchOHLCVForSymbols(series).then(() => null, (e) => e), 3000, "the refusal");
    assert(refused instanceof ccxt.ExchangeError, `an ExchangeError, got ${refused}`);
    assertEquals(
      refused.message,
      'binance {"code":2,"msg":"Invalid request: a connection carries at most 3 streams (current 0, asked 4 more)"}',
    );
    // Watching again sends no SUBSCRIBE (the streams stay in client.subscriptions) and waits forever.
    let settled = false;
    const again = ex.watchOHLCVForSymbols(series.slice(0, 3)).then(() => (settled = true), () => (settled = true));
    fake.ws.pump();
    await new Promise((r) => setTimeout(r, 500));
    assertEquals([settled, fake.ws.connections()[0].received.length, fake.ws.connections()[0].streams], [false, 1, []]);
    fake.ws.disconnect();
    await again;
  }, { maxStreams: 3 });
});
