/**
 * Backfill through the archive (ARCHIVE=auto) against the fake Data Vision and the fake exchange
 * behind it: the stored series and its recorded holes equal a REST-only backfill's exactly; bad
 * checksums, corrupt zips, 404 files and malformed rows fall back to REST; an interrupted import
 * resumes after its last finished file; metrics count files, bytes and fallbacks.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { type FakeArchive, fakeExchangeSource, startFakeArchive } from "../support/fake_archive.ts";
import type { FakeMarket } from "../support/fake_exchange.ts";
import { type IngestWorld, ingestWorld, storedCandles } from "./helpers.ts";
import { Registry } from "../../src/metrics.ts";
import type { BackfillProgress } from "../../src/ingest/backfill.ts";
import { BinanceArchive } from "../../src/exchange/archive_source.ts";
import { setupLogging } from "../../src/log.ts";

const NOW = Date.UTC(2025, 0, 5, 12, 0);
const MARKETS: FakeMarket[] = [
  { symbol: "BTC/USDT", listedAt: Date.UTC(2024, 10, 20, 0, 7), basePrice: 60000, quoteVolume24h: 9e9 },
  { symbol: "ETH/USDT", listedAt: Date.UTC(2024, 11, 30, 13, 0), basePrice: 3000, quoteVolume24h: 5e9 },
  { symbol: "SOL/USDT", listedAt: Date.UTC(2024, 7, 1, 9, 0), basePrice: 150, quoteVolume24h: 2e9 },
];
/** The exchange has nothing here (an outage): neither REST nor the archive. */
const OUTAGE = { symbol: "BTC/USDT", from: Date.UTC(2024, 11, 10, 5, 0), to: Date.UTC(2024, 11, 10, 5, 30) };
const SINCE = "2024-11-18";

interface ArchiveWorld {
  w: IngestWorld;
  archive: FakeArchive;
  /** The reader an archive-backed ingestor gets. */
  reader: BinanceArchive;
  close(): Promise<void>;
}

async function world(
  env: Record<string, string>,
  options: { archive?: Parameters<typeof startFakeArchive>[0]["faults"]; malformed?: number } = {},
): Promise<ArchiveWorld> {
  const w = await ingestWorld({ markets: MARKETS, behaviour: { holes: [OUTAGE] }, env, startAt: NOW });
  const source = fakeExchangeSource(w.fake);
  const archive = await startFakeArchive({
    now: w.now,
    faults: options.archive,
    source: {
      ...source,
      rows: (q) =>
        source.rows(q).map((r) =>
          r[0] === options.malformed && q.symbolId === "BTCUSDT" ? [r[0], "abc", ...r.slice(2)] : r
        ),
    },
  });
  return {
    w,
    archive,
    reader: new BinanceArchive({ url: archive.url, now: w.now }),
    close: async () => {
      await archive.close();
      await w.close();
    },
  };
}

async function holes(w: IngestWorld) {
  return await w.t.sql<{ symbol: string; timeframe: string; from: Date; to: Date; reason: string }[]>`
    select s.symbol, s.timeframe, h.from_ts as from, h.to_ts as to, h.reason
    from confirmed_holes h join series s on s.id = h.series_id order by 1, 2, 3`;
}

async function files(w: IngestWorld, symbol: string, timeframe = "1m") {
  return await w.t.sql<
    { file: string; status: string; candles: number; sha256: string | null; detail: string | null }[]
  >`
    select f.file, f.status, f.candles, f.sha256, f.detail
    from archive_files f join series s on s.id = f.series_id
    where s.symbol = ${symbol} and s.timeframe = ${timeframe} order by f.range_from`;
}

const klinesRequests = (w: IngestWorld) => w.fake.stats.byPath["/api/v3/klines"] ?? 0;

const ENV = { SYMBOLS: "BTC/USDT,ETH/USDT", TIMEFRAMES: "1m,1h", BACKFILL_SINCE: SINCE };

