import {
  archiveMarketId,
  archivePlan,
  archiveSupports,
  describeArchiveUrl,
  parseChecksum,
} from "../../src/exchange/archive.ts";
import { assert, assertEquals, assertThrows } from "../support/assert.ts";

const DAY = 86_400_000;
const t = (iso: string) => Date.parse(iso);

Deno.test("archivePlan: daily files to the month end, whole months monthly, daily up to yesterday; the rest uncovered", () => {
  const plan = archivePlan("BTC/USDT", "1m", { from: t("2024-01-15T12:00:00Z"), to: t("2024-04-10T00:00:00Z") }, {
    kind: "spot",
    now: t("2024-03-20T10:30:00Z"),
  });
  assertEquals(plan.marketId, "BTCUSDT");
  const names = plan.files.map((f) => f.name);
  assertEquals(names[0], "BTCUSDT-1m-2024-01-16.zip", "the partial first day is left to REST");
  assertEquals(names.slice(15, 18), [
    "BTCUSDT-1m-2024-01-31.zip",
    "BTCUSDT-1m-2024-02.zip",
    "BTCUSDT-1m-2024-03-01.zip",
  ]);
  assertEquals(names.at(-1), "BTCUSDT-1m-2024-03-19.zip", "yesterday is the last file, today never");
  assertEquals(plan.files.length, 16 + 1 + 19);
  assertEquals(plan.files.filter((f) => f.granularity === "monthly").length, 1);
  assertEquals(
    plan.files[16].url,
    "https://data.binance.vision/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-02.zip",
  );
  assertEquals(
    plan.files[0].url,
    "https://data.binance.vision/data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-16.zip",
  );
  assertEquals(plan.files[16].range, { from: t("2024-02-01T00:00:00Z"), to: t("2024-03-01T00:00:00Z") });
  for (let i = 1; i < plan.files.length; i++) {
    assertEquals(plan.files[i].range.from, plan.files[i - 1].range.to, `file ${i} is adjacent to the previous one`);
  }
  assertEquals(plan.uncovered, [
    { from: t("2024-01-15T12:00:00Z"), to: t("2024-01-16T00:00:00Z") },
    { from: t("2024-03-20T00:00:00Z"), to: t("2024-04-10T00:00:00Z") },
  ]);
});

Deno.test("archivePlan: whole months only, USDⓈ-M paths, base URL, 1s daily only, today gives nothing", () => {
  const year = archivePlan("ETH/USDT:USDT", "1h", { from: t("2024-01-01T00:00:00Z"), to: t("2025-01-01T00:00:00Z") }, {
    kind: "um",
    now: t("2025-01-01T00:00:00Z"),
    baseUrl: "http://mirror.local/",
  });
  assertEquals(year.files.length, 12);
  assert(year.files.every((f) => f.granularity === "monthly"));
  assertEquals(
    year.files[11].url,
    "http://mirror.local/data/futures/um/monthly/klines/ETHUSDT/1h/ETHUSDT-1h-2024-12.zip",
  );
  assertEquals(year.uncovered, []);

  const seconds = archivePlan("BTC/USDT", "1s", { from: t("2024-02-01T00:00:00Z"), to: t("2024-03-01T00:00:00Z") }, {
    kind: "spot",
    now: t("2024-06-01T00:00:00Z"),
  });
  assertEquals(seconds.files.length, 29, "1s: a month is 2.6 million rows, so daily files only");
  assert(seconds.files.every((f) => f.granularity === "daily"));

  const today = { from: t("2024-03-20T00:00:00Z"), to: t("2024-03-20T05:00:00Z") };
  assertEquals(archivePlan("BTC/USDT", "1m", today, { kind: "spot", now: t("2024-03-20T06:00:00Z") }), {
    marketId: "BTCUSDT",
    files: [],
    uncovered: [today],
  });
});

