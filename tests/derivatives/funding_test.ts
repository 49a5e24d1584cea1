/**
 * Funding-rate ingest against the fake exchange with real ccxt (Binance USDⓈ-M and Bybit v5
 * linear): backfill through the engine, exact rows and decimals, paging, a contract listed
 * mid-range, confirmed holes, a 4-hour contract, resume after an interruption, live update.
 */
import { FundingIngest } from "../../src/derivatives/funding_ingest.ts";
import { inferFundingInterval, missingFundingTimes } from "../../src/derivatives/funding_gaps.ts";
import { fundingOverview, renderFundingTable } from "../../src/derivatives/funding_status.ts";
import { assert, assertEquals, assertThrows } from "../support/assert.ts";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { type IngestWorld, ingestWorld } from "../ingest/helpers.ts";
import type { FakeDialect } from "../support/fake_exchange.ts";

const HOUR = 3_600_000;
const DAY = 86_400_000;
const PERPS = ["BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "BTC/USD:BTC"];
const PATH: Record<FakeDialect, string> = {
  binance: "/fapi/v1/fundingRate",
  bybit: "/v5/market/funding/history",
} as Record<FakeDialect, string>;

interface Stored {
  ts: number;
  rate: string;
  markPrice: string | null;
}

async function stored(world: IngestWorld, symbol: string): Promise<Stored[]> {
  const rows = await world.t.sql<{ ts: Date; rate: string; mark: string | null }[]>`
    select ts, rate::text as rate, mark_price::text as mark from funding_rates
    where exchange = ${world.fake.exchangeId} and symbol = ${symbol} order by ts`;
  return rows.map((r) => ({ ts: r.ts.getTime(), rate: r.rate, markPrice: r.mark }));
}

async function rangeFrom(world: IngestWorld, symbol: string): Promise<number> {
  const [row] = await world.t.sql<{ from: Date }[]>`
    select range_from as from from funding_checkpoints where symbol = ${symbol}`;
  return row.from.getTime();
}

/** The fake's rows from the checkpoint's start to now, as they must be stored. */
async function expected(world: IngestWorld, dialect: FakeDialect, symbol: string): Promise<Stored[]> {
  const from = await rangeFrom(world, symbol);
  return world.fake.derivatives.expectedFunding(symbol, from, world.now() + 1).map((r) => ({
    ts: r.ts,
    rate: r.rate,
    markPrice: dialect === "binance" ? r.markPrice : null,
  }));
}

async function holes(world: IngestWorld, symbol: string): Promise<number[]> {
  const rows = await world.t.sql<{ ts: Date }[]>`select ts from funding_holes where symbol = ${symbol} order by ts`;
  return rows.map((r) => r.ts.getTime());
}

function world(dialect: FakeDialect, since = "200d"): Promise<IngestWorld> {
  return ingestWorld({
    dialect,
    env: { SYMBOLS: PERPS.join(","), TIMEFRAMES: "1d", BACKFILL_SINCE: since },
  });
}

function ingest(w: IngestWorld, stopping?: () => boolean, symbols = PERPS): FundingIngest {
  return new FundingIngest({
    db: w.db,
    sources: w.clients,
    symbols,
    since: w.config.backfillSince,
    now: w.now,
    stopping,
  });
}

for (const dialect of ["binance", "bybit"] as const) {
  Deno.test(`${dialect} funding: the engine backfills every perpetual exactly, across pages, from the listing`, async () => {
    const w = await world(dialect);
    try {
      const engine = w.ingestor();
      await engine.syncSeries();
      await engine.coordinate();
      await engine.backfillPending();
      for (const symbol of PERPS) {
        const want = await expected(w, dialect, symbol);
        const got = await stored(w, symbol);
        assertEquals(got, want, symbol);
        assertEquals(await holes(w, symbol), [], `${symbol}: false holes`);
      }
      // ETH funds every 4 h: 200 days are 1200 rows, over Binance's 1000 and Bybit's 200 a page
      const eth = await stored(w, "ETH/USDT:USDT");
      assert(eth.length >= 1199, `ETH rows: ${eth.length}`);
      assertEquals(inferFundingInterval(eth.map((r) => r.ts)), 4 * HOUR);
      assertEquals(inferFundingInterval((await stored(w, "BTC/USDT:USDT")).map((r) => r.ts)), 8 * HOUR);
      assert(
        w.fake.stats.byPath[PATH[dialect]] >= (dialect === "binance" ? 4 : 10),
        `pages: ${JSON.stringify(w.fake.stats.byPath)}`,
      );
      // SOL was listed 10 days ago, off the funding grid: nothing before, the first grid time after
      const sol = w.fake.derivatives.contracts.find((c) => c.symbol === "SOL/USDT:USDT")!;
      const solRows = await stored(w, "SOL/USDT:USDT");
      assertEquals(solRows[0].ts, Math.ceil(sol.listedAt / (8 * HOUR)) * 8 * HOUR);
      assertEquals(await rangeFrom(w, "SOL/USDT:USDT"), sol.listedAt);
      // the dated contract and the spot pair have no funding
      // the engine's live tick appends the funding row that comes due
      const btc = await stored(w, "BTC/USDT:USDT");
      w.advance(8 * HOUR + 10 * 60_000);
      assert(await engine.liveTick(), "live tick did not run");
      const btcAfter = await expected(w, dialect, "BTC/USDT:USDT");
      assertEquals(btcAfter.length, btc.length + 1);
      assertEquals(await stored(w, "BTC/USDT:USDT"), btcAfter);
    } finally {
      await w.close();
    }
  });

  Deno.test(`${dialect} funding: a hole the exchange never had is confirmed once; lost rows are refetched`, async () => {
    const w = await world(dialect, "40d");
    try {
      const grid = Math.floor((w.now() - 20 * DAY) / (8 * HOUR)) * 8 * HOUR;
      w.fake.behaviour.fundingHoles = [{ symbol: "BTC/USDT:USDT", from: grid, to: grid + 2 * 8 * HOUR }];
      const f = ingest(w);
      await f.run();
      assertEquals(await holes(w, "BTC/USDT:USDT"), [grid, grid + 8 * HOUR]);
      assertEquals(await stored(w, "BTC/USDT:USDT"), await expected(w, dialect, "BTC/USDT:USDT"));
      // rows lost from storage come back on the repair run; the holes are not asked again
      const lost = grid + 5 * 8 * HOUR;
      await w.t.sql`delete from funding_rates where symbol = 'BTC/USDT:USDT' and ts = ${new Date(lost)}`;
      const status = async () => (await fundingOverview(w.t.sql)).find((r) => r.symbol === "BTC/USDT:USDT")!;
      assertEquals([(await status()).gaps, (await status()).holes, (await status()).intervalMs], [1, 2, 8 * HOUR]);
      assert(/ETH\/USDT:USDT +4h/.test(renderFundingTable(await fundingOverview(w.t.sql))), "ETH every 4h");
      const before = w.fake.stats.byPath[PATH[dialect]];
      const results = await f.run({ check: true });
      const btc = results.find((r) => r.key.symbol === "BTC/USDT:USDT")!;
      assertEquals([btc.written, btc.holes, btc.error], [1, 0, undefined]);
      assertEquals(w.fake.stats.byPath[PATH[dialect]] - before, 1, "one refetch for the lost row only");
      assertEquals(await stored(w, "BTC/USDT:USDT"), await expected(w, dialect, "BTC/USDT:USDT"));
      assertEquals([(await status()).gaps, (await status()).count, (await status()).backfilled], [
        0,
        (await expected(w, dialect, "BTC/USDT:USDT")).length,
        true,
      ]);
      const again = w.fake.stats.byPath[PATH[dialect]];
      await f.run({ check: true });
      assertEquals(w.fake.stats.byPath[PATH[dialect]], again, "holes refetched");
    } finally {
      await w.close();
    }
  });

  Deno.test(`${dialect} funding: an interrupted backfill resumes from its checkpoint; live appends the next row`, async () => {
    const w = await world(dialect, "400d");
    try {
      // The clock is the wall clock: start well clear of a funding time (ETH funds every 4 h), so
      // a real one cannot pass between the steps below (it did in CI at 12:00 UTC).
      const toNext = 4 * HOUR - (w.now() % (4 * HOUR));
      if (toNext < 10 * 60_000) w.advance(toNext + 60_000);
      let pages = 0;
      const first = ingest(w, () => pages++ >= 1, ["ETH/USDT:USDT"]);
      await first.run();
      const [cp] = await w.t.sql<{ completed: Date | null; cursor: Date; from: Date }[]>`
        select completed_at as completed, cursor, range_from as from from funding_checkpoints
        where symbol = 'ETH/USDT:USDT'`;
      assertEquals(cp.completed, null);
      assert(cp.cursor.getTime() > cp.from.getTime(), "no progress recorded");
      const partial = (await stored(w, "ETH/USDT:USDT")).length;
      assert(partial > 0, "nothing stored before the interruption");
      const logBefore = w.fake.stats.log.length;
      await ingest(w).run();
      const eth = await expected(w, dialect, "ETH/USDT:USDT");
      assertEquals(await stored(w, "ETH/USDT:USDT"), eth);
      // the resumed walk starts at the checkpoint: no ETH request reaches back before it
      const starts = w.fake.stats.log.slice(logBefore)
        .filter((r) => r.path === PATH[dialect] && /symbol=ETHUSDT/.test(r.query))
        .map((r) => Number(new URLSearchParams(r.query).get("startTime")));
      assert(starts.length > 0, "no ETH request after the resume");
      assertEquals(starts.filter((t) => t < cp.cursor.getTime()), []);

      // live: nothing asked before the next funding time; after it, the next row is appended
      const live = ingest(w);
      const quiet = w.fake.stats.byPath[PATH[dialect]];
      await live.run();
      assertEquals(w.fake.stats.byPath[PATH[dialect]], quiet, "asked before the next funding time");
      w.advance(4 * HOUR + 10 * 60_000);
      await live.run();
      const after = await expected(w, dialect, "ETH/USDT:USDT");
      assertEquals(after.length, eth.length + 1);
      assertEquals(await stored(w, "ETH/USDT:USDT"), after);
      assertEquals(await stored(w, "BTC/USDT:USDT"), await expected(w, dialect, "BTC/USDT:USDT"));
    } finally {
      await w.close();
    }
  });
}

Deno.test("funding gaps: a short history follows the stated interval; holes are not missing", () => {
  const t = (h: number) => Date.UTC(2024, 0, 1) + h * HOUR;
  const stored = [t(0), t(8) + 5, t(24), t(48)];
  assertEquals(missingFundingTimes(stored, { statedMs: 8 * HOUR }), [t(16), t(32), t(40)]);
  assertEquals(missingFundingTimes(stored, { statedMs: 8 * HOUR, holes: [t(32), t(40)] }), [t(16)]);
  assertEquals(inferFundingInterval([t(0), t(4), t(8), t(16), t(20)]), 4 * HOUR);
  assertEquals(inferFundingInterval([t(0)]), null);
});

Deno.test("FUNDING_RATES: auto by default, true, false; anything else names the variable", () => {
  const base = { EXCHANGES: "binance", SYMBOLS: "BTC/USDT,BTC/USDT:USDT" };
  assertEquals(loadConfig(base).fundingRates, "auto");
  assertEquals(loadConfig({ ...base, FUNDING_RATES: "TRUE" }).fundingRates, true);
  const off = loadConfig({ ...base, FUNDING_RATES: "false" });
  assertEquals(off.fundingRates, false);
  const error = assertThrows(() => loadConfig({ ...base, FUNDING_RATES: "yes" }), ConfigError);
  assert(error.message.includes("FUNDING_RATES"), error.message);
});
