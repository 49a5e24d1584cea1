/**
 * Funding and open-interest histories against the fake exchange with real ccxt: an earlier
 * wanted start (BACKFILL_SINCE after a restart, a backfill's `--since`) extends them backwards,
 * fetching only the missing older part in page-sized chunks that resume after an interruption;
 * the start is resolved once per run and aligned down to the period grid; open-interest rows
 * lost from storage are gaps that the repair run refetches, and only points the exchange was
 * asked for and did not have are confirmed holes.
 *
 * @module
 */
import { FundingIngest } from "../../src/derivatives/funding_ingest.ts";
import { openInterestGapReport } from "../../src/derivatives/gap_report.ts";
import { openInterestOverview } from "../../src/derivatives/open_interest_overview.ts";
import { type OpenInterestContext, syncOpenInterest } from "../../src/derivatives/open_interest_sync.ts";
import { getLogger } from "../../src/log.ts";
import { assert, assertEquals } from "../support/assert.ts";
import type { FakeDialect } from "../support/fake_exchange.ts";
import { type IngestWorld, ingestWorld } from "../ingest/helpers.ts";

const HOUR = 3_600_000;
const DAY = 86_400_000;
const SYMBOL = "BTC/USDT:USDT";
const FUNDING_PATH = "/v5/market/funding/history";
const OI_PATH: Record<string, string> = {
  binance: "/futures/data/openInterestHist",
  bybit: "/v5/market/open-interest",
};
const days = (n: number) => ({ kind: "duration" as const, ms: n * DAY });
const iso = (ms: number) => new Date(ms).toISOString();

async function storedFunding(w: IngestWorld): Promise<number[]> {
  const rows = await w.t.sql<{ ts: Date }[]>`
    select ts from funding_rates where symbol = ${SYMBOL} order by ts`;
  return rows.map((r) => r.ts.getTime());
}

async function storedOi(w: IngestWorld): Promise<{ ts: number; amount: string }[]> {
  const rows = await w.t.sql<{ ts: Date; amount: string }[]>`
    select ts, amount::text from open_interest where symbol = ${SYMBOL} and period = '1h' order by ts`;
  return rows.map((r) => ({ ts: r.ts.getTime(), amount: r.amount }));
}

/** The fake's open interest from `from` to now as stored (Bybit: 8 fraction digits). */
function expectedOi(w: IngestWorld, dialect: FakeDialect, from: number) {
  return w.fake.derivatives.expectedOpenInterest(SYMBOL, "1h", { from, to: w.now() + 1 }).map((r) => ({
    ts: r.ts,
    amount: dialect === "bybit" ? Number(r.amount).toFixed(8) : r.amount,
  }));
}

async function historyFrom(w: IngestWorld): Promise<number> {
  const [row] = await w.t.sql<{ from: Date }[]>`
    select history_from as from from open_interest_progress where symbol = ${SYMBOL}`;
  return row.from.getTime();
}

async function fundingFrom(w: IngestWorld): Promise<number> {
  const [row] = await w.t.sql<
    { from: Date }[]
  >`select range_from as from from funding_checkpoints where symbol = ${SYMBOL}`;
  return row.from.getTime();
}

function oiContext(w: IngestWorld, extra: Partial<OpenInterestContext> = {}): OpenInterestContext {
  return { db: w.db, log: getLogger("ingest"), now: w.now, since: w.config.backfillSince, ...extra };
}

const key = (w: IngestWorld) => ({ exchange: w.fake.exchangeId, symbol: SYMBOL, period: "1h" });

