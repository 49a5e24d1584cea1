import ccxt from "ccxt";
import { classifyFailure, parseRetryAfter, unreachableReason } from "../../src/exchange/errors.ts";
import { type Clock, WeightLimiter } from "../../src/exchange/limiter.ts";
import { validateCandles } from "../../src/exchange/validate.ts";
import { parseBinanceWeightLimit, refineFailure, usageProfile } from "../../src/exchange/usage.ts";
import { assert, assertEquals } from "../support/assert.ts";

const c = (ts: number, o = 10, h = 12, l = 9, cl = 11, v = 1) => ({
  ts,
  open: o,
  high: h,
  low: l,
  close: cl,
  volume: v,
});

Deno.test("validateCandles: every rule, good candles kept", () => {
  const m = 60_000;
  const r = validateCandles([
    c(0),
    c(m, 10, 9, 8, 9.5), // high < open
    c(2 * m, 10, 12, 10.5, 11), // low > open
    c(3 * m, 10, 12, 13, 11), // low > high
    c(4 * m, 10, 12, 9, 11, -1),
    c(5 * m, NaN),
    c(6 * m + 1),
    c(7 * m),
    c(7 * m), // duplicate
    c(6 * m), // out of order
    c(8 * m, 10, 10, 10, 10, 0), // flat, zero volume: fine
  ], m);
  assertEquals(r.candles.map((x) => x.ts), [0, 7 * m, 8 * m]);
  assertEquals(r.rejected.map((x) => x.ts), [m, 2 * m, 3 * m, 4 * m, 5 * m, 6 * m + 1, 6 * m]);
  assertEquals(r.duplicates, [7 * m]);
  assert(r.rejected[0].reason.includes("high below"));
  assert(r.rejected[4].reason.includes("open is not a finite"));
});

Deno.test("classifyFailure uses the HTTP status where ccxt is ambiguous", () => {
  const now = 1_000_000;
  const ddos = new ccxt.DDoSProtection("x");
  assertEquals(classifyFailure(ddos, 429, { "Retry-After": "3" }, now).kind, "rate_limited");
  assertEquals(classifyFailure(ddos, 429, { "Retry-After": "3" }, now).retryAfterMs, 3000);
  assertEquals(classifyFailure(ddos, 418, { "retry-after": "60" }, now).kind, "banned");
  assertEquals(classifyFailure(new ccxt.ExchangeError("-1008"), 503, {}, now).kind, "retryable");
  assertEquals(classifyFailure(new ccxt.OperationFailed("-1001"), 500, {}, now).kind, "retryable");
  assertEquals(classifyFailure(new ccxt.RequestTimeout("t"), undefined, undefined, now).kind, "retryable");
  assertEquals(classifyFailure(new ccxt.OnMaintenance("m"), 503, {}, now).kind, "retryable");
  assertEquals(classifyFailure(new ccxt.BadSymbol("s"), 400, {}, now).kind, "fatal");
  assertEquals(classifyFailure(new ccxt.BadSymbol("s"), 400, {}, now).code, "BadSymbol");
  assertEquals(classifyFailure(new ccxt.AuthenticationError("a"), 401, {}, now).kind, "fatal");
  assertEquals(classifyFailure(new ccxt.ExchangeError("e"), 400, {}, now).kind, "fatal");
  assertEquals(parseRetryAfter(new Date(now + 5000).toUTCString(), now), 5000);
});

Deno.test("unreachableReason: no answer, 5xx and maintenance are unreachable; 429, bans and rejections are answers", () => {
  const now = 1_000_000;
  const reason = (error: Error, status?: number, headers?: Record<string, string>) =>
    unreachableReason(error, classifyFailure(error, status, headers, now));
  assertEquals(reason(new ccxt.RequestTimeout("timed out")), "RequestTimeout: timed out");
  assertEquals(reason(new ccxt.NetworkError("ECONNREFUSED")), "NetworkError: ECONNREFUSED");
  assertEquals(reason(new ccxt.ExchangeError("-1008 busy"), 503), "ExchangeError (HTTP 503): -1008 busy");
  assertEquals(reason(new ccxt.OnMaintenance("upgrade"), 200), "OnMaintenance (HTTP 200): upgrade");
  assertEquals(reason(new ccxt.ExchangeNotAvailable("gone"), 404), "ExchangeNotAvailable (HTTP 404): gone");
  assertEquals(reason(new ccxt.DDoSProtection("slow down"), 429, { "retry-after": "1" }), null);
  assertEquals(reason(new ccxt.DDoSProtection("banned"), 418, { "retry-after": "60" }), null);
  assertEquals(reason(new ccxt.ExchangeNotAvailable("banned"), 403, { "retry-after": "60" }), null);
  assertEquals(reason(new ccxt.BadSymbol("no such market"), 400), null);
  assertEquals(reason(new ccxt.BadResponse("not JSON"), 200), null);
});

