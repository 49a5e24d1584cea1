/**
 * Migrations 003 (series_stats) and 004 (candles_v) on PGlite with TimescaleDB: the statement
 * trigger works on the candles hypertable, chunks dropped by the retention job are recounted,
 * and compression changes nothing.
 */
import { PGlite } from "pglite";
import { timescaledb } from "pglite/timescaledb";
import { assert, assertEquals } from "../support/assert.ts";
import { applyAll, rows } from "../support/pglite.ts";

const DAY = 86_400_000;

/** series_stats as a recount would give it: [series_id, first, last, count] rows. */
const STATS = `select series_id, first_ts, last_ts, count::int as n from series_stats order by series_id`;
const RECOUNT = `select series_id, min(ts) as first_ts, max(ts) as last_ts, count(*)::int as n
  from candles group by series_id order by series_id`;

async function isDirty(db: PGlite): Promise<boolean> {
  return (await rows(db, "select 1 from candlekeep_meta where key = 'series_stats_dirty'")).length > 0;
}

async function refresh(db: PGlite): Promise<boolean> {
  const [row] = await rows<{ r: boolean }>(db, "select series_stats_refresh() as r");
  return row.r;
}

Deno.test("series_stats (PGlite, TimescaleDB): exact on the hypertable, recounted after retention", async () => {
  const db = await PGlite.create({ extensions: { timescaledb } });
  try {
    await applyAll(db, { timescaledb: "require", compressAfterMs: 7 * DAY, retentionMs: 30 * DAY });
    const [ht] = await rows<{ n: number }>(
      db,
      "select count(*)::int as n from timescaledb_information.hypertables where hypertable_name = 'candles'",
    );
    assertEquals(ht.n, 1);
    const [{ id }] = await rows<{ id: number }>(
      db,
      "insert into series (exchange, symbol, timeframe) values ('binance', 'BTC/USDT', '1h') returning id",
    );

    // The service's upsert (the statement of writeCandles, with its token) is counted exactly
    // and does not mark the statistics dirty, also when it re-writes rows.
    const upsert = async (fromHoursAgo: number, hours: number) => {
      await db.transaction(async (tx) => {
        await tx.query(
          `with written as (
             insert into candles as c (series_id, ts, open, high, low, close, volume)
             select $1, date_trunc('hour', now()) - (g || ' hours')::interval, 1, 2, 0.5, 1.5, g
             from generate_series($2::int - $3::int + 1, $2::int) g
             on conflict (series_id, ts) do update set volume = excluded.volume
               where c.volume is distinct from excluded.volume
             returning c.ts, (xmax = 0) as fresh
           ), counted as (
             insert into series_stats as st (series_id, first_ts, last_ts, count)
             select $1, min(ts), max(ts), count(*) from written where fresh having count(*) > 0
             on conflict (series_id) do update set first_ts = least(st.first_ts, excluded.first_ts),
               last_ts = greatest(st.last_ts, excluded.last_ts), count = st.count + excluded.count
           )
           select count(*) filter (where fresh) as inserted, set_config('candlekeep.stats_token', 'iu', true)
           from written`,
          [id, fromHoursAgo, hours],
        );
      });
    };
    await upsert(60 * 24, 24 * 20); // 60 to 40 days ago
    await upsert(50 * 24, 24 * 20); // overlaps half of it
    assertEquals(await isDirty(db), false, "the service's upserts are accounted for");
    assertEquals(await rows(db, STATS), await rows(db, RECOUNT));

    // SQL behind the service's back on the hypertable: seen by the statement trigger.
    await db.query(
      `insert into candles (series_id, ts, open, high, low, close, volume)
       select $1, date_trunc('hour', now()) - (g || ' hours')::interval, 1, 2, 0.5, 1.5, 1
       from generate_series(1, 24 * 10) g`,
      [id],
    );
    assert(await isDirty(db), "an insert by SQL into the hypertable marks the statistics dirty");
    assertEquals(await refresh(db), true);
    assertEquals(await rows(db, STATS), await rows(db, RECOUNT));
    assertEquals(await refresh(db), false, "recounted once");

    // Retention drops whole chunks (no trigger sees it). PGlite runs no job scheduler, so the
    // job is run by hand and its finish recorded as the scheduler records it.
    const [job] = await rows<{ job_id: number }>(
      db,
      "select job_id from timescaledb_information.jobs where proc_name = 'policy_retention' and hypertable_name = 'candles'",
    );
    await db.exec(`call run_job(${job.job_id})`);
    assertEquals(await isDirty(db), false, "drop_chunks fires no trigger");
    await db.query(
      `insert into _timescaledb_internal.bgw_job_stat (job_id, last_start, last_finish, next_start,
         last_successful_finish, last_run_success, total_runs, total_duration, total_duration_failures,
         total_successes, total_failures, total_crashes, consecutive_failures, consecutive_crashes, flags)
       values ($1, now(), clock_timestamp(), now() + interval '1 day', clock_timestamp(), true, 1, '1 second',
         '0', 1, 0, 0, 0, 0, 0)`,
      [job.job_id],
    );
    const [before] = await rows<{ n: number }>(db, STATS);
    const [after] = await rows<{ n: number }>(db, RECOUNT);
    assert(after.n < before.n, `retention dropped rows: ${before.n} → ${after.n}`);
    assertEquals(await refresh(db), true, "a retention run after the last recount makes the reader recount");
    assertEquals(await rows(db, STATS), await rows(db, RECOUNT));
    assertEquals(await refresh(db), false);

    // Compression moves rows into compressed chunks without a statement on candles: nothing to recount.
    const [compressed] = await rows<{ n: number }>(
      db,
      "select count(compress_chunk(c))::int as n from show_chunks('candles', older_than => interval '7 days') c",
    );
    assert(compressed.n > 0, "some chunks were compressed");
    assertEquals(await isDirty(db), false, "compression fires no trigger");
    assertEquals(await rows(db, STATS), await rows(db, RECOUNT));
    // The service's upsert over compressed chunks: existing rows and new ones, counted exactly.
    await upsert(35 * 24, 24 * 10);
    assertEquals(await isDirty(db), false);
    assertEquals(await rows(db, STATS), await rows(db, RECOUNT));

    // candles_v on the hypertable: by name, time as timestamptz.
    const view = await rows<{ exchange: string; symbol: string; timeframe: string; time: Date; volume: number }>(
      db,
      `select exchange, symbol, timeframe, time, volume from candles_v
       where exchange = 'binance' and symbol = 'BTC/USDT' and timeframe = '1h' order by time desc limit 1`,
    );
    assertEquals(view.length, 1);
    assertEquals(view[0].time.getTime() % 3_600_000, 0);
    const [types] = await rows<{ t: string }>(
      db,
      "select format_type(atttypid, atttypmod) as t from pg_attribute where attrelid = 'candles_v'::regclass and attname = 'time'",
    );
    assertEquals(types.t, "timestamp with time zone");
  } finally {
    await db.close();
  }
});