Deno.test("funding: an earlier BACKFILL_SINCE extends the history backwards, only the older part, resumably", async () => {
  const w = await ingestWorld({ dialect: "bybit", env: { SYMBOLS: SYMBOL, TIMEFRAMES: "1h", BACKFILL_SINCE: "3d" } });
  try {
    const ingest = (since: number, stop?: () => boolean) =>
      new FundingIngest({ db: w.db, sources: w.clients, symbols: [SYMBOL], since: days(since), now: w.now })
        .run({ stop });
    assertEquals((await ingest(3)).map((r) => r.error), [undefined]);
    const before = await storedFunding(w);
    const oldFrom = await fundingFrom(w);
    // Restarted with 150 days: Bybit serves 200 rows (66⅔ days of 8-hour funding) a page, so
    // three chunks, newest first. Stopped after the first one, the start moved down one chunk.
    const requests = () => w.fake.stats.byPath[FUNDING_PATH];
    const n = requests();
    await ingest(150, () => requests() > n);
    assertEquals(requests() - n, 1);
    const chunk = 200 * 8 * HOUR;
    assertEquals(await fundingFrom(w), oldFrom - chunk);
    // The next run resumes there and fetches the rest: two more requests, nothing after the old start.
    const m = requests();
    assertEquals((await ingest(150)).map((r) => r.error), [undefined]);
    assertEquals(requests() - m, 2);
    const wanted = Math.floor((w.now() - 150 * DAY) / HOUR) * HOUR;
    const from = await fundingFrom(w);
    assert(Math.abs(from - wanted) <= HOUR, `${iso(from)} vs ${iso(wanted)}`);
    const rows = await storedFunding(w);
    assertEquals(rows, w.fake.derivatives.expectedFunding(SYMBOL, from, w.now() + 1).map((r) => r.ts));
    assertEquals(rows.slice(-before.length), before);
    assert(rows[0] < w.now() - 149 * DAY, iso(rows[0]));
    // Nothing older is wanted now: no request.
    const k = requests();
    await ingest(150);
    assertEquals(requests(), k);
  } finally {
    await w.close();
  }
});

for (const dialect of ["bybit", "binance"] as const) {
  Deno.test(`${dialect} open interest: an earlier start extends the history backwards in page chunks, resumably`, async () => {
    const w = await ingestWorld({ dialect, env: { SYMBOLS: SYMBOL, TIMEFRAMES: "1h", BACKFILL_SINCE: "3d" } });
    try {
      await syncOpenInterest(oiContext(w), w.clients.get(dialect)!, key(w));
      const before = await storedOi(w);
      const oldFrom = await historyFrom(w);
      // The start is aligned down to the grid: the point at or before now - 3d is included.
      assertEquals(before[0].ts, Math.floor((w.now() - 3 * DAY) / HOUR) * HOUR);
      assertEquals(oldFrom, before[0].ts);
      const requests = () => w.fake.stats.byPath[OI_PATH[dialect]];
      const n = requests();
      // Stopped after the first page of the extension: the start moved down one page.
      const first = await syncOpenInterest(
        oiContext(w, { since: days(20), stopping: () => requests() > n }),
        w.clients.get(dialect)!,
        key(w),
      );
      assertEquals(first.pages, 1);
      const page = (dialect === "bybit" ? 200 : 500) * HOUR;
      const wanted = Math.floor((w.now() - 20 * DAY) / HOUR) * HOUR;
      assertEquals(await historyFrom(w), Math.max(wanted, oldFrom - page));
      const m = requests();
      const rest = await syncOpenInterest(oiContext(w, { since: days(20) }), w.clients.get(dialect)!, key(w));
      assertEquals(await historyFrom(w), wanted);
      // 17 days = 408 points: Bybit 200 a page (3 pages in all), Binance 500 (1).
      assertEquals([first.pages + rest.pages, requests() - m + 1], dialect === "bybit" ? [3, 3] : [1, 1]);
      const rows = await storedOi(w);
      assertEquals(rows, expectedOi(w, dialect, wanted));
      assertEquals(rest.holes, 0);
      // Binance keeps 30 days: 60 days asked for, the history reaches back to its window only.
      if (dialect === "binance") {
        await syncOpenInterest(oiContext(w, { since: days(60) }), w.clients.get(dialect)!, key(w));
        const all = await storedOi(w);
        assert(all[0].ts >= w.now() - 30 * DAY && all[0].ts <= w.now() - 30 * DAY + HOUR + 60_000, iso(all[0].ts));
        assertEquals(all, expectedOi(w, dialect, all[0].ts));
        assertEquals(w.fake.stats.rejections.filter((r) => r.status === 400), []);
      }
    } finally {
      await w.close();
    }
  });
}

