/**
 * Archive benchmark (issue 15, part 7): a year of BTC/USDT and ETH/USDT 1m backfilled through the
 * archive (`ARCHIVE=auto` against the fake Data Vision, files built ahead so the fake's CSV
 * generation is not timed) and the same range over REST only, in one run, against the REST-only
 * rate-limit floor: the spot klines weight those pages need (2 a page of 1000) divided by
 * Binance's 6000 a minute. Both runs go through the ingest engine and real ccxt; the fake exchange
 * answers with 20 ms of latency. Also printed: the archive's own share (download, verify, unzip,
 * parse: the same files fetched without the database), the database's own share (the same parsed
 * rows written without the archive), the peak RSS of the `candlekeep backfill` process that imports
 * through the archive (sampled with `ps` every 100 ms), and whether both stored series are equal.
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
import { writeCandles } from "../../src/ingest/store.ts";
import { spawnCandlekeep } from "../support/child.ts";

const DAY = 86_400_000;
const MIN = 60_000;
/** Binance spot: 6000 request weight a minute; klines with limit 1000 weigh 2. */
const WEIGHT_PER_MINUTE = 6000;
const KLINES_WEIGHT = 2;
const PAGE = 1000;

const f = (n: number, digits = 1) => n.toFixed(digits);
const mib = (bytes: number) => `${f(bytes / 1048576, 0)} MiB`;

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

    // The archive run is `candlekeep backfill` in a process of its own (the cli task's flags and
    // heap limit), so its peak RSS is its own, not the fakes'.
    a.fake.resetStats();
    const child = spawnCandlekeep(["backfill"], { ...a.env, ARCHIVE: "auto", ARCHIVE_URL: archive.url });
    let peak = 0;
    let sampling = true;
    // Deno reads /proc only with all permissions: ps samples the child's RSS instead.
    const sampler = (async () => {
      while (sampling) {
        const out = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(child.process.pid)] }).output();
        const kb = Number(new TextDecoder().decode(out.stdout).trim());
        if (kb > 0) peak = Math.max(peak, kb * 1024);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    const status = await child.status;
    sampling = false;
    await sampler;
    if (!status.success) throw new Error(`Cannot bench: the backfill failed\n${child.output()}`);
    const logged = child.output().split("\n").filter((l) => l.startsWith("{")).map((l) =>
      JSON.parse(l) as { time: string; message: string }
    );
    const at = (re: RegExp) => logged.filter((l) => re.test(l.message)).map((l) => Date.parse(l.time));
    const archiveSeconds = (Math.max(...at(/^Backfill of .* complete/)) - Math.min(...at(/^Backfilling /))) / 1000;
    const bytes = Object.values(archive.stats.byPath).reduce((n, p) => n + p.bytes, 0);
    const archiveRest = a.fake.stats.byPath["/api/v3/klines"] ?? 0;

    rest.fake.resetStats();
    const restStarted = performance.now();
    const viaRest = { value: await rest.ingestor().backfillOnce() };
    const restSeconds = (performance.now() - restStarted) / 1000;
    if (viaRest.value.length > 0) throw new Error(`Cannot bench: ${JSON.stringify(viaRest.value)}`);
    const restPages = rest.fake.stats.byPath["/api/v3/klines"] ?? 0;

    // The archive's own share: the same files downloaded, verified, unzipped and parsed, no database.
    const fetchOnly = new BinanceArchive({ url: archive.url, now: a.now, limiter: new ArchiveLimiter() });
    const fetchStarted = performance.now();
    const parsedFiles = await Promise.all(files.map((file) => fetchOnly.fetchFile(file)));
    const parsed = parsedFiles.map((r) => r.status === "ok" ? r.candles.length : 0);
    const fetchSeconds = (performance.now() - fetchStarted) / 1000;
    archive.resetStats();

    // The database's own share: the same parsed rows written by writeCandles (10,000 a statement, one
    // transaction a file, both symbols at once) into fresh series of a third database, no archive.
    const dbOnly = await ingestWorld({ env: { ...env, SYMBOLS: "SOL/USDT,DOGE/USDT" } });
    let dbSeconds = 0;
    try {
      const ids = await dbOnly.t.sql<{ id: number }[]>`
        insert into series (exchange, symbol, timeframe) values ('bench', 'A/USDT', '1m'), ('bench', 'B/USDT', '1m')
        returning id`;
      const dbStarted = performance.now();
      await Promise.all(ids.map(async ({ id }, k) => {
        for (const [i, r] of parsedFiles.entries()) {
          if (r.status !== "ok") continue;
          if ((i < plans[0].files.length) !== (k === 0)) continue;
          await dbOnly.t.sql.begin(async (tx) => {
            for (let j = 0; j < r.candles.length; j += 10_000) {
              await writeCandles(tx, id, r.candles.slice(j, j + 10_000));
            }
          });
        }
      }));
      dbSeconds = (performance.now() - dbStarted) / 1000;
    } finally {
      await dbOnly.close();
    }
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

    console.log(
      `archive: ${candles.toLocaleString("en-US")} candles in ${f(archiveSeconds, 2)} s ` +
        `(${Math.round(candles / archiveSeconds).toLocaleString("en-US")} candles/s); ${files.length} files, ` +
        `${mib(bytes)} downloaded, ${archiveRest} REST pages (first to last backfill log line of ` +
        `\`candlekeep backfill\`); its process's peak RSS ${mib(peak)}`,
    );
    console.log(
      `  of which the archive alone (download, SHA-256, unzip, parse of the same files, no database): ` +
        `${f(fetchSeconds, 2)} s for ${parsed.reduce((n, c) => n + c, 0).toLocaleString("en-US")} rows`,
    );
    console.log(
      `  and the database alone (writeCandles of the same parsed rows, rollup triggers and statistics included): ` +
        `${f(dbSeconds, 2)} s`,
    );
    console.log(
      `REST only: ${restPages} pages in ${
        f(restSeconds, 2)
      } s against the fake (20 ms latency), in the bench's process`,
    );
    console.log(
      `REST rate-limit floor: ${floorPages} pages × weight ${KLINES_WEIGHT} ÷ ${WEIGHT_PER_MINUTE} a minute = ` +
        `${f(floorSeconds)} s`,
    );
    console.log(
      `ratio: archive ${f(floorSeconds / archiveSeconds)}× faster than the REST floor ` +
        `(goal ≥ 20×), ${f(restSeconds / archiveSeconds)}× faster than the REST-only run; ` +
        `the archive alone ${f(floorSeconds / fetchSeconds)}× the floor, the database alone ${
          f(floorSeconds / dbSeconds)
        }× the floor`,
    );
    console.log(`stored series equal to the REST-only run's: ${equal ? "yes" : "NO"}`);
  } finally {
    await archive.close();
    await a.close();
    await rest.close();
  }
}
