import { assert, assertEquals } from "../support/assert.ts";
import { setupLogging } from "../../src/log.ts";
import { ingestWorld, storedCandles } from "./helpers.ts";
import { findGaps } from "../../src/ingest/gaps.ts";

const MIN = 60_000;

function klineRequests(stats: { byPath: Record<string, number> }): number {
  return Object.entries(stats.byPath).filter(([p]) => p.includes("kline")).reduce((n, [, c]) => n + c, 0);
}

Deno.test("live: catches up after the clock moves on, and a tick still running is not run twice", async () => {
  const w = await ingestWorld({ env: { BACKFILL_SINCE: "6h" } });
  try {
    const ing = w.ingestor();
    assertEquals(await ing.backfillOnce(), []);
    await ing.coordinate();
    await ing.backfillPending();
    const before = await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" });
    w.advance(3 * 60 * MIN); // three hours "pass": more than one page of 1000? no: 180 candles
    const [a, b] = await Promise.all([ing.liveTick(), ing.liveTick()]);
    assertEquals([a, b].sort(), [false, true], "the overlapping tick was skipped");
    const after = await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" });
    assert(after.length >= before.length + 179, `${after.length} after ${before.length}`);
    assertEquals(after, w.fake.expected("BTC/USDT", "1m", after[0].ts, after.at(-1)!.ts + MIN));
    assert(after.at(-1)!.ts + MIN <= w.now(), "no open candle");
    assert(after.at(-1)!.ts + 2 * MIN > w.now(), "caught up to the last closed candle");
  } finally {
    await w.close();
  }
});

Deno.test("live: a tick fired while one runs makes the running one go round again, catching the candle closed meanwhile", async () => {
  const w = await ingestWorld({ env: { BACKFILL_SINCE: "6h" }, behaviour: { latencyMs: 300 } });
  try {
    const ing = w.ingestor();
    assertEquals(await ing.backfillOnce(), []);
    await ing.coordinate();
    await ing.backfillPending();
    w.advance(30 * MIN);
    const klines = () => klineRequests(w.fake.stats);
    const requestsBefore = klines();
    const first = ing.liveTick();
    // Once the running tick has asked the exchange (its target is fixed), five more minutes close.
    while (klines() === requestsBefore) await new Promise((r) => setTimeout(r, 10));
    w.advance(5 * MIN);
    assertEquals(await ing.liveTick(), false, "not run at the same time");
    assertEquals(await first, true);
    const after = await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" });
    assert(after.at(-1)!.ts + 2 * MIN > w.now(), "the candles closed during the running tick are stored");
    assertEquals(after, w.fake.expected("BTC/USDT", "1m", after[0].ts, after.at(-1)!.ts + MIN));
  } finally {
    await w.close();
  }
});

Deno.test("live: PostgreSQL stopped during live updates, then started: no missing candles", async () => {
  const lines: string[] = [];
  setupLogging({ level: "debug", format: "json", write: (l) => lines.push(l) });
  const w = await ingestWorld({ privateServer: true, env: { BACKFILL_SINCE: "3h" } });
  try {
    const ing = w.ingestor();
    await ing.syncSeries();
    await ing.coordinate();
    assertEquals(await ing.backfillPending(), []);
    w.advance(30 * MIN);
    await w.server!.stop();
    // The database comes back 2 s into the tick; the tick's calls retry with backoff meanwhile.
    const restart = new Promise((r) => setTimeout(r, 2000)).then(() => w.server!.start());
    const ran = await ing.liveTick();
    await restart;
    assert(ran);
    await ing.liveTick();
    const stored = await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" });
    assertEquals(stored, w.fake.expected("BTC/USDT", "1m", stored[0].ts, stored.at(-1)!.ts + MIN));
    assert(stored.at(-1)!.ts + 2 * MIN > w.now(), "caught up after the outage");
    const [series] = await w.t.sql<{ id: number; state: string }[]>`select id, state from series`;
    assertEquals(await findGaps(w.t.sql, series.id, MIN), []);
    assertEquals(series.state, "live");
    // One warning when the database goes away; each retry is a debug line.
    assert(lines.some((l) => l.includes("Database unreachable") && l.includes('"level":"warning"')), "outage logged");
    assert(lines.some((l) => l.includes("retry") && l.includes('"level":"debug"')), "retries were logged at debug");
    assert(w.db.ready);
  } finally {
    setupLogging({ level: "fatal", format: "json", write: () => {} });
    await w.close();
  }
});