Deno.test("open interest: rows lost from storage are gaps the repair run refetches; holes only when not served", async () => {
  const w = await ingestWorld({ dialect: "bybit", env: { SYMBOLS: SYMBOL, TIMEFRAMES: "1h", BACKFILL_SINCE: "3d" } });
  try {
    const client = w.clients.get("bybit")!;
    const hole = Math.floor((w.now() - 2 * DAY) / HOUR) * HOUR;
    w.fake.behaviour.openInterestHoles = [{ symbol: SYMBOL, from: hole, to: hole + 1 }];
    const backfill = await syncOpenInterest(oiContext(w), client, key(w));
    assertEquals(backfill.holes, 1);
    const full = await storedOi(w);
    // Five points lost from storage (deleted with SQL), in the middle of the history.
    const lost = full.slice(40, 45).map((r) => r.ts);
    await w.t.sql`delete from open_interest where symbol = ${SYMBOL} and ts >= ${new Date(
      lost[0],
    )} and ts <= ${new Date(lost[4])}`;

    const [report] = await openInterestGapReport(w.t.sql);
    assertEquals(report.gaps, [{ from: lost[0], to: lost[4], count: 5 }]);
    assertEquals(report.holes, [{ from: hole, to: hole, count: 1 }]);
    const [overview] = await openInterestOverview(w.t.sql, w.now());
    assertEquals([overview.missing, overview.holes], [6, 1]);

    // The repair run asks for them (one page) and stores them; the hole is not asked for.
    const requests = () => w.fake.stats.byPath[OI_PATH.bybit];
    const n = requests();
    const repair = await syncOpenInterest(oiContext(w, { check: true }), client, key(w));
    assertEquals([repair.written, repair.holes, requests() - n], [5, 0, 1]);
    assertEquals(await storedOi(w), full);
    const [after] = await openInterestGapReport(w.t.sql);
    assertEquals([after.gaps, after.holes], [[], [{ from: hole, to: hole, count: 1 }]]);
    const m = requests();
    await syncOpenInterest(oiContext(w, { check: true }), client, key(w));
    assertEquals(requests(), m, "a confirmed hole was asked for again");
  } finally {
    await w.close();
  }
});

Deno.test("backfill --since: candles, funding and open interest start together, aligned to the grid", async () => {
  const w = await ingestWorld({
    dialect: "bybit",
    env: { SYMBOLS: SYMBOL, TIMEFRAMES: "1h", BACKFILL_SINCE: "1d", OPEN_INTEREST: "1h" },
  });
  try {
    const engine = w.ingestor();
    assertEquals(await engine.backfillOnce(), []);
    const [candle] = await w.t.sql<{ ts: Date }[]>`select min(ts) as ts from candles`;
    assertEquals((await storedOi(w))[0].ts, candle.ts.getTime());
    // --since 12d overrides BACKFILL_SINCE for all three: the older parts are fetched.
    assertEquals(await engine.backfillOnce({ since: days(12) }), []);
    const [older] = await w.t.sql<{ ts: Date }[]>`select min(ts) as ts from candles`;
    const start = older.ts.getTime();
    assert(start <= w.now() - 12 * DAY && start > w.now() - 12 * DAY - HOUR, iso(start));
    const oi = await storedOi(w);
    assertEquals(oi[0].ts, start);
    assertEquals(oi, expectedOi(w, "bybit", start));
    assertEquals(await fundingFrom(w), start);
    const funding = await storedFunding(w);
    assertEquals(funding, w.fake.derivatives.expectedFunding(SYMBOL, start, w.now() + 1).map((r) => r.ts));
  } finally {
    await w.close();
  }
});

Deno.test("the service's repair tick refetches open-interest rows lost from storage", async () => {
  const w = await ingestWorld({
    dialect: "binance",
    env: { SYMBOLS: SYMBOL, TIMEFRAMES: "1h", BACKFILL_SINCE: "2d", OPEN_INTEREST: "1h" },
  });
  try {
    const engine = w.ingestor();
    await engine.syncSeries();
    await engine.coordinate();
    await engine.backfillPending();
    await engine.openInterestTick();
    const full = await storedOi(w);
    assert(full.length >= 48, `${full.length} rows`);
    const [a, b] = [full[10].ts, full[14].ts];
    await w.t.sql`delete from open_interest where symbol = ${SYMBOL} and ts >= ${new Date(a)} and ts <= ${new Date(b)}`;
    await engine.openInterestTick();
    assertEquals((await storedOi(w)).length, full.length - 5, "a live tick refetched below the checked point");
    assert(await engine.repairTick());
    assertEquals((await storedOi(w)).slice(0, full.length), full);
    const [holes] = await w.t.sql<{ n: number }[]>`select count(*)::int as n from open_interest_holes`;
    assertEquals(holes.n, 0);
  } finally {
    await w.close();
  }
});
