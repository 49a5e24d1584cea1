/**
 * Bybit's rate limits, against the fake's Bybit (which enforces an IP window, answers a breach
 * with HTTP 403 and a ban, and reports the window in `X-Bapi-Limit*` headers): one limiter for
 * all of Bybit's HTTP traffic at its published 600 requests per 5 s, each request weighing 1;
 * the headers keep the client inside a tighter window than it assumes (no 403 under load); a
 * forced breach is an IP ban the whole exchange waits out; retCode 10006/10018 is rate limiting
 * that waits for the reset the headers name.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { ExchangeClient } from "../../src/exchange/client.ts";
import type { Clock } from "../../src/exchange/limiter.ts";
import { startFakeExchange } from "../support/fake_exchange.ts";
import { FAST, minutesAgo, withFake } from "./helpers.ts";

const PERP = "BTC/USDT:USDT";

Deno.test("bybit: spot and contract requests share one IP limiter of 600 requests per 5 s, 1 per request", async () => {
  const fake = await startFakeExchange({ dialect: "bybit" });
  const client = await ExchangeClient.create("bybit", {
    exchanges: ["bybit"],
    ccxtConfig: { bybit: fake.ccxtConfig() },
    symbols: ["BTC/USDT", PERP, "BTC/USD:BTC"],
    topSymbols: 0,
    quote: "USDT",
    timeframes: ["1m"],
  }, FAST);
  try {
    const limiters = client.limiters();
    assertEquals([...limiters.keys()], ["spot"]);
    assertEquals([client.limiter.capacity, client.limiter.windowMs], [600, 5_000]);
    const before = client.limiter.spent;
    const since = minutesAgo(2_000);
    await client.fetchPage("BTC/USDT", "1m", since, since + 1_000 * 60_000);
    await client.fetchPage(PERP, "1m", since, since + 1_000 * 60_000, { price: "mark" });
    await client.fetchPage("BTC/USD:BTC", "1m", since, since + 1_000 * 60_000);
    // ccxt costs these 5 each (its own 10 a second); Bybit counts requests.
    assertEquals(client.limiter.spent - before, 3);
    assertEquals(client.limiters().size, 1);
  } finally {
    client.close();
    await fake.close();
  }
});

/** Requests per fake window of `windowMs`, from the fake's own arrival times. */
function perWindow(log: { at: number }[], windowMs: number): number[] {
  const counts = new Map<number, number>();
  for (const l of log) counts.set(Math.floor(l.at / windowMs), (counts.get(Math.floor(l.at / windowMs)) ?? 0) + 1);
  return [...counts.values()];
}

Deno.test("bybit: under load the X-Bapi-Limit headers keep the client inside a tighter IP window: no 403", async () => {
  // 8 requests a second where the client assumes 600 per 5 s (and ccxt 10 a second): only the
  // headers can keep it in.
  await withFake("bybit", { bybitIpLimit: 8, bybitIpWindowMs: 1_000 }, async (fake, client) => {
    fake.resetStats();
    const from = minutesAgo(9_000);
    const to = minutesAgo(0);
    const ranges = await Promise.all([
      client.fetchRange("BTC/USDT", "1m", from, to),
      client.fetchRange("ETH/USDT", "1m", from, to),
      client.fetchRange("SOL/USDT", "1m", from, to),
    ]);
    assertEquals(ranges[0].candles, fake.expected("BTC/USDT", "1m", from, to));
    assertEquals(ranges[1].candles, fake.expected("ETH/USDT", "1m", from, to));
    assertEquals(ranges[2].candles, fake.expected("SOL/USDT", "1m", from, to));
    assertEquals(fake.stats.rejections, [], "403s");
    const stats = client.stats();
    assertEquals([stats.banned, stats.rateLimited], [0, 0]);
    const windows = perWindow(fake.stats.log, 1_000);
    assert(fake.stats.requests >= 27, `requests ${fake.stats.requests}`);
    assert(Math.max(...windows) <= 8, `requests per window ${windows}`);
  }, { topSymbols: 0 });
});

Deno.test("bybit: a forced breach (no headers) is a 403 IP ban: nothing is sent until it is over, data exact", async () => {
  await withFake("bybit", {
    bybitIpLimit: 8,
    bybitIpWindowMs: 1_000,
    bybitLimitHeaders: false,
    banSec: 1,
    latencyMs: 2,
  }, async (fake, client) => {
    fake.resetStats();
    const from = minutesAgo(10_000);
    const to = minutesAgo(0);
    const [a, b] = await Promise.all([
      client.fetchRange("BTC/USDT", "1m", from, to),
      client.fetchRange("ETH/USDT", "1m", from, to),
    ]);
    assertEquals(a.candles, fake.expected("BTC/USDT", "1m", from, to));
    assertEquals(b.candles, fake.expected("ETH/USDT", "1m", from, to));
    const bans = fake.stats.rejections.filter((r) => r.status === 403);
    assert(bans.length > 0, "the breach was not forced");
    // The first 403 of a ban has no Retry-After: the client holds everything for its ban pause
    // (1 s here, 10 minutes by default); only requests already in flight arrive meanwhile.
    const first = bans[0];
    const during = fake.stats.log.filter((l) => l.at > first.at + 50 && l.at < first.at + 1_000 - 5);
    assertEquals(during.length, 0, "requests during the ban");
    const stats = client.stats();
    assertEquals(stats.banned, bans.length);
    assertEquals(stats.errorsByClass.RateLimitExceeded, bans.length);
  }, { topSymbols: 0 });
});

Deno.test("bybit: without Retry-After a 403 holds the whole exchange for 10 minutes (virtual clock)", async () => {
  let offset = 0;
  const sleeps: number[] = [];
  const clock: Clock = {
    now: () => Date.now() + offset,
    sleep: (ms) => {
      sleeps.push(ms);
      offset += ms;
      return Promise.resolve();
    },
  };
  // banSec 0: the fake forgets the ban at once, so the retry shows what the client waited.
  await withFake("bybit", { script: [{ status: 403 }], banSec: 0 }, async (fake, client) => {
    const from = minutesAgo(100);
    const page = await client.fetchPage("BTC/USDT", "1m", from, minutesAgo(2));
    assertEquals(page.candles, fake.expected("BTC/USDT", "1m", from, minutesAgo(2)));
    assertEquals(client.stats().banned, 1);
    assert(sleeps.some((ms) => ms >= 599_000 && ms <= 600_000), `sleeps ${sleeps}`);
  }, { clock, defaultBanMs: undefined });
});

for (const code of [10006, 10018]) {
  Deno.test(`bybit: retCode ${code} (HTTP 200) is rate limiting: retried after the X-Bapi reset, not fatal`, async () => {
    await withFake("bybit", { script: [{ status: 200, code, retryAfterSec: 1 }] }, async (fake, client) => {
      const from = minutesAgo(1_500);
      const r = await client.fetchRange("BTC/USDT", "1m", from, minutesAgo(0));
      assertEquals(r.candles.length, 1_500);
      const rejection = fake.stats.rejections.find((x) => x.status === 200)!;
      const after = fake.stats.log.filter((l) => l.at > rejection.at);
      assert(after.length > 0);
      assert(after[0].at - rejection.at >= 1_000 - 5, `next request after ${after[0].at - rejection.at} ms`);
      // Requests before the reset would have counted as violations (a ban after 3).
      assertEquals(fake.stats.rejections.filter((x) => x.status === 403).length, 0);
      assertEquals(client.stats().rateLimited, 1);
      assertEquals(client.stats().errorsByClass.RateLimitExceeded, 1);
    });
  });
}
