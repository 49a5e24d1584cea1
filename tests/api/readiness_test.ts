/**
 * `/ready` tells the truth about the exchanges: the real ccxt against the fake exchange
 * (5xx, hanging requests, 429s), the real database, the API handler without a port, and one
 * fake clock shared by the exchange clients and the API, so 60 s pass without sleeping.
 *
 * @module
 */
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { Database } from "../../src/db/client.ts";
import { migrate } from "../../src/db/migrate.ts";
import { Registry } from "../../src/metrics.ts";
import { createHandler } from "../../src/api/server.ts";
import { exchangeVerdict, UNREACHABLE_AFTER_MS } from "../../src/api/readiness.ts";
import { ExchangeClient, type ExchangeClientOptions } from "../../src/exchange/client.ts";
import { ExchangeRequestError } from "../../src/exchange/errors.ts";
import type { Clock } from "../../src/exchange/limiter.ts";
import { NO_ANSWER_YET, Reachability } from "../../src/exchange/reachability.ts";
import { type FakeDialect, type FakeExchange, startFakeExchange } from "../support/fake_exchange.ts";
import { createTestDatabase, type TestDatabase } from "../support/pg.ts";
import { SETTINGS, testConfig } from "./helpers.ts";

const MIN = 60_000;

/** Real time plus an offset that tests (and every sleep of the clients) move forward. */
class FakeClock implements Clock {
  offset = 0;
  now = (): number => Date.now() + this.offset;
  sleep = async (ms: number): Promise<void> => {
    this.offset += Math.max(0, ms);
    await new Promise((resolve) => setTimeout(resolve, 0));
  };
  advance(ms: number): void {
    this.offset += ms;
  }
}

interface Rig {
  clock: FakeClock;
  fakes: Map<string, FakeExchange>;
  clients: Map<string, ExchangeClient>;
  /** GET `path` through the API handler (no port). */
  get(path: string): Promise<{ status: number; body: Record<string, unknown>; text: string }>;
  /** One page of 10 old 1m candles from `exchange` (the fake's history, well before now). */
  page(exchange: string): Promise<unknown>;
}

async function withRig(
  dialects: FakeDialect[],
  fn: (rig: Rig) => Promise<void>,
  options: { start?: boolean; client?: ExchangeClientOptions } = {},
): Promise<void> {
  const clock = new FakeClock();
  const fakes = new Map<string, FakeExchange>();
  const clients = new Map<string, ExchangeClient>();
  let t: TestDatabase | undefined;
  try {
    t = await createTestDatabase();
    await migrate(t.sql, SETTINGS);
    for (const dialect of dialects) {
      const fake = await startFakeExchange({ dialect });
      fakes.set(dialect, fake);
      const client = new ExchangeClient(dialect, {
        exchanges: dialects,
        ccxtConfig: { [dialect]: fake.ccxtConfig() },
        symbols: ["BTC/USDT"],
        topSymbols: 0,
        quote: "USDT",
        timeframes: ["1m"],
      }, { clock, maxAttempts: 2, baseDelayMs: 1_000, timeoutMs: 400, ...options.client });
      clients.set(dialect, client);
      if (options.start !== false) await client.start();
    }
    const handler = createHandler({
      db: new Database(t.sql, t.name),
      config: testConfig({ exchanges: dialects }),
      registry: new Registry(),
      now: clock.now,
      exchanges: () => [...clients.values()].map((c) => c.status()),
    });
    const get = async (path: string) => {
      const res = await handler(new Request(`http://127.0.0.1${path}`));
      const text = await res.text();
      const json = res.headers.get("content-type")?.startsWith("application/json");
      return { status: res.status, body: json ? JSON.parse(text) : {}, text };
    };
    const since = Math.floor(Date.now() / MIN) * MIN - 120 * MIN;
    const page = (exchange: string) => clients.get(exchange)!.fetchPage("BTC/USDT", "1m", since, since + 10 * MIN);
    await fn({ clock, fakes, clients, get, page });
  } finally {
    for (const c of clients.values()) c.close();
    for (const f of fakes.values()) await f.close();
    await t?.drop();
  }
}

type ExchangeBody = { id: string; reachable: boolean; since: string; reason: string | null; last_response: string };

