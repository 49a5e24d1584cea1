/**
 * `series_stats` (migration 003) against a full recount: first/last/count and gap totals of
 * `seriesOverview` must equal min/max/count(*) and an uncached `summarizeGaps` after inserts,
 * re-ingest, updates, purge, holes, SQL behind the service's back and a restart.
 */
import { assert, assertEquals } from "../support/assert.ts";
import type { Candle } from "../../src/candle.ts";
import { createPool } from "../../src/db/client.ts";
import { migrate } from "../../src/db/migrate.ts";
import { refreshSeriesStats, seriesFreshness, seriesOverview } from "../../src/db/overview.ts";
import { summarizeGaps } from "../../src/ingest/gaps.ts";
import { deleteSeriesCandles, writeCandles } from "../../src/ingest/store.ts";
import { createTestDatabase, type TestDatabase } from "../support/pg.ts";

const MIN = 60_000;
const T0 = Date.UTC(2024, 0, 1);
const SETTINGS = { timescaledb: "auto", compressAfterMs: 7 * 86_400_000 } as const;

function candles(from: number, count: number, price = 100): Candle[] {
  return Array.from({ length: count }, (_, i) => ({
    ts: from + i * MIN,
    open: price + i,
    high: price + i + 2,
    low: price + i - 2,
    close: price + i + 1,
    volume: 10 + i,
  }));
}

type Sql = TestDatabase["sql"];

async function addSeries(sql: Sql, symbol: string): Promise<number> {
  const [row] = await sql<{ id: number }[]>`
    insert into series (exchange, symbol, timeframe) values ('binance', ${symbol}, '1m') returning id`;
  return row.id;
}

/** What a full recount says, series by series: the reference the statistics must equal. */
async function recount(sql: Sql): Promise<Record<number, unknown>> {
  const rows = await sql<{ id: number; first: number | null; last: number | null; n: number }[]>`
    select s.id, (extract(epoch from min(c.ts)) * 1000)::float8 as first,
           (extract(epoch from max(c.ts)) * 1000)::float8 as last, count(c.ts)::float8 as n
    from series s left join candles c on c.series_id = s.id
    group by s.id order by s.id`;
  const out: Record<number, unknown> = {};
  for (const r of rows) {
    const gaps = r.n < 2 ? { missing: 0, ranges: 0 } : await summarizeGaps(sql, r.id, MIN);
    out[r.id] = { first: r.first, last: r.last, count: r.n, gaps };
  }
  return out;
}

async function overview(sql: Sql): Promise<Record<number, unknown>> {
  const out: Record<number, unknown> = {};
  for (const s of await seriesOverview(sql, { nowMs: T0 })) {
    out[s.id] = { first: s.firstTs, last: s.lastTs, count: s.count, gaps: s.gaps };
  }
  return out;
}

async function assertExact(sql: Sql, what: string): Promise<void> {
  assertEquals(await overview(sql), await recount(sql), what);
  // Read twice: the second read comes from the gap cache the first one wrote back.
  assertEquals(await overview(sql), await recount(sql), `${what} (cached)`);
}

async function dirty(sql: Sql): Promise<boolean> {
  const rows = await sql`select 1 from candlekeep_meta where key = 'series_stats_dirty'`;
  return rows.length > 0;
}

async function withDb(fn: (t: TestDatabase) => Promise<void>): Promise<void> {
  const t = await createTestDatabase();
  try {
    await migrate(t.sql, SETTINGS);
    await fn(t);
  } finally {
    await t.drop();
  }
}

const at = (ms: number) => ms / 1000;

