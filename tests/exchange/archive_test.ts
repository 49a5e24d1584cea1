import ccxt from "ccxt";
import { strToU8, zipSync } from "fflate";
import {
  ArchiveChecksumError,
  ArchiveCorruptError,
  ArchiveDownloadError,
  ArchiveLimiter,
  fetchArchiveFile,
} from "../../src/exchange/archive.ts";
import { assert, assertEquals, assertRejects } from "../support/assert.ts";

const DAY = 86_400_000;
const HOUR = 3_600_000;
const t = (iso: string) => Date.parse(iso);

// ---------------------------------------------------------------- a tiny local archive server

type Route = { body: Uint8Array | string } | { status: number };

interface TestArchive {
  base: string;
  routes: Map<string, Route | (() => Route)>;
  hits: Map<string, number>;
  maxConcurrent: number;
  delayMs: number;
  close(): Promise<void>;
}

function startArchive(): TestArchive {
  const archive: Omit<TestArchive, "base" | "close"> = {
    routes: new Map(),
    hits: new Map(),
    maxConcurrent: 0,
    delayMs: 0,
  };
  let active = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const path = new URL(request.url).pathname;
    archive.hits.set(path, (archive.hits.get(path) ?? 0) + 1);
    active++;
    archive.maxConcurrent = Math.max(archive.maxConcurrent, active);
    try {
      if (archive.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, archive.delayMs));
      const entry = archive.routes.get(path);
      const route = typeof entry === "function" ? entry() : entry;
      if (route === undefined) return new Response("not found", { status: 404 });
      if ("status" in route) return new Response("failure", { status: route.status });
      return new Response(typeof route.body === "string" ? route.body : new Uint8Array(route.body));
    } finally {
      active--;
    }
  });
  return Object.assign(archive, {
    base: `http://127.0.0.1:${server.addr.port}`,
    close: () => server.shutdown(),
  });
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(bytes)));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Publishes `csv` as `<path>` (a .zip holding <name>.csv) with its `.CHECKSUM`, as Binance does. */
async function publish(archive: TestArchive, path: string, csv: string): Promise<Uint8Array> {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const zip = zipSync({ [name.replace(/\.zip$/, ".csv")]: strToU8(csv) });
  archive.routes.set(path, { body: zip });
  archive.routes.set(`${path}.CHECKSUM`, { body: `${await sha256(zip)}  ${name}\n` });
  return zip;
}

/** A published kline row: open time as written (ms or µs), 12 columns like Binance's. */
function row(openTime: string, o: string, h: string, l: string, c: string, v: string): string {
  return [openTime, o, h, l, c, v, String(Number(openTime) + 3_599_999), "1000.5", "13", "1.5", "20.25", "0"].join(",");
}

const SPOT_DAY = "/data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-01-15.zip";

// ---------------------------------------------------------------- fetch

Deno.test("fetchArchiveFile: millisecond spot file → the candles ccxt's REST parsing gives", async () => {
  const archive = startArchive();
  try {
    const day = t("2024-01-15T00:00:00Z");
    const raw = Array.from({ length: 24 }, (_, i) => {
      const p = (60000 + i * 7.31).toFixed(2);
      return [
        String(day + i * HOUR),
        `${p}000000`,
        `${(Number(p) + 5.1).toFixed(8)}`,
        `${(Number(p) - 3.07).toFixed(8)}`,
        (Number(p) + 1.23).toFixed(8),
        `${(0.1 * i + 0.3).toFixed(8)}`,
      ];
    });
    await publish(archive, SPOT_DAY, raw.map((r) => row(r[0], r[1], r[2], r[3], r[4], r[5])).join("\n") + "\n");
    const result = await fetchArchiveFile(`${archive.base}${SPOT_DAY}`, { limiter: new ArchiveLimiter(2) });
    assert(result.status === "ok");
    assertEquals(result.file, "BTCUSDT-1h-2024-01-15.zip");
    assertEquals(result.range, { from: day, to: day + DAY });
    assertEquals(result.rejected, []);
    assertEquals(result.attempts, 1);
    const binance = new ccxt.binance();
    const rest = raw.map((r) => binance.parseOHLCV([Number(r[0]), r[1], r[2], r[3], r[4], r[5]]));
    assertEquals(result.candles.map((c) => [c.ts, c.open, c.high, c.low, c.close, c.volume]), rest as number[][]);
  } finally {
    await archive.close();
  }
});

