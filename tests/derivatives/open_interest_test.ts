/**
 * Open-interest ingest (src/derivatives/open_interest_*.ts, ExchangeClient.fetchOpenInterestPage)
 * against the fake exchange with real ccxt: Binance USDⓈ-M (`/futures/data/openInterestHist`,
 * 30-day window, its own request limit) and Bybit v5 linear (`/v5/market/open-interest`).
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { loadConfig } from "../../src/config.ts";
import { syncOpenInterest } from "../../src/derivatives/open_interest_sync.ts";
import type { OpenInterestKey } from "../../src/derivatives/open_interest_store.ts";
import { assert, assertEquals, assertThrows } from "../support/assert.ts";
import type { FakeDialect } from "../support/fake_exchange.ts";
import { type IngestWorld, ingestWorld } from "../ingest/helpers.ts";
import { spawnCandlekeep } from "../support/child.ts";

const HOUR = 3_600_000;
const DAY = 86_400_000;
const SYMBOL = "BTC/USDT:USDT";

/** A logger that records (level, message template) pairs. */
function recordingLogger(): { log: Logger; lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  const at = (level: string) => (message: string) => lines.push({ level, message });
  const log = {
    trace: at("trace"),
    debug: at("debug"),
    info: at("info"),
    warn: at("warning"),
    warning: at("warning"),
    error: at("error"),
    fatal: at("fatal"),
  } as unknown as Logger;
  return { log, lines };
}

async function stored(world: IngestWorld, period = "1h") {
  const rows = await world.t.sql<{ ts: Date; amount: string; value: string | null }[]>`
    select ts, amount::text, value::text from open_interest
    where exchange = ${world.fake.exchangeId} and symbol = ${SYMBOL} and period = ${period} order by ts`;
  return rows.map((r) => ({ ts: r.ts.getTime(), amount: r.amount, value: r.value }));
}

/**
 * The fake's rows as the exchange sends them: Binance's strings as they are, Bybit's amount
 * with 8 fraction digits (`51234.12300000`) and no value.
 */
function expected(world: IngestWorld, from: number, dialect: FakeDialect, period = "1h") {
  return world.fake.derivatives.expectedOpenInterest(SYMBOL, period, { from, to: world.now() + 1 })
    .map((r) =>
      dialect === "binance"
        ? { ts: r.ts, amount: r.amount, value: r.value }
        : { ts: r.ts, amount: Number(r.amount).toFixed(8), value: null }
    );
}

async function world(dialect: FakeDialect, env: Record<string, string> = {}) {
  return await ingestWorld({
    dialect,
    env: { SYMBOLS: SYMBOL, TIMEFRAMES: "1h", BACKFILL_SINCE: "60d", OPEN_INTEREST: "1h", ...env },
  });
}

function context(w: IngestWorld, log: Logger) {
  return { db: w.db, log, now: w.now, since: w.config.backfillSince };
}

const keyOf = (w: IngestWorld, period = "1h"): OpenInterestKey => ({
  exchange: w.fake.exchangeId,
  symbol: SYMBOL,
  period,
});

Deno.test("OPEN_INTEREST: off by default, a period, or an error naming the choices", () => {
  const base = { DATABASE_URL: "postgres://x@localhost/x", EXCHANGES: "binance", SYMBOLS: SYMBOL };
  assertEquals(loadConfig(base).openInterest, "off");
  assertEquals(loadConfig({ ...base, OPEN_INTEREST: "5m" }).openInterest, "5m");
  assertEquals(loadConfig({ ...base, OPEN_INTEREST: "1H" }).openInterest, "1h");
  assertThrows(() => loadConfig({ ...base, OPEN_INTEREST: "7m" }), Error, "5m, 15m, 30m, 1h, 2h, 4h, 6h, 12h, 1d");
});

Deno.test("binance open interest: 30-day window said once, two pages, exact decimals, live appends", async () => {
  const w = await world("binance");
  try {
    const { log, lines } = recordingLogger();
    const client = w.clients.get("binance")!;
    const result = await syncOpenInterest(context(w, log), client, keyOf(w));
    const rows = await stored(w);
    // Starts within the exchange's window (BACKFILL_SINCE=60d asked for more) and never before it.
    const first = rows[0].ts;
    assert(first >= w.now() - 30 * DAY && first <= w.now() - 30 * DAY + HOUR + 60_000, new Date(first).toISOString());
    assertEquals(rows, expected(w, first, "binance"));
    assert(rows.length >= 719, `${rows.length} rows`);
    // 720 rows at 500 a page: a page boundary at row 500, nothing lost or doubled there.
    assertEquals(result.pages, 2);
    assertEquals(w.fake.stats.byPath["/futures/data/openInterestHist"], 2);
    assertEquals(w.fake.stats.rejections.filter((r) => r.status === 400), []);
    const said = lines.filter((l) => l.message.includes("keeps"));
    assertEquals(said.map((l) => l.level), ["info"]);
    assertEquals(lines.filter((l) => l.level === "warning" || l.level === "error"), []);

    // Nothing new yet: no request. An hour later: one request, the next period appended.
    await syncOpenInterest(context(w, log), client, keyOf(w));
    assertEquals(w.fake.stats.byPath["/futures/data/openInterestHist"], 2);
    w.advance(HOUR);
    const live = await syncOpenInterest(context(w, log), client, keyOf(w));
    assertEquals([live.written, live.pages], [1, 1]);
    const after = await stored(w);
    assertEquals(after.length, rows.length + 1);
    assertEquals(after.at(-1)!.ts, rows.at(-1)!.ts + HOUR);
    assertEquals(after.slice(0, rows.length), rows, "stored rows changed");
    // The stored history now reaches further back than the exchange serves.
    assert(first < w.now() - 30 * DAY, "stored history does not reach beyond the exchange's window");
    assertEquals(after.slice(1), expected(w, w.now() - 30 * DAY, "binance").slice(-(after.length - 1)));
    assertEquals(lines.filter((l) => l.message.includes("keeps")).length, 1, "the window was said twice");
    assertEquals(w.fake.stats.rejections.filter((r) => r.status === 400), []);
  } finally {
    await w.close();
  }
});

