/**
 * USDⓈ-M mark, index and premium-index candles from the archive: the fake archive publishes them
 * (`markPriceKlines`, `indexPriceKlines`, `premiumIndexKlines`) from the fake exchange's own
 * REST series, and the archive reader turns a month of them into exactly the candles the REST
 * reader (real ccxt against the fake's `/fapi/v1/*PriceKlines`) stores.
 */
import { unzipSync } from "fflate";
import type { Candle } from "../../src/candle.ts";
import { archivePlan, fetchArchiveFile } from "../../src/exchange/archive.ts";
import { ExchangeClient } from "../../src/exchange/client.ts";
import type { PriceKind } from "../../src/market_type.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { CSV_HEADER, type FakeArchive, fakeExchangeSource, startFakeArchive } from "../support/fake_archive.ts";
import type { FakeContract } from "../support/fake_derivatives.ts";
import { type FakeExchange, startFakeExchange } from "../support/fake_exchange.ts";
import { FAST } from "./helpers.ts";

const DAY = 86_400_000;
const NOW = Date.UTC(2022, 1, 3, 5);
const JANUARY = { from: Date.UTC(2022, 0, 1), to: Date.UTC(2022, 1, 1) };
const PERP = "BTC/USDT:USDT";
const CONTRACTS: FakeContract[] = [
  { symbol: PERP, listedAt: Date.UTC(2021, 11, 30, 8), basePrice: 47000, quoteVolume24h: 2e10, openInterest: 80000 },
  { symbol: "BTC/USD:BTC", listedAt: Date.UTC(2021, 0, 1), basePrice: 47000, quoteVolume24h: 1e9, openInterest: 5e6 },
];
const PRICES: PriceKind[] = ["mark", "index", "premium"];

async function withArchive(fn: (fake: FakeExchange, archive: FakeArchive, client: ExchangeClient) => Promise<void>) {
  const fake = await startFakeExchange({
    dialect: "binance",
    contracts: CONTRACTS,
    behaviour: { nowOffsetMs: NOW - Date.now() },
  });
  const archive = await startFakeArchive({ source: fakeExchangeSource(fake), now: fake.now });
  let client: ExchangeClient | undefined;
  try {
    client = await ExchangeClient.create("binance", {
      exchanges: ["binance"],
      ccxtConfig: { binance: fake.ccxtConfig() },
      symbols: [PERP],
      topSymbols: 0,
      quote: "USDT",
      timeframes: ["1m"],
    }, FAST);
    await fn(fake, archive, client);
  } finally {
    client?.close();
    await archive.close();
    await fake.close();
  }
}

/** Every candle of `[from, to)` through the REST reader, page by page (ExchangeClient.fetchPage). */
async function restCandles(client: ExchangeClient, price: PriceKind, from: number, to: number): Promise<Candle[]> {
  const out: Candle[] = [];
  let cursor = from;
  while (cursor < to) {
    const page = await client.fetchPage(PERP, "1m", cursor, to, { price });
    assertEquals(page.rejected, [], `${price}: REST rejected rows`);
    out.push(...page.candles);
    cursor = page.window.to;
  }
  return out;
}

/** The candles of the archive's files for `range`, planned like the backfill plans them. */
async function archiveCandles(archive: FakeArchive, price: PriceKind, range: { from: number; to: number }) {
  const plan = archivePlan(PERP, "1m", range, { kind: "um", now: NOW, baseUrl: archive.url, price });
  assertEquals(plan.uncovered, []);
  const candles: Candle[] = [];
  for (const file of plan.files) {
    const result = await fetchArchiveFile(file.url);
    assert(result.status === "ok", `${file.url}: ${result.status}`);
    assertEquals(result.rejected, [], `${price}: archive rejected rows`);
    assertEquals(result.duplicates, []);
    candles.push(...result.candles);
  }
  return { plan, candles };
}

Deno.test("archive: a month of 1m mark, index and premium-index candles equals the REST reader's, row for row", async () => {
  await withArchive(async (_fake, archive, client) => {
    const byPrice = new Map<PriceKind, Candle[]>();
    for (const price of PRICES) {
      const { plan, candles } = await archiveCandles(archive, price, JANUARY);
      assertEquals(plan.files.map((f) => f.granularity), ["monthly"]);
      const rest = await restCandles(client, price, JANUARY.from, JANUARY.to);
      assertEquals(candles.length, 31 * 1440, price);
      assertEquals(candles, rest, `${price}: archive rows == REST rows`);
      assert(candles.every((c) => c.volume === 0), `${price}: no volume`);
      byPrice.set(price, candles);
    }
    // Three different series, none of them the trade candles.
    const trade = (await archiveCandles(archive, "trade", { from: JANUARY.from, to: JANUARY.from + DAY })).candles;
    const first = (price: PriceKind) => byPrice.get(price)!.slice(0, 1440);
    assert(first("mark")[0].close !== first("index")[0].close, "mark differs from index");
    assert(first("mark").some((c, i) => c.close !== trade[i].close), "mark differs from trade");
    assert(first("premium").every((c) => Math.abs(c.close) < 0.01), "premium index is a small ratio");
  });
});

