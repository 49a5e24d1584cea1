/**
 * `deno task cli gaps` lists the gaps and confirmed holes of funding and open-interest
 * histories beside the candle series, in text and JSON, from the database alone: a funding
 * history whose interval changed shows no gap for the change, only its real gaps and holes.
 */
import { FundingIngest } from "../../src/derivatives/funding_ingest.ts";
import { insertOpenInterestHoles, saveProgress, writeOpenInterest } from "../../src/derivatives/open_interest_store.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { spawnCandlekeep } from "../support/child.ts";
import { defaultContracts } from "../support/fake_derivatives_data.ts";
import { ingestWorld } from "../ingest/helpers.ts";

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const iso = (ms: number) => new Date(ms).toISOString();

Deno.test("cli: gaps lists funding and open-interest gaps and holes, as text and JSON", async () => {
  const now = Date.now();
  const switchAt = Math.floor((now - 10 * DAY) / (8 * HOUR)) * 8 * HOUR;
  const contracts = defaultContracts(now).map((c) =>
    c.symbol === "BTC/USDT:USDT"
      ? { ...c, fundingIntervalHours: 4, fundingHistory: [{ until: switchAt, hours: 8 }] }
      : c
  );
  // the exchange never had two consecutive 8-hour rows
  const hole = switchAt - 5 * 8 * HOUR;
  const w = await ingestWorld({
    contracts,
    behaviour: { fundingHoles: [{ symbol: "BTC/USDT:USDT", from: hole, to: hole + 8 * HOUR + 1 }] },
    env: { SYMBOLS: "BTC/USDT:USDT", TIMEFRAMES: "1d", BACKFILL_SINCE: "20d" },
  });
  try {
    const key = { exchange: "binance", symbol: "BTC/USDT:USDT" };
    const f = new FundingIngest({ db: w.db, sources: w.clients, symbols: [key.symbol], since: w.config.backfillSince });
    assertEquals((await f.run()).map((r) => [r.holes, r.error]), [[2, undefined]]);
    // rows lost from storage: one in the 4-hour part, two in the 8-hour part
    const lost4 = switchAt + 3 * 4 * HOUR;
    const lost8 = [switchAt - 9 * 8 * HOUR, switchAt - 8 * 8 * HOUR];
    for (const t of [lost4, ...lost8]) await w.t.sql`delete from funding_rates where ts = ${new Date(t)}`;

    // open interest 5m: two hours of rows, checked through the first hour; three points the
    // exchange did not have (confirmed holes), one missing before the checked point (lost from
    // storage: a gap, not a hole) and one after it
    const oi = { ...key, period: "5m" };
    const start = Math.floor((now - 3 * HOUR) / HOUR) * HOUR;
    const points = Array.from({ length: 25 }, (_, i) => start + i * 5 * MINUTE);
    const holesOi = [points[3], points[4], points[5]];
    const gapsOi = [points[8], points[18]];
    const kept = points.filter((t) => !holesOi.includes(t) && !gapsOi.includes(t));
    await writeOpenInterest(w.t.sql, oi, kept.map((ts) => ({ ts, amount: "1.5", value: "90000.25" })));
    await insertOpenInterestHoles(w.t.sql, oi, holesOi);
    await saveProgress(w.t.sql, oi, { historyFrom: start, backfilledAt: now, checkedThrough: points[12] });

    const json = spawnCandlekeep(["gaps", "--json"], w.env);
    assertEquals((await json.status).code, 0, json.output());
    const listed = JSON.parse(json.stdout());
    const funding = listed.find((r: { kind: string }) => r.kind === "funding");
    assertEquals(funding, {
      kind: "funding",
      series: key,
      gaps: [
        { from: iso(lost8[0]), to: iso(lost8[1]), count: 2, interval_ms: 8 * HOUR },
        { from: iso(lost4), to: iso(lost4), count: 1, interval_ms: 4 * HOUR },
      ],
      holes: [{ from: iso(hole), to: iso(hole + 8 * HOUR), count: 2 }],
    });
    const openInterest = listed.find((r: { kind: string }) => r.kind === "open_interest");
    assertEquals(openInterest, {
      kind: "open_interest",
      series: oi,
      gaps: gapsOi.map((t) => ({ from: iso(t), to: iso(t), count: 1 })),
      holes: [{ from: iso(holesOi[0]), to: iso(holesOi[2]), count: 3 }],
    });

    const text = spawnCandlekeep(["gaps"], w.env);
    assertEquals((await text.status).code, 0, text.output());
    const out = text.stdout();
    for (
      const line of [
        "binance BTC/USDT:USDT funding: 2 gaps, 1 hole",
        `  gap  ${iso(lost8[0])} .. ${iso(lost8[1])}  2 funding times missing (every 8h)`,
        `  gap  ${iso(lost4)} .. ${iso(lost4)}  1 funding time missing (every 4h)`,
        `  hole ${iso(hole)} .. ${iso(hole + 8 * HOUR)}  2 funding times the exchange does not have`,
        "binance BTC/USDT:USDT open interest 5m: 2 gaps, 1 hole",
        `  gap  ${iso(gapsOi[0])} .. ${iso(gapsOi[0])}  1 point missing`,
        `  gap  ${iso(gapsOi[1])} .. ${iso(gapsOi[1])}  1 point missing`,
        `  hole ${iso(holesOi[0])} .. ${iso(holesOi[2])}  3 points the exchange does not have`,
      ]
    ) assert(out.split("\n").includes(line), `missing line ${JSON.stringify(line)} in:\n${out}`);

    // --timeframe narrows open-interest periods; --symbol and --exchange narrow both
    const narrowed = spawnCandlekeep(["gaps", "--json", "--timeframe", "1h"], w.env);
    assertEquals((await narrowed.status).code, 0, narrowed.output());
    assertEquals(JSON.parse(narrowed.stdout()).map((r: { kind: string }) => r.kind), ["funding"]);
    const other = spawnCandlekeep(["gaps", "--json", "--symbol", "ETH/USDT:USDT"], w.env);
    assertEquals((await other.status).code, 0, other.output());
    assertEquals(JSON.parse(other.stdout()), []);
  } finally {
    await w.close();
  }
});