function exchangeOf(body: Record<string, unknown>, id: string): ExchangeBody {
  const found = (body.exchanges as ExchangeBody[]).find((e) => e.id === id);
  assert(found, `exchange ${id} listed in ${JSON.stringify(body)}`);
  return found;
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const FIVE_XX = { status: 503, msg: "Service unavailable" };

Deno.test("ready: one of two exchanges down for 60 s is degraded, both is 503, recovery is ready again", async () => {
  await withRig(["binance", "bybit"], async ({ clock, fakes, get, page }) => {
    const start = await get("/ready");
    assertEquals(start.status, 200);
    assertEquals(start.body.status, "ready");
    for (const id of ["binance", "bybit"]) {
      const e = exchangeOf(start.body, id);
      assertEquals([e.reachable, e.reason], [true, null]);
      assert(ISO.test(e.since) && ISO.test(e.last_response), JSON.stringify(e));
    }

    // bybit answers 5xx only: unreachable at once, but /ready waits 60 s before counting it.
    fakes.get("bybit")!.behaviour.script = Array.from({ length: 50 }, () => FIVE_XX);
    const failedAt = clock.now();
    await assertRejects(() => page("bybit"), ExchangeRequestError);
    const early = await get("/ready");
    assertEquals([early.status, early.body.status], [200, "ready"]);
    const bybit = exchangeOf(early.body, "bybit");
    assertEquals(bybit.reachable, false);
    assert(bybit.reason!.includes("HTTP 503"), bybit.reason!);
    assert(Math.abs(Date.parse(bybit.since) - failedAt) < 2_000, `${bybit.since} is when it failed`);
    const upMetrics = (await get("/metrics")).text;
    assert(upMetrics.includes('candlekeep_exchange_up{exchange="bybit"} 0'), upMetrics);
    assert(upMetrics.includes('candlekeep_exchange_up{exchange="binance"} 1'), upMetrics);

    clock.advance(UNREACHABLE_AFTER_MS);
    const degraded = await get("/ready");
    assertEquals([degraded.status, degraded.body.status], [200, "degraded"]);
    assertEquals(degraded.body.unreachable, ["bybit"]);
    assert(String(degraded.body.reason).includes("bybit") && String(degraded.body.reason).includes("HTTP 503"));
    assert(!String(degraded.body.reason).includes("binance"), String(degraded.body.reason));
    assertEquals(exchangeOf(degraded.body, "binance").reachable, true, "quiet for 60 s is not unreachable");

    // binance hangs past the request timeout: unreachable too, and after 60 s nothing can be updated.
    fakes.get("binance")!.behaviour.hangNext = 2;
    fakes.get("binance")!.behaviour.hangMs = 1_500;
    await assertRejects(() => page("binance"), ExchangeRequestError);
    assertEquals((await get("/ready")).body.status, "degraded", "binance down for less than 60 s");
    clock.advance(UNREACHABLE_AFTER_MS);
    const down = await get("/ready");
    assertEquals([down.status, down.body.status], [503, "unavailable"]);
    assertEquals(down.body.unreachable, ["binance", "bybit"]);
    const reason = String(down.body.reason);
    assert(reason.includes("every configured exchange is unreachable"), reason);
    assert(/exchange bybit unreachable for 12\d s \(since [^)]+Z\): .*HTTP 503/.test(reason), reason);
    assert(/exchange binance unreachable for 6\d s \(since [^)]+Z\): RequestTimeout/.test(reason), reason);
    assertEquals((await get("/health")).status, 200, "/health does not depend on the exchanges");

    // Recovery: bybit answers again (degraded, binance named), then binance (ready).
    fakes.get("bybit")!.behaviour.script = [];
    await page("bybit");
    const half = await get("/ready");
    assertEquals([half.status, half.body.status, half.body.unreachable], [200, "degraded", ["binance"]]);
    await page("binance");
    const back = await get("/ready");
    assertEquals([back.status, back.body.status], [200, "ready"]);
    assert((back.body.exchanges as ExchangeBody[]).every((e) => e.reachable && e.reason === null));
    assertEquals((await get("/health")).status, 200);
  });
});

Deno.test("ready: 429s are answers, so an exchange rate-limiting us for minutes is still reachable", async () => {
  await withRig(["binance"], async ({ clock, fakes, clients, get, page }) => {
    clock.advance(2 * UNREACHABLE_AFTER_MS);
    fakes.get("binance")!.behaviour.script = Array.from({ length: 2 }, () => ({ status: 429, retryAfterSec: 1 }));
    await assertRejects(() => page("binance"), ExchangeRequestError);
    assert(fakes.get("binance")!.stats.rejections.filter((r) => r.status === 429).length === 2, "two 429s served");
    assertEquals(clients.get("binance")!.stats().rateLimited, 2);
    clock.advance(UNREACHABLE_AFTER_MS);
    const res = await get("/ready");
    assertEquals([res.status, res.body.status], [200, "ready"]);
    const e = exchangeOf(res.body, "binance");
    assertEquals([e.reachable, e.reason], [true, null]);
    assert(clock.now() - Date.parse(e.last_response) < UNREACHABLE_AFTER_MS + 5_000, "the 429 counted as an answer");
    assertEquals((await get("/health")).status, 200);
  });
});