Deno.test("live: an exchange outage for several ticks is caught up with no gap", async () => {
  const w = await ingestWorld({ env: { BACKFILL_SINCE: "3h" } });
  try {
    const ing = w.ingestor();
    await ing.syncSeries();
    await ing.coordinate();
    assertEquals(await ing.backfillPending(), []);
    w.fake.behaviour.errorRate = 1; // every klines request answers 5xx
    for (let i = 0; i < 3; i++) {
      w.advance(20 * MIN);
      await ing.liveTick();
    }
    const [failed] = await w.t.sql<{ state: string; state_reason: string }[]>`select state, state_reason from series`;
    assertEquals(failed.state, "failed");
    w.fake.behaviour.errorRate = 0;
    w.advance(MIN);
    await ing.liveTick();
    const stored = await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" });
    assertEquals(stored, w.fake.expected("BTC/USDT", "1m", stored[0].ts, stored.at(-1)!.ts + MIN));
    assert(stored.at(-1)!.ts + 2 * MIN > w.now(), "caught up after the outage");
    const [series] = await w.t.sql<{ state: string }[]>`select state from series`;
    assertEquals(series.state, "live");
  } finally {
    await w.close();
  }
});

Deno.test("gaps: the fake's historic hole becomes a confirmed hole; a deleted range is repaired", async () => {
  const now = Math.floor(Date.now() / MIN) * MIN;
  const hole = { from: now - 300 * MIN, to: now - 240 * MIN };
  const w = await ingestWorld({ env: { BACKFILL_SINCE: "8h" }, behaviour: { holes: [hole] } });
  try {
    const ing = w.ingestor();
    assertEquals(await ing.backfillOnce(), []);
    const holes = await w.t.sql<{ from_ts: Date; to_ts: Date; reason: string }[]>`
      select from_ts, to_ts, reason from confirmed_holes`;
    assertEquals(holes.map((h) => [h.from_ts.getTime(), h.to_ts.getTime(), h.reason]), [
      [hole.from, hole.to, "no data from exchange"],
    ]);
    const [series] = await w.t.sql<{ id: number }[]>`select id from series`;
    assertEquals(await findGaps(w.t.sql, series.id, MIN), [], "a confirmed hole is not a gap");

    // Not refetched on the next runs.
    await ing.coordinate();
    await ing.backfillPending();
    w.fake.resetStats();
    await ing.repairTick();
    await ing.repairTick();
    assertEquals(klineRequests(w.fake.stats), 0, "no request for a confirmed hole");

    // A repairable gap: rows deleted by hand are found and filled.
    const cut = { from: now - 100 * MIN, to: now - 40 * MIN };
    await w.t.sql`
      delete from candles where series_id = ${series.id}
        and ts >= to_timestamp(${cut.from} / 1000.0) and ts < to_timestamp(${cut.to} / 1000.0)`;
    assertEquals(await findGaps(w.t.sql, series.id, MIN), [{ from: cut.from, to: cut.to, count: 60 }]);
    await ing.repairTick();
    assertEquals(await findGaps(w.t.sql, series.id, MIN), []);
    const stored = await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" });
    assertEquals(stored, w.fake.expected("BTC/USDT", "1m", stored[0].ts, stored.at(-1)!.ts + MIN));
  } finally {
    await w.close();
  }
});

Deno.test("validation: invalid candles from the fake are never stored, and are recorded as holes", async () => {
  const now = Math.floor(Date.now() / MIN) * MIN;
  const bad = [
    { ts: now - 200 * MIN, kind: "high-below-low" as const },
    { ts: now - 150 * MIN, kind: "negative-volume" as const },
    { ts: now - 100 * MIN, kind: "nan" as const },
  ];
  const w = await ingestWorld({ env: { BACKFILL_SINCE: "5h" }, behaviour: { malformed: bad } });
  try {
    const ing = w.ingestor();
    assertEquals(await ing.backfillOnce(), []);
    const stored = await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" });
    const storedTs = new Set(stored.map((c) => c.ts));
    for (const b of bad) assert(!storedTs.has(b.ts), `invalid candle at ${new Date(b.ts).toISOString()} was stored`);
    const expected = w.fake.expected("BTC/USDT", "1m", stored[0].ts, stored.at(-1)!.ts + MIN)
      .filter((c) => !bad.some((b) => b.ts === c.ts));
    assertEquals(stored, expected, "every valid candle was stored");
    const holes = await w.t.sql<{ from_ts: Date; reason: string }[]>`
      select from_ts, reason from confirmed_holes order by from_ts`;
    assertEquals(holes.map((h) => h.from_ts.getTime()), bad.map((b) => b.ts));
    assert(holes.every((h) => h.reason.startsWith("invalid data: ")), JSON.stringify(holes));
    // Repair does not refetch them.
    w.fake.resetStats();
    await ing.coordinate();
    await ing.backfillPending();
    w.fake.resetStats();
    await ing.repairTick();
    assertEquals(klineRequests(w.fake.stats), 0);
  } finally {
    await w.close();
  }
});
