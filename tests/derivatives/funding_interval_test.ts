/**
 * Funding ingest of contracts whose funding interval changed mid-history (real ccxt against the
 * fake exchange, Binance USDⓈ-M and Bybit v5): BTC funded every 8 h and now every 4 h, ETH every
 * 4 h and now every 8 h. Backfill and repair record no false holes, while rows the exchange
 * really lacks, in either regime and right at the switch, are found and recorded as holes. The
 * interval Binance states is asked again after an hour.
 */
import { FundingIngest } from "../../src/derivatives/funding_ingest.ts";
import { fundingOverview } from "../../src/derivatives/funding_status.ts";
import { FUNDING_INTERVALS_TTL_MS } from "../../src/exchange/funding.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { defaultContracts } from "../support/fake_derivatives_data.ts";
import { type IngestWorld, ingestWorld } from "../ingest/helpers.ts";

const HOUR = 3_600_000;
const DAY = 86_400_000;
const SYMBOLS = ["BTC/USDT:USDT", "ETH/USDT:USDT"];
const PATH = { binance: "/fapi/v1/fundingRate", bybit: "/v5/market/funding/history" };

async function storedTimes(w: IngestWorld, symbol: string): Promise<number[]> {
  const rows = await w.t.sql<{ ts: Date }[]>`
    select ts from funding_rates where exchange = ${w.fake.exchangeId} and symbol = ${symbol} order by ts`;
  return rows.map((r) => r.ts.getTime());
}

async function holes(w: IngestWorld, symbol: string): Promise<number[]> {
  const rows = await w.t.sql<{ ts: Date }[]>`select ts from funding_holes where symbol = ${symbol} order by ts`;
  return rows.map((r) => r.ts.getTime());
}

async function expectedTimes(w: IngestWorld, symbol: string): Promise<number[]> {
  const [{ from }] = await w.t.sql<{ from: Date }[]>`
    select range_from as from from funding_checkpoints where symbol = ${symbol}`;
  return w.fake.derivatives.expectedFunding(symbol, from.getTime(), w.now() + 1).map((r) => r.ts);
}

for (const dialect of ["binance", "bybit"] as const) {
  Deno.test(`${dialect} funding: an interval changed mid-history leaves no false holes; real holes are found`, async () => {
    const now = Date.now();
    const switchAt = Math.floor((now - 15 * DAY) / (8 * HOUR)) * 8 * HOUR;
    const contracts = defaultContracts(now).map((c) =>
      c.symbol === "BTC/USDT:USDT"
        ? { ...c, fundingIntervalHours: 4, fundingHistory: [{ until: switchAt, hours: 8 }] }
        : c.symbol === "ETH/USDT:USDT"
        ? { ...c, fundingIntervalHours: 8, fundingHistory: [{ until: switchAt, hours: 4 }] }
        : c
    );
    // rows the exchange never had: BTC in its 8-hour and in its 4-hour regime, ETH right at its switch
    const btcLost = [switchAt - 10 * 8 * HOUR, switchAt + 5 * 4 * HOUR];
    const ethLost = [switchAt];
    const one = (symbol: string, ts: number) => ({ symbol, from: ts, to: ts + 1 });
    const w = await ingestWorld({
      dialect,
      contracts,
      behaviour: {
        fundingHoles: [...btcLost.map((t) => one("BTC/USDT:USDT", t)), ...ethLost.map((t) => one("ETH/USDT:USDT", t))],
      },
      env: { SYMBOLS: SYMBOLS.join(","), TIMEFRAMES: "1d", BACKFILL_SINCE: "40d" },
    });
    try {
      const client = w.clients.get(dialect)!;
      assertEquals(await client.fundingInterval("BTC/USDT:USDT"), 4 * HOUR, "BTC states 4 h today");
      assertEquals(await client.fundingInterval("ETH/USDT:USDT"), 8 * HOUR, "ETH states 8 h today");
      const f = new FundingIngest({
        db: w.db,
        sources: w.clients,
        symbols: SYMBOLS,
        since: w.config.backfillSince,
        now: w.now,
      });
      const first = await f.run();
      assertEquals(first.map((r) => r.error), [undefined, undefined]);
      for (const symbol of SYMBOLS) {
        const stored = await storedTimes(w, symbol);
        assertEquals(stored, await expectedTimes(w, symbol), symbol);
        // both regimes are in the stored history
        assert(stored.includes(switchAt - 8 * HOUR) && stored.includes(switchAt + 8 * HOUR), symbol);
      }
      assert((await storedTimes(w, "BTC/USDT:USDT")).includes(switchAt + 4 * HOUR), "BTC funds every 4 h");
      assert(!(await storedTimes(w, "BTC/USDT:USDT")).includes(switchAt - 4 * HOUR), "BTC funded every 8 h");
      assertEquals(await holes(w, "BTC/USDT:USDT"), btcLost);
      assertEquals(await holes(w, "ETH/USDT:USDT"), ethLost);

      // the repair run finds nothing more and asks nothing; the status agrees
      const before = w.fake.stats.byPath[PATH[dialect]];
      const repair = await f.run({ check: true });
      assertEquals(repair.map((r) => [r.holes, r.error]), [[0, undefined], [0, undefined]]);
      assertEquals(w.fake.stats.byPath[PATH[dialect]], before, "a repair run refetched");
      assertEquals(await holes(w, "BTC/USDT:USDT"), btcLost);
      const status = await fundingOverview(w.t.sql);
      assertEquals(status.map((r) => [r.symbol, r.intervalMs, r.gaps, r.holes]), [
        ["BTC/USDT:USDT", 4 * HOUR, 0, 2],
        ["ETH/USDT:USDT", 8 * HOUR, 0, 1],
      ]);

      // a row lost from storage in the 8-hour part comes back on repair; nothing else is asked
      const lost = switchAt - 3 * 8 * HOUR;
      await w.t.sql`delete from funding_rates where symbol = 'BTC/USDT:USDT' and ts = ${new Date(lost)}`;
      const again = await f.run({ check: true });
      assertEquals(again.map((r) => [r.written, r.holes]), [[1, 0], [0, 0]]);
      assertEquals(w.fake.stats.byPath[PATH[dialect]], before + 1, "one refetch for the lost row");
      assertEquals(await storedTimes(w, "BTC/USDT:USDT"), await expectedTimes(w, "BTC/USDT:USDT"));
    } finally {
      await w.close();
    }
  });
}

Deno.test("binance funding: the stated interval is asked again after an hour, so a change while running is seen", async () => {
  const w = await ingestWorld({ env: { SYMBOLS: "BTC/USDT:USDT", TIMEFRAMES: "1d" } });
  try {
    const client = w.clients.get("binance")!;
    assertEquals(await client.fundingInterval("BTC/USDT:USDT"), 8 * HOUR);
    const asked = w.fake.stats.byPath["/fapi/v1/fundingInfo"];
    w.fake.derivatives.contracts.find((c) => c.symbol === "BTC/USDT:USDT")!.fundingIntervalHours = 4;
    w.advance(FUNDING_INTERVALS_TTL_MS - 60_000);
    assertEquals(await client.fundingInterval("BTC/USDT:USDT"), 8 * HOUR, "asked again within the hour");
    assertEquals(w.fake.stats.byPath["/fapi/v1/fundingInfo"], asked);
    w.advance(60_000);
    assertEquals(await client.fundingInterval("BTC/USDT:USDT"), 4 * HOUR);
    assertEquals(w.fake.stats.byPath["/fapi/v1/fundingInfo"], asked + 1);
  } finally {
    await w.close();
  }
});
