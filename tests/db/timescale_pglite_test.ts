/**
 * The same migration files on PGlite built with TimescaleDB (WASM, through its own API), to
 * prove the TimescaleDB branch where no TimescaleDB server exists.
 */
import { PGlite } from "pglite";
import { timescaledb } from "pglite/timescaledb";
import { assert, assertAlmostEquals, assertEquals, assertRejects } from "../support/assert.ts";
import { applyAll, rows } from "../support/pglite.ts";

const DAY = 86_400_000;

Deno.test("timescaledb (PGlite): hypertable, 1-day chunks, compression and policies", async () => {
  const db = await PGlite.create({ extensions: { timescaledb } });
  try {
    await applyAll(db, { timescaledb: "auto", compressAfterMs: 7 * DAY, retentionMs: 365 * DAY });

    const [meta] = await rows<{ value: string }>(db, "select value from candlekeep_meta where key = 'timescaledb'");
    assert(meta.value.startsWith("active:"), meta.value);

    const dims = await rows<{ column_name: string; time_interval: string }>(
      db,
      `select column_name, time_interval::text from timescaledb_information.dimensions
       where hypertable_name = 'candles'`,
    );
    assertEquals(dims, [{ column_name: "ts", time_interval: "1 day" }]);

    const settings = await rows<
      { attname: string; segmentby_column_index: number | null; orderby_asc: boolean | null }
    >(
      db,
      `select attname, segmentby_column_index, orderby_asc from timescaledb_information.compression_settings
       where hypertable_name = 'candles' order by attname`,
    );
    assertEquals(settings, [
      { attname: "series_id", segmentby_column_index: 1, orderby_asc: null },
      { attname: "ts", segmentby_column_index: null, orderby_asc: false },
    ]);

    const jobs = await rows<{ proc_name: string; after: string }>(
      db,
      `select proc_name, coalesce(config->>'compress_after', config->>'drop_after') as after
       from timescaledb_information.jobs where hypertable_name = 'candles' order by proc_name`,
    );
    assertEquals(jobs.map((j) => j.proc_name), ["policy_compression", "policy_retention"]);
    const intervals = await rows<{ compress: boolean; retain: boolean }>(
      db,
      `select $1::interval = interval '7 days' as compress, $2::interval = interval '365 days' as retain`,
      [jobs[0].after, jobs[1].after],
    );
    assertEquals(intervals, [{ compress: true, retain: true }]);

    // 30 days of 1-minute candles for one series land in about 30 chunks.
    const start = Date.UTC(2024, 0, 1);
    const minutes = 30 * 1440;
    await db.query(
      `insert into candles (series_id, ts, open, high, low, close, volume)
       select 1, to_timestamp(($1::bigint + g::bigint * 60000) / 1000.0), 100 + g % 7, 108, 99, 101, g % 13
       from generate_series(0, $2::int - 1) g`,
      [start, minutes],
    );
    const [count] = await rows<{ n: number }>(db, "select count(*)::int as n from candles");
    assertEquals(count.n, minutes);
    const [chunks] = await rows<{ n: number }>(
      db,
      "select count(*)::int as n from timescaledb_information.chunks where hypertable_name = 'candles'",
    );
    assertAlmostEquals(chunks.n, 30, 1, "chunk count for 30 days");

    // Reconciled on every start: new intervals replace the policies, no retention removes it.
    await applyAll(db, { timescaledb: "auto", compressAfterMs: 3 * DAY }, true);
    const after = await rows<{ proc_name: string; ok: boolean }>(
      db,
      `select proc_name, (config->>'compress_after')::interval = interval '3 days' as ok
       from timescaledb_information.jobs where hypertable_name = 'candles' order by proc_name`,
    );
    assertEquals(after, [{ proc_name: "policy_compression", ok: true }]);

    // Idempotent: applying everything again changes nothing and fails nowhere.
    await applyAll(db, { timescaledb: "require", compressAfterMs: 3 * DAY }, true);
    const [again] = await rows<{ n: number }>(
      db,
      "select count(*)::int as n from timescaledb_information.jobs where hypertable_name = 'candles'",
    );
    assertEquals(again.n, 1);
  } finally {
    await db.close();
  }
});

Deno.test("timescaledb (PGlite): TIMESCALEDB=off leaves a plain table", async () => {
  const db = await PGlite.create({ extensions: { timescaledb } });
  try {
    await applyAll(db, { timescaledb: "off", compressAfterMs: 7 * DAY });
    const [meta] = await rows<{ value: string }>(db, "select value from candlekeep_meta where key = 'timescaledb'");
    assert(meta.value.startsWith("off:"), meta.value);
    const [ext] = await rows<{ n: number }>(
      db,
      "select count(*)::int as n from pg_extension where extname = 'timescaledb'",
    );
    assertEquals(ext.n, 0);
    await assertRejects(() => applyAll(db, { timescaledb: "bogus" as "off", compressAfterMs: DAY }, true));
  } finally {
    await db.close();
  }
});
