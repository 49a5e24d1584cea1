/**
 * File export, round-tripped through the libraries users read the files with: apache-arrow
 * (`tableFromIPC`) for Feather, hyparquet for Parquet, `JSON.parse` for JSON, a CSV split,
 * every row compared with the fake exchange's candles after a real backfill through ccxt.
 */
import { tableFromIPC } from "apache-arrow";
import { parquetMetadata, parquetReadObjects } from "hyparquet";
import { createHandler } from "../../src/api/server.ts";
import { AdmissionGate } from "../../src/api/admission.ts";
import { getExport } from "../../src/api/export.ts";
import { exportFiles, exportTargets } from "../../src/export/files.ts";
import { exportFileName, exportRelativePath } from "../../src/export/names.ts";
import { Registry } from "../../src/metrics.ts";
import { floorTo } from "../../src/timeframe.ts";
import type { Candle } from "../../src/candle.ts";
import { assert, assertAlmostEquals, assertEquals, assertRejects } from "../support/assert.ts";
import { spawnCandlekeep } from "../support/child.ts";
import { exportOptions, outIsFile } from "../../src/cli/export_options.ts";
import { parseCommandArgs, UsageError } from "../../src/cli/args.ts";
import { startApi } from "../api/helpers.ts";
import { createTestDatabase } from "../support/pg.ts";
import { migrate } from "../../src/db/migrate.ts";
import { type IngestWorld, ingestWorld } from "../ingest/helpers.ts";

const MIN = 60_000;
const HOUR = 60 * MIN;
type Row = [number, number, number, number, number, number];

function rowsOf(candles: Candle[]): Row[] {
  return candles.map((c) => [c.ts, c.open, c.high, c.low, c.close, c.volume]);
}

/** Reads an exported file back with the library its users read it with. */
async function readBack(format: string, bytes: Uint8Array): Promise<Row[]> {
  if (format === "feather") {
    const table = tableFromIPC(bytes);
    assertEquals(table.schema.fields.map((f) => `${f.name}:${f.type}`), [
      "date:Timestamp<MILLISECOND, UTC>",
      "open:Float64",
      "high:Float64",
      "low:Float64",
      "close:Float64",
      "volume:Float64",
    ]);
    return table.toArray().map((r) => [Number(r.date), r.open, r.high, r.low, r.close, r.volume]);
  }
  if (format === "parquet") {
    const file = bytes.slice().buffer;
    const time = parquetMetadata(file).schema[1];
    assertEquals([time.name, time.type, time.logical_type], ["time", "INT64", {
      type: "TIMESTAMP",
      isAdjustedToUTC: true,
      unit: "MILLIS",
    }]);
    const rows = await parquetReadObjects({ file });
    return rows.map((r) => [(r.time as Date).getTime(), r.open, r.high, r.low, r.close, r.volume] as Row);
  }
  const text = new TextDecoder().decode(bytes);
  if (format === "csv") {
    const [head, ...lines] = text.trimEnd().split("\n");
    assertEquals(head, "time,open,high,low,close,volume");
    return lines.map((l) => {
      const [t, ...v] = l.split(",");
      assert(t.endsWith("Z"), `CSV times are UTC with Z: ${t}`);
      return [Date.parse(t), ...v.map(Number)] as Row;
    });
  }
  return JSON.parse(text);
}

function assertRows(actual: Row[], expected: Row[], what: string, volumeTolerance = 0) {
  assertEquals(actual.length, expected.length, `${what}: row count`);
  for (let i = 0; i < expected.length; i++) {
    assertEquals(actual[i].slice(0, 5), expected[i].slice(0, 5), `${what}: row ${i}`);
    if (volumeTolerance === 0) assertEquals(actual[i][5], expected[i][5], `${what}: volume of row ${i}`);
    else assertAlmostEquals(actual[i][5], expected[i][5], volumeTolerance * Math.abs(expected[i][5]), what);
  }
}

async function backfilled(): Promise<IngestWorld> {
  const w = await ingestWorld({ env: { BACKFILL_SINCE: "1d" } });
  assertEquals(await w.ingestor().backfillOnce(), []);
  return w;
}