Deno.test("cli: gaps --repair refetches lost funding and open-interest rows, and says so", async () => {
  const symbol = "BTC/USDT:USDT";
  const w = await ingestWorld({
    dialect: "bybit",
    env: { SYMBOLS: symbol, TIMEFRAMES: "1h", BACKFILL_SINCE: "3d", OPEN_INTEREST: "1h" },
  });
  try {
    const backfill = spawnCandlekeep(["backfill"], w.env);
    assertEquals((await backfill.status).code, 0, backfill.output());
    const funding = async () =>
      (await w.t.sql<{ ts: Date; rate: string }[]>`select ts, rate::text from funding_rates order by ts`)
        .map((r) => [r.ts.getTime(), r.rate]);
    const oi = async () =>
      (await w.t.sql<{ ts: Date; amount: string }[]>`select ts, amount::text from open_interest order by ts`)
        .map((r) => [r.ts.getTime(), r.amount]);
    const [fundingBefore, oiBefore] = [await funding(), await oi()];
    assert(fundingBefore.length >= 9 && oiBefore.length >= 72, `${fundingBefore.length}, ${oiBefore.length}`);
    // Lost from storage: three consecutive funding rows and five open-interest points.
    const [f0, f2] = [fundingBefore[3][0], fundingBefore[5][0]];
    const [o0, o4] = [oiBefore[30][0], oiBefore[34][0]];
    await w.t.sql`delete from funding_rates where ts between ${new Date(f0)} and ${new Date(f2)}`;
    await w.t.sql`delete from open_interest where ts between ${new Date(o0)} and ${new Date(o4)}`;
    const listed = spawnCandlekeep(["gaps", "--json"], w.env);
    assertEquals((await listed.status).code, 0, listed.output());
    const kinds = (out: string) =>
      JSON.parse(out).filter((r: { kind: string }) => r.kind !== "candles")
        .map((r: { kind: string; gaps: unknown[]; holes: unknown[] }) => [r.kind, r.gaps.length, r.holes.length]);
    assertEquals(kinds(listed.stdout()), [["funding", 1, 0], ["open_interest", 1, 0]]);

    const repair = spawnCandlekeep(["gaps", "--repair", "--json"], w.env);
    assertEquals((await repair.status).code, 0, repair.output());
    assertEquals(kinds(repair.stdout()), [["funding", 0, 0], ["open_interest", 0, 0]]);
    assertEquals(await funding(), fundingBefore);
    assertEquals((await oi()).slice(0, oiBefore.length), oiBefore);
    const info = repair.output().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
      .filter((l) => l.level === "info").map((l) => l.message as string);
    assert(
      info.includes(`Repaired bybit ${symbol} funding: 1 gap, 3 rows filled, 0 confirmed holes`),
      info.join("\n"),
    );
    assert(
      info.some((m) => m.startsWith(`Repaired bybit ${symbol} 1h open interest: 5 points missing, 5 rows filled`)),
    );
  } finally {
    await w.close();
  }
});
