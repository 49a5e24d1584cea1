/**
 * The service's rollup upkeep (src/ingest/rollup_upkeep.ts) running the real maintenance on PGlite
 * built with TimescaleDB: a burst of requests is one run, a request during a run makes it go round
 * once more (a write made meanwhile is not left for later), nothing runs after stop, and the
 * metrics count what was done.
 */
import { PGlite } from "pglite";
import { timescaledb } from "pglite/timescaledb";
import { assert, assertEquals } from "../support/assert.ts";
import { applyAll, rows } from "../support/pglite.ts";
import { maintainWith, type RollupMaintenanceResult } from "../../src/db/rollup_maintenance.ts";
import { RollupUpkeep } from "../../src/ingest/rollup_upkeep.ts";
import { Registry } from "../../src/metrics.ts";

const DAY = 86_400_000;

async function insertDay(db: PGlite, day: string): Promise<void> {
  await db.query(
    `insert into candles (series_id, ts, open, high, low, close, volume)
     select 1, $1::timestamptz + g * interval '1 minute', 100 + g % 7, 108, 99, 101, g % 13 * 0.1
     from generate_series(0, 1439) g`,
    [day],
  );
}

async function pendingDays(db: PGlite): Promise<boolean> {
  const [row] = await rows<{ fresh: boolean }>(
    db,
    "select candles_rollup_fresh('1d', '2024-01-01T00:00:00Z', '2024-02-01T00:00:00Z') as fresh",
  );
  return !row.fresh;
}

Deno.test("rollup upkeep: debounced, goes round again for a request made while it runs, stops", async () => {
  const db = await PGlite.create({ extensions: { timescaledb } });
  const registry = new Registry();
  const results: RollupMaintenanceResult[] = [];
  let onRun: (() => Promise<void>) | null = null;
  const upkeep = new RollupUpkeep(async () => {
    const result = await maintainWith(async <T>(text: string, params: unknown[] = []) =>
      (await db.query<T>(text, params)).rows
    );
    results.push(result);
    const hook = onRun;
    onRun = null;
    await hook?.();
    return result;
  }, { delayMs: 20, registry });
  try {
    await applyAll(db, { timescaledb: "auto", compressAfterMs: 7 * DAY });
    await db.query("insert into series (exchange, symbol, timeframe) values ('binance', 'BTC/USDT', '1m')");
    await insertDay(db, "2024-01-01T00:00:00Z");

    // A burst of requests: one run, once the delay has passed.
    for (let i = 0; i < 5; i++) upkeep.request();
    assertEquals(results.length, 0, "nothing runs before the delay");
    await new Promise((resolve) => setTimeout(resolve, 100));
    await upkeep.flush();
    assertEquals(results.length, 1);
    assertEquals(results[0].refreshed.map((r) => r.view), ["candles_1h", "candles_1d"]);

    // A write below the watermark made while a run is under way, with a request for it: the
    // running maintenance goes round once more and covers it.
    await db.query("update candles set high = 500 where ts = '2024-01-01T06:00:00Z'");
    onRun = async () => {
      await db.query("update candles set low = 1 where ts = '2024-01-01T07:00:00Z'");
      upkeep.request();
    };
    upkeep.request(0);
    await new Promise((resolve) => setTimeout(resolve, 10));
    await upkeep.flush();
    assertEquals(results.length, 3, "the run went round once more");
    assertEquals(results[2].refreshed.map((r) => r.view), ["candles_1h", "candles_1d"]);
    assertEquals(await pendingDays(db), false);
    const [day] = await rows<{ high: number; low: number }>(
      db,
      "select high, low from candles_1d where ts = '2024-01-01T00:00:00Z'",
    );
    assertEquals(day, { high: 500, low: 1 });

    const refreshes = registry.counter("candlekeep_rollup_refreshes_total", "ignored");
    assertEquals(refreshes.get({ view: "candles_1h" }), 3);
    assertEquals(refreshes.get({ view: "candles_1d" }), 3);

    // After stop, requests are ignored: a later write stays pending.
    await upkeep.stop();
    await db.query("update candles set high = 600 where ts = '2024-01-01T08:00:00Z'");
    upkeep.request(0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await upkeep.flush();
    assertEquals(results.length, 3);
    assert(await pendingDays(db), "the write after stop is still pending");
  } finally {
    await upkeep.stop();
    await db.close();
  }
});
