/**
 * Rollups on TimescaleDB (migrations/R_3_rollups_timescaledb.sql and src/db/rollup_maintenance.ts),
 * proven on PGlite built with TimescaleDB with our migrations: continuous aggregates with the
 * contract's columns, equal to the aggregation of the stored candles after maintenance, stale
 * ranges reported by candles_rollup_fresh() after SQL writes below the watermark, and partially
 * compressed chunks recompressed. The maintenance runs on PGlite through the same code and
 * statements as on postgres.js.
 */
import { PGlite } from "pglite";
import { timescaledb } from "pglite/timescaledb";
import { assert, assertEquals } from "../support/assert.ts";
import { applyAll, rows } from "../support/pglite.ts";
import {
  describeRollupMaintenance,
  maintainRollups,
  maintainWith,
  PARTIAL_CHUNKS_SQL,
  ROLLUP_REFRESH_SQL,
  type RunStatement,
} from "../../src/db/rollup_maintenance.ts";
import { migrate } from "../../src/db/migrate.ts";
import { createTestDatabase } from "../support/pg.ts";

const DAY = 86_400_000;
const SETTINGS = { timescaledb: "auto", compressAfterMs: 7 * DAY } as const;
const T0 = "2024-01-01T00:00:00Z";

async function open(): Promise<PGlite> {
  return await PGlite.create({ extensions: { timescaledb } });
}

function runner(db: PGlite): RunStatement {
  return async <T>(text: string, params: unknown[] = []) => (await db.query<T>(text, params)).rows;
}

async function addSeries(db: PGlite, symbol: string): Promise<number> {
  const [row] = await rows<{ id: number }>(
    db,
    "insert into series (exchange, symbol, timeframe) values ('binance', $1, '1m') returning id",
    [symbol],
  );
  return row.id;
}

/** `minutes` 1m candles from `from`, with many decimals and volumes whose float sums are inexact. */
async function insertMinutes(db: PGlite, seriesId: number, from: string, minutes: number, salt = 0): Promise<void> {
  await db.query(
    `insert into candles (series_id, ts, open, high, low, close, volume)
     select $1::int, $2::timestamptz + g * interval '1 minute', b, b + ((g + $4) % 5) * 0.1 + 0.3,
            b - ((g + $4) % 3) * 0.1 - 0.2, b + 0.05, ((g * 13 + $4) % 101) * 0.1 + 0.003
     from generate_series(0, $3::int - 1) g, lateral (select 100 + ((g * 7919 + $4 * 31) % 997) / 7.0 as b) x`,
    [seriesId, from, minutes, salt],
  );
}

/** The reference: each width aggregated straight from the stored candles (as tests/db/rollups_test.ts). */
async function expected(db: PGlite, width: "1 hour" | "24 hours"): Promise<unknown[]> {
  return await rows(
    db,
    `select g.series_id, g.ts::text as ts,
            (select o.open from candles o where o.series_id = g.series_id and o.ts = g.first_ts) as open,
            g.high, g.low,
            (select l.close from candles l where l.series_id = g.series_id and l.ts = g.last_ts) as close,
            g.volume::text as volume, g.n
     from (
       select series_id, date_bin($1::interval, ts, timestamptz 'epoch') as ts, min(ts) as first_ts,
              max(ts) as last_ts, max(high) as high, min(low) as low, sum(volume::text::numeric) as volume,
              count(*)::int as n
       from candles group by 1, 2
     ) g order by 1, 2`,
    [width],
  );
}

async function actual(db: PGlite, view: "candles_1h" | "candles_1d"): Promise<unknown[]> {
  return await rows(
    db,
    `select series_id, ts::text as ts, open, high, low, close, volume::text as volume, n from ${view} order by 1, 2`,
  );
}

async function assertRollupsExact(db: PGlite, when: string): Promise<void> {
  assertEquals(await actual(db, "candles_1h"), await expected(db, "1 hour"), `candles_1h ${when}`);
  assertEquals(await actual(db, "candles_1d"), await expected(db, "24 hours"), `candles_1d ${when}`);
}