Deno.test("archivePlan: market ids and supported timeframes", () => {
  assertEquals(archiveMarketId("BTC/USDT", "spot"), "BTCUSDT");
  assertEquals(archiveMarketId("BTC/USDT:USDT", "um"), "BTCUSDT");
  assertEquals(archiveMarketId("BTC/USDT:USDT", "spot"), null);
  assertEquals(archiveMarketId("BTC/USDT", "um"), null);
  assertEquals(archiveMarketId("BTC/USD:BTC", "um"), null, "inverse is COIN-M, not served here");
  assertEquals(archiveMarketId("BTC/USDT:USDT-250328", "um"), null, "dated futures are not served here");
  assert(archiveSupports("BTC/USDT", "1s", "spot"));
  assert(!archiveSupports("BTC/USDT:USDT", "1s", "um"));
  for (const tf of ["3d", "1w", "1M"]) assert(!archiveSupports("BTC/USDT", tf, "spot"), tf);
  const range = { from: 0, to: DAY };
  assertThrows(() => archivePlan("BTC/USDT", "1w", range, { kind: "spot", now: DAY }), Error, 'timeframe "1w"');
  assertThrows(() => archivePlan("BTC/USDT:USDT", "1m", range, { kind: "spot", now: DAY }), Error, "BTC/USDT:USDT");
});

Deno.test("parseChecksum: sha256sum's text and binary forms; another file or shape is a problem", () => {
  const hex = "AB".repeat(32);
  const file = "BTCUSDT-1m-2024-01.zip";
  assertEquals(parseChecksum(`${hex}  ${file}\n`, file), { sha256: "ab".repeat(32) });
  assertEquals(parseChecksum(`${hex} *${file}\r\n`, file), { sha256: "ab".repeat(32) });
  assert("problem" in parseChecksum(`${hex}  ETHUSDT-1m-2024-01.zip\n`, file));
  assert("problem" in parseChecksum("<html>not found</html>", file));
});

Deno.test("archivePlan: USDⓈ-M mark, index and premium-index candles have their own directories; spot has none", () => {
  const range = { from: t("2024-01-31T00:00:00Z"), to: t("2024-03-01T00:00:00Z") };
  const now = t("2024-06-01T00:00:00Z");
  const dirs = { trade: "klines", mark: "markPriceKlines", index: "indexPriceKlines", premium: "premiumIndexKlines" };
  for (const [price, dir] of Object.entries(dirs) as [keyof typeof dirs, string][]) {
    const plan = archivePlan("BTC/USDT:USDT", "1m", range, { kind: "um", now, price });
    assertEquals(plan.files.map((f) => f.url), [
      `https://data.binance.vision/data/futures/um/daily/${dir}/BTCUSDT/1m/BTCUSDT-1m-2024-01-31.zip`,
      `https://data.binance.vision/data/futures/um/monthly/${dir}/BTCUSDT/1m/BTCUSDT-1m-2024-02.zip`,
    ]);
    assertEquals(plan.files.map((f) => f.name), ["BTCUSDT-1m-2024-01-31.zip", "BTCUSDT-1m-2024-02.zip"]);
    for (const file of plan.files) {
      const described = describeArchiveUrl(file.url);
      assertEquals(described, { file: file.name, timeframe: "1m", range: file.range, price });
    }
    assert(archiveSupports("BTC/USDT:USDT", "1m", "um", { price }), price);
    assertEquals(archiveSupports("BTC/USDT", "1m", "spot", { price }), price === "trade", price);
  }
  assertEquals(
    archivePlan("BTC/USDT:USDT", "1m", range, { kind: "um", now }).files[1].url,
    "https://data.binance.vision/data/futures/um/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-02.zip",
    "trade candles by default",
  );
  assertEquals(describeArchiveUrl("http://mirror.local/BTCUSDT-1m-2024-02.zip").price, "trade", "any other path");
  assert(archiveSupports("BTC/USDT", "1m", "spot"));
  assert(!archiveSupports("BTC/USD:BTC", "1m", "um", { price: "index" }), "COIN-M is not served");
  assert(!archiveSupports("BTC/USDT:USDT", "1w", "um", { price: "mark" }));
  for (const price of ["mark", "index", "premium"] as const) {
    assertThrows(
      () => archivePlan("BTC/USDT", "1m", range, { kind: "spot", now, price }),
      Error,
      `Cannot plan archive files: current value is price "${price}" on spot`,
    );
  }
});