Deno.test("archive backfill: the stored series and its holes equal a REST-only backfill exactly, with a fraction of the requests", async () => {
  const a = await world(ENV);
  const rest = await world(ENV);
  try {
    const progress: BackfillProgress[] = [];
    assertEquals(await a.w.ingestor({ archive: a.reader }).backfillOnce({ onProgress: (p) => progress.push(p) }), []);
    assertEquals(await rest.w.ingestor().backfillOnce(), []);
    for (const symbol of ["BTC/USDT", "ETH/USDT"]) {
      for (const timeframe of ["1m", "1h"]) {
        const got = await storedCandles(a.w, { symbol, timeframe });
        const want = await storedCandles(rest.w, { symbol, timeframe });
        assert(want.length > 0);
        assertEquals(got.length, want.length, `${symbol} ${timeframe} count`);
        assertEquals(got, want, `${symbol} ${timeframe} values`);
        const listed = MARKETS.find((m) => m.symbol === symbol)!.listedAt;
        assertEquals(got, a.w.fake.expected(symbol, timeframe, listed - (listed % 3_600_000), NOW - (NOW % 3_600_000)));
      }
    }
    // The outage is a recorded hole in both, found over REST in both.
    assertEquals(await holes(a.w), await holes(rest.w));
    assert((await holes(a.w)).some((h) => h.from.getTime() === OUTAGE.from && h.to.getTime() === OUTAGE.to));

    // BTC/USDT 1m: 13 daily files of November (18th and 19th before the listing: 404), December's monthly,
    // January 1st to 4th as daily files (microsecond timestamps); the 5th until noon over REST.
    const btc = await files(a.w, "BTC/USDT");
    assertEquals(btc.length, 18);
    assertEquals(btc.filter((f) => f.status === "missing").map((f) => f.file), [
      "BTCUSDT-1m-2024-11-18.zip",
      "BTCUSDT-1m-2024-11-19.zip",
    ]);
    assertEquals(btc.filter((f) => f.status === "imported").length, 16);
    for (const f of btc.filter((f) => f.status === "imported")) {
      const day = f.file.match(/-(\d{4}-\d{2}(?:-\d{2})?)\.zip$/)![1];
      const period = day.length === 7 ? "monthly" : "daily";
      const served = await a.archive.file(`data/spot/${period}/klines/BTCUSDT/1m/${f.file}`);
      assertEquals(f.sha256, served!.sha256, f.file);
    }
    assertEquals(btc.find((f) => f.file === "BTCUSDT-1m-2024-12.zip")!.candles, 31 * 1440 - 30);

    // REST pages: the REST-only run walked every day; the archive run only the 404 days, the outage and today.
    const viaArchive = klinesRequests(a.w);
    const restOnly = klinesRequests(rest.w);
    assert(viaArchive * 8 < restOnly, `${viaArchive} REST requests with the archive, ${restOnly} without`);

    // Four series backfilled at once, but at most two files parsed and written at once (memory).
    assertEquals(a.reader.writes.peak, 2);
    assert(a.reader.limiter.peak <= 4, `${a.reader.limiter.peak} downloads at once`);

    // Progress counted files up to the total.
    const last = progress.filter((p) => p.series.symbol === "BTC/USDT" && p.series.timeframe === "1m").at(-1)!;
    assertEquals(last.files, { done: 18, total: 18 });
    assertEquals(last.done, last.expected);
  } finally {
    await a.close();
    await rest.close();
  }
});

