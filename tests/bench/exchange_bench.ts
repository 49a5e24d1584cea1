/**
 * Exchange benchmark: 20 symbols × 30 days of 1-minute candles from the fake exchange configured
 * like Binance (6000 weight per minute, klines weight 2, 1000 candles a page, 20 ms latency),
 * through our paginator with the shared limiter, against plain ccxt `paginate: true` fetching
 * the same symbols one after another.
 *
 * Run: deno run --allow-net --allow-sys --allow-env --allow-read tests/bench/exchange_bench.ts
 *
 * @module
 */
import ccxt from "ccxt";
import { ExchangeClient } from "../../src/exchange/client.ts";
import { type FakeMarket, startFakeExchange } from "../support/fake_exchange.ts";

/** Options of {@linkcode runExchangeBench}. */
export interface ExchangeBenchOptions {
  symbols?: number;
  days?: number;
  concurrency?: number;
  latencyMs?: number;
  /** Skip the plain-ccxt baseline. */
  skipBaseline?: boolean;
  /** Print the table (default true). */
  print?: boolean;
}

/** Figures of one run. */
export interface BenchRun {
  name: string;
  candles: number;
  requests: number;
  minRequests: number;
  seconds: number;
  /** Weight used per second as a share of the limit. */
  limitShare: number;
  rateLimited: number;
  banned: number;
  candlesPerSecond: number;
  exact: boolean;
}

/** Runs the benchmark and returns both runs. */
export async function runExchangeBench(
  options: ExchangeBenchOptions = {},
): Promise<{ ours: BenchRun; baseline?: BenchRun }> {
  const symbolsCount = options.symbols ?? 20;
  const days = options.days ?? 30;
  const concurrency = options.concurrency ?? 8;
  const now = Date.now();
  const markets: FakeMarket[] = Array.from({ length: symbolsCount }, (_, i) => ({
    symbol: `C${String(i).padStart(2, "0")}/USDT`,
    listedAt: Math.floor((now - (days + 10) * 86_400_000) / 60_000) * 60_000,
    basePrice: 10 + i,
    quoteVolume24h: 1e6 * (i + 1),
  }));
  const fake = await startFakeExchange({
    dialect: "binance",
    markets,
    behaviour: { weightLimit: 6000, windowMs: 60_000, publishedLimit: 6000, latencyMs: options.latencyMs ?? 20 },
  });
  const symbols = markets.map((m) => m.symbol);
  const until = Math.floor(now / 60_000) * 60_000;
  const since = until - days * 86_400_000;
  const perSeries = (until - since) / 60_000;
  const minRequests = Math.ceil(perSeries / 1000) * symbols.length;
  const limitPerSecond = 6000 / 60;
  try {
    // --- ours
    const client = await ExchangeClient.create("binance", {
      exchanges: ["binance"],
      ccxtConfig: { binance: fake.ccxtConfig() },
      symbols,
      topSymbols: 0,
      quote: "USDT",
      timeframes: ["1m"],
    });
    fake.resetStats();
    const before = client.stats();
    const queue = [...symbols];
    let candles = 0;
    let exact = true;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: concurrency }, async () => {
      for (let s = queue.shift(); s !== undefined; s = queue.shift()) {
        const r = await client.fetchRange(s, "1m", since, until);
        candles += r.candles.length;
        if (r.candles.length !== perSeries) exact = false;
      }
    }));
    const seconds = (performance.now() - t0) / 1000;
    const klines = fake.stats.byPath["/api/v3/klines"] ?? 0;
    const ours: BenchRun = {
      name: `ours (concurrency ${concurrency})`,
      candles,
      requests: client.stats().requests - before.requests,
      minRequests,
      seconds,
      limitShare: (fake.stats.weight / seconds) / limitPerSecond,
      rateLimited: fake.stats.rejections.filter((r) => r.status === 429).length,
      banned: fake.stats.rejections.filter((r) => r.status === 418).length,
      candlesPerSecond: candles / seconds,
      exact: exact && klines === client.stats().requests - before.requests,
    };
    client.close();

    // --- baseline: plain ccxt, paginate: true, symbols one after another
    let baseline: BenchRun | undefined;
    if (!options.skipBaseline) {
      // let the fake's weight window from our run expire so both start from a clean minute
      await new Promise((r) => setTimeout(r, 60_000 - (Date.now() % 60_000) + 50));
      const Binance =
        (ccxt as unknown as Record<string, new (c: Record<string, unknown>) => InstanceType<typeof ccxt.Exchange>>)
          .binance;
      const plain = new Binance({
        enableRateLimit: true,
        options: { fetchMarkets: { types: ["spot"] } },
        ...fake.ccxtConfig(),
      });
      await plain.loadMarkets();
      fake.resetStats();
      let got = 0;
      let baseExact = true;
      let failures = 0;
      const b0 = performance.now();
      for (const s of symbols) {
        try {
          const rows = await plain.fetchOHLCV(s, "1m", since, undefined, {
            paginate: true,
            until: until - 1,
            paginationCalls: 1000,
          });
          const closed = rows.filter((r) => Number(r[0]) + 60_000 <= Date.now() && Number(r[0]) < until);
          got += closed.length;
          if (closed.length !== perSeries) baseExact = false;
        } catch (error) {
          failures++;
          baseExact = false;
          console.error(`baseline ${s}: ${(error as Error).message.slice(0, 200)}`);
        }
      }
      const bs = (performance.now() - b0) / 1000;
      baseline = {
        name: `plain ccxt paginate${failures ? ` (${failures} failed)` : ""}`,
        candles: got,
        requests: fake.stats.byPath["/api/v3/klines"] ?? 0,
        minRequests,
        seconds: bs,
        limitShare: (fake.stats.weight / bs) / limitPerSecond,
        rateLimited: fake.stats.rejections.filter((r) => r.status === 429).length,
        banned: fake.stats.rejections.filter((r) => r.status === 418).length,
        candlesPerSecond: got / bs,
        exact: baseExact,
      };
    }
    if (options.print !== false) printTable(ours, baseline);
    return { ours, baseline };
  } finally {
    await fake.close();
  }
}