const FORMATS = ["feather", "parquet", "csv", "json", "freqtrade-json"] as const;

Deno.test("export: every format round-trips the stored 1m candles, closed ones only, named for freqtrade", async () => {
  const w = await backfilled();
  try {
    // The API's clock stands still: a minute boundary passing mid-test would close the forming candle.
    const now = w.now();
    const handler = createHandler({ db: w.db, config: w.config, registry: new Registry(), now: () => now });
    // A forming candle in storage (as a writer that keeps the open minute would leave it): never exported.
    const forming = floorTo(now, MIN);
    await w.t.sql`
      insert into candles (series_id, ts, open, high, low, close, volume)
      select id, ${new Date(forming)}, 1, 1, 1, 1, 1 from series where symbol = 'BTC/USDT'
      on conflict do nothing`;
    const start = floorTo(now - 20 * HOUR, HOUR) + 7 * MIN;
    const expected = rowsOf(w.fake.expected("BTC/USDT", "1m", start, now + HOUR));
    assert(expected.length > 1000, `expected candles: ${expected.length}`);
    for (const format of FORMATS) {
      const url = `http://x/v1/export?exchange=binance&symbol=BTC/USDT&timeframe=1m&start=${start}&format=${format}`;
      const res = await handler(new Request(url));
      assertEquals(res.status, 200, `${format}: ${res.status}`);
      const ext = format === "freqtrade-json" ? "json" : format;
      assertEquals(res.headers.get("content-disposition"), `attachment; filename="BTC_USDT-1m.${ext}"`);
      assertEquals(
        res.headers.get("content-type"),
        {
          feather: "application/vnd.apache.arrow.file",
          parquet: "application/vnd.apache.parquet",
          csv: "text/csv; charset=utf-8",
          json: "application/json; charset=utf-8",
          "freqtrade-json": "application/json; charset=utf-8",
        }[format],
      );
      const rows = await readBack(format, new Uint8Array(await res.arrayBuffer()));
      assertRows(rows, expected, format);
      // No forming candle: the last one has closed.
      assert(rows[rows.length - 1][0] + MIN <= now, `${format}: last candle is closed`);
    }
  } finally {
    await w.close();
  }
});

Deno.test("export: a resampled timeframe has only complete buckets, equal to the exchange's candles", async () => {
  const w = await backfilled();
  try {
    // The API's clock stands still: a minute boundary passing mid-test would close the forming candle.
    const now = w.now();
    const handler = createHandler({ db: w.db, config: w.config, registry: new Registry(), now: () => now });
    // One stored minute missing: its hour is incomplete and must not be exported.
    const holeHour = floorTo(now - 5 * HOUR, HOUR);
    const deleted = await w.t.sql`delete from candles where ts = ${new Date(holeHour + 17 * MIN)}`;
    assertEquals(deleted.count, 1);
    const start = floorTo(now - 20 * HOUR, HOUR) - 30 * MIN; // a partial first hour: starts at the next one
    const expected = rowsOf(
      w.fake.expected("BTC/USDT", "1h", start + 30 * MIN, now + HOUR).filter((c) => c.ts !== holeHour),
    );
    assert(expected.length >= 15, `expected hours: ${expected.length}`);
    for (const format of FORMATS) {
      const url = `http://x/v1/export?exchange=binance&symbol=BTC/USDT&timeframe=1h&start=${start}&format=${format}`;
      const res = await handler(new Request(url));
      assertEquals(res.status, 200);
      assertEquals(
        res.headers.get("content-disposition"),
        `attachment; filename="${exportFileName({ symbol: "BTC/USDT", timeframe: "1h" }, format)}"`,
      );
      const rows = await readBack(format, new Uint8Array(await res.arrayBuffer()));
      // Volumes are sums of 60 doubles in SQL: equal to the exchange's up to rounding.
      assertRows(rows, expected, `${format} 1h`, 1e-12);
      assert(!rows.some((r) => r[0] === holeHour), `${format}: the incomplete hour is left out`);
    }
  } finally {
    await w.close();
  }
});