/** Fails when the two are deep-equal. */
function assertDiffers(actual: unknown, other: unknown, message: string): void {
  assert(JSON.stringify(actual) !== JSON.stringify(other), message);
}

async function fresh(db: PGlite, width: "1h" | "1d", lo: string, hi: string): Promise<boolean> {
  const [row] = await rows<{ fresh: boolean }>(db, "select candles_rollup_fresh($1, $2, $3) as fresh", [width, lo, hi]);
  return row.fresh;
}

/** Rows materialized in a cagg's own hypertable (what a refresh wrote, without real-time rows). */
async function materialized(db: PGlite, view: string): Promise<number> {
  const [mat] = await rows<{ name: string }>(
    db,
    `select format('%I.%I', h.schema_name, h.table_name) as name from _timescaledb_catalog.continuous_agg c
     join _timescaledb_catalog.hypertable h on h.id = c.mat_hypertable_id where c.user_view_name = $1`,
    [view],
  );
  const [count] = await rows<{ n: number }>(db, `select count(*)::int as n from ${mat.name}`);
  return count.n;
}

const CONTRACT = [
  { attname: "series_id", type: "integer" },
  { attname: "ts", type: "timestamp with time zone" },
  { attname: "open", type: "double precision" },
  { attname: "high", type: "double precision" },
  { attname: "low", type: "double precision" },
  { attname: "close", type: "double precision" },
  { attname: "volume", type: "numeric" },
  { attname: "n", type: "integer" },
];

Deno.test("rollups (PGlite TimescaleDB): continuous aggregates with the contract's columns, idempotent, from a plain start", async () => {
  const db = await open();
  try {
    // Created plain (tables kept by triggers) with candles stored, then TimescaleDB is switched on.
    await applyAll(db, { ...SETTINGS, timescaledb: "off" });
    const a = await addSeries(db, "BTC/USDT");
    await insertMinutes(db, a, T0, 2 * 1440);
    await applyAll(db, SETTINGS, true);

    for (const view of ["candles_1h", "candles_1d"]) {
      const [kind] = await rows<{ relkind: string }>(db, "select relkind from pg_class where oid = $1::regclass", [
        view,
      ]);
      assertEquals(kind.relkind, "v", `${view} is the view of a continuous aggregate`);
      const columns = await rows(
        db,
        `select attname, format_type(atttypid, atttypmod) as type from pg_attribute
         where attrelid = $1::regclass and attnum > 0 and not attisdropped order by attnum`,
        [view],
      );
      assertEquals(columns, CONTRACT, view);
    }
    const caggs = await rows(
      db,
      `select user_view_name, parent_mat_hypertable_id is not null as hierarchical, materialized_only
       from _timescaledb_catalog.continuous_agg order by user_view_name`,
    );
    assertEquals(caggs, [
      { user_view_name: "candles_1d", hierarchical: true, materialized_only: false },
      { user_view_name: "candles_1h", hierarchical: false, materialized_only: false },
    ]);
    const [meta] = await rows<{ value: string }>(db, "select value from candlekeep_meta where key = 'rollups'");
    assert(meta.value.startsWith("continuous aggregates:"), meta.value);
    const [triggers] = await rows<{ n: number }>(
      db,
      "select count(*)::int as n from pg_trigger where tgname like 'candles_rollup_%'",
    );
    assertEquals(triggers.n, 0);

    // Nothing materialized yet (WITH NO DATA): real-time aggregation already answers exactly.
    assertEquals(await materialized(db, "candles_1h"), 0);
    await assertRollupsExact(db, "before any refresh");
    assert(await fresh(db, "1d", T0, "2024-01-03T00:00:00Z"));

    const policies = `
      select j.job_id, c.user_view_name, j.config ->> 'start_offset' as start_offset,
             (j.config ->> 'end_offset')::interval::text as end_offset, j.schedule_interval::text as every
      from timescaledb_information.jobs j
      join _timescaledb_catalog.continuous_agg c on c.mat_hypertable_id = (j.config ->> 'mat_hypertable_id')::int
      where j.proc_name = 'policy_refresh_continuous_aggregate' order by 2`;
    const before = await rows<{ user_view_name: string; start_offset: null; end_offset: string; every: string }>(
      db,
      policies,
    );
    assertEquals(
      before.map(({ user_view_name, start_offset, end_offset, every }) => ({
        user_view_name,
        start_offset,
        end_offset,
        every,
      })),
      [
        { user_view_name: "candles_1d", start_offset: null, end_offset: "1 day", every: "00:05:00" },
        { user_view_name: "candles_1h", start_offset: null, end_offset: "01:00:00", every: "00:01:00" },
      ],
    );

    // Applying again (every start) changes nothing: same views, same policy jobs.
    await applyAll(db, SETTINGS, true);
    await applyAll(db, SETTINGS, true);
    assertEquals(await rows(db, policies), before);
    await assertRollupsExact(db, "after re-applying");
  } finally {
    await db.close();
  }
});