Deno.test("series_stats: the service's writes keep it exact without a recount", async () => {
  await withDb(async ({ sql }) => {
    const a = await addSeries(sql, "BTC/USDT");
    const b = await addSeries(sql, "ETH/USDT");
    await addSeries(sql, "SOL/USDT"); // no candles at all
    await writeCandles(sql, a, candles(T0, 100));
    await writeCandles(sql, b, candles(T0, 10));
    await assertExact(sql, "after the first inserts");

    // Re-ingesting the same rows, and rows with changed values, counts nothing.
    assertEquals(await writeCandles(sql, a, candles(T0, 100)), { inserted: 0, updated: 0 });
    assertEquals(await writeCandles(sql, a, candles(T0, 50, 200)), { inserted: 0, updated: 50 });
    await assertExact(sql, "after re-ingest and updates");

    // Appending after a gap keeps the cache and adds the new gap; a page overlapping old rows too.
    await writeCandles(sql, a, candles(T0 + 105 * MIN, 20));
    const [cache] = await sql<{ to: number }[]>`
      select (extract(epoch from gaps_to) * 1000)::float8 as to from series_stats where series_id = ${a}`;
    assertEquals(cache.to, T0 + 99 * MIN, "the cache covers what the last read saw");
    await assertExact(sql, "after an append past a gap");
    await writeCandles(sql, a, [...candles(T0 + 120 * MIN, 5), ...candles(T0 + 130 * MIN, 3)]);
    await assertExact(sql, "after an append with a gap inside the page");

    // Filling part of a gap, and writing before the first candle, drop the cache.
    await writeCandles(sql, a, candles(T0 + 101 * MIN, 2));
    await writeCandles(sql, a, candles(T0 - 30 * MIN, 10));
    await assertExact(sql, "after writes inside the cached part");

    // A confirmed hole inside the cached part, then one after it.
    await sql`insert into confirmed_holes (series_id, from_ts, to_ts, reason)
      values (${a}, to_timestamp(${at(T0 - 20 * MIN)}), to_timestamp(${at(T0 - 5 * MIN)}), 'no data')`;
    await assertExact(sql, "after a hole in the cached part");
    await writeCandles(sql, a, candles(T0 + 200 * MIN, 3));
    await sql`insert into confirmed_holes (series_id, from_ts, to_ts, reason)
      values (${a}, to_timestamp(${at(T0 + 150 * MIN)}), to_timestamp(${at(T0 + 160 * MIN)}), 'no data')`;
    await assertExact(sql, "after a hole past the cached part");
    const cacheOf = async () =>
      (await sql<{ to: Date | null }[]>`select gaps_to as to from series_stats where series_id = ${a}`)[0].to;
    const cached = await cacheOf();
    assert(cached !== null);
    await sql`update confirmed_holes set checked_at = now(), reason = 'checked again' where series_id = ${a}`;
    assertEquals(await cacheOf(), cached, "a re-check of the holes keeps the gap cache");
    await sql`delete from confirmed_holes where series_id = ${a}`;
    assertEquals(await cacheOf(), null, "removing a hole drops the gap cache");
    await assertExact(sql, "after the holes are removed");

    // A purge (DELETE /v1/series/{id}?purge=true) removes the series' statistics with its candles.
    await sql.begin((tx) => deleteSeriesCandles(tx, b));
    await assertExact(sql, "after a purge");
    assertEquals(await dirty(sql), false, "no write of the service needs a recount");
    assertEquals(await refreshSeriesStats(sql), false);
  });
});

Deno.test("series_stats: SQL behind the service's back is recounted once, then cached", async () => {
  await withDb(async ({ sql }) => {
    const a = await addSeries(sql, "BTC/USDT");
    const b = await addSeries(sql, "ETH/USDT");
    await writeCandles(sql, a, candles(T0, 100));
    await assertExact(sql, "before");

    await sql`insert into candles (series_id, ts, open, high, low, close, volume)
      select ${b}, to_timestamp(${at(T0)} + g * 60), 1, 2, 0.5, 1.5, 3 from generate_series(0, 499) g
      where g % 7 <> 3`;
    assert(await dirty(sql), "an insert by SQL marks the statistics dirty");
    await assertExact(sql, "after an insert by SQL");
    assertEquals(await dirty(sql), false, "the reader recounted");

    await sql`delete from candles where series_id = ${a} and ts = to_timestamp(${at(T0 + 50 * MIN)})`;
    await assertExact(sql, "after a delete by SQL");
    await sql`update candles set ts = ts + interval '1 day' where series_id = ${a} and ts < to_timestamp(${
      at(T0 + 10 * MIN)
    })`;
    await assertExact(sql, "after an update of ts by SQL");

    // In one transaction with the service's own write: still seen.
    await sql.begin(async (tx) => {
      await writeCandles(tx, a, candles(T0 + 3 * 1440 * MIN, 5));
      await tx`delete from candles where series_id = ${b} and ts < to_timestamp(${at(T0 + 100 * MIN)})`;
    });
    assert(await dirty(sql), "a delete after writeCandles in the same transaction is seen");
    await assertExact(sql, "after a mixed transaction");

    await sql`truncate candles`;
    await assertExact(sql, "after truncate");
  });
});

