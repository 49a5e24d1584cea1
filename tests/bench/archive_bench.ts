/**
 * Archive benchmark (issue 15, part 7): a year of BTC/USDT and ETH/USDT 1m backfilled through the
 * archive (`ARCHIVE=auto` against the fake Data Vision, files built ahead so the fake's CSV
 * generation is not timed) and the same range over REST only, in one run, against the REST-only
 * rate-limit floor: the spot klines weight those pages need (2 a page of 1000) divided by
 * Binance's 6000 a minute. Both runs go through the ingest engine and real ccxt; the fake exchange
 * answers with 20 ms of latency. Also printed: the archive's own share (download, verify, unzip,
 * parse: the same files fetched without the database), peak RSS of the process during each run
 * (sampled every 100 ms; the fakes run in the same process), and whether both stored series are
 * equal.
 *
 * Run: `deno task bench archive` (`ARCHIVE_BENCH_DAYS=60` for a shorter run).
 *
 * @module
 */
import { type IngestWorld, ingestWorld, storedCandles } from "../ingest/helpers.ts";
import { fakeExchangeSource, startFakeArchive } from "../support/fake_archive.ts";
import { BinanceArchive } from "../../src/exchange/archive_source.ts";
import { ArchiveLimiter } from "../../src/exchange/archive.ts";
import type { FakeMarket } from "../support/fake_exchange.ts";

const DAY = 86_400_000;
const MIN = 60_000;
/** Binance spot: 6000 request weight a minute; klines with limit 1000 weigh 2. */
const WEIGHT_PER_MINUTE = 6000;
const KLINES_WEIGHT = 2;
const PAGE = 1000;

const f = (n: number, digits = 1) => n.toFixed(digits);
const mib = (bytes: number) => `${f(bytes / 1048576, 0)} MiB`;

/** Peak RSS while `fn` runs. */
async function peakRss<T>(fn: () => Promise<T>): Promise<{ value: T; peak: number }> {
  let peak = Deno.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, Deno.memoryUsage().rss)), 100);
  try {
    const value = await fn();
    return { value, peak: Math.max(peak, Deno.memoryUsage().rss) };
  } finally {
    clearInterval(timer);
  }
}

async function count(w: IngestWorld): Promise<number> {
  const [row] = await w.t.sql<{ n: number }[]>`select count(*)::int as n from candles`;
  return row.n;
}

