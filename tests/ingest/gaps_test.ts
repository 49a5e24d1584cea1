import { assertEquals } from "../support/assert.ts";
import { createTestDatabase } from "../support/pg.ts";
import { migrate } from "../../src/db/migrate.ts";
import { registerSeries } from "../../src/ingest/series.ts";
import { writeCandles } from "../../src/ingest/store.ts";
import { findGaps, listHoles, summarizeGaps, summarizeGapsOfMany } from "../../src/ingest/gaps.ts";
import type { Candle } from "../../src/candle.ts";

const MIN = 60_000;
const T0 = Date.UTC(2024, 0, 1);

function candles(from: number, count: number, step = MIN): Candle[] {
  return Array.from({ length: count }, (_, i) => ({
    ts: from + i * step,
    open: 1 + i,
    high: 2 + i,
    low: 0.5 + i,
    close: 1.5 + i,
    volume: 10 + i,
  }));
}

async function withSeries(
  fn: (sql: Awaited<ReturnType<typeof createTestDatabase>>["sql"], id: number) => Promise<void>,
) {
  const t = await createTestDatabase();
  try {
    await migrate(t.sql, { timescaledb: "auto", compressAfterMs: 7 * 86_400_000 });
    const s = await registerSeries(t.sql, { exchange: "binance", symbol: "BTC/USDT", timeframe: "1m" });
    await writeCandles(t.sql, s.id, candles(T0, 100));
    await fn(t.sql, s.id);
  } finally {
    await t.drop();
  }
}

async function deleteRange(
  sql: Awaited<ReturnType<typeof createTestDatabase>>["sql"],
  id: number,
  from: number,
  to: number,
) {
  await sql`delete from candles where series_id = ${id}
    and ts >= to_timestamp(${from}::float8 / 1000) and ts < to_timestamp(${to}::float8 / 1000)`;
}

Deno.test("findGaps: no gaps in a complete series", async () => {
  await withSeries(async (sql, id) => {
    assertEquals(await findGaps(sql, id, MIN), []);
    assertEquals(await summarizeGaps(sql, id, MIN), { missing: 0, ranges: 0 });
  });
});

Deno.test("findGaps: deleted rows give exact ranges; edges of the stored range are not gaps", async () => {
  await withSeries(async (sql, id) => {
    await deleteRange(sql, id, T0 + 10 * MIN, T0 + 13 * MIN); // 3 missing
    await deleteRange(sql, id, T0 + 50 * MIN, T0 + 51 * MIN); // 1 missing
    await deleteRange(sql, id, T0, T0 + 5 * MIN); // before the first: not a gap
    await deleteRange(sql, id, T0 + 95 * MIN, T0 + 100 * MIN); // after the last: not a gap
    assertEquals(await findGaps(sql, id, MIN), [
      { from: T0 + 10 * MIN, to: T0 + 13 * MIN, count: 3 },
      { from: T0 + 50 * MIN, to: T0 + 51 * MIN, count: 1 },
    ]);
    assertEquals(await summarizeGaps(sql, id, MIN), { missing: 4, ranges: 2 });
    assertEquals(await findGaps(sql, id, MIN, { limit: 1 }), [{ from: T0 + 10 * MIN, to: T0 + 13 * MIN, count: 3 }]);
  });
});

Deno.test("findGaps: from/to clip ranges, also when the window starts inside a gap", async () => {
  await withSeries(async (sql, id) => {
    await deleteRange(sql, id, T0 + 10 * MIN, T0 + 20 * MIN);
    await deleteRange(sql, id, T0 + 60 * MIN, T0 + 62 * MIN);
    assertEquals(await findGaps(sql, id, MIN, { from: T0 + 15 * MIN, to: T0 + 61 * MIN }), [
      { from: T0 + 15 * MIN, to: T0 + 20 * MIN, count: 5 },
      { from: T0 + 60 * MIN, to: T0 + 61 * MIN, count: 1 },
    ]);
    assertEquals(await findGaps(sql, id, MIN, { from: T0 + 30 * MIN, to: T0 + 40 * MIN }), []);
  });
});

