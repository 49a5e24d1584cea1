/**
 * BinanceArchive: which series the archive serves, and the pause after repeated download
 * failures (so a backfill goes straight to REST when the archive is unreachable).
 */
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { archiveFor, BinanceArchive } from "../../src/exchange/archive_source.ts";
import { loadConfig } from "../../src/config.ts";
import { ArchiveDownloadError } from "../../src/exchange/archive.ts";

const NOW = Date.UTC(2025, 0, 5, 12);

Deno.test("archive source: spot and USDⓈ-M series of Binance are served, others are not", () => {
  const a = new BinanceArchive({ url: "http://127.0.0.1:9/", now: () => NOW });
  const kind = (exchange: string, symbol: string, timeframe = "1m", price?: "trade" | "mark") =>
    a.kindOf({ exchange, symbol, timeframe, price });
  assertEquals(kind("binance", "BTC/USDT"), "spot");
  assertEquals(kind("binance", "BTC/USDT:USDT"), "um");
  assertEquals(kind("binanceusdm", "BTC/USDT:USDT"), "um");
  assertEquals(kind("binance", "BTC/USDT:USDT", "1m", "mark"), "um");
  assertEquals(kind("binance", "BTC/USDT", "1m", "mark"), null);
  assertEquals(kind("binance", "BTC/USD:BTC"), null);
  assertEquals(kind("binance", "BTC/USDT:USDT-250328"), null);
  assertEquals(kind("binance", "BTC/USDT", "1w"), null);
  assertEquals(kind("bybit", "BTC/USDT"), null);
  const plan = a.plan({ exchange: "binance", symbol: "BTC/USDT", timeframe: "1h" }, {
    from: Date.UTC(2024, 11, 1),
    to: NOW,
  }, { now: NOW });
  assertEquals(plan!.files.map((f) => f.name), [
    "BTCUSDT-1h-2024-12.zip",
    "BTCUSDT-1h-2025-01-01.zip",
    "BTCUSDT-1h-2025-01-02.zip",
    "BTCUSDT-1h-2025-01-03.zip",
    "BTCUSDT-1h-2025-01-04.zip",
  ]);
  assert(plan!.files[0].url.startsWith("http://127.0.0.1:9/data/spot/monthly/klines/BTCUSDT/1h/"), plan!.files[0].url);
  assertEquals(
    a.plan({ exchange: "kraken", symbol: "BTC/USDT", timeframe: "1h" }, { from: 0, to: NOW }, { now: NOW }),
    null,
  );
});

Deno.test("archive source: three download failures in a row pause the archive; plans are null until the pause ends", async () => {
  let now = NOW;
  let calls = 0;
  const a = new BinanceArchive({
    url: "http://archive.invalid",
    now: () => now,
    fetch: () => {
      calls++;
      return Promise.reject(new TypeError("connection refused"));
    },
    pauseMs: 60_000,
  });
  const target = { exchange: "binance", symbol: "BTC/USDT", timeframe: "1m" };
  const plan = a.plan(target, { from: Date.UTC(2024, 11, 1), to: NOW }, { now: NOW })!;
  for (const file of plan.files.slice(0, 3)) {
    const error = await assertRejects(() => a.fetchFile(file), ArchiveDownloadError);
    assert(error.message.includes(file.name) && error.message.includes("connection refused"), error.message);
  }
  assertEquals(calls, 6, "each file was tried twice");
  assertEquals(a.pausedUntil, NOW + 60_000);
  assertEquals(a.plan(target, { from: Date.UTC(2024, 11, 1), to: NOW }, { now: NOW }), null);
  now += 60_001;
  assertEquals(a.pausedUntil, 0);
  assert(a.plan(target, { from: Date.UTC(2024, 11, 1), to: NOW }, { now: NOW }) !== null);
});

Deno.test("archive source: a download slower than the file time limit fails like a download failure", async () => {
  const a = new BinanceArchive({
    url: "http://archive.invalid",
    fileTimeoutMs: 50,
    fetch: (_url, init) =>
      new Promise((_resolve, reject) => {
        init?.signal?.addEventListener("abort", () => reject(init.signal!.reason));
      }),
  });
  const [file] = a.plan({ exchange: "binance", symbol: "BTC/USDT", timeframe: "1d" }, {
    from: Date.UTC(2024, 0, 1),
    to: Date.UTC(2024, 0, 2),
  }, { now: NOW })!.files;
  const error = await assertRejects(() => a.fetchFile(file), ArchiveDownloadError);
  assert(error.message.includes("no answer within 0.05 s"), error.message);
});

Deno.test("archive source: ARCHIVE=auto gives the archive at ARCHIVE_URL, off gives none", () => {
  const auto = archiveFor(loadConfig({ ARCHIVE_URL: "http://mirror.example/data/" }));
  assertEquals(auto?.url, "http://mirror.example/data");
  assertEquals(archiveFor(loadConfig({ ARCHIVE: "off" })), null);
  assertEquals(archiveFor(loadConfig({}))?.url, "https://data.binance.vision");
});