Deno.test("fetchArchiveFile: microsecond timestamps (spot from 2025), detected per row, and a futures header", async () => {
  const archive = startArchive();
  try {
    const day = t("2025-01-15T00:00:00Z");
    const spot = "/data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2025-01-15.zip";
    await publish(
      archive,
      spot,
      [
        row(`${day}000`, "1.0", "2.0", "0.5", "1.5", "10"),
        row(String(day + HOUR), "1.5", "2.5", "1.0", "2.0", "11"), // milliseconds in the same file
        row(`${day + 2 * HOUR}000`, "2.0", "3.0", "1.5", "2.5", "12"),
      ].join("\r\n"),
    );
    const micro = await fetchArchiveFile(`${archive.base}${spot}`);
    assert(micro.status === "ok");
    assertEquals(micro.candles.map((c) => c.ts), [day, day + HOUR, day + 2 * HOUR]);
    assertEquals(micro.candles[2], { ts: day + 2 * HOUR, open: 2, high: 3, low: 1.5, close: 2.5, volume: 12 });
    assertEquals(micro.rejected, []);

    const futures = "/data/futures/um/monthly/klines/BTCUSDT/1h/BTCUSDT-1h-2023-02.zip";
    const feb = t("2023-02-01T00:00:00Z");
    await publish(
      archive,
      futures,
      "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n" +
        row(String(feb), "100.1", "101.2", "99.3", "100.4", "5.5") + "\n" +
        row(String(feb + HOUR), "100.4", "100.9", "100.0", "100.5", "6.5") + "\n",
    );
    const withHeader = await fetchArchiveFile(`${archive.base}${futures}`);
    assert(withHeader.status === "ok");
    assertEquals(withHeader.rejected, [], "the header is not a rejected row");
    assertEquals(withHeader.candles, [
      { ts: feb, open: 100.1, high: 101.2, low: 99.3, close: 100.4, volume: 5.5 },
      { ts: feb + HOUR, open: 100.4, high: 100.9, low: 100, close: 100.5, volume: 6.5 },
    ]);
  } finally {
    await archive.close();
  }
});

Deno.test("fetchArchiveFile: mark/index/premium-index files (price from the directory): volume 0, a missing one 0 too", async () => {
  const archive = startArchive();
  try {
    const day = t("2024-01-15T00:00:00Z");
    const csv =
      "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n" +
      [
        `${day},42000.10000000,42010.00000000,41990.50000000,42005.25000000,0,${day + HOUR - 1},0,60,0,0,0`,
        `${day + HOUR},-0.00012345,0.00001000,-0.00020000,-0.00000500,,${day + 2 * HOUR - 1},0,60,0,0,0`,
        `${day + 2 * HOUR},1.5,1.6,1.4,1.55`,
      ].join("\n") + "\n";
    const binance = new ccxt.binance();
    const expected = [
      { ts: day, open: 42000.1, high: 42010, low: 41990.5, close: 42005.25, volume: 0 },
      { ts: day + HOUR, open: -0.00012345, high: 0.00001, low: -0.0002, close: -0.000005, volume: 0 },
      { ts: day + 2 * HOUR, open: 1.5, high: 1.6, low: 1.4, close: 1.55, volume: 0 },
    ];
    // ccxt reads /fapi/v1/markPriceKlines' "0" volume as 0, as the archive reader does.
    assertEquals(
      binance.parseOHLCV([day, "42000.10000000", "42010.00000000", "41990.50000000", "42005.25000000", "0"]),
      [
        day,
        42000.1,
        42010,
        41990.5,
        42005.25,
        0,
      ],
    );
    for (const dir of ["markPriceKlines", "indexPriceKlines", "premiumIndexKlines"]) {
      const path = `/data/futures/um/daily/${dir}/BTCUSDT/1h/BTCUSDT-1h-2024-01-15.zip`;
      await publish(archive, path, csv);
      const result = await fetchArchiveFile(`${archive.base}${path}`);
      assert(result.status === "ok");
      assertEquals(result.rejected, [], dir);
      assertEquals(result.candles, expected, dir);
    }
    // Trade candles have a volume: the same rows under klines lose the two without one.
    const klines = "/data/futures/um/daily/klines/BTCUSDT/1h/BTCUSDT-1h-2024-01-15.zip";
    await publish(archive, klines, csv);
    const trade = await fetchArchiveFile(`${archive.base}${klines}`);
    assert(trade.status === "ok");
    assertEquals(trade.candles, expected.slice(0, 1));
    assertEquals(trade.rejected.map((r) => r.reason), [
      'volume is not a decimal number ("")',
      "row has 5 fields, expected at least 6",
    ]);
  } finally {
    await archive.close();
  }
});