Deno.test("rollups (PGlite TimescaleDB): exact after maintenance; SQL writes below the watermark are reported stale until refreshed", async () => {
  const db = await open();
  try {
    await applyAll(db, SETTINGS);
    const run = runner(db);
    const a = await addSeries(db, "BTC/USDT");
    const b = await addSeries(db, "ETH/USDT");
    await insertMinutes(db, a, T0, 4 * 1440);
    await insertMinutes(db, b, "2024-01-01T12:00:00Z", 2 * 1440, 1);

    // The first maintenance (start-up) materializes everything.
    const first = await maintainWith(run);
    assertEquals(first.kind, "timescaledb");
    assertEquals(first.refreshed.map((r) => r.view), ["candles_1h", "candles_1d"]);
    assert(await materialized(db, "candles_1h") >= 4 * 24, "hours materialized");
    assert(await materialized(db, "candles_1d") >= 4, "days materialized");
    await assertRollupsExact(db, "after the first maintenance");
    // Nothing pending: the next one refreshes nothing.
    assertEquals((await maintainWith(run)).refreshed, []);

    // SQL behind the service's back, all below the watermark: a maximum raised on day 2, the
    // first candle of an hour of b deleted on day 1, a new series inserted on day 1.
    await db.query(
      "update candles set high = 1000 where series_id = $1 and ts = '2024-01-02T10:30:00Z'",
      [a],
    );
    await db.query("delete from candles where series_id = $1 and ts = '2024-01-01T15:00:00Z'", [b]);
    const c = await addSeries(db, "SOL/USDT");
    await insertMinutes(db, c, "2024-01-01T20:00:00Z", 90, 2);

    // The materialized buckets are stale now, and candles_rollup_fresh says so for them only.
    assertDiffers(await actual(db, "candles_1h"), await expected(db, "1 hour"), "candles_1h is stale");
    assertDiffers(await actual(db, "candles_1d"), await expected(db, "24 hours"), "candles_1d is stale");
    assertEquals(await fresh(db, "1h", "2024-01-02T10:00:00Z", "2024-01-02T11:00:00Z"), false);
    assertEquals(await fresh(db, "1h", "2024-01-02T10:45:00Z", "2024-01-02T10:50:00Z"), false, "unaligned range");
    assertEquals(await fresh(db, "1h", "2024-01-01T00:00:00Z", "2024-01-04T00:00:00Z"), false);
    assertEquals(await fresh(db, "1d", "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"), false);
    assertEquals(await fresh(db, "1d", "2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"), false);
    assertEquals(await fresh(db, "1h", "2024-01-03T00:00:00Z", "2024-01-05T00:00:00Z"), true);
    assertEquals(await fresh(db, "1h", "2024-01-02T11:00:00Z", "2024-01-02T12:00:00Z"), true);
    assertEquals(await fresh(db, "1d", "2024-01-03T00:00:00Z", "2024-01-05T00:00:00Z"), true);
    assertEquals(await fresh(db, "1d", "2030-01-01T00:00:00Z", "2030-02-01T00:00:00Z"), true, "above the watermark");
    assertEquals(await fresh(db, "1d", "-infinity", "infinity"), false, "open range");
    assertEquals(await fresh(db, "1h", "-infinity", "2024-01-02T10:00:00Z"), false, "open start");
    assertEquals(await fresh(db, "1h", "2024-01-02T11:00:00Z", "infinity"), true, "open end");

    // candles_1h refreshed alone (as its policy would): its hours are fresh, the days built from
    // them are not until candles_1d is refreshed too.
    await run(ROLLUP_REFRESH_SQL, ["candles_1h", "2024-01-06T00:00:00Z"]);
    assertEquals(await actual(db, "candles_1h"), await expected(db, "1 hour"));
    assertEquals(await fresh(db, "1h", "2024-01-01T00:00:00Z", "2024-01-04T00:00:00Z"), true);
    assertEquals(await fresh(db, "1d", "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"), false);
    assertEquals(await fresh(db, "1d", "2024-01-03T00:00:00Z", "2024-01-04T00:00:00Z"), true);

    const second = await maintainWith(run);
    assertEquals(second.refreshed.map((r) => r.view), ["candles_1d"]);
    await assertRollupsExact(db, "after maintenance");
    assertEquals(await fresh(db, "1d", "2024-01-01T00:00:00Z", "2024-01-05T00:00:00Z"), true);
    assertEquals(await fresh(db, "1h", "2024-01-01T00:00:00Z", "2024-01-05T00:00:00Z"), true);
    assertEquals(await fresh(db, "1d", "-infinity", "infinity"), true, "open range");
    assertEquals(await fresh(db, "4h" as "1h", T0, "2024-01-02T00:00:00Z"), false, "no such rollup");

    // A series purged with SQL: both follow after one maintenance.
    await db.query("delete from candles where series_id = $1", [a]);
    assertEquals(await fresh(db, "1d", "2024-01-01T00:00:00Z", "2024-01-05T00:00:00Z"), false);
    assertEquals((await maintainWith(run)).refreshed.map((r) => r.view), ["candles_1h", "candles_1d"]);
    await assertRollupsExact(db, "after a purge");
    assertEquals(await fresh(db, "1d", "2024-01-01T00:00:00Z", "2024-01-05T00:00:00Z"), true);

    // candles_1d refreshed ahead of candles_1h (a manual refresh, or its policy while candles_1h's
    // lags): the day is materialized from hours that are still real-time, and a later change to
    // them is not an invalidation of candles_1d. Such days are never trusted.
    const d = await addSeries(db, "XRP/USDT");
    await insertMinutes(db, d, "2024-01-10T00:00:00Z", 600, 5);
    await run(ROLLUP_REFRESH_SQL, ["candles_1d", "2024-01-12T00:00:00Z"]);
    await db.query("update candles set high = 5000 where series_id = $1 and ts = '2024-01-10T05:00:00Z'", [d]);
    assertEquals(await fresh(db, "1h", "2024-01-10T00:00:00Z", "2024-01-11T00:00:00Z"), true, "real-time hours");
    assertEquals(await actual(db, "candles_1h"), await expected(db, "1 hour"));
    assertDiffers(await actual(db, "candles_1d"), await expected(db, "24 hours"), "the day ahead is stale");
    assertEquals(await fresh(db, "1d", "2024-01-10T00:00:00Z", "2024-01-11T00:00:00Z"), false);
    assertEquals(await fresh(db, "1d", "2024-01-01T00:00:00Z", "2024-01-05T00:00:00Z"), true);
    // Maintenance keeps candles_1d behind candles_1h's watermark, so the day is recomputed once
    // the hours after it are materialized.
    await maintainWith(run);
    await insertMinutes(db, d, "2024-01-11T00:00:00Z", 120, 6);
    assertEquals((await maintainWith(run)).refreshed.map((r) => r.view), ["candles_1h", "candles_1d"]);
    await assertRollupsExact(db, "after catching up");
    assertEquals(await fresh(db, "1d", "2024-01-10T00:00:00Z", "2024-01-11T00:00:00Z"), true);
  } finally {
    await db.close();
  }
});

