import { assertEquals, assertRejects } from "../support/assert.ts";
import type { Candle } from "../../src/candle.ts";
import { migrate } from "../../src/db/migrate.ts";
import { writeCandles } from "../../src/ingest/store.ts";
import { createTestDatabase, type TestDatabase } from "../support/pg.ts";

const MIN = 60_000;
const T0 = Date.UTC(2024, 4, 1);

function page(count: number, from = T0): Candle[] {
  return Array.from({ length: count }, (_, i) => ({
    ts: from + i * MIN,
    open: 100 + i,
    high: 101 + i,
    low: 99 + i,
    close: 100.5 + i,
    volume: 10 + i,
  }));
}

async function rows(t: TestDatabase): Promise<Candle[]> {
  const r = await t.sql<{ ts: Date; open: number; high: number; low: number; close: number; volume: number }[]>`
    select ts, open, high, low, close, volume from candles where series_id = 7 order by ts`;
  return r.map((x) => ({
    ts: x.ts.getTime(),
    open: x.open,
    high: x.high,
    low: x.low,
    close: x.close,
    volume: x.volume,
  }));
}

async function withDb(fn: (t: TestDatabase) => Promise<void>): Promise<void> {
  const t = await createTestDatabase();
  try {
    await migrate(t.sql, { timescaledb: "auto", compressAfterMs: 7 * 86_400_000 });
    await fn(t);
  } finally {
    await t.drop();
  }
}

Deno.test("store: fresh rows inserted, the same page again changes nothing, a changed candle is updated alone", () =>
  withDb(async (t) => {
    const candles = page(1000);
    assertEquals(await writeCandles(t.sql, 7, candles), { inserted: 1000, updated: 0 });
    assertEquals(await writeCandles(t.sql, 7, candles), { inserted: 0, updated: 0 });
    assertEquals(await rows(t), candles);
    const changed = candles.map((c, i) => i === 500 ? { ...c, close: c.close + 0.25, volume: 1e-9 } : c);
    assertEquals(await writeCandles(t.sql, 7, changed), { inserted: 0, updated: 1 });
    assertEquals(await rows(t), changed);
    assertEquals(await writeCandles(t.sql, 7, []), { inserted: 0, updated: 0 });
  }));

Deno.test("store: doubles and millisecond timestamps survive exactly", () =>
  withDb(async (t) => {
    const odd: Candle[] = [
      { ts: T0, open: 0.1 + 0.2, high: 0.30000000000000004, low: 1e-12, close: 123456789.123456789, volume: 9.87e15 },
      { ts: T0 + MIN, open: 5e-324, high: 1.7976931348623157e308, low: 0, close: 1 / 3, volume: 0 },
    ];
    await writeCandles(t.sql, 7, odd);
    assertEquals(await rows(t), odd);
  }));

Deno.test("store: works inside a transaction and rolls back with it", () =>
  withDb(async (t) => {
    await assertRejects(() =>
      t.sql.begin(async (tx) => {
        assertEquals(await writeCandles(tx, 7, page(10)), { inserted: 10, updated: 0 });
        throw new Error("abort");
      })
    );
    assertEquals(await rows(t), []);
    await t.sql.begin((tx) => writeCandles(tx, 7, page(10)));
    assertEquals((await rows(t)).length, 10);
  }));