Deno.test("fetchArchiveFile: malformed rows are rejected with ts and reason, never returned", async () => {
  const archive = startArchive();
  try {
    const day = t("2024-01-15T00:00:00Z");
    await publish(
      archive,
      SPOT_DAY,
      [
        row(String(day), "1", "2", "0.5", "1.5", "10"),
        row(String(day + HOUR), "1", "abc", "0.5", "1.5", "10"),
        `${day + 2 * HOUR},1,2,0.5`,
        row(String(day + 3 * HOUR), "1", "0.9", "0.5", "1.5", "10"),
        row(String(day + 4 * HOUR + 1), "1", "2", "0.5", "1.5", "10"),
        row(String(day + 5 * HOUR), "1", "2", "0.5", "1.5", "-1"),
        row(`${day + 6 * HOUR}123`, "1", "2", "0.5", "1.5", "10"),
        row("12345", "1", "2", "0.5", "1.5", "10"),
        row("open", "1", "2", "0.5", "1.5", "10"),
        row(String(day + DAY), "1", "2", "0.5", "1.5", "10"),
        row(String(day + 7 * HOUR), "1e3", "2", "0.5", "1.5", "10"),
        row(String(day + 8 * HOUR), "1", "2", "0.5", "1.5", "10"),
        "",
      ].join("\n"),
    );
    const result = await fetchArchiveFile(`${archive.base}${SPOT_DAY}`);
    assert(result.status === "ok");
    assertEquals(result.candles.map((c) => c.ts), [day, day + 8 * HOUR]);
    const reasons = result.rejected.map((r) => `${Number.isNaN(r.ts) ? "NaN" : (r.ts - day) / HOUR}: ${r.reason}`);
    assertEquals(reasons, [
      '1: high is not a decimal number ("abc")',
      "2: row has 4 fields, expected at least 6",
      `NaN: open time ${day + 6 * HOUR}123 (microseconds) is not on a whole millisecond`,
      "NaN: open time 12345 is neither milliseconds nor microseconds",
      'NaN: open time is not an integer ("open")',
      "24: open time outside the file's range",
      '7: open is not a decimal number ("1e3")',
      "3: high below max(open, close)",
      "4.000000277777778: timestamp not aligned to the 3600000 ms timeframe in UTC",
      "5: negative volume",
    ]);
  } finally {
    await archive.close();
  }
});

Deno.test("fetchArchiveFile: a bad checksum is retried once, then ArchiveChecksumError naming the file", async () => {
  const archive = startArchive();
  try {
    const zip = await publish(archive, SPOT_DAY, row(String(t("2024-01-15T00:00:00Z")), "1", "2", "0.5", "1.5", "1"));
    archive.routes.set(`${SPOT_DAY}.CHECKSUM`, { body: `${"0".repeat(64)}  BTCUSDT-1h-2024-01-15.zip\n` });
    const error = await assertRejects(
      () => fetchArchiveFile(`${archive.base}${SPOT_DAY}`),
      ArchiveChecksumError,
      "BTCUSDT-1h-2024-01-15.zip",
    );
    assertEquals([error.code, error.file, error.attempts], ["checksum_mismatch", "BTCUSDT-1h-2024-01-15.zip", 2]);
    assertEquals(archive.hits.get(SPOT_DAY), 2);

    // Damaged in transit once, intact on the retry: imported, attempts 2.
    archive.routes.set(`${SPOT_DAY}.CHECKSUM`, { body: `${await sha256(zip)}  BTCUSDT-1h-2024-01-15.zip\n` });
    let served = 0;
    const damaged = zip.slice();
    damaged[damaged.length - 30] ^= 0xff;
    archive.routes.set(SPOT_DAY, () => ({ body: served++ === 0 ? damaged : zip }));
    const retried = await fetchArchiveFile(`${archive.base}${SPOT_DAY}`);
    assert(retried.status === "ok");
    assertEquals([retried.attempts, retried.candles.length], [2, 1]);
  } finally {
    await archive.close();
  }
});

