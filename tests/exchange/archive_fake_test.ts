/**
 * The fake Binance Data Vision archive (tests/support/fake_archive.ts): zips, checksums, the S3
 * listing, the published formats, faults, and rows equal to the fake exchange's REST rows.
 */
import { unzipSync } from "fflate";
import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { type FakeExchange, type FakeMarket, startFakeExchange } from "../support/fake_exchange.ts";
import type { FakeContract } from "../support/fake_derivatives.ts";
import {
  archiveKey,
  CSV_HEADER,
  type FakeArchive,
  fakeExchangeSource,
  startFakeArchive,
} from "../support/fake_archive.ts";

const DAY = 86_400_000;
const SPOT_NOW = Date.UTC(2025, 0, 5, 12);
const UM_NOW = Date.UTC(2022, 0, 3, 5);
const SPOT_MARKETS: FakeMarket[] = [
  { symbol: "BTC/USDT", listedAt: Date.UTC(2024, 10, 20, 0, 7), basePrice: 60000, quoteVolume24h: 9e9 },
  { symbol: "ETH/USDT", listedAt: Date.UTC(2024, 11, 30, 13, 0), basePrice: 3000, quoteVolume24h: 5e9 },
];
const CONTRACTS: FakeContract[] = [
  {
    symbol: "BTC/USDT:USDT",
    listedAt: Date.UTC(2021, 11, 30, 8, 0),
    basePrice: 47000,
    quoteVolume24h: 2e10,
    openInterest: 80000,
  },
  { symbol: "BTC/USD:BTC", listedAt: Date.UTC(2021, 0, 1), basePrice: 47000, quoteVolume24h: 1e9, openInterest: 5e6 },
];

async function withArchive(
  nowMs: number,
  fn: (fake: FakeExchange, archive: FakeArchive) => Promise<void>,
  listPageSize?: number,
): Promise<void> {
  const fake = await startFakeExchange({
    dialect: "binance",
    markets: SPOT_MARKETS,
    contracts: CONTRACTS,
    behaviour: { nowOffsetMs: nowMs - Date.now() },
  });
  const archive = await startFakeArchive({ source: fakeExchangeSource(fake), now: fake.now, listPageSize });
  try {
    await fn(fake, archive);
  } finally {
    await archive.close();
    await fake.close();
  }
}

async function get(url: string): Promise<{ status: number; bytes: Uint8Array }> {
  const res = await fetch(url);
  return { status: res.status, bytes: new Uint8Array(await res.arrayBuffer()) };
}

/** The zip's single CSV (its name checked against the zip's). */
async function csvOf(archive: FakeArchive, key: string): Promise<string[]> {
  const { status, bytes } = await get(`${archive.url}/${key}`);
  assertEquals(status, 200, key);
  const files = unzipSync(bytes);
  const name = key.split("/").pop()!.replace(/\.zip$/, ".csv");
  assertEquals(Object.keys(files), [name]);
  const text = new TextDecoder().decode(files[name]);
  assert(text.endsWith("\n"), "CSV ends with a newline");
  return text.slice(0, -1).split("\n");
}