Deno.test("ready: an exchange that never answered is unreachable from the start; 503 after 60 s", async () => {
  await withRig(["binance"], async ({ clock, clients, get }) => {
    clock.advance(UNREACHABLE_AFTER_MS - 1_000);
    const soon = await get("/ready");
    assertEquals([soon.status, soon.body.status], [200, "ready"]);
    assertEquals(exchangeOf(soon.body, "binance").reason, NO_ANSWER_YET);
    clock.advance(1_000);
    const late = await get("/ready");
    assertEquals(late.status, 503);
    assert(String(late.body.reason).includes(`binance unreachable for 60 s`), String(late.body.reason));
    assert(String(late.body.reason).includes(NO_ANSWER_YET), String(late.body.reason));
    assertEquals((await get("/health")).status, 200);
    await clients.get("binance")!.start();
    assertEquals((await get("/ready")).status, 200);
  }, { start: false });
});

Deno.test("reachability and the verdict: the 60 s boundary, answers reset it, failures keep their start", () => {
  const t0 = Date.UTC(2026, 0, 1);
  const a = new Reachability("a", t0);
  const b = new Reachability("b", t0);
  b.answered(t0 + 1_000);
  const at = (ms: number) => exchangeVerdict([a.status(), b.status()], t0 + ms);
  assertEquals(at(UNREACHABLE_AFTER_MS - 1).state, "ok");
  assertEquals(at(UNREACHABLE_AFTER_MS).state, "degraded");
  assertEquals(at(UNREACHABLE_AFTER_MS).unreachable, ["a"]);
  b.failed(t0 + 10_000, "RequestTimeout: timed out");
  b.failed(t0 + 50_000, "NetworkError: connection refused");
  assertEquals(b.status().since, t0 + 10_000, "the first failure starts the outage");
  assertEquals(b.status().reason, "NetworkError: connection refused", "the latest reason is shown");
  assertEquals(at(70_000).state, "down");
  b.answered(t0 + 71_000);
  assertEquals([b.status().reachable, b.status().since, b.status().lastResponseAt], [true, t0 + 71_000, t0 + 71_000]);
  assertEquals(at(200_000).unreachable, ["a"]);
  assertEquals(exchangeVerdict([], t0).state, "ok", "no exchange: nothing to judge");
  a.failed(
    t0 + 1,
    "NetworkError: a GET http://x:1/v5/kline?symbol=BTCUSDT&sig=abc fetch failed: (http://x:1/v5/kline?s=1)",
  );
  assertEquals(a.status().reason, "NetworkError: a GET http://x:1/v5/kline fetch failed: (http://x:1/v5/kline)");
  a.failed(t0 + 2, "x".repeat(1000));
  assertEquals(a.status().reason!.length, 300, "long reasons are cut");
});

Deno.test("ready: refused connections are unreachable, counted from the start when it never answered", async () => {
  const fake = await startFakeExchange({ dialect: "binance" });
  const ccxtConfig = { binance: fake.ccxtConfig() };
  await fake.close();
  const clock = new FakeClock();
  const before = clock.now();
  const client = new ExchangeClient("binance", {
    exchanges: ["binance"],
    ccxtConfig,
    symbols: ["BTC/USDT"],
    topSymbols: 0,
    quote: "USDT",
    timeframes: ["1m"],
  }, { clock, maxAttempts: 2, baseDelayMs: 10_000 });
  const createdAt = clock.now();
  try {
    await assertRejects(() => client.start(), ExchangeRequestError);
    const status = client.status();
    assertEquals([status.reachable, status.lastResponseAt], [false, null]);
    // Counted from the client's creation (the real clock may tick between it and `createdAt`).
    assert(status.since !== null && status.since >= before && status.since <= createdAt, `since ${status.since}`);
    assert(/^(NetworkError|ExchangeNotAvailable|RequestTimeout)\b/.test(status.reason!), status.reason!);
    assert(clock.now() - createdAt >= 5_000, "the retry waited on the fake clock");
    clock.advance(UNREACHABLE_AFTER_MS);
    const verdict = exchangeVerdict([status], clock.now());
    assertEquals(verdict.state, "down");
    assert(verdict.reasons[0].includes(status.reason!), verdict.reasons[0]);
  } finally {
    client.close();
  }
});