Deno.test("fetchArchiveFile: the checksum is checked before parsing; a corrupt zip with a valid checksum → ArchiveCorruptError", async () => {
  const archive = startArchive();
  try {
    const name = "BTCUSDT-1h-2024-01-15.zip";
    const notZip = strToU8("this is not a zip file at all");
    archive.routes.set(SPOT_DAY, { body: notZip });
    archive.routes.set(`${SPOT_DAY}.CHECKSUM`, { body: `${"f".repeat(64)}  ${name}\n` });
    await assertRejects(() => fetchArchiveFile(`${archive.base}${SPOT_DAY}`), ArchiveChecksumError);

    archive.routes.set(`${SPOT_DAY}.CHECKSUM`, { body: `${await sha256(notZip)}  ${name}\n` });
    const corrupt = await assertRejects(
      () => fetchArchiveFile(`${archive.base}${SPOT_DAY}`),
      ArchiveCorruptError,
      name,
    );
    assertEquals([corrupt.code, corrupt.attempts], ["corrupt_zip", 2]);
    assertEquals(archive.hits.get(SPOT_DAY), 2 + 2, "two downloads for the bad checksum, two for the corrupt zip");

    const zip = zipSync({
      "BTCUSDT-1h-2024-01-15.csv": strToU8(
        row(String(t("2024-01-15T00:00:00Z")), "1", "2", "0.5", "1.5", "1").repeat(200),
      ),
    });
    const truncated = zip.slice(0, Math.floor(zip.length / 2));
    archive.routes.set(SPOT_DAY, { body: truncated });
    archive.routes.set(`${SPOT_DAY}.CHECKSUM`, { body: `${await sha256(truncated)}  ${name}\n` });
    await assertRejects(() => fetchArchiveFile(`${archive.base}${SPOT_DAY}`), ArchiveCorruptError, name);
  } finally {
    await archive.close();
  }
});

Deno.test("fetchArchiveFile: 404 of the zip or its checksum → missing; a 500 → ArchiveDownloadError after the retry", async () => {
  const archive = startArchive();
  try {
    const missing = await fetchArchiveFile(`${archive.base}${SPOT_DAY}`);
    assertEquals(missing.status, "missing");
    assertEquals(archive.hits.get(SPOT_DAY), undefined, "no zip download when its checksum is missing");

    archive.routes.set(`${SPOT_DAY}.CHECKSUM`, { body: `${"a".repeat(64)}  BTCUSDT-1h-2024-01-15.zip\n` });
    const zipMissing = await fetchArchiveFile(`${archive.base}${SPOT_DAY}`);
    assertEquals([zipMissing.status, zipMissing.attempts], ["missing", 1]);

    archive.routes.set(SPOT_DAY, { status: 500 });
    const error = await assertRejects(() => fetchArchiveFile(`${archive.base}${SPOT_DAY}`), ArchiveDownloadError);
    assertEquals([error.code, error.status, error.attempts], ["download_failed", 500, 2]);
    assertEquals(archive.hits.get(SPOT_DAY), 1 + 2, "the 404 once, the 500 twice");
  } finally {
    await archive.close();
  }
});