/** Every REST kline row in `[from, to)`, paged like a client, as CSV lines. */
async function restLines(fake: FakeExchange, path: string, symbol: string, interval: string, from: number, to: number) {
  const out: string[] = [];
  let start = from;
  while (start < to) {
    const res = await fetch(
      `${fake.url}${path}?symbol=${symbol}&interval=${interval}&startTime=${start}&endTime=${to - 1}&limit=1000`,
    );
    const rows = await res.json() as (string | number)[][];
    if (rows.length === 0) break;
    out.push(...rows.map((r) => r.join(",")));
    start = Number(rows[rows.length - 1][0]) + 1;
  }
  return out;
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Parses a `.CHECKSUM` body: `<sha256 hex>  <file name>\n`. */
function parseChecksum(text: string): { sha: string; name: string } {
  const m = /^([0-9a-f]{64}) {2}(\S+)\n$/.exec(text);
  assert(m, `checksum format: ${JSON.stringify(text)}`);
  return { sha: m[1], name: m[2] };
}

const SPOT_M = "data/spot/monthly/klines/BTCUSDT/1m";
const SPOT_D = "data/spot/daily/klines/BTCUSDT/1m";

Deno.test("archiveKey names monthly and daily files like data.binance.vision", () => {
  const file = { market: "spot" as const, symbolId: "BTCUSDT", interval: "1m", from: Date.UTC(2024, 0, 9, 13) };
  assertEquals(archiveKey("monthly", file), "data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01.zip");
  assertEquals(archiveKey("daily", file), "data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01-09.zip");
  assertEquals(
    archiveKey("daily", { ...file, market: "um", interval: "1h" }),
    "data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-01-09.zip",
  );
});

Deno.test("spot monthly file before 2025: no header, milliseconds, equal to the REST rows", async () => {
  await withArchive(SPOT_NOW, async (fake, archive) => {
    const lines = await csvOf(archive, `${SPOT_M}/BTCUSDT-1m-2024-12.zip`);
    const rest = await restLines(fake, "/api/v3/klines", "BTCUSDT", "1m", Date.UTC(2024, 11, 1), Date.UTC(2025, 0, 1));
    assertEquals(lines.length, 31 * 1440);
    assertEquals(lines, rest);
    assertEquals(lines[0].split(",")[0], String(Date.UTC(2024, 11, 1)));
    assertEquals(lines[0].split(",")[6], String(Date.UTC(2024, 11, 1) + 59_999));
    assertEquals(lines[0].split(",").length, 12);
  });
});

Deno.test("spot daily file from 2025: microsecond open and close times, else the REST rows", async () => {
  await withArchive(SPOT_NOW, async (fake, archive) => {
    const day = Date.UTC(2025, 0, 2);
    const lines = await csvOf(archive, `${SPOT_D}/BTCUSDT-1m-2025-01-02.zip`);
    assertEquals(lines[0].split(",")[0], String(day * 1000));
    assertEquals(lines[0].split(",")[6], String((day + 60_000) * 1000 - 1));
    const asMillis = lines.map((l) => {
      const c = l.split(",");
      return [Number(c[0]) / 1000, ...c.slice(1, 6), (Number(c[6]) + 1) / 1000 - 1, ...c.slice(7)].join(",");
    });
    assertEquals(asMillis, await restLines(fake, "/api/v3/klines", "BTCUSDT", "1m", day, day + DAY));
    assertEquals(asMillis.length, 1440);
    // higher intervals are the REST aggregation too
    const hours = await csvOf(archive, "data/spot/daily/klines/ETHUSDT/1h/ETHUSDT-1h-2025-01-03.zip");
    assertEquals(hours.length, 24);
    assertEquals(
      hours.map((l) => l.split(",")).map((c) => [Number(c[0]) / 1000, ...c.slice(1, 6)].join(",")),
      (await restLines(fake, "/api/v3/klines", "ETHUSDT", "1h", Date.UTC(2025, 0, 3), Date.UTC(2025, 0, 4)))
        .map((l) => l.split(",").slice(0, 6).join(",")),
    );
  });
});

Deno.test("files are published for whole past days/months only, from the listing on", async () => {
  await withArchive(SPOT_NOW, async (_fake, archive) => {
    const status = async (key: string) => (await get(`${archive.url}/${key}`)).status;
    assertEquals(await status(`${SPOT_D}/BTCUSDT-1m-2025-01-04.zip`), 200);
    assertEquals(await status(`${SPOT_D}/BTCUSDT-1m-2025-01-05.zip`), 404, "today");
    assertEquals(await status(`${SPOT_M}/BTCUSDT-1m-2025-01.zip`), 404, "current month");
    assertEquals(await status(`${SPOT_M}/BTCUSDT-1m-2024-10.zip`), 404, "before the listing");
    assertEquals(await status(`${SPOT_D}/BTCUSDT-1m-2024-11-19.zip`), 404, "day before the listing");
    assertEquals(await status(`${SPOT_M}/BTCUSDT-1m-2024-13.zip`), 404, "no such month");
    assertEquals(await status(`${SPOT_M}/XRPUSDT-1m-2024-12.zip`), 404, "mismatched name");
    assertEquals(await status("data/spot/monthly/klines/XRPUSDT/1m/XRPUSDT-1m-2024-12.zip"), 404, "unlisted");
    const first = await csvOf(archive, `${SPOT_M}/BTCUSDT-1m-2024-11.zip`);
    assertEquals(first[0].split(",")[0], String(SPOT_MARKETS[0].listedAt), "first row at the listing");
    assertEquals(first.length, (Date.UTC(2024, 11, 1) - SPOT_MARKETS[0].listedAt) / 60_000);
  });
});

Deno.test("every zip has a .CHECKSUM that verifies with SHA-256", async () => {
  await withArchive(SPOT_NOW, async (_fake, archive) => {
    for (const key of [`${SPOT_M}/BTCUSDT-1m-2024-12.zip`, `${SPOT_D}/BTCUSDT-1m-2025-01-01.zip`]) {
      const zip = await get(`${archive.url}/${key}`);
      const sum = await get(`${archive.url}/${key}.CHECKSUM`);
      assertEquals(sum.status, 200);
      const { sha, name } = parseChecksum(new TextDecoder().decode(sum.bytes));
      assertEquals(name, key.split("/").pop());
      assertEquals(sha, await sha256Hex(zip.bytes));
    }
    assertEquals((await get(`${archive.url}/${SPOT_D}/BTCUSDT-1m-2025-01-05.zip.CHECKSUM`)).status, 404);
  });
});

Deno.test("futures (USDⓈ-M) files: no header before 2022, a header from 2022, equal to /fapi/v1/klines", async () => {
  await withArchive(UM_NOW, async (fake, archive) => {
    const dir = "data/futures/um/daily/klines/BTCUSDT/1m";
    const before = await csvOf(archive, `${dir}/BTCUSDT-1m-2021-12-31.zip`);
    assert(/^[0-9]/.test(before[0]), "2021: no header");
    assertEquals(
      before,
      await restLines(fake, "/fapi/v1/klines", "BTCUSDT", "1m", Date.UTC(2021, 11, 31), Date.UTC(2022, 0, 1)),
    );
    const after = await csvOf(archive, `${dir}/BTCUSDT-1m-2022-01-01.zip`);
    assertEquals(after[0], CSV_HEADER);
    assertEquals(
      after.slice(1),
      await restLines(fake, "/fapi/v1/klines", "BTCUSDT", "1m", Date.UTC(2022, 0, 1), Date.UTC(2022, 0, 2)),
    );
    assertEquals(String(Date.UTC(2022, 0, 1)), after[1].split(",")[0], "futures stay in milliseconds");
    const month = await csvOf(archive, "data/futures/um/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2021-12.zip");
    assertEquals(month[0].split(",")[0], String(CONTRACTS[0].listedAt), "starts at the listing");
    assertEquals(
      (await get(`${archive.url}/data/futures/um/daily/klines/BTCUSD_PERP/1m/BTCUSD_PERP-1m-2021-12-31.zip`)).status,
      404,
      "inverse is not USDⓈ-M",
    );
    const sum = await get(`${archive.url}/${dir}/BTCUSDT-1m-2022-01-01.zip.CHECKSUM`);
    const zip = await get(`${archive.url}/${dir}/BTCUSDT-1m-2022-01-01.zip`);
    assertEquals(parseChecksum(new TextDecoder().decode(sum.bytes)).sha, await sha256Hex(zip.bytes));
  });
});

interface Listing {
  keys: { key: string; size: number; modified: string }[];
  prefixes: string[];
  truncated: boolean;
  nextMarker: string | null;
}

function parseListing(xml: string): Listing {
  assert(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>'), "XML declaration");
  assert(/<ListBucketResult xmlns="http:\/\/s3\.amazonaws\.com\/doc\/2006-03-01\/">/.test(xml), "root element");
  const tag = (s: string, t: string) => new RegExp(`<${t}>([^<]*)</${t}>`).exec(s)?.[1] ?? null;
  return {
    keys: [...xml.matchAll(/<Contents>(.*?)<\/Contents>/g)].map(([, c]) => ({
      key: tag(c, "Key")!,
      size: Number(tag(c, "Size")),
      modified: tag(c, "LastModified")!,
    })),
    prefixes: [...xml.matchAll(/<CommonPrefixes><Prefix>([^<]*)<\/Prefix><\/CommonPrefixes>/g)].map((m) => m[1]),
    truncated: tag(xml, "IsTruncated") === "true",
    nextMarker: tag(xml, "NextMarker"),
  };
}

async function list(archive: FakeArchive, query: string): Promise<Listing> {
  const res = await fetch(`${archive.url}/?${query}`);
  assertEquals(res.status, 200);
  return parseListing(await res.text());
}

Deno.test("S3 listing: Contents with sizes, CommonPrefixes, paging by marker", async () => {
  await withArchive(SPOT_NOW, async (_fake, archive) => {
    const months = await list(archive, `prefix=${SPOT_M}/&delimiter=/`);
    assertEquals(months.keys.map((k) => k.key), [
      `${SPOT_M}/BTCUSDT-1m-2024-11.zip`,
      `${SPOT_M}/BTCUSDT-1m-2024-11.zip.CHECKSUM`,
      `${SPOT_M}/BTCUSDT-1m-2024-12.zip`,
      `${SPOT_M}/BTCUSDT-1m-2024-12.zip.CHECKSUM`,
    ]);
    assertEquals(months.truncated, false);
    for (const k of months.keys) {
      assertEquals(k.size, (await get(`${archive.url}/${k.key}`)).bytes.length, k.key);
      assert(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/.test(k.modified), k.modified);
    }
    const symbols = await list(archive, "prefix=data/spot/daily/klines/&delimiter=/");
    assertEquals(symbols.prefixes, ["data/spot/daily/klines/BTCUSDT/", "data/spot/daily/klines/ETHUSDT/"]);
    assertEquals(symbols.keys, []);
    const intervals = await list(archive, "prefix=data/spot/daily/klines/BTCUSDT/1&delimiter=/");
    assert(intervals.prefixes.includes("data/spot/daily/klines/BTCUSDT/1m/"), intervals.prefixes.join());
    assert(intervals.prefixes.every((p) => p.startsWith("data/spot/daily/klines/BTCUSDT/1")));
    assertEquals((await list(archive, "prefix=data/futures/&delimiter=/")).prefixes, ["data/futures/um/"]);

    // days of ETHUSDT 1d, listed 2024-12-30: 2024-12-30 .. 2025-01-04 = 6 files, 12 keys; pages of 5
    const dir = "data/spot/daily/klines/ETHUSDT/1d/";
    const all = await list(archive, `prefix=${dir}&delimiter=/`);
    assertEquals(all.keys.length, 12);
    assertEquals(all.keys[0].key, `${dir}ETHUSDT-1d-2024-12-30.zip`);
    const paged: string[] = [];
    let marker = "";
    let pages = 0;
    while (true) {
      const page = await list(archive, `prefix=${dir}&delimiter=/&max-keys=5&marker=${encodeURIComponent(marker)}`);
      pages++;
      paged.push(...page.keys.map((k) => k.key));
      if (!page.truncated) break;
      assertEquals(page.nextMarker, page.keys[page.keys.length - 1].key);
      marker = page.nextMarker!;
    }
    assertEquals(pages, 3);
    assertEquals(paged, all.keys.map((k) => k.key));
  }, 1000);
});

Deno.test("S3 listing pages at the server's page size", async () => {
  await withArchive(SPOT_NOW, async (_fake, archive) => {
    const page = await list(archive, `prefix=${SPOT_D}/&delimiter=/`);
    assertEquals(page.keys.length, 4);
    assertEquals(page.truncated, true);
    assertEquals(page.nextMarker, `${SPOT_D}/BTCUSDT-1m-2024-11-21.zip.CHECKSUM`);
  }, 4);
});

Deno.test("warm builds published files ahead and refuses unpublished keys", async () => {
  await withArchive(SPOT_NOW, async (_fake, archive) => {
    const keys = [`${SPOT_M}/BTCUSDT-1m-2024-12.zip`, `${SPOT_D}/BTCUSDT-1m-2025-01-01.zip`];
    await archive.warm(keys);
    for (const key of keys) {
      const built = await archive.file(key);
      assert(built, key);
      assertEquals((await get(`${archive.url}/${key}`)).bytes, built.zip);
      assertEquals(built.sha256, await sha256Hex(built.zip));
    }
    await assertRejects(
      () => archive.warm([`${SPOT_D}/BTCUSDT-1m-2025-01-05.zip`]),
      Error,
      "Cannot warm an archive file: current value is data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2025-01-05.zip",
    );
  });
});

Deno.test("faults: bad checksum, corrupt zip, missing file, latency; counters per path", async () => {
  await withArchive(SPOT_NOW, async (_fake, archive) => {
    const key = `${SPOT_D}/BTCUSDT-1m-2025-01-03.zip`;
    const name = "BTCUSDT-1m-2025-01-03.zip";
    const good = (await get(`${archive.url}/${key}`)).bytes;
    const goodSha = await sha256Hex(good);
    const checksum = async () =>
      parseChecksum(new TextDecoder().decode((await get(`${archive.url}/${key}.CHECKSUM`)).bytes)).sha;

    archive.faults.badChecksum.push(name);
    assert((await checksum()) !== goodSha, "bad checksum differs");
    assert((await checksum()) !== goodSha, "bad checksum stays");
    archive.faults.badChecksum = [{ file: name, times: 1 }];
    assert((await checksum()) !== goodSha, "bad once");
    assertEquals(await checksum(), goodSha, "then good");

    archive.faults.corrupt.push({ file: name, times: 1 });
    const corruptSha = await checksum();
    const corrupt = (await get(`${archive.url}/${key}`)).bytes;
    assertEquals(corruptSha, await sha256Hex(corrupt), "the corrupt zip verifies");
    let threw = false;
    try {
      unzipSync(corrupt);
    } catch {
      threw = true;
    }
    assert(threw, "corrupt zip cannot be unzipped");
    assertEquals(archive.faults.corrupt, []);
    assertEquals((await get(`${archive.url}/${key}`)).bytes, good, "served whole again");

    archive.faults.missing.push(name);
    assertEquals((await get(`${archive.url}/${key}`)).status, 404);
    assertEquals((await get(`${archive.url}/${key}.CHECKSUM`)).status, 404);
    const keys = (await list(archive, `prefix=${SPOT_D}/BTCUSDT-1m-2025-01&delimiter=/`)).keys.map((k) => k.key);
    assertEquals(keys.length, 6);
    assert(!keys.includes(key), "missing file not listed");
    archive.faults.missing = [];

    archive.resetStats();
    const zip = await get(`${archive.url}/${key}`);
    await get(`${archive.url}/${key}`);
    assertEquals(archive.stats.requests, 2);
    assertEquals(archive.stats.bytes, 2 * zip.bytes.length);
    assertEquals(archive.stats.byPath[`/${key}`], { requests: 2, bytes: 2 * zip.bytes.length });
    await get(`${archive.url}/${SPOT_D}/BTCUSDT-1m-2025-01-05.zip`);
    assertEquals(archive.stats.byStatus, { 200: 2, 404: 1 });

    // concurrent first downloads of one file get the same bytes
    const other = `${SPOT_D}/BTCUSDT-1m-2024-12-24.zip`;
    const copies = await Promise.all([1, 2, 3].map(() => get(`${archive.url}/${other}`)));
    assertEquals(copies[1].bytes, copies[0].bytes);
    assertEquals(copies[2].bytes, copies[0].bytes);

    archive.faults.latencyMs = 150;
    const t = performance.now();
    await get(`${archive.url}/${key}.CHECKSUM`);
    assert(performance.now() - t >= 140, "latency applied");
  });
});