Deno.test("archive: daily mark/index/premium files without a header (2021) equal the REST reader's too", async () => {
  await withArchive(async (_fake, archive, client) => {
    const range = { from: Date.UTC(2021, 11, 30, 0), to: Date.UTC(2022, 0, 1) };
    for (const price of PRICES) {
      const { plan, candles } = await archiveCandles(archive, price, range);
      assertEquals(plan.files.map((f) => f.name), ["BTCUSDT-1m-2021-12-30.zip", "BTCUSDT-1m-2021-12-31.zip"]);
      const built = await archive.file(new URL(plan.files[1].url).pathname);
      assert(built);
      assert(/^1640908800000,/.test(new TextDecoder().decode(Object.values(unzipSync(built.zip))[0])), "no header");
      assertEquals(candles[0].ts, CONTRACTS[0].listedAt, `${price}: from the listing on`);
      assertEquals(candles, await restCandles(client, price, range.from, range.to), price);
    }
  });
});

Deno.test("fake archive: USDⓈ-M publishes the price directories (checksums, listing, header rule); spot does not", async () => {
  await withArchive(async (fake, archive) => {
    const list = async (prefix: string) => {
      const xml = await (await fetch(`${archive.url}/?prefix=${prefix}&delimiter=/`)).text();
      return {
        prefixes: [...xml.matchAll(/<Prefix>([^<]*)<\/Prefix><\/CommonPrefixes>/g)].map((m) => m[1]),
        keys: [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]),
      };
    };
    assertEquals((await list("data/futures/um/daily/")).prefixes, [
      "data/futures/um/daily/indexPriceKlines/",
      "data/futures/um/daily/klines/",
      "data/futures/um/daily/markPriceKlines/",
      "data/futures/um/daily/premiumIndexKlines/",
    ]);
    assertEquals((await list("data/spot/monthly/")).prefixes, ["data/spot/monthly/klines/"]);
    assertEquals((await list("data/futures/um/monthly/indexPriceKlines/")).prefixes, [
      "data/futures/um/monthly/indexPriceKlines/BTCUSDT/",
    ]);
    const dir = "data/futures/um/monthly/premiumIndexKlines/BTCUSDT/1m/";
    assertEquals((await list(dir)).keys, [
      `${dir}BTCUSDT-1m-2021-12.zip`,
      `${dir}BTCUSDT-1m-2021-12.zip.CHECKSUM`,
      `${dir}BTCUSDT-1m-2022-01.zip`,
      `${dir}BTCUSDT-1m-2022-01.zip.CHECKSUM`,
    ]);
    const status = async (path: string) => {
      const res = await fetch(`${archive.url}/${path}`);
      await res.body?.cancel();
      return res.status;
    };
    assertEquals(await status(`${dir}BTCUSDT-1m-2022-01.zip.CHECKSUM`), 200);
    assertEquals(await status("data/spot/daily/markPriceKlines/BTCUSDT/1m/BTCUSDT-1m-2022-01-02.zip"), 404);
    assertEquals(await status("data/futures/um/daily/fundingKlines/BTCUSDT/1m/BTCUSDT-1m-2022-01-02.zip"), 404);
    assertEquals(
      await status("data/futures/um/daily/markPriceKlines/BTCUSD_PERP/1m/BTCUSD_PERP-1m-2022-01-02.zip"),
      404,
      "inverse is COIN-M",
    );

    // The CSV: the futures header from 2022, then /fapi/v1/markPriceKlines' rows as it sends them.
    const key = "data/futures/um/daily/markPriceKlines/BTCUSDT/1h/BTCUSDT-1h-2022-01-02.zip";
    const built = await archive.file(key);
    assert(built);
    const text = new TextDecoder().decode(Object.values(unzipSync(built.zip))[0]);
    const lines = text.trimEnd().split("\n");
    assertEquals(lines[0], CSV_HEADER);
    const from = Date.UTC(2022, 0, 2);
    const rest = await (await fetch(
      `${fake.url}/fapi/v1/markPriceKlines?symbol=BTCUSDT&interval=1h&startTime=${from}&endTime=${from + DAY - 1}`,
    )).json() as (string | number)[][];
    assertEquals(lines.slice(1), rest.map((r) => r.join(",")));
    assertEquals(lines[1].split(",").slice(5), ["0", String(from + 3_599_999), "0", "60", "0", "0", "0"]);
  });
});
