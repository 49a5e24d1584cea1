/**
 * Real child processes of `main.ts` against one fake exchange and one database: kill -9 in
 * the middle of a backfill, and several instances sharing the work.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { timeframeMs } from "../../src/timeframe.ts";
import { ingestWorld, storedCandles } from "./helpers.ts";
import { type Child, spawnCandlekeep, waitFor } from "../support/child.ts";

function klineRequests(stats: { byPath: Record<string, number> }): number {
  return Object.entries(stats.byPath).filter(([p]) => p.includes("kline")).reduce((n, [, c]) => n + c, 0);
}

Deno.test("kill -9 in the middle of a backfill, restart: identical to an uninterrupted run", async () => {
  const w = await ingestWorld({
    env: { SYMBOLS: "BTC/USDT,ETH/USDT", TIMEFRAMES: "1m", BACKFILL_SINCE: "20d", LEASE_TTL: "3s" },
    behaviour: { latencyMs: 60 },
  });
  try {
    const first = spawnCandlekeep(["backfill"], w.env);
    const count = async () => (await w.t.sql<{ n: number }[]>`select count(*)::int as n from candles`)[0]?.n ?? 0;
    await waitFor("a few pages", async () => (await count()) >= 8000, 60_000).catch((e) => {
      throw new Error(`${e.message}\n${first.output()}`);
    });
    first.process.kill("SIGKILL");
    const killed = await first.status;
    assert(!killed.success, "the first run was killed");
    const atKill = await count();
    const total = 2 * 20 * 1440;
    assert(atKill < total * 0.9, `killed too late: ${atKill} of ${total}`);
    const requestsBefore = klineRequests(w.fake.stats);

    const second = spawnCandlekeep(["backfill"], w.env);
    const status = await second.status;
    assertEquals(status.code, 0, second.output());
    assert(second.output().includes("Resuming backfill"), "the restart resumed from the checkpoint");

    for (const symbol of ["BTC/USDT", "ETH/USDT"]) {
      const stored = await storedCandles(w, { symbol, timeframe: "1m" });
      const expected = w.fake.expected(symbol, "1m", stored[0].ts, stored.at(-1)!.ts + 60_000);
      assertEquals(stored.length, expected.length, `${symbol} count`);
      assertEquals(stored, expected, `${symbol} values`);
      assert(stored.length >= 20 * 1440 - 2, `${symbol}: ${stored.length} candles`);
    }
    // No page was lost and at most about one page per series was fetched twice.
    const minimum = 2 * Math.ceil((20 * 1440) / 1000);
    const requests = klineRequests(w.fake.stats);
    assert(
      requests <= minimum + 2 * 2 + 2,
      `requests ${requests} (before kill ${requestsBefore}) vs minimum ${minimum}`,
    );
  } finally {
    await w.close();
  }
});

Deno.test("three instances share one database and one exchange; a killed one's series are taken over", async () => {
  const symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "DOGE/USDT"];
  const timeframes = ["1m", "5m"];
  const w = await ingestWorld({
    env: {
      SYMBOLS: symbols.join(","),
      TIMEFRAMES: timeframes.join(","),
      BACKFILL_SINCE: "10d",
      BACKFILL_CONCURRENCY: "2",
    },
    behaviour: { latencyMs: 40 },
  });
  const children: Child[] = [];
  try {
    const known = new Set(w.fake.markets.map((m) => m.symbol));
    for (const s of symbols) assert(known.has(s), `the fake lists ${s}`);
    const env = { ...w.env, API_PORT: "0", LEASE_TTL: "3s" };
    for (let i = 0; i < 3; i++) children.push(spawnCandlekeep(["start"], env));
    const seriesCount = symbols.length * timeframes.length;

    // Once every instance holds work, kill one of them (kill -9: its leases are not released).
    await waitFor("leases spread over three instances", async () => {
      const [row] = await w.t.sql<{ owners: number; n: number }[]>`
        select count(distinct lease_owner)::int as owners, (select count(*)::int from candles) as n
        from series where lease_owner is not null`;
      return row.owners === 3 && row.n > 1000;
    }, 60_000).catch((e) => {
      throw new Error(`${e.message}\n${children.map((c) => c.output()).join("\n---\n")}`);
    });
    children[0].process.kill("SIGKILL");
    await children[0].status;

    await waitFor("every series backfilled", async () => {
      const [row] = await w.t.sql<{ live: number }[]>`
        select count(*)::int as live from series s
        join backfill_checkpoints b on b.series_id = s.id
        where s.state = 'live' and b.status = 'done'`;
      return row.live === seriesCount;
    }, 90_000).catch((e) => {
      throw new Error(`${e.message}\n${children.slice(1).map((c) => c.output()).join("\n---\n")}`);
    });

    let minimum = 0;
    for (const symbol of symbols) {
      for (const tf of timeframes) {
        const stored = await storedCandles(w, { symbol, timeframe: tf });
        const step = timeframeMs(tf);
        const expected = w.fake.expected(symbol, tf, stored[0].ts, stored.at(-1)!.ts + step);
        assertEquals(stored, expected, `${symbol} ${tf}`);
        assert(stored.length >= (10 * 86_400_000) / step - 2, `${symbol} ${tf}: ${stored.length}`);
        minimum += Math.ceil(stored.length / 1000);
      }
    }
    const [dups] = await w.t.sql<{ n: number }[]>`
      select count(*)::int as n from (select series_id, ts from candles group by 1, 2 having count(*) > 1) d`;
    assertEquals(dups.n, 0);
    const requests = klineRequests(w.fake.stats);
    // Close to a single instance's: the minimum pages, plus at most a repeated page per series
    // (the killed instance's in-flight pages) and the live ticks that fell in the run.
    assert(requests <= minimum * 1.15 + 3 * seriesCount, `requests ${requests} vs minimum ${minimum}`);
  } finally {
    for (const c of children) {
      try {
        c.process.kill("SIGTERM");
      } catch { /* already gone */ }
    }
    for (const c of children) await c.status;
    await w.close();
  }
});