Deno.test("archive backfill: a bad checksum, a corrupt zip, a 404 and a malformed row fall back to REST; the series stays exact", async () => {
  const malformed = Date.UTC(2025, 0, 4, 10, 0);
  const env = { SYMBOLS: "BTC/USDT", TIMEFRAMES: "1m", BACKFILL_SINCE: "2024-12-29" };
  const a = await world(env, {
    malformed,
    archive: {
      badChecksum: ["BTCUSDT-1m-2024-12-30.zip"],
      corrupt: [{ file: "BTCUSDT-1m-2025-01-02.zip", times: 1 }],
      missing: ["BTCUSDT-1m-2025-01-03.zip"],
    },
  });
  try {
    const registry = new Registry();
    assertEquals(await a.w.ingestor({ archive: a.reader, registry }).backfillOnce(), []);
    const got = await storedCandles(a.w, { symbol: "BTC/USDT", timeframe: "1m" });
    assertEquals(got, a.w.fake.expected("BTC/USDT", "1m", Date.UTC(2024, 11, 29), NOW));
    assert(got.some((c) => c.ts === malformed), "the malformed row came from REST");
    const byFile = Object.fromEntries((await files(a.w, "BTC/USDT")).map((f) => [f.file, f]));
    assertEquals(byFile["BTCUSDT-1m-2024-12-30.zip"].status, "failed");
    assert(
      byFile["BTCUSDT-1m-2024-12-30.zip"].detail!.includes("SHA-256"),
      byFile["BTCUSDT-1m-2024-12-30.zip"].detail!,
    );
    assertEquals(byFile["BTCUSDT-1m-2025-01-02.zip"].status, "imported");
    assertEquals(byFile["BTCUSDT-1m-2025-01-03.zip"].status, "missing");
    assertEquals(byFile["BTCUSDT-1m-2025-01-04.zip"].status, "imported");
    assertEquals(byFile["BTCUSDT-1m-2025-01-04.zip"].detail, "1 row rejected");
    assertEquals(byFile["BTCUSDT-1m-2025-01-04.zip"].candles, 1439);
    const text = await registry.render();
    const metric = (line: string) => {
      const found = text.split("\n").find((l) => l.startsWith(line + " "));
      return found === undefined ? null : Number(found.slice(line.length + 1));
    };
    assertEquals(metric(`candlekeep_archive_files_total{exchange="binance",outcome="imported"}`), 5);
    assertEquals(metric(`candlekeep_archive_files_total{exchange="binance",outcome="failed"}`), 1);
    assertEquals(metric(`candlekeep_archive_files_total{exchange="binance",outcome="missing"}`), 1);
    assertEquals(metric(`candlekeep_archive_fallbacks_total{exchange="binance",reason="checksum_mismatch"}`), 1);
    assertEquals(metric(`candlekeep_archive_fallbacks_total{exchange="binance",reason="missing"}`), 1);
    assert((metric(`candlekeep_archive_bytes_total{exchange="binance"}`) ?? 0) > 0);
    assertEquals(metric(`candlekeep_candles_rejected_total{exchange="binance",symbol="BTC/USDT",timeframe="1m"}`), 1);
  } finally {
    await a.close();
  }
});

Deno.test("archive backfill: an interrupted import resumes after its last finished file without downloading it again", async () => {
  const env = { SYMBOLS: "BTC/USDT", TIMEFRAMES: "1m", BACKFILL_SINCE: "2024-12-20" };
  const a = await world(env, { archive: { latencyMs: 30 } });
  try {
    const first = a.w.ingestor({ archive: a.reader });
    let stopped = false;
    const failures = await first.backfillOnce({
      onProgress: (p) => {
        if (!stopped && (p.files?.done ?? 0) >= 3) {
          stopped = true;
          void first.stop(5000);
        }
      },
    });
    assertEquals(failures, []);
    const done = (await files(a.w, "BTC/USDT")).filter((f) => f.status === "imported").map((f) => f.file);
    assert(done.length >= 3 && done.length < 15, `imported before the stop: ${done.join(", ")}`);
    a.archive.resetStats();
    const [stoppedAt] = await a.w.t.sql<{ cursor: Date }[]>`select cursor from backfill_checkpoints`;
    const left = (NOW - stoppedAt.cursor.getTime()) / 60_000;
    const progress: BackfillProgress[] = [];
    assertEquals(await a.w.ingestor({ archive: a.reader }).backfillOnce({ onProgress: (p) => progress.push(p) }), []);
    // The resumed run expects what was left, once (not the resumed range twice).
    assertEquals(progress[0].expected, left);
    assertEquals(progress.at(-1)!.done, progress.at(-1)!.expected);
    const fetched = Object.keys(a.archive.stats.byPath).filter((p) => p.endsWith(".zip")).map((p) =>
      p.split("/").pop()!
    );
    for (const file of done) assert(!fetched.includes(file), `${file} was downloaded again`);
    assertEquals(fetched.length, 16 - done.length);
    const got = await storedCandles(a.w, { symbol: "BTC/USDT", timeframe: "1m" });
    assertEquals(got, a.w.fake.expected("BTC/USDT", "1m", Date.UTC(2024, 11, 20), NOW));
  } finally {
    await a.close();
  }
});

