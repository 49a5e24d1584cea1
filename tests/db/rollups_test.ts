/**
 * Rollups on plain PostgreSQL (migration R_2_rollups.sql): candles_1h and candles_1d must equal
 * an aggregation of the stored candles after writes of every origin: the service's bulk write,
 * re-writes, SQL inserts, updates and deletes behind its back, a purge, TRUNCATE, concurrent
 * writers, and a first migration over candles stored before rollups existed.
 */
import { assert, assertEquals } from "../support/assert.ts";
import type { Candle } from "../../src/candle.ts";
import { migrate } from "../../src/db/migrate.ts";
import { deleteSeriesCandles, writeCandles } from "../../src/ingest/store.ts";
import { createTestDatabase, type TestDatabase } from "../support/pg.ts";

const MIN = 60_000;
const T0 = Date.UTC(2024, 0, 1);
const SETTINGS = { timescaledb: "auto", compressAfterMs: 7 * 86_400_000 } as const;

type Sql = TestDatabase["sql"];

/** Prices with many decimals and volumes whose float sums are inexact, to catch rounding. */
function candles(from: number, count: number, salt = 0): Candle[] {
  return Array.from({ length: count }, (_, i) => {
    const base = 100 + ((i * 7919 + salt * 31) % 997) / 7;
    return {
      ts: from + i * MIN,
      open: base,
      high: base + ((i + salt) % 5) * 0.1 + 0.3,
      low: base - ((i + salt) % 3) * 0.1 - 0.2,
      close: base + 0.05,
      volume: ((i * 13 + salt) % 101) * 0.1 + 0.003,
    };
  });
}

async function insertRows(sql: Sql, seriesId: number, rows: Candle[]): Promise<void> {
  await sql`
    insert into candles (series_id, ts, open, high, low, close, volume)
    select ${seriesId}::int, to_timestamp(t / 1000.0), o, h, l, c, v
    from unnest(${rows.map((r) => r.ts)}::float8[], ${rows.map((r) => r.open)}::float8[],
                ${rows.map((r) => r.high)}::float8[], ${rows.map((r) => r.low)}::float8[],
                ${rows.map((r) => r.close)}::float8[], ${rows.map((r) => r.volume)}::float8[]) as u(t, o, h, l, c, v)`;
}

async function addSeries(sql: Sql, symbol: string): Promise<number> {
  const [row] = await sql<{ id: number }[]>`
    insert into series (exchange, symbol, timeframe) values ('binance', ${symbol}, '1m') returning id`;
  return row.id;
}

/** The reference: each width aggregated straight from the stored candles. */
async function expected(sql: Sql, width: "1 hour" | "24 hours"): Promise<unknown[]> {
  return [
    ...await sql`
    select g.series_id, g.ts::text as ts,
           (select o.open from candles o where o.series_id = g.series_id and o.ts = g.first_ts) as open,
           g.high, g.low,
           (select l.close from candles l where l.series_id = g.series_id and l.ts = g.last_ts) as close,
           g.volume::text as volume, g.n
    from (
      select series_id, date_bin(${width}::interval, ts, timestamptz 'epoch') as ts, min(ts) as first_ts,
             max(ts) as last_ts, max(high) as high, min(low) as low, sum(volume::text::numeric) as volume,
             count(*)::int as n
      from candles group by 1, 2
    ) g order by 1, 2`,
  ];
}

async function actual(sql: Sql, table: "candles_1h" | "candles_1d"): Promise<unknown[]> {
  return [
    ...await sql`
    select series_id, ts::text as ts, open, high, low, close, volume::text as volume, n
    from ${sql(table)} order by 1, 2`,
  ];
}

async function assertRollupsExact(sql: Sql, when: string): Promise<void> {
  const hours = await expected(sql, "1 hour");
  assertEquals(await actual(sql, "candles_1h"), hours, `candles_1h ${when}`);
  assertEquals(await actual(sql, "candles_1d"), await expected(sql, "24 hours"), `candles_1d ${when}`);
}