function printTable(ours: BenchRun, baseline?: BenchRun): void {
  const rows = [ours, ...(baseline ? [baseline] : [])];
  const pad = (s: string, n: number) => s.padStart(n);
  console.log(
    [
      "run".padEnd(32),
      pad("candles", 8),
      pad("requests", 9),
      pad("min", 5),
      pad("extra%", 7),
      pad("secs", 6),
      pad("limit%", 7),
      pad("429s", 5),
      pad("418s", 5),
      pad("candles/s", 10),
      pad("exact", 6),
    ].join(" "),
  );
  for (const r of rows) {
    console.log(
      [
        r.name.padEnd(32),
        pad(String(r.candles), 8),
        pad(String(r.requests), 9),
        pad(String(r.minRequests), 5),
        pad(((r.requests / r.minRequests - 1) * 100).toFixed(1), 7),
        pad(r.seconds.toFixed(1), 6),
        pad((r.limitShare * 100).toFixed(1), 7),
        pad(String(r.rateLimited), 5),
        pad(String(r.banned), 5),
        pad(r.candlesPerSecond.toFixed(0), 10),
        pad(String(r.exact), 6),
      ].join(" "),
    );
  }
  if (baseline) {
    console.log(
      `ratios ours/baseline: candles/s ${(ours.candlesPerSecond / baseline.candlesPerSecond).toFixed(2)}, requests ${
        (ours.requests / Math.max(1, baseline.requests)).toFixed(2)
      }, 429s ${ours.rateLimited} vs ${baseline.rateLimited}`,
    );
  }
  console.log(
    `targets: requests within 2% of minimum: ${ours.requests <= ours.minRequests * 1.02}; >=80% of limit: ${
      ours.limitShare >= 0.8
    }; zero 418s: ${ours.banned === 0}; <=1% 429s: ${
      ours.rateLimited <= ours.requests * 0.01
    }; candles/s >= baseline: ${baseline ? ours.candlesPerSecond >= baseline.candlesPerSecond : "n/a"}`,
  );
}

if (import.meta.main) {
  await runExchangeBench();
}
