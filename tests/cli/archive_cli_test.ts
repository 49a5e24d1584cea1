/**
 * `candlekeep backfill` with `ARCHIVE=auto` and `ARCHIVE_URL` pointing at the fake Data Vision:
 * the whole past days come from the archive, a file with a bad checksum falls back to REST with a
 * warning naming it, the progress and completion lines count archive files, and the stored series
 * is the exchange's. Bad `ARCHIVE` / `ARCHIVE_URL` values are named at start-up.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { spawnCandlekeep } from "../support/child.ts";
import { fakeExchangeSource, startFakeArchive } from "../support/fake_archive.ts";
import { ingestWorld, storedCandles } from "../ingest/helpers.ts";

const DAY = 86_400_000;

interface Line {
  level: string;
  message: string;
  properties?: Record<string, unknown>;
  [key: string]: unknown;
}

Deno.test("cli backfill: whole past days from the archive, a bad file over REST with a warning, files in progress", async () => {
  const w = await ingestWorld();
  const archive = await startFakeArchive({ now: w.now, source: fakeExchangeSource(w.fake) });
  const today = Math.floor(Date.now() / DAY) * DAY;
  const since = today - 35 * DAY;
  const bad = `BTCUSDT-1m-${new Date(since + DAY).toISOString().slice(0, 10)}.zip`;
  archive.faults.badChecksum.push(bad);
  try {
    const env = {
      ...w.env,
      ARCHIVE: "auto",
      ARCHIVE_URL: archive.url + "/",
      BACKFILL_SINCE: new Date(since).toISOString().slice(0, 10),
      LOG_FORMAT: "json",
    };
    const run = spawnCandlekeep(["backfill"], env);
    const status = await run.status;
    const output = run.output();
    assertEquals(status.code, 0, output);
    const lines = output.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Line);
    const text = (l: Line) => JSON.stringify(l);
    const warning = lines.find((l) => l.level === "warning" && text(l).includes(bad));
    assert(warning, `no warning names ${bad}:\n${output}`);
    assert(text(warning).includes("SHA-256") && text(warning).includes("REST"), text(warning));
    const done = lines.find((l) => text(l).includes("Backfill of binance BTC/USDT 1m complete"));
    assert(done, output);
    // 35 days: a monthly file for each whole month, daily files for the other whole days.
    const files = Number(/and (\d+) archive files/.exec(text(done))?.[1]);
    assert(files >= 4 && files <= 35, text(done));
    assert(text(done).includes("(1 fetched over REST instead)"), text(done));
    const progress = lines.filter((l) => text(l).includes("Backfill progress"));
    assert(progress.length > 0, output);
    assert(text(progress.at(-1)!).includes(`archive files ${files}/${files}`), text(progress.at(-1)!));
    const stored = await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" });
    assertEquals(stored[0].ts, since);
    assertEquals(stored, w.fake.expected("BTC/USDT", "1m", since, stored.at(-1)!.ts + 60_000));
    assert(stored.length >= 35 * 1440, `${stored.length} candles`);
    // The archive served every whole day but the bad one; REST served that day and today.
    const klines = w.fake.stats.byPath["/api/v3/klines"] ?? 0;
    assert(klines <= 8, `${klines} REST pages`);
  } finally {
    await archive.close();
    await w.close();
  }
});

Deno.test("cli: a bad ARCHIVE or ARCHIVE_URL is named at start-up", async () => {
  const bad = spawnCandlekeep(["migrate"], { ARCHIVE: "sometimes", ARCHIVE_URL: "ftp://mirror.example/data" });
  assertEquals((await bad.status).code, 2);
  const text = bad.output();
  for (const v of ["ARCHIVE", "auto or off", "ARCHIVE_URL", "an http(s) URL"]) {
    assert(text.includes(v), `${v}: ${text}`);
  }
});