/** Runs the benchmark and prints its figures. */
export async function runArchiveBench(options: { days?: number } = {}): Promise<void> {
  const days = options.days ?? 365;
  const now = Date.now();
  const since = Math.floor(now / DAY) * DAY - days * DAY;
  const markets: FakeMarket[] = [
    { symbol: "BTC/USDT", listedAt: since - 100 * DAY, basePrice: 60000, quoteVolume24h: 9e9 },
    { symbol: "ETH/USDT", listedAt: since - 100 * DAY, basePrice: 3000, quoteVolume24h: 5e9 },
  ];
  const env = {
    SYMBOLS: "BTC/USDT,ETH/USDT",
    TIMEFRAMES: "1m",
    BACKFILL_SINCE: new Date(since).toISOString().slice(0, 10),
  };
  const a = await ingestWorld({ env, markets, behaviour: { latencyMs: 20 } });
  const archive = await startFakeArchive({ now: a.now, source: fakeExchangeSource(a.fake), cacheFiles: 1000 });
  const rest = await ingestWorld({ env, markets, behaviour: { latencyMs: 20 } });
  try {
    const reader = new BinanceArchive({ url: archive.url, now: a.now });
    const plans = ["BTC/USDT", "ETH/USDT"].map((symbol) =>
      reader.plan({ exchange: "binance", symbol, timeframe: "1m" }, { from: since, to: now }, { now })!
    );
    const files = plans.flatMap((p) => p.files);
    const warmStarted = performance.now();
    await archive.warm(files.map((file) => new URL(file.url).pathname.slice(1)));
    console.log(
      `range: ${days} days of 1m from ${env.BACKFILL_SINCE} for BTC/USDT and ETH/USDT; ` +
        `${files.length} archive files built ahead in ${f((performance.now() - warmStarted) / 1000)} s (not timed)`,
    );

    // The archive's own share: the same files downloaded, verified, unzipped and parsed, no database.
    const fetchOnly = new BinanceArchive({ url: archive.url, now: a.now, limiter: new ArchiveLimiter() });
    const fetchStarted = performance.now();
    const parsed = await Promise.all(files.map(async (file) => {
      const r = await fetchOnly.fetchFile(file);
      return r.status === "ok" ? r.candles.length : 0;
    }));
    const fetchSeconds = (performance.now() - fetchStarted) / 1000;
    archive.resetStats();

    a.fake.resetStats();
    const archiveStarted = performance.now();
    const viaArchive = await peakRss(() => a.ingestor({ archive: reader }).backfillOnce());
    const archiveSeconds = (performance.now() - archiveStarted) / 1000;
    if (viaArchive.value.length > 0) throw new Error(`Cannot bench: ${JSON.stringify(viaArchive.value)}`);
    const archiveRest = a.fake.stats.byPath["/api/v3/klines"] ?? 0;

    rest.fake.resetStats();
    const restStarted = performance.now();
    const viaRest = await peakRss(() => rest.ingestor().backfillOnce());
    const restSeconds = (performance.now() - restStarted) / 1000;
    if (viaRest.value.length > 0) throw new Error(`Cannot bench: ${JSON.stringify(viaRest.value)}`);
    const restPages = rest.fake.stats.byPath["/api/v3/klines"] ?? 0;

    let equal = true;
    for (const symbol of ["BTC/USDT", "ETH/USDT"]) {
      const x = await storedCandles(a, { symbol, timeframe: "1m" });
      const y = await storedCandles(rest, { symbol, timeframe: "1m" });
      const end = Math.min(x.at(-1)!.ts, y.at(-1)!.ts);
      const xs = x.filter((c) => c.ts <= end);
      const ys = y.filter((c) => c.ts <= end);
      equal &&= xs.length === ys.length && xs.every((c, i) => JSON.stringify(c) === JSON.stringify(ys[i]));
    }
    const candles = await count(a);
    const floorPages = Math.ceil((now - since) / MIN / PAGE) * 2;
    const floorSeconds = (floorPages * KLINES_WEIGHT) / (WEIGHT_PER_MINUTE / 60);
    const bytes = Object.values(archive.stats.byPath).reduce((n, p) => n + p.bytes, 0);

    console.log(
      `archive: ${candles.toLocaleString("en-US")} candles in ${f(archiveSeconds, 2)} s ` +
        `(${Math.round(candles / archiveSeconds).toLocaleString("en-US")} candles/s); ${files.length} files, ` +
        `${mib(bytes)} downloaded, ${archiveRest} REST pages; peak RSS ${mib(viaArchive.peak)}`,
    );
    console.log(
      `  of which the archive alone (download, SHA-256, unzip, parse of the same files, no database): ` +
        `${f(fetchSeconds, 2)} s for ${parsed.reduce((n, c) => n + c, 0).toLocaleString("en-US")} rows`,
    );
    console.log(
      `REST only: ${restPages} pages in ${f(restSeconds, 2)} s against the fake (20 ms latency); ` +
        `peak RSS ${mib(viaRest.peak)}`,
    );
    console.log(
      `REST rate-limit floor: ${floorPages} pages × weight ${KLINES_WEIGHT} ÷ ${WEIGHT_PER_MINUTE} a minute = ` +
        `${f(floorSeconds)} s`,
    );
    console.log(
      `ratio: archive ${f(floorSeconds / archiveSeconds)}× faster than the REST floor ` +
        `(goal ≥ 20×), ${f(restSeconds / archiveSeconds)}× faster than the REST-only run; ` +
        `the archive alone ${f(floorSeconds / fetchSeconds)}× the floor`,
    );
    console.log(`stored series equal to the REST-only run's: ${equal ? "yes" : "NO"}`);
  } finally {
    await archive.close();
    await a.close();
    await rest.close();
  }
}