Deno.test("rollups (PGlite TimescaleDB): writes into compressed chunks are recompressed by maintenance", async () => {
  const db = await open();
  try {
    await applyAll(db, SETTINGS);
    const run = runner(db);
    const a = await addSeries(db, "BTC/USDT");
    const b = await addSeries(db, "ETH/USDT");
    await insertMinutes(db, a, T0, 6 * 1440);
    await insertMinutes(db, b, T0, 6 * 1440, 3);
    await maintainWith(run);
    await db.query("select count(compress_chunk(c)) from show_chunks('candles') c");
    assertEquals(await run(PARTIAL_CHUNKS_SQL), []);
    const [sizeCompressed] = await rows<{ bytes: number }>(db, "select hypertable_size('candles')::float8 as bytes");

    // A repair-like write into two old, compressed days: corrected rows and a new series' rows.
    await db.query(
      "update candles set close = close + 1 where series_id = $1 and ts >= '2024-01-02T03:00:00Z' and ts < '2024-01-02T05:00:00Z'",
      [a],
    );
    const c = await addSeries(db, "SOL/USDT");
    await insertMinutes(db, c, "2024-01-04T00:00:00Z", 300, 4);
    const partial = await rows<{ chunk: string; bytes: number }>(db, PARTIAL_CHUNKS_SQL);
    assertEquals(partial.length, 2, "the two written days are partially compressed");
    const [sizeWritten] = await rows<{ bytes: number }>(db, "select hypertable_size('candles')::float8 as bytes");
    assert(sizeWritten.bytes > sizeCompressed.bytes, "the write grew the table");

    const result = await maintainWith(run);
    assertEquals(result.recompressed, 2);
    const line = describeRollupMaintenance(result) ?? "";
    assert(
      /^Rollups refreshed: candles_1h up to \S+Z, candles_1d up to \S+Z; recompressed 2 chunks \(\d+\.\d MB → \d+\.\d MB\) in \d+ ms$/
        .test(line),
      line,
    );
    assertEquals(result.refreshed.map((r) => r.view), ["candles_1h", "candles_1d"]);
    assert(result.bytesBefore > 0 && result.bytesAfter > 0);
    assert(result.bytesAfter <= result.bytesBefore, `${result.bytesAfter} <= ${result.bytesBefore}`);
    assertEquals(await run(PARTIAL_CHUNKS_SQL), []);
    const statuses = await rows<{ status: number }>(
      db,
      `select c.status from _timescaledb_catalog.chunk c join _timescaledb_catalog.hypertable h on h.id = c.hypertable_id
       where h.table_name = 'candles' and format('%I.%I', c.schema_name, c.table_name) = any($1::text[])`,
      [partial.map((p) => p.chunk)],
    );
    assertEquals(statuses, [{ status: 1 }, { status: 1 }], "compressed, no longer partial");
    const [sizeAfter] = await rows<{ bytes: number }>(db, "select hypertable_size('candles')::float8 as bytes");
    assert(sizeAfter.bytes <= sizeWritten.bytes, `${sizeAfter.bytes} <= ${sizeWritten.bytes}`);
    await assertRollupsExact(db, "after recompression");
    const idle = await maintainWith(run);
    assertEquals([idle.recompressed, idle.refreshed.length, describeRollupMaintenance(idle)], [0, 0, null]);
  } finally {
    await db.close();
  }
});

Deno.test("rollups maintenance (plain PostgreSQL, postgres.js): returns at once", async () => {
  const pg = await createTestDatabase();
  try {
    await migrate(pg.sql, { ...SETTINGS, timescaledb: "off" });
    const result = await maintainRollups(pg.sql);
    assertEquals({ ...result, ms: 0 }, {
      kind: "plain",
      busy: false,
      refreshed: [],
      recompressed: 0,
      bytesBefore: 0,
      bytesAfter: 0,
      ms: 0,
    });
  } finally {
    await pg.drop();
  }
});