function fakeClock(): Clock & { t: number } {
  const clock = {
    t: 0,
    now: () => clock.t,
    sleep: (ms: number) => {
      clock.t += ms;
      return Promise.resolve();
    },
  };
  return clock;
}

Deno.test("WeightLimiter: rate follows capacity*safety; pauses hold everyone; usage sync", async () => {
  const clock = fakeClock();
  const limiter = new WeightLimiter({ capacity: 6000, windowMs: 60_000, safety: 1, burst: 10, clock });
  for (let i = 0; i < 1000; i++) await limiter.acquire(2);
  // 2000 weight at 100/s minus the 10 burst: ~19.9 s
  assert(Math.abs(clock.t - 19_900) <= 20, `t=${clock.t}`);
  limiter.pauseUntil(clock.t + 5_000, "banned");
  const t0 = clock.t;
  await limiter.acquire(2);
  assert(clock.t >= t0 + 5_000);
  clock.t = 120_500;
  limiter.syncUsage(6000);
  await limiter.acquire(1);
  assert(clock.t >= 180_000, `usage pause: t=${clock.t}`);
});

Deno.test("WeightLimiter.syncRemaining: a reported remaining count caps sends until a newer report, the reset or a window", async () => {
  const clock = fakeClock();
  const limiter = new WeightLimiter({ capacity: 600, windowMs: 5_000, safety: 1, burst: 50, clock });
  // Report of request #10: 3 left. Three more go at once; the fourth waits a window for news.
  limiter.syncRemaining(3, clock.t, { seq: 10 });
  for (let i = 0; i < 3; i++) await limiter.acquire(1);
  assertEquals(clock.t, 0);
  const held = limiter.acquire(1);
  // An older report (#9) can only lower the count, a newer one (#13) sets it.
  limiter.syncRemaining(5, clock.t, { seq: 9 });
  await held;
  assert(clock.t >= 5_000 && clock.t < 5_100, `held until the window passed: t=${clock.t}`);
  clock.t = 10_000;
  limiter.syncRemaining(2, clock.t, { seq: 13 });
  await limiter.acquire(1);
  await limiter.acquire(1);
  assert(clock.t < 10_100, `t=${clock.t}`);
  limiter.syncRemaining(9, clock.t, { seq: 14 });
  await limiter.acquire(1);
  assert(clock.t < 10_100, `a newer report raises the count: t=${clock.t}`);
  // None left: hold until the reset (+20 ms); then the count is unknown again.
  limiter.syncRemaining(0, clock.t + 1_500, { seq: 15 });
  assertEquals(limiter.pause().reason, "usage");
  const before = clock.t;
  for (let i = 0; i < 10; i++) await limiter.acquire(1);
  assert(clock.t >= before + 1_520 && clock.t < before + 1_700, `t=${clock.t - before}`);
  // A reset not in the future (skewed clocks): a short hold only.
  limiter.syncRemaining(0, clock.t - 10_000, { seq: 30 });
  const t1 = clock.t;
  await limiter.acquire(1);
  assert(clock.t - t1 >= 100 && clock.t - t1 < 200, `t=${clock.t - t1}`);
});

Deno.test("refineFailure: Bybit's 403 is an IP ban; its 10006/10018 wait for the X-Bapi reset", () => {
  const now = 1_000_000;
  const bybit = usageProfile("bybit", 20);
  const ban = refineFailure(
    bybit,
    classifyFailure(new ccxt.RateLimitExceeded("access too frequent"), 403, {}, now),
    { nowMs: now },
  );
  assertEquals(ban.kind, "banned");
  const headers = { "X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": String(now + 700) };
  const visits = new ccxt.RateLimitExceeded('bybit {"retCode":10006,"retMsg":"Too many visits!"}');
  const limited = refineFailure(bybit, classifyFailure(visits, 200, headers, now), { headers, nowMs: now });
  assertEquals([limited.kind, limited.retryAfterMs], ["rate_limited", 700]);
  // Binance's 403 without Retry-After stays what ccxt says (a WAF rejection, not a ban).
  const binance = usageProfile("binance", 50);
  const waf = classifyFailure(new ccxt.ExchangeNotAvailable("403"), 403, {}, now);
  assertEquals(refineFailure(binance, waf, { nowMs: now }).kind, waf.kind);
});

Deno.test("parseBinanceWeightLimit reads REQUEST_WEIGHT", () => {
  const body = JSON.stringify({
    rateLimits: [{ rateLimitType: "REQUEST_WEIGHT", interval: "MINUTE", intervalNum: 1, limit: 6000 }],
  });
  assertEquals(parseBinanceWeightLimit("https://x/api/v3/exchangeInfo", body), { capacity: 6000, windowMs: 60_000 });
  assertEquals(parseBinanceWeightLimit("https://x/api/v3/klines", body), null);
});