Deno.test("binance open interest: the /futures/data request limit answers 429 and the runner recovers", async () => {
  const w = await world("binance");
  try {
    // One request per fixed 5-second window: the backfill's consecutive pages meet a 429 (with a
    // 1-second window they could fall into two windows under load and never meet one).
    w.fake.behaviour.dataRequestLimit = 1;
    w.fake.behaviour.dataWindowMs = 5000;
    const { log } = recordingLogger();
    await syncOpenInterest(context(w, log), w.clients.get("binance")!, keyOf(w));
    const rows = await stored(w);
    assertEquals(rows, expected(w, rows[0].ts, "binance"));
    const limited = w.fake.stats.rejections.filter((r) =>
      r.status === 429 && r.path === "/futures/data/openInterestHist"
    );
    assert(limited.length >= 1, "the /futures/data limit was never hit");
    assert(w.clients.get("binance")!.stats().rateLimited >= 1);
  } finally {
    await w.close();
  }
});

Deno.test("bybit open interest: backfills from BACKFILL_SINCE in 200-row pages, exact, no value", async () => {
  const w = await world("bybit", { BACKFILL_SINCE: "10d" });
  try {
    const { log, lines } = recordingLogger();
    const result = await syncOpenInterest(context(w, log), w.clients.get("bybit")!, keyOf(w));
    const rows = await stored(w);
    // The start is aligned down to the period grid: the point at or before now - 10d is included.
    const since = Math.floor((w.now() - 10 * DAY) / HOUR) * HOUR;
    assertEquals(rows, expected(w, since, "bybit"));
    assertEquals(rows.length, 241);
    assert(rows.every((r) => r.value === null));
    // 241 rows at 200 a page: two requests, one boundary.
    assertEquals(result.pages, 2);
    assertEquals(lines.filter((l) => l.message.includes("keeps")), []);
    w.advance(HOUR);
    await syncOpenInterest(context(w, log), w.clients.get("bybit")!, keyOf(w));
    assertEquals(await stored(w), expected(w, since, "bybit"));
    assertEquals((await stored(w)).length, 242);
    // Bybit has no 2h open interest: said, nothing requested.
    const n = w.fake.stats.byPath["/v5/market/open-interest"];
    const twoHours = await syncOpenInterest(context(w, log), w.clients.get("bybit")!, keyOf(w, "2h"));
    assert(twoHours.unsupported?.includes("not 2h"), twoHours.unsupported);
    assertEquals([twoHours.pages, w.fake.stats.byPath["/v5/market/open-interest"]], [0, n]);
  } finally {
    await w.close();
  }
});

Deno.test("open interest gap check: a missing point is refetched once, then left as the exchange's hole", async () => {
  const w = await world("bybit", { BACKFILL_SINCE: "2d" });
  try {
    const { log } = recordingLogger();
    const client = w.clients.get("bybit")!;
    await syncOpenInterest(context(w, log), client, keyOf(w));
    const before = await stored(w);
    const next = before.at(-1)!.ts + HOUR;
    w.fake.behaviour.openInterestHoles = [{ from: next, to: next + 1 }];
    w.advance(2 * HOUR);
    const requests = () => w.fake.stats.byPath["/v5/market/open-interest"];
    const n = requests();
    const live = await syncOpenInterest(context(w, log), client, keyOf(w));
    // One live page, one refetch of the missing point, then it is a hole.
    assertEquals([live.pages, live.holes, requests() - n], [2, 1, 2]);
    const after = await stored(w);
    assertEquals(after.length, before.length + 1);
    assertEquals(after.at(-1)!.ts, next + HOUR);
    const m = requests();
    const again = await syncOpenInterest(context(w, log), client, keyOf(w));
    assertEquals([again.pages, requests() - m], [0, 0], "the hole was asked for again");
  } finally {
    await w.close();
  }
});