Deno.test("findGaps: a confirmed hole is excluded, also partly", async () => {
  await withSeries(async (sql, id) => {
    await deleteRange(sql, id, T0 + 10 * MIN, T0 + 13 * MIN);
    await deleteRange(sql, id, T0 + 30 * MIN, T0 + 40 * MIN);
    await sql`insert into confirmed_holes (series_id, from_ts, to_ts, reason) values
      (${id}, to_timestamp(${T0 + 10 * MIN}::float8 / 1000), to_timestamp(${T0 + 13 * MIN}::float8 / 1000), 'no data'),
      (${id}, to_timestamp(${T0 + 30 * MIN}::float8 / 1000), to_timestamp(${T0 + 35 * MIN}::float8 / 1000), 'invalid')`;
    assertEquals(await findGaps(sql, id, MIN), [{ from: T0 + 35 * MIN, to: T0 + 40 * MIN, count: 5 }]);
    const holes = await listHoles(sql, id);
    assertEquals(holes.map((h) => [h.from, h.to, h.reason]), [
      [T0 + 10 * MIN, T0 + 13 * MIN, "no data"],
      [T0 + 30 * MIN, T0 + 35 * MIN, "invalid"],
    ]);
  });
});

Deno.test("findGaps: weekly candles are aligned to Mondays", async () => {
  const t = await createTestDatabase();
  try {
    await migrate(t.sql, { timescaledb: "auto", compressAfterMs: 7 * 86_400_000 });
    const WEEK = 7 * 86_400_000;
    const monday = Date.UTC(2024, 0, 1); // a Monday
    const s = await registerSeries(t.sql, { exchange: "x", symbol: "A/B", timeframe: "1w" });
    await writeCandles(t.sql, s.id, candles(monday, 10, WEEK));
    await deleteRange(t.sql, s.id, monday + 3 * WEEK, monday + 5 * WEEK);
    assertEquals(await findGaps(t.sql, s.id, WEEK), [{ from: monday + 3 * WEEK, to: monday + 5 * WEEK, count: 2 }]);
  } finally {
    await t.drop();
  }
});

Deno.test("summarizeGapsOfMany: one statement gives what summarizeGaps gives per window", async () => {
  await withSeries(async (sql, id) => {
    await deleteRange(sql, id, T0 + 10 * MIN, T0 + 20 * MIN);
    await deleteRange(sql, id, T0 + 60 * MIN, T0 + 62 * MIN);
    await deleteRange(sql, id, T0 + 70 * MIN, T0 + 71 * MIN);
    await sql`insert into confirmed_holes (series_id, from_ts, to_ts, reason)
      values (${id}, to_timestamp(${(T0 + 12 * MIN) / 1000}), to_timestamp(${(T0 + 14 * MIN) / 1000}), 'no data')`;
    const other = await registerSeries(sql, { exchange: "binance", symbol: "ETH/USDT", timeframe: "5m" });
    await writeCandles(sql, other.id, [...candles(T0, 10, 5 * MIN), ...candles(T0 + 100 * MIN, 3, 5 * MIN)]);
    const windows = [
      { seriesId: id, stepMs: MIN },
      { seriesId: id, stepMs: MIN, from: T0 + 15 * MIN, to: T0 + 61 * MIN },
      { seriesId: id, stepMs: MIN, from: T0 + 62 * MIN },
      { seriesId: other.id, stepMs: 5 * MIN },
      { seriesId: other.id + 100, stepMs: MIN },
    ];
    const one = [];
    for (const w of windows) one.push(await summarizeGaps(sql, w.seriesId, w.stepMs, w));
    assertEquals(one.map((g) => g.missing), [11, 6, 1, 10, 0], "the reference itself");
    assertEquals(await summarizeGapsOfMany(sql, windows), one);
    assertEquals(await summarizeGapsOfMany(sql, []), []);
  });
});