Deno.test("export: the CLI's files land in freqtrade's layout and read back whole", async () => {
  const w = await backfilled();
  const dir = await Deno.makeTempDir();
  try {
    const targets = await exportTargets(w.t.sql, { exchanges: ["binance"], timeframes: ["1m", "4h"] });
    assertEquals(targets.map((t) => `${t.exchange} ${t.symbol} ${t.timeframe}`), [
      "binance BTC/USDT 1m",
      "binance BTC/USDT 4h",
    ]);
    for (const format of ["feather", "parquet", "json"] as const) {
      const results = await exportFiles(w.t.sql, { targets, format, out: dir, outIsFile: false, nowMs: w.now() });
      assert(results.every((r) => r.ok), JSON.stringify(results));
      const ext = format === "json" ? "json" : format;
      const rows = await readBack(format, await Deno.readFile(`${dir}/binance/BTC_USDT-1m.${ext}`));
      assertRows(
        rows,
        rowsOf(w.fake.expected("BTC/USDT", "1m", 0, w.now() + HOUR)).filter((r) => r[0] >= rows[0][0]),
        format,
      );
      const four = await readBack(format, await Deno.readFile(`${dir}/binance/BTC_USDT-4h.${ext}`));
      assert(four.length >= 4 && four.every((r) => r[0] % (4 * HOUR) === 0), `${format} 4h buckets`);
    }
    const missing = await exportFiles(w.t.sql, {
      targets: [{ exchange: "binance", symbol: "DOGE/USDT", timeframe: "1m" }],
      format: "csv",
      out: dir,
      outIsFile: false,
    });
    assertEquals(missing[0].ok, false);
    assert(!missing[0].ok && missing[0].reason.includes("DOGE/USDT"), JSON.stringify(missing));
    assertEquals([...Deno.readDirSync(`${dir}/binance`)].filter((e) => e.name.includes("DOGE")).length, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await w.close();
  }
});

Deno.test("export: names follow freqtrade (pairs with _ , futures suffix)", () => {
  assertEquals(exportFileName({ symbol: "BTC/USDT", timeframe: "1h" }, "feather"), "BTC_USDT-1h.feather");
  assertEquals(
    exportFileName({ symbol: "BTC/USDT:USDT", timeframe: "1h" }, "feather"),
    "BTC_USDT_USDT-1h-futures.feather",
  );
  assertEquals(exportFileName({ symbol: "ETH/BTC", timeframe: "1d" }, "freqtrade-json"), "ETH_BTC-1d.json");
  assertEquals(
    exportRelativePath({ exchange: "binance", symbol: "BTC/USDT:USDT", timeframe: "1h" }, "feather"),
    "binance/futures/BTC_USDT_USDT-1h-futures.feather",
  );
  assertEquals(
    exportRelativePath({ exchange: "binance", symbol: "BTC/USDT", timeframe: "5m" }, "parquet"),
    "binance/BTC_USDT-5m.parquet",
  );
});

Deno.test("export: the HTTP route refuses bad input with 400 and unknown series with 404, and is in OpenAPI", async () => {
  const w = await backfilled();
  try {
    const handler = createHandler({ db: w.db, config: w.config, registry: new Registry(), now: w.now });
    const bad = await handler(
      new Request("http://x/v1/export?exchange=binance&symbol=BTC/USDT&timeframe=1m&format=xls"),
    );
    assertEquals(bad.status, 400);
    assert((await bad.json()).details.some((d: { parameter: string }) => d.parameter === "format"));
    const missing = await handler(
      new Request("http://x/v1/export?exchange=binance&symbol=DOGE/USDT&timeframe=1m&format=csv"),
    );
    assertEquals(missing.status, 404);
    assert((await missing.json()).error.includes("BTC/USDT"), "the 404 names what is stored");
    const doc = await (await handler(new Request("http://x/openapi.json"))).json();
    const params = doc.paths["/v1/export"].get.parameters.map((p: { name: string }) => p.name);
    assertEquals(params, ["exchange", "symbol", "timeframe", "start", "end", "price", "format"]);
  } finally {
    await w.close();
  }
});

Deno.test("export: deno task cli export writes a freqtrade folder; exit 0, 1 for an unknown series, 2 for usage", async () => {
  const w = await backfilled();
  const dir = await Deno.makeTempDir({ dir: "/tmp" });
  try {
    const env = { DATABASE_URL: w.t.url, LOG_LEVEL: "warning" };
    const ok = spawnCandlekeep(
      ["export", "--exchange", "binance", "--symbol", "btc-usdt", "--timeframe", "1m,1h", "--out", dir],
      env,
    );
    assertEquals((await ok.status).code, 0, ok.output());
    const table = tableFromIPC(await Deno.readFile(`${dir}/binance/BTC_USDT-1h.feather`));
    assert(table.numRows >= 20, `1h rows: ${table.numRows}`);
    assert(ok.stdout().includes(`${dir}/binance/BTC_USDT-1m.feather`), ok.stdout());
    const failed = spawnCandlekeep(["export", "--symbol", "DOGE/USDT", "--timeframe", "1m", "--out", dir], env);
    assertEquals((await failed.status).code, 1, failed.output());
    assert(failed.output().includes("FAILED binance DOGE/USDT 1m"), failed.output());
    for (const args of [["--format", "xls", "--out", dir], [], ["--out", "/etc/candles"]]) {
      const usage = spawnCandlekeep(["export", ...args], env);
      assertEquals((await usage.status).code, 2, usage.output());
      assert(usage.output().includes("Cannot "), usage.output());
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
    await w.close();
  }
});

Deno.test("export: the admission permit is held while the file streams and freed when done, cancelled or idle", async () => {
  const w = await backfilled();
  try {
    const gate = new AdmissionGate(1);
    const url = (format: string) =>
      new URL(`http://x/v1/export?exchange=binance&symbol=BTC/USDT&timeframe=1m&format=${format}`);
    const read = await getExport(w.t.sql, url("parquet"), { gate, now: w.now });
    assertEquals(gate.stats().running, 1);
    await read.arrayBuffer();
    assertEquals(gate.stats().running, 0, "released after the last byte");

    const cancelled = await getExport(w.t.sql, url("csv"), { gate, now: w.now });
    assertEquals(gate.stats().running, 1);
    await cancelled.body!.cancel();
    assertEquals(gate.stats().running, 0, "released when the client goes away");

    const stalled = await getExport(w.t.sql, url("feather"), { gate, now: w.now, idleMs: 100 });
    assertEquals(gate.stats().running, 1);
    await new Promise((r) => setTimeout(r, 300));
    assertEquals(gate.stats().running, 0, "released when the client reads nothing");
    await stalled.body!.cancel().catch(() => {});
  } finally {
    await w.close();
  }
});

Deno.test("export: cli targets pair symbols with the exchanges that store them", async () => {
  const t = await createTestDatabase();
  try {
    await migrate(t.sql, { timescaledb: "off", compressAfterMs: 7 * 86_400_000 });
    await t.sql`insert into series (exchange, symbol, timeframe) values
      ('binance', 'BTC/USDT', '1m'), ('binance', 'BTC/USDT', '1h'), ('bybit', 'ETH/USDT', '1m')`;
    const names = async (filter: Parameters<typeof exportTargets>[1]) =>
      (await exportTargets(t.sql, filter)).map((x) => `${x.exchange} ${x.symbol} ${x.timeframe}`);
    assertEquals(await names({}), ["binance BTC/USDT 1m", "binance BTC/USDT 1h", "bybit ETH/USDT 1m"]);
    assertEquals(await names({ symbols: ["ETH/USDT"], timeframes: ["4h"] }), ["bybit ETH/USDT 4h"]);
    assertEquals(await names({ symbols: ["DOGE/USDT"] }), ["binance DOGE/USDT *"]);
    assertEquals(await names({ exchanges: ["bybit"], symbols: ["BTC/USDT"] }), ["bybit BTC/USDT *"]);
  } finally {
    await t.drop();
  }
});

Deno.test("export: over the TCP front, 150,000 candles stream in several chunks and read back whole", async () => {
  const api = await startApi();
  try {
    const id = await api.series("binance", "BTC/USDT", "1m");
    const start = Date.UTC(2024, 0, 1);
    await api.t.sql`
      insert into candles (series_id, ts, open, high, low, close, volume)
      select ${id}, to_timestamp(${start}::float8 / 1000) + g * interval '1 minute',
             100 + sin(g / 500.0), 102 + sin(g / 500.0), 99 + sin(g / 500.0), 100 + cos(g / 500.0), g / 37.0
      from generate_series(0, 149999) as g`;
    const stored = await api.t.sql<
      { ms: number; open: number; high: number; low: number; close: number; volume: number }[]
    >`
      select (extract(epoch from ts) * 1000)::float8 as ms, open, high, low, close, volume
      from candles where series_id = ${id} order by ts`;
    const expected = stored.map((r) => [r.ms, r.open, r.high, r.low, r.close, r.volume] as Row);
    for (const format of FORMATS) {
      const res = await fetch(`${api.base}/v1/export?exchange=binance&symbol=BTC/USDT&timeframe=1m&format=${format}`);
      assertEquals(res.status, 200);
      const bytes = new Uint8Array(await res.arrayBuffer());
      assertRows(await readBack(format, bytes), expected, `${format} over HTTP`);
      if (format === "parquet") assertEquals(parquetMetadata(bytes.slice().buffer).row_groups.length, 3);
      if (format === "feather") assertEquals(tableFromIPC(bytes).batches.length, 3);
    }
  } finally {
    await api.close();
  }
});

Deno.test("export: cli options: formats, ranges (ISO, epoch ms, 30d back), --out checked before the database", async () => {
  const now = Date.UTC(2024, 5, 1);
  const parse = (args: string[]) => exportOptions(parseCommandArgs("export", args), now);
  assertEquals(parse(["--out", "/tmp/x"]), { format: "feather", out: "/tmp/x", start: undefined, end: undefined });
  assertEquals(parse(["--out", "/tmp/x", "--format", "parquet", "--since", "30d", "--end", "2024-06-01"]), {
    format: "parquet",
    out: "/tmp/x",
    start: now - 30 * 86_400_000,
    end: now,
  });
  assertEquals(parse(["--out", "/tmp/x", "--start", "1704067200000"]).start, Date.UTC(2024, 0, 1));
  const problems: [string[], string][] = [
    [[], "--out is missing"],
    [["--out", "/tmp/x", "--format", "xlsx"], 'Cannot parse --format: current value is "xlsx"'],
    [["--out", "/tmp/x", "--since", "yesterday"], 'Cannot parse --since: current value is "yesterday"'],
    [["--out", "/tmp/x", "--since", "2024-01-02", "--start", "2024-01-01"], "--since is given too"],
    [["--out", "/tmp/x", "--since", "2024-01-02", "--end", "2024-01-01"], "expected a time after the start"],
    [["--out", "/etc/candles"], 'Cannot write --out: current value is "/etc/candles"'],
  ];
  for (const [args, text] of problems) {
    const error = (() => {
      try {
        parse(args);
        return null;
      } catch (e) {
        return e;
      }
    })();
    assert(error instanceof UsageError && error.message.includes(text), `${args.join(" ")}: ${error}`);
  }
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/one.feather`, "");
    assertEquals(await outIsFile(`${dir}/one.feather`, 1), true);
    assertEquals(await outIsFile(`${dir}/new.feather`, 1), true);
    assertEquals(await outIsFile(dir, 1), false);
    assertEquals(await outIsFile(`${dir}/new/`, 1), false);
    assertEquals(await outIsFile(`${dir}/new`, 2), false);
    await assertRejects(() => outIsFile(`${dir}/one.feather`, 2), UsageError, "a file; give a folder");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