Deno.test("series_stats: rows written while the service was down are counted after a restart", async () => {
  await withDb(async (t) => {
    const a = await addSeries(t.sql, "BTC/USDT");
    await writeCandles(t.sql, a, candles(T0, 100));
    await assertExact(t.sql, "before the restart");
    // Another client (psql, a restore) writes while no service runs.
    const other = createPool(t.url, { max: 1 });
    try {
      await other`insert into candles (series_id, ts, open, high, low, close, volume)
        select ${a}, to_timestamp(${at(T0 + 200 * MIN)} + g * 60), 1, 2, 0.5, 1.5, 3 from generate_series(0, 9) g`;
    } finally {
      await other.end();
    }
    // The "restarted" service: migrations again, then the first reads.
    await migrate(t.sql, SETTINGS);
    await assertExact(t.sql, "after the restart");
    const [fresh] = await seriesFreshness(t.sql);
    assertEquals([fresh.count, fresh.lastTs], [110, T0 + 209 * MIN]);
  });
});

Deno.test("series_stats: migration 003 backfills the statistics of existing candles", async () => {
  const t = await createTestDatabase();
  const dir = await Deno.makeTempDir({ prefix: "ck-migrations-" });
  try {
    for (const name of ["001_init.sql", "002_series_since.sql"]) {
      await Deno.copyFile(new URL(`../../migrations/${name}`, import.meta.url), `${dir}/${name}`);
    }
    await migrate(t.sql, SETTINGS, { dir });
    const a = await addSeries(t.sql, "BTC/USDT");
    const b = await addSeries(t.sql, "ETH/USDT");
    await t.sql`insert into candles (series_id, ts, open, high, low, close, volume)
      select s, to_timestamp(${at(T0)} + g * 60), 1, 2, 0.5, 1.5, 3
      from generate_series(0, 999) g, unnest(${[a, b]}::int[]) s where g % 11 <> 5 or s = ${b}`;
    await migrate(t.sql, SETTINGS);
    const [n] = await t.sql<{ n: number }[]>`select count(*)::int as n from series_stats`;
    assertEquals(n.n, 2);
    await assertExact(t.sql, "after migration 003");
  } finally {
    await t.drop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("series_stats: concurrent writers and readers end exact", async () => {
  await withDb(async ({ sql }) => {
    const ids = [await addSeries(sql, "BTC/USDT"), await addSeries(sql, "ETH/USDT")];
    const pages = (id: number, offset: number) =>
      Array.from({ length: 12 }, (_, p) => () => writeCandles(sql, id, candles(T0 + (offset + p * 25) * MIN, 20)));
    // Pages written out of order (some before others' cache), with overview reads in between.
    const work = [...pages(ids[0], 0).reverse(), ...pages(ids[1], 3)];
    await Promise.all([
      (async () => {
        for (const w of work) await w();
      })(),
      (async () => {
        for (let i = 0; i < 15; i++) await seriesOverview(sql, { nowMs: T0 });
      })(),
      (async () => {
        for (const w of pages(ids[1], 400)) await w();
      })(),
    ]);
    await assertExact(sql, "after concurrent writes and reads");
  });
});