Deno.test("open interest through the engine: the held perpetual gets its history, spot does not", async () => {
  const w = await world("binance", { SYMBOLS: `BTC/USDT,${SYMBOL}`, BACKFILL_SINCE: "1d" });
  try {
    const ingestor = w.ingestor();
    await ingestor.syncSeries();
    await ingestor.coordinate();
    await ingestor.openInterestTick();
    const rows = await stored(w);
    assertEquals(rows, expected(w, rows[0].ts, "binance"));
    assert(rows[0].ts <= w.now() - DAY + HOUR);
    const symbols = await w.t.sql<{ symbol: string }[]>`select distinct symbol from open_interest`;
    assertEquals(symbols.map((s) => s.symbol), [SYMBOL]);

    // `status` lists it after the series, `status --json` under open_interest.
    const json = spawnCandlekeep(["status", "--json"], w.env);
    assertEquals((await json.status).code, 0, json.output());
    const oi = JSON.parse(json.stdout()).open_interest;
    assertEquals(oi.length, 1);
    assertEquals([oi[0].exchange, oi[0].symbol, oi[0].period, oi[0].count, oi[0].missing, oi[0].backfilled], [
      "binance",
      SYMBOL,
      "1h",
      rows.length,
      0,
      true,
    ]);
    assertEquals([oi[0].first, oi[0].last], [rows[0].ts, rows.at(-1)!.ts].map((t) => new Date(t).toISOString()));
    const table = spawnCandlekeep(["status"], w.env);
    assertEquals((await table.status).code, 0, table.output());
    assert(/Open interest\n.*\n.*\nbinance\s+BTC\/USDT:USDT\s+1h\s/.test(table.stdout()), table.stdout());
  } finally {
    await w.close();
  }
});

for (const dialect of ["binance", "bybit"] as const) {
  Deno.test(`${dialect} open interest of the inverse perpetual BTC/USD:BTC: amounts in contracts, exact`, async () => {
    const w = await world(dialect, { SYMBOLS: "BTC/USD:BTC", BACKFILL_SINCE: "2d" });
    try {
      const { log, lines } = recordingLogger();
      const key = { exchange: dialect, symbol: "BTC/USD:BTC", period: "1h" };
      const result = await syncOpenInterest(context(w, log), w.clients.get(dialect)!, key);
      const rows = await w.t.sql<{ ts: Date; amount: string; value: string | null }[]>`
        select ts, amount::text, value::text from open_interest where symbol = 'BTC/USD:BTC' order by ts`;
      const from = rows[0].ts.getTime();
      assertEquals(
        rows.map((r) => ({ ts: r.ts.getTime(), amount: r.amount, value: r.value })),
        w.fake.derivatives.expectedOpenInterest("BTC/USD:BTC", "1h", { from, to: w.now() + 1 }).map((r) =>
          dialect === "binance"
            ? { ts: r.ts, amount: r.amount, value: r.value }
            : { ts: r.ts, amount: Number(r.amount).toFixed(8), value: null }
        ),
      );
      assert(rows.length >= 47, `${rows.length} rows`);
      assertEquals([result.holes, lines.filter((l) => l.level === "warning")], [0, []]);
    } finally {
      await w.close();
    }
  });
}

Deno.test("backfill command: candles and the perpetual's open interest, exact", async () => {
  const w = await world("bybit", { BACKFILL_SINCE: "1d" });
  try {
    const run = spawnCandlekeep(["backfill"], w.env);
    assertEquals((await run.status).code, 0, run.output());
    const rows = await stored(w);
    assertEquals(rows, expected(w, rows[0].ts, "bybit"));
    assert(rows[0].ts <= w.now() - 23 * HOUR, new Date(rows[0].ts).toISOString());
    assert(rows.length >= 24, `${rows.length} rows`);
  } finally {
    await w.close();
  }
});

Deno.test("binance open interest after a stop longer than the window: resumes at the window, says what is lost", async () => {
  const w = await world("binance", { BACKFILL_SINCE: "1d" });
  try {
    const { log, lines } = recordingLogger();
    const client = w.clients.get("binance")!;
    await syncOpenInterest(context(w, log), client, keyOf(w));
    const before = await stored(w);
    w.advance(40 * DAY);
    const result = await syncOpenInterest(context(w, log), client, keyOf(w));
    assertEquals(w.fake.stats.rejections.filter((r) => r.status === 400), []);
    const after = await stored(w);
    assertEquals(after.slice(0, before.length), before);
    const resumed = after.slice(before.length);
    assertEquals(resumed, expected(w, resumed[0].ts, "binance"));
    assert(resumed[0].ts <= w.now() - 30 * DAY + HOUR + 60_000, new Date(resumed[0].ts).toISOString());
    assertEquals(result.holes, 0, "the lost stretch counted as the exchange's holes");
    assertEquals(lines.filter((l) => l.level === "warning" && l.message.includes("no longer served")).length, 1);
  } finally {
    await w.close();
  }
});
