/**
 * End-to-end backfill benchmark: 20 series × 30 days of 1-minute candles (864,000 candles)
 * from the fake exchange configured like Binance (6,000 request weight a minute, klines weight
 * 2, 1,000 candles a page, 20 ms latency) into PostgreSQL through the real `Ingestor`. Prints
 * the wall time against the floor the rate limit sets, and peak memory.
 *
 * Run: `deno task bench ingest` (or `deno run ... tests/bench/ingest_bench.ts`).
 *
 * @module
 */
import { loadConfig } from "../../src/config.ts";
import { Database } from "../../src/db/client.ts";
import { migrate } from "../../src/db/migrate.ts";
import { createExchangeClients } from "../../src/exchange/client.ts";
import { Ingestor } from "../../src/ingest/engine.ts";
import { type FakeMarket, startFakeExchange } from "../support/fake_exchange.ts";
import { createTestDatabase } from "../support/pg.ts";
import { spawnCandlekeep } from "../support/child.ts";

const MIN = 60_000;
const DAY = 86_400_000;

/** Options of {@linkcode runIngestBench}. */
export interface IngestBenchOptions {
  symbols?: number;
  days?: number;
  latencyMs?: number;
  /** BACKFILL_CONCURRENCY values to run, one row each (default 4 and 8). */
  concurrency?: number[];
  /** Run Candlekeep as its own process (`main.ts backfill`, default) so its peak RSS is its own. */
  childProcess?: boolean;
  log?: (line: string) => void;
}

/** One measured run. */
export interface IngestFigure {
  concurrency: number;
  candles: number;
  requests: number;
  minRequests: number;
  wallSeconds: number;
  floorSeconds: number;
  rateLimited: number;
  banned: number;
  peakRssMb: number;
  peakHeapMb: number;
}

/** Peak resident set (VmHWM) of a process, in bytes, read from /proc. */
async function peakRssOf(pid: number): Promise<number> {
  const out = await new Deno.Command("cat", { args: [`/proc/${pid}/status`], stdout: "piped", stderr: "null" })
    .output();
  const match = /VmHWM:\s+(\d+) kB/.exec(new TextDecoder().decode(out.stdout));
  return match ? Number(match[1]) * 1024 : 0;
}

async function runOnce(
  symbolsCount: number,
  days: number,
  latencyMs: number,
  concurrency: number,
  childProcess: boolean,
): Promise<IngestFigure> {
  const now = Date.now();
  const markets: FakeMarket[] = Array.from({ length: symbolsCount }, (_, i) => ({
    symbol: `C${String(i).padStart(2, "0")}/USDT`,
    listedAt: Math.floor((now - (days + 10) * DAY) / MIN) * MIN,
    basePrice: 10 + i,
    quoteVolume24h: 1e6 * (i + 1),
  }));
  const fake = await startFakeExchange({
    dialect: "binance",
    markets,
    behaviour: { weightLimit: 6000, windowMs: 60_000, publishedLimit: 6000, latencyMs },
  });
  const t = await createTestDatabase();
  const env = {
    DATABASE_URL: t.url,
    EXCHANGES: "binance",
    CCXT_CONFIG: JSON.stringify({ binance: fake.ccxtConfig() }),
    SYMBOLS: markets.map((m) => m.symbol).join(","),
    TIMEFRAMES: "1m",
    BACKFILL_SINCE: `${days}d`,
    BACKFILL_CONCURRENCY: String(concurrency),
    LOG_LEVEL: "warning",
  };
  const config = loadConfig(env);
  const clients = await createExchangeClients(config);
  let peakRss = 0;
  let peakHeap = 0;
  const sample = () => {
    const m = Deno.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
  };
  const sampler = childProcess ? undefined : setInterval(sample, 100);
  try {
    await migrate(t.sql, { timescaledb: "auto", compressAfterMs: 7 * DAY });
    fake.resetStats();
    let failures: unknown[] = [];
    let wallSeconds: number;
    if (childProcess) {
      const child = spawnCandlekeep(["backfill"], env);
      const started = performance.now();
      // VmHWM is the process's own high-water mark; sample it until the process is about to exit.
      let exited = false;
      const watcher = (async () => {
        while (!exited) {
          peakRss = Math.max(peakRss, await peakRssOf(child.process.pid));
          await new Promise((r) => setTimeout(r, 200));
        }
      })();
      const status = await child.status;
      exited = true;
      await watcher;
      wallSeconds = (performance.now() - started) / 1000;
      if (!status.success) throw new Error(`Cannot trust the run: backfill exited ${status.code}\n${child.output()}`);
      peakHeap = NaN;
    } else {
      const db = new Database(t.sql, t.name);
      const started = performance.now();
      failures = await new Ingestor({ db, config, sources: clients }).backfillOnce();
      wallSeconds = (performance.now() - started) / 1000;
    }
    if (!childProcess) sample();
    if (failures.length > 0) throw new Error(`Cannot trust the run: ${failures.length} series failed`);
    const [{ n }] = await t.sql<{ n: number }[]>`select count(*)::int as n from candles`;
    const perSeries = days * 1440;
    if (n < symbolsCount * (perSeries - 1)) throw new Error(`Cannot trust the run: ${n} candles stored`);
    // Spot check one series against the fake's own candles.
    const rows = await t.sql<{ ts: Date; close: number }[]>`
      select ts, close from candles where series_id = 1 order by ts`;
    const expected = fake.expected(markets[0].symbol, "1m", rows[0].ts.getTime(), rows.at(-1)!.ts.getTime() + MIN);
    if (expected.length !== rows.length || expected.some((c, i) => c.close !== rows[i].close)) {
      throw new Error("Cannot trust the run: stored candles differ from the exchange's");
    }
    const klines = Object.entries(fake.stats.byPath).filter(([p]) => p.includes("klines"))
      .reduce((s, [, c]) => s + c, 0);
    const minRequests = symbolsCount * Math.ceil(perSeries / 1000);
    return {
      concurrency,
      candles: n,
      requests: klines,
      minRequests,
      wallSeconds,
      floorSeconds: (minRequests * 2) / (6000 / 60),
      rateLimited: fake.stats.rejections.filter((r) => r.status === 429).length,
      banned: fake.stats.rejections.filter((r) => r.status === 418).length,
      peakRssMb: peakRss / 2 ** 20,
      peakHeapMb: peakHeap / 2 ** 20,
    };
  } finally {
    clearInterval(sampler);
    for (const c of clients.values()) c.close();
    await fake.close();
    await t.drop();
  }
}