Deno.test("fetchArchiveFile: the limiter bounds files in flight", async () => {
  const archive = startArchive();
  try {
    const day = t("2024-01-01T00:00:00Z");
    const urls: string[] = [];
    for (let d = 0; d < 6; d++) {
      const date = new Date(day + d * DAY).toISOString().slice(0, 10);
      const path = `/data/spot/daily/klines/BTCUSDT/1h/BTCUSDT-1h-${date}.zip`;
      await publish(archive, path, row(String(day + d * DAY), "1", "2", "0.5", "1.5", "1"));
      urls.push(`${archive.base}${path}`);
    }
    archive.delayMs = 20;
    const limiter = new ArchiveLimiter(2);
    const results = await Promise.all(urls.map((url) => fetchArchiveFile(url, { limiter })));
    assert(results.every((r) => r.status === "ok"));
    assertEquals([limiter.peak, archive.maxConcurrent, limiter.active], [2, 2, 0]);

    archive.maxConcurrent = 0;
    await Promise.all(urls.map((url) => fetchArchiveFile(url, { limiter: new ArchiveLimiter(6) })));
    assert(archive.maxConcurrent > 2, `without the bound more run at once (${archive.maxConcurrent})`);

    const aborted = new AbortController();
    aborted.abort(new Error("stopped"));
    await assertRejects(() => fetchArchiveFile(urls[0], { limiter, signal: aborted.signal }), Error, "stopped");
  } finally {
    await archive.close();
  }
});

Deno.test("fetchArchiveFile: a whole month of 1m (44,640 rows, streamed out of the zip)", async () => {
  const archive = startArchive();
  try {
    const jan = t("2024-01-01T00:00:00Z");
    const path = "/data/spot/monthly/klines/BTCUSDT/1m/BTCUSDT-1m-2024-01.zip";
    const lines: string[] = [];
    for (let i = 0; i < 31 * 1440; i++) {
      const p = (42000 + (i % 977) * 0.01).toFixed(2);
      lines.push(
        row(String(jan + i * 60_000), p, (Number(p) + 1).toFixed(2), (Number(p) - 1).toFixed(2), p, "0.12345678"),
      );
    }
    const zip = await publish(archive, path, lines.join("\n") + "\n");
    const started = performance.now();
    const result = await fetchArchiveFile(`${archive.base}${path}`);
    const ms = performance.now() - started;
    assert(result.status === "ok");
    assertEquals(result.candles.length, 44_640);
    assertEquals([result.candles[0].ts, result.candles.at(-1)!.ts], [jan, t("2024-01-31T23:59:00Z")]);
    assertEquals([result.rejected, result.bytes], [[], zip.length]);
    assert(ms < 5_000, `a month of 1m took ${ms.toFixed(0)} ms`);
  } finally {
    await archive.close();
  }
});

Deno.test("fetchArchiveFile: a network failure or a body cut off is retried once, through the given fetch", async () => {
  const archive = startArchive();
  try {
    await publish(archive, SPOT_DAY, row(String(t("2024-01-15T00:00:00Z")), "1", "2", "0.5", "1.5", "1"));
    const calls: string[] = [];
    let failures = 2;
    const flaky: typeof fetch = (input, init) => {
      const url = String(input);
      calls.push(url.slice(url.lastIndexOf("/") + 1));
      if (url.endsWith(".CHECKSUM") && failures === 2) {
        failures--;
        return Promise.reject(new TypeError("connection refused"));
      }
      if (url.endsWith(".zip") && failures === 1) {
        failures--;
        const cut = new ReadableStream({ start: (c) => c.error(new TypeError("connection reset")) });
        return Promise.resolve(new Response(cut));
      }
      return fetch(input, init);
    };
    await assertRejects(() => fetchArchiveFile(`${archive.base}${SPOT_DAY}`, { fetch: flaky }), ArchiveDownloadError);
    assertEquals(calls, [
      "BTCUSDT-1h-2024-01-15.zip.CHECKSUM",
      "BTCUSDT-1h-2024-01-15.zip.CHECKSUM",
      "BTCUSDT-1h-2024-01-15.zip",
    ]);
    const result = await fetchArchiveFile(`${archive.base}${SPOT_DAY}`, { fetch: flaky });
    assert(result.status === "ok");
    assertEquals([result.attempts, result.candles.length], [1, 1]);
  } finally {
    await archive.close();
  }
});
