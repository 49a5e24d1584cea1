/**
 * Who collects funding rates and open interest: the instance holding a perpetual's primary
 * (lowest id) candle series, so several instances on one database share the perpetuals
 * without duplicating requests; perpetuals picked by TOP_SYMBOLS are collected; bounded
 * (Deploy-style) runs collect within their budget; one-shot commands leave a running
 * service's perpetuals alone. Real ccxt against the fake exchange's derivatives APIs.
 */
import type { ExchangeClient } from "../../src/exchange/client.ts";
import { Registry } from "../../src/metrics.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { type IngestWorld, ingestWorld } from "./helpers.ts";

const HOUR = 3_600_000;

/** Calls of the funding and open-interest methods, by symbol, through one instance's clients. */
interface Calls {
  funding: Map<string, number>;
  openInterest: Map<string, number>;
}

/**
 * The world's real exchange clients seen through a proxy that counts the funding and
 * open-interest pages each symbol is asked for (the request still goes to the fake).
 */
function counted(w: IngestWorld): { sources: Map<string, ExchangeClient>; calls: Calls } {
  const calls: Calls = { funding: new Map(), openInterest: new Map() };
  const count = (map: Map<string, number>, symbol: string) => map.set(symbol, (map.get(symbol) ?? 0) + 1);
  const sources = new Map<string, ExchangeClient>();
  for (const [id, client] of w.clients) {
    sources.set(
      id,
      new Proxy(client, {
        get(target, property) {
          const value = Reflect.get(target, property, target);
          if (typeof value !== "function") return value;
          return (...args: unknown[]) => {
            if (property === "fetchFundingPage") count(calls.funding, String(args[0]));
            if (property === "fetchOpenInterestPage") count(calls.openInterest, String(args[0]));
            return value.apply(target, args);
          };
        },
      }),
    );
  }
  return { sources, calls };
}

async function fundingCount(w: IngestWorld, symbol: string): Promise<number> {
  const [row] = await w.t.sql<{ n: number }[]>`
    select count(*)::int as n from funding_rates where exchange = ${w.fake.exchangeId} and symbol = ${symbol}`;
  return row.n;
}

async function openInterestCount(w: IngestWorld, symbol: string): Promise<number> {
  const [row] = await w.t.sql<{ n: number }[]>`
    select count(*)::int as n from open_interest where exchange = ${w.fake.exchangeId} and symbol = ${symbol}`;
  return row.n;
}

const PERPS = ["BTC/USDT:USDT", "ETH/USDT:USDT"];

Deno.test("derivative leases: two instances collect each perpetual's funding and open interest once", async () => {
  const w = await ingestWorld({
    env: {
      SYMBOLS: ["BTC/USDT", ...PERPS].join(","),
      TIMEFRAMES: "1h,1d",
      CANDLE_PRICES: "trade,mark",
      BACKFILL_SINCE: "5d",
      OPEN_INTEREST: "1h",
    },
  });
  try {
    const a = counted(w);
    const b = counted(w);
    const one = w.ingestor({ owner: "instance-a", sources: a.sources });
    const two = w.ingestor({ owner: "instance-b", sources: b.sources });
    await one.syncSeries();
    // Both heartbeats first, then the fair split: 10 series, 5 each.
    await one.coordinate();
    await two.coordinate();
    await one.coordinate();
    await two.coordinate();
    assertEquals([one.owned.length, two.owned.length], [5, 5]);
    // Each instance holds series of both perpetuals (ids are in key order: a symbol's
    // timeframes and prices are neighbours), so collecting "the perpetuals I hold" would
    // ask for one of them twice.
    const symbolsOf = async (ids: number[]) =>
      new Set(
        (await w.t.sql<{ symbol: string }[]>`select symbol from series where id = any(${ids}::int[])`).map((r) =>
          r.symbol
        ),
      );
    const heldBy = [await symbolsOf(one.owned), await symbolsOf(two.owned)];
    assert(heldBy[0].has("BTC/USDT:USDT") && heldBy[1].has("BTC/USDT:USDT"), "BTC's series are split");

    await Promise.all([one.backfillPending(), two.backfillPending()]);
    await Promise.all([one.openInterestTick(), two.openInterestTick()]);
    for (const symbol of PERPS) {
      const fundingBy = [a.calls.funding.get(symbol) ?? 0, b.calls.funding.get(symbol) ?? 0];
      assertEquals(fundingBy.filter((n) => n > 0).length, 1, `${symbol} funding asked by one instance: ${fundingBy}`);
      const oiBy = [a.calls.openInterest.get(symbol) ?? 0, b.calls.openInterest.get(symbol) ?? 0];
      assertEquals(oiBy.filter((n) => n > 0).length, 1, `${symbol} open interest asked by one instance: ${oiBy}`);
      const expectedFunding = w.fake.derivatives.expectedFunding(symbol, w.now() - 5 * 24 * HOUR, w.now()).length;
      assert(Math.abs((await fundingCount(w, symbol)) - expectedFunding) <= 1, `${symbol} funding stored`);
      assert((await openInterestCount(w, symbol)) >= 100, `${symbol} open interest stored`);
    }
    // Spot has none.
    assertEquals([a.calls.funding.has("BTC/USDT"), b.calls.funding.has("BTC/USDT")], [false, false]);

    // The first instance stops: the other takes its leases and collects everything.
    await one.stop(1000);
    await two.coordinate();
    assertEquals(two.owned.length, 10);
    b.calls.funding.clear();
    w.advance(8 * HOUR + 10 * 60_000);
    assert(await two.liveTick(), "live tick ran");
    await two.openInterestTick();
    assertEquals([...b.calls.funding.keys()].sort(), PERPS);
    assertEquals([...b.calls.openInterest.keys()].sort(), PERPS);
  } finally {
    await w.close();
  }
});