/** Runs the benchmark and prints a table; returns the figures. */
export async function runIngestBench(options: IngestBenchOptions = {}): Promise<IngestFigure[]> {
  const log = options.log ?? ((line: string) => console.log(line));
  const symbols = options.symbols ?? 20;
  const days = options.days ?? 30;
  const latency = options.latencyMs ?? 20;
  const figures: IngestFigure[] = [];
  for (const c of options.concurrency ?? [4, 8]) {
    figures.push(await runOnce(symbols, days, latency, c, options.childProcess ?? true));
    // Let the fake's one-minute weight window of the previous run pass out of mind: each run
    // starts its own fake, so nothing carries over.
  }
  log("");
  log(
    `End-to-end backfill: ${symbols} series × ${days} days of 1m (${
      symbols * days * 1440
    } candles), Binance-like limits: 6000 weight/min, klines weight 2, ${latency} ms latency`,
  );
  log(
    `${"concurrency".padEnd(12)} ${"candles".padStart(8)} ${"requests".padStart(9)} ${"min".padStart(5)} ${
      "wall s".padStart(7)
    } ${"floor s".padStart(8)} ${"wall/floor".padStart(10)} ${"429".padStart(4)} ${"418".padStart(4)} ${
      "candles/s".padStart(10)
    } ${"peak RSS MB".padStart(12)} ${"peak heap MB".padStart(13)}`,
  );
  for (const f of figures) {
    log(
      `${String(f.concurrency).padEnd(12)} ${String(f.candles).padStart(8)} ${String(f.requests).padStart(9)} ${
        String(f.minRequests).padStart(5)
      } ${f.wallSeconds.toFixed(1).padStart(7)} ${f.floorSeconds.toFixed(1).padStart(8)} ${
        (f.wallSeconds / f.floorSeconds).toFixed(2).padStart(9)
      }× ${String(f.rateLimited).padStart(4)} ${String(f.banned).padStart(4)} ${
        Math.round(f.candles / f.wallSeconds).toString().padStart(10)
      } ${f.peakRssMb.toFixed(0).padStart(12)} ${
        (Number.isNaN(f.peakHeapMb) ? "-" : f.peakHeapMb.toFixed(0)).padStart(13)
      }`,
    );
  }
  log(
    "targets: wall time within 1.25× the floor; peak RSS under 300 MB (VmHWM of the `main.ts backfill` process, " +
      "run with the cli task's flags; it includes the Deno runtime and ccxt)",
  );
  return figures;
}

if (import.meta.main) {
  await runIngestBench();
  Deno.exit(0);
}
