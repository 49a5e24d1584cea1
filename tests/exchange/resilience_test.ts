import { ExchangeRequestError } from "../../src/exchange/errors.ts";
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { DIALECTS, minutesAgo, withFake } from "./helpers.ts";

const KLINES = (dialect: string) => dialect === "binance" ? "/api/v3/klines" : "/v5/market/kline";

for (const dialect of DIALECTS) {
  Deno.test(`${dialect}: 5xx, scripted server errors and real 429s are retried and the result is still exact`, async () => {
    const script = dialect === "binance"
      ? [{ status: 500, code: -1001, msg: "Internal error" }, { status: 503, code: -1008, msg: "Server busy" }]
      : [{ status: 502, code: 10016, msg: "Server error" }];
    await withFake(dialect, { errorRate: 0.2, script, windowMs: 1000, retryAfterSec: 1 }, async (fake, client) => {
      fake.behaviour.weightLimit = 12; // after the markets loaded
      const from = minutesAgo(5_000);
      const to = minutesAgo(0);
      const r = await client.fetchRange("BTC/USDT", "1m", from, to);
      assertEquals(r.candles, fake.expected("BTC/USDT", "1m", from, to));
      const stats = client.stats();
      assert(stats.retries >= script.length, `retries ${stats.retries}`);
      assert(fake.stats.rejections.some((x) => x.status >= 500), "5xx served");
      assertEquals(fake.stats.rejections.filter((x) => x.status === 418 || x.status === 403).length, 0, "no ban");
      assertEquals(stats.rateLimited, fake.stats.rejections.filter((x) => x.status === 429).length);
    });
  });

  Deno.test(`${dialect}: a 429 with Retry-After is honoured (from the fake's own timestamps)`, async () => {
    await withFake(dialect, { script: [{ status: 429, retryAfterSec: 1 }] }, async (fake, client) => {
      const from = minutesAgo(1_500);
      const r = await client.fetchRange("BTC/USDT", "1m", from, minutesAgo(0));
      assertEquals(r.candles.length, 1_500);
      const rejection = fake.stats.rejections.find((x) => x.status === 429)!;
      const after = fake.stats.log.filter((l) => l.at > rejection.at);
      assert(after.length > 0);
      assert(after[0].at - rejection.at >= 1_000 - 5, `next request after ${after[0].at - rejection.at} ms`);
      assertEquals(client.stats().rateLimited, 1);
      assertEquals(client.stats().errorsByClass[dialect === "binance" ? "DDoSProtection" : "RateLimitExceeded"], 1);
    });
  });

  Deno.test(`${dialect}: a ban (418/403) pauses the whole exchange, every series`, async () => {
    const status = dialect === "binance" ? 418 : 403;
    await withFake(dialect, { script: [{ status, retryAfterSec: 1 }], latencyMs: 5 }, async (fake, client) => {
      const from = minutesAgo(3_000);
      const to = minutesAgo(0);
      const [a, b] = await Promise.all([
        client.fetchRange("BTC/USDT", "1m", from, to),
        client.fetchRange("ETH/USDT", "1m", from, to),
      ]);
      assertEquals(a.candles, fake.expected("BTC/USDT", "1m", from, to));
      assertEquals(b.candles, fake.expected("ETH/USDT", "1m", from, to));
      const ban = fake.stats.rejections.find((x) => x.status === status)!;
      // requests already in flight when the ban was sent may arrive a few ms later; nothing else for 1 s
      const during = fake.stats.log.filter((l) => l.at > ban.at + 50 && l.at < ban.at + 1_000 - 5);
      assertEquals(during.length, 0, "requests during the ban");
      const bans = fake.stats.rejections.filter((x) => x.status === status);
      assert(bans.every((x) => x.at <= ban.at + 50), "a ban answered to a request sent after the first ban");
      assertEquals(client.stats().banned, bans.length);
    });
  });

  Deno.test(`${dialect}: a hanging request times out and is retried`, async () => {
    await withFake(dialect, { hangNext: 0 }, async (fake, client) => {
      fake.behaviour.hangNext = 1;
      fake.behaviour.hangMs = 1_500;
      // A fixed window that ends before the forming candle: the minute may turn during the retry.
      const from = minutesAgo(100);
      const to = minutesAgo(2);
      const page = await client.fetchPage("BTC/USDT", "1m", from, to);
      assertEquals(page.candles, fake.expected("BTC/USDT", "1m", from, to));
      assertEquals(client.stats().errorsByClass.RequestTimeout, 1);
      assertEquals(fake.stats.byPath[KLINES(dialect)], 2);
    }, { ccxt: { timeout: 400 } });
  });

  Deno.test(`${dialect}: the retry budget runs out with an 'exhausted' error`, async () => {
    await withFake(dialect, { errorRate: 1 }, async (fake, client) => {
      const error = await assertRejects(
        () => client.fetchPage("BTC/USDT", "1m", minutesAgo(100), minutesAgo(0)),
        ExchangeRequestError,
        "gave up after 3 attempts",
      );
      assertEquals(error.kind, "exhausted");
      assertEquals(error.attempts, 3);
      assertEquals(fake.stats.byPath[KLINES(dialect)], 3);
    }, { maxAttempts: 3 });
  });
}