Deno.test("derivative leases: perpetuals picked by TOP_SYMBOLS get funding and open interest", async () => {
  const w = await ingestWorld({
    dialect: "bybit",
    env: {
      SYMBOLS: "",
      TOP_SYMBOLS: "2",
      MARKET_TYPE: "swap",
      TIMEFRAMES: "1d",
      BACKFILL_SINCE: "3d",
      OPEN_INTEREST: "1h",
    },
  });
  try {
    const engine = w.ingestor();
    const targets = await engine.syncSeries();
    const picked = [...new Set(targets.map((t) => t.symbol))];
    assertEquals(picked.length, 2, `TOP_SYMBOLS picked ${picked}`);
    assert(picked.every((s) => s.includes(":")), `perpetuals picked: ${picked}`);
    await engine.coordinate();
    await engine.backfillPending();
    await engine.openInterestTick();
    for (const symbol of picked) {
      assert((await fundingCount(w, symbol)) >= 8, `${symbol} funding stored`);
      assert((await openInterestCount(w, symbol)) >= 70, `${symbol} open interest stored`);
    }
  } finally {
    await w.close();
  }
});

Deno.test("derivative leases: a bounded run collects within its budget and the next run resumes", async () => {
  const w = await ingestWorld({
    env: { SYMBOLS: "ETH/USDT:USDT", TIMEFRAMES: "1d", BACKFILL_SINCE: "400d", OPEN_INTEREST: "1h" },
  });
  try {
    const { sources, calls } = counted(w);
    const registry = new Registry();
    const engine = w.ingestor({ sources, registry });
    // A budget spent at once: no request is started.
    const first = await engine.boundedRun("live", { budgetMs: 0 });
    assert(first.budgetSpent, "budget spent");
    assertEquals([calls.funding.size, calls.openInterest.size], [0, 0]);
    // Later runs with a budget finish both histories (funding: two pages).
    for (let i = 0; i < 5; i++) await engine.boundedRun("live", { budgetMs: 60_000 });
    const from = (await w.t.sql<{ from: Date }[]>`select range_from as from from funding_checkpoints`)[0].from;
    const expected = w.fake.derivatives.expectedFunding("ETH/USDT:USDT", from.getTime(), w.now() + 1).length;
    assertEquals(await fundingCount(w, "ETH/USDT:USDT"), expected);
    assert((await openInterestCount(w, "ETH/USDT:USDT")) >= 30 * 24 - 2, "30 days of open interest");
    // Rows written are counted on /metrics.
    const labels = { exchange: w.fake.exchangeId, symbol: "ETH/USDT:USDT" };
    assertEquals(registry.counter("candlekeep_funding_rows_written_total", "").get(labels), expected);
    assertEquals(
      registry.counter("candlekeep_open_interest_rows_written_total", "").get({ ...labels, period: "1h" }),
      await openInterestCount(w, "ETH/USDT:USDT"),
    );
    // The leases are released after each run.
    const [{ held }] = await w.t.sql<{ held: number }[]>`
      select count(*)::int as held from series where lease_owner is not null`;
    assertEquals(held, 0);
  } finally {
    await w.close();
  }
});

Deno.test("derivative leases: a one-shot backfill leaves a running instance's perpetuals to it", async () => {
  const w = await ingestWorld({
    env: { SYMBOLS: PERPS.join(","), TIMEFRAMES: "1d", BACKFILL_SINCE: "5d", OPEN_INTEREST: "1h" },
  });
  try {
    const service = w.ingestor({ owner: "service" });
    await service.syncSeries();
    // The service holds BTC's series only (ETH's is free).
    await service.coordinate();
    await w.t.sql`update series set lease_owner = null, lease_expires_at = null where symbol = 'ETH/USDT:USDT'`;
    const { sources, calls } = counted(w);
    const cli = w.ingestor({ sources });
    // The service keeps beating while the command runs.
    const beat = setInterval(() => service.coordinate(), 300);
    const failures = await cli.backfillOnce().finally(() => clearInterval(beat));
    // The CLI waited for nothing it could not have: BTC is reported as kept by the service.
    assert(failures.every((f) => f.series.symbol === "BTC/USDT:USDT"), JSON.stringify(failures));
    assertEquals([...calls.funding.keys()], ["ETH/USDT:USDT"]);
    assertEquals([...calls.openInterest.keys()], ["ETH/USDT:USDT"]);
    assert((await fundingCount(w, "ETH/USDT:USDT")) >= 14, "ETH funding stored");
  } finally {
    await w.close();
  }
});

Deno.test("derivative leases: FUNDING_RATES=false and OPEN_INTEREST=off collect nothing", async () => {
  const w = await ingestWorld({
    env: { SYMBOLS: PERPS.join(","), TIMEFRAMES: "1d", BACKFILL_SINCE: "3d", FUNDING_RATES: "false" },
  });
  try {
    const { sources, calls } = counted(w);
    const engine = w.ingestor({ sources });
    await engine.backfillOnce();
    assert(await engine.liveTick(), "live tick ran");
    await engine.openInterestTick();
    assertEquals([calls.funding.size, calls.openInterest.size], [0, 0]);
  } finally {
    await w.close();
  }
});