Deno.test("archive backfill: USDⓈ-M perpetual trade, mark, index and premium candles equal a REST-only backfill", async () => {
  const env = { SYMBOLS: "BTC/USDT:USDT", CANDLE_PRICES: "trade,mark,index,premium", BACKFILL_SINCE: "3d" };
  const a = await ingestWorld({ env });
  const archive = await startFakeArchive({ now: a.now, source: fakeExchangeSource(a.fake) });
  const rest = await ingestWorld({ env });
  try {
    const reader = new BinanceArchive({ url: archive.url, now: a.now });
    assertEquals(await a.ingestor({ archive: reader }).backfillOnce(), []);
    assertEquals(await rest.ingestor().backfillOnce(), []);
    for (const price of ["trade", "mark", "index", "premium"]) {
      const key = { symbol: "BTC/USDT:USDT", timeframe: "1m", price };
      const got = await storedCandles(a, key);
      const want = await storedCandles(rest, key);
      const end = Math.min(got.at(-1)!.ts, want.at(-1)!.ts);
      assertEquals(got.filter((c) => c.ts <= end), want.filter((c) => c.ts <= end), price);
      assert(got.length > 2 * 1440, `${price}: ${got.length} candles`);
      const imported = await a.t.sql<{ file: string; status: string }[]>`
        select f.file, f.status from archive_files f join series s on s.id = f.series_id
        where s.price = ${price} order by f.range_from`;
      assertEquals(imported.map((f) => f.status), ["imported", "imported"], price);
    }
    const dirs = Object.keys(archive.stats.byPath).filter((p) => p.endsWith(".zip")).map((p) => p.split("/")[5]).sort();
    assertEquals([...new Set(dirs)], ["indexPriceKlines", "klines", "markPriceKlines", "premiumIndexKlines"]);
  } finally {
    await archive.close();
    await a.close();
    await rest.close();
  }
});

Deno.test("archive backfill: an unreachable archive pauses after three failures; REST covers the rest, with few warnings", async () => {
  const env = { SYMBOLS: "BTC/USDT,ETH/USDT", TIMEFRAMES: "1m", BACKFILL_SINCE: "2024-12-01" };
  const a = await world(env);
  const lines: string[] = [];
  setupLogging({ level: "info", format: "json", write: (text) => lines.push(text) });
  try {
    // Nothing listens on port 1: every download is refused at once.
    const reader = new BinanceArchive({ url: "http://127.0.0.1:1", now: a.w.now });
    assertEquals(await a.w.ingestor({ archive: reader }).backfillOnce(), []);
    for (const symbol of ["BTC/USDT", "ETH/USDT"]) {
      const listed = MARKETS.find((m) => m.symbol === symbol)!.listedAt;
      const got = await storedCandles(a.w, { symbol, timeframe: "1m" });
      assertEquals(got, a.w.fake.expected(symbol, "1m", Math.max(listed, Date.UTC(2024, 11, 1)), NOW));
    }
    assert(reader.pausedUntil > NOW, "the archive is paused");
    const warnings = lines.map((l) => JSON.parse(l)).filter((l) => l.level === "warning");
    const paused = warnings.filter((l) => l.message.startsWith("The archive at http://127.0.0.1:1 cannot be reached"));
    assertEquals(paused.length, 1, JSON.stringify(warnings, null, 1));
    assert(warnings.length <= 4, `${warnings.length} warnings: ${warnings.map((w) => w.message).join("\n")}`);
  } finally {
    setupLogging({ level: "fatal", format: "json", write: () => {} });
    await a.close();
  }
});