Deno.test("rollups (plain PostgreSQL): exact after writes of every origin", async () => {
  const db = await createTestDatabase();
  try {
    const { sql } = db;
    await migrate(sql, { ...SETTINGS, timescaledb: "off" });
    const [meta] = await sql<{ value: string }[]>`select value from candlekeep_meta where key = 'rollups'`;
    assert(meta.value.startsWith("tables:"), meta.value);

    const a = await addSeries(sql, "BTC/USDT");
    const b = await addSeries(sql, "ETH/USDT");
    // Three days of 1m for a, in pages of 1000 like a backfill; a day and a half for b.
    const all = candles(T0, 3 * 1440);
    for (let i = 0; i < all.length; i += 1000) await writeCandles(sql, a, all.slice(i, i + 1000));
    await writeCandles(sql, b, candles(T0 + 36 * 60 * MIN, 2160, 1));
    await assertRollupsExact(sql, "after bulk writes");
    const [day] = await sql<{ n: number }[]>`
      select n from candles_1d where series_id = ${a} and ts = to_timestamp(${T0 / 1000})`;
    assertEquals(day.n, 1440);

    // Re-writing identical history changes nothing; a rewritten page with new values does.
    await writeCandles(sql, a, all.slice(0, 1000));
    await writeCandles(sql, a, candles(T0 + 500 * MIN, 200, 7));
    await assertRollupsExact(sql, "after a rewrite");

    // SQL behind the service's back: the maximum lowered, a first candle deleted, rows inserted
    // into an empty day, a series moved.
    await sql`update candles set high = low where series_id = ${a} and ts < to_timestamp(${(T0 + 90 * MIN) / 1000})`;
    await sql`delete from candles where series_id = ${a} and ts = to_timestamp(${(T0 + 1440 * MIN) / 1000})`;
    await sql`
      insert into candles (series_id, ts, open, high, low, close, volume)
      select ${b}, to_timestamp(${T0 / 1000} + g * 60 - 86400 * 2), 1.5, 2.25, 1.125, 2, 0.1
      from generate_series(0, 89) g`;
    await sql`update candles set ts = ts + interval '7 days' where series_id = ${b} and ts < to_timestamp(${
      T0 / 1000
    })`;
    await assertRollupsExact(sql, "after SQL inserts, updates and deletes");

    // A purge, then TRUNCATE.
    await sql.begin((tx) => deleteSeriesCandles(tx, b));
    await assertRollupsExact(sql, "after a purge");
    const [gone] = await sql<{ n: number }[]>`select count(*)::int as n from candles_1h where series_id = ${b}`;
    assertEquals(gone.n, 0);
    await sql`truncate candles`;
    await assertRollupsExact(sql, "after truncate");
    const [empty] = await sql<
      { n: number }[]
    >`select (select count(*) from candles_1h) + (select count(*) from candles_1d) as n`;
    assertEquals(Number(empty.n), 0);
  } finally {
    await db.drop();
  }
});

Deno.test("rollups (plain PostgreSQL): concurrent writers of one hour lose nothing", async () => {
  const db = await createTestDatabase();
  try {
    const { sql } = db;
    await migrate(sql, { ...SETTINGS, timescaledb: "off" });
    const a = await addSeries(sql, "BTC/USDT");
    // Two transactions insert alternate minutes of the same hours with plain SQL (writeCandles
    // would queue them on the series_stats row): the second starts while the first has not
    // committed, and must not overwrite the first one's part of each hour.
    const evens = candles(T0, 240).filter((_, i) => i % 2 === 0);
    const odds = candles(T0, 240).filter((_, i) => i % 2 === 1);
    const first = await sql.reserve();
    const second = await sql.reserve();
    try {
      await first`begin`;
      await insertRows(first, a, evens);
      await second`begin`;
      const later = insertRows(second, a, odds).then(() => second`commit`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await first`commit`;
      await later;
    } finally {
      first.release();
      second.release();
    }
    await assertRollupsExact(sql, "after concurrent writers");
    const [hours] = await sql<{ n: number }[]>`select sum(n)::int as n from candles_1h where series_id = ${a}`;
    assertEquals(hours.n, 240);
  } finally {
    await db.drop();
  }
});

Deno.test("rollups (plain PostgreSQL): built from candles stored before they existed", async () => {
  const db = await createTestDatabase();
  try {
    const { sql } = db;
    await migrate(sql, { ...SETTINGS, timescaledb: "off" });
    const a = await addSeries(sql, "BTC/USDT");
    await writeCandles(sql, a, candles(T0, 2000));
    // As if the database predated rollups: no tables, no triggers; rows keep arriving.
    await sql`drop table candles_1d`;
    await sql`drop table candles_1h`;
    await sql`drop trigger candles_rollup_insert on candles`;
    await sql`drop trigger candles_rollup_update on candles`;
    await sql`drop trigger candles_rollup_delete on candles`;
    await sql`drop trigger candles_rollup_truncate on candles`;
    await writeCandles(sql, a, candles(T0 + 2000 * MIN, 500, 3));
    await migrate(sql, { ...SETTINGS, timescaledb: "off" });
    await assertRollupsExact(sql, "after the first migration with rollups");
    // And a second start changes nothing.
    await migrate(sql, { ...SETTINGS, timescaledb: "off" });
    await assertRollupsExact(sql, "after a second start");
  } finally {
    await db.drop();
  }
});