Deno.test("archive backfill: a missing old month is fetched over REST; last month not published yet comes as daily files", async () => {
  const env = { SYMBOLS: "SOL/USDT", TIMEFRAMES: "1m", BACKFILL_SINCE: "2024-09-01" };
  const a = await world(env, { archive: { missing: ["SOLUSDT-1m-2024-10.zip", "SOLUSDT-1m-2024-12.zip"] } });
  try {
    assertEquals(await a.w.ingestor({ archive: a.reader }).backfillOnce(), []);
    const got = await storedCandles(a.w, { symbol: "SOL/USDT", timeframe: "1m" });
    assertEquals(got, a.w.fake.expected("SOL/USDT", "1m", Date.UTC(2024, 8, 1), NOW));
    const rows = await files(a.w, "SOL/USDT");
    const byFile = Object.fromEntries(rows.map((f) => [f.file, f.status]));
    assertEquals(byFile["SOLUSDT-1m-2024-09.zip"], "imported");
    assertEquals(byFile["SOLUSDT-1m-2024-10.zip"], "missing");
    assertEquals(byFile["SOLUSDT-1m-2024-11.zip"], "imported");
    // December ended 4 days before "now": its monthly file is not out yet, its days are.
    const december = rows.filter((f) => f.file.startsWith("SOLUSDT-1m-2024-12-"));
    assertEquals(december.length, 31);
    assert(december.every((f) => f.status === "imported"), JSON.stringify(december));
    // October over REST: 31 days of 1,440 candles in pages of 1,000; nothing else but today's half day.
    const pages = klinesRequests(a.w);
    assert(pages >= 45 && pages <= 48, `${pages} REST pages`);
  } finally {
    await a.close();
  }
});

Deno.test("archive backfill: files missing in a row after the first candle are warned about once (a wrong ARCHIVE_URL or a partial mirror)", async () => {
  const env = { SYMBOLS: "BTC/USDT", TIMEFRAMES: "1m", BACKFILL_SINCE: "2024-12-25" };
  const days = [26, 27, 28, 29, 30].map((d) => `BTCUSDT-1m-2024-12-${d}.zip`);
  const a = await world(env, { archive: { missing: days } });
  const lines: string[] = [];
  setupLogging({ level: "info", format: "json", write: (text) => lines.push(text) });
  try {
    assertEquals(await a.w.ingestor({ archive: a.reader }).backfillOnce(), []);
    assertEquals(
      await storedCandles(a.w, { symbol: "BTC/USDT", timeframe: "1m" }),
      a.w.fake.expected("BTC/USDT", "1m", Date.UTC(2024, 11, 25), NOW),
    );
    const warnings = lines.map((l) => JSON.parse(l)).filter((l) => l.level === "warning").map((l) => l.message);
    assertEquals(warnings.length, 1, warnings.join("\n"));
    assert(warnings[0].includes("BTCUSDT-1m-2024-12-28.zip") && warnings[0].includes("ARCHIVE_URL"), warnings[0]);
    const done = lines.map((l) => JSON.parse(l)).find((l) => l.message.startsWith("Backfill of binance BTC/USDT 1m"));
    assert(done.message.endsWith("and 11 archive files (5 fetched over REST instead)"), done.message);
  } finally {
    setupLogging({ level: "fatal", format: "json", write: () => {} });
    await a.close();
  }
});
