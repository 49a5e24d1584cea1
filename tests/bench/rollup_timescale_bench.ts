/**
 * Rollups on TimescaleDB, measured on PGlite built with TimescaleDB (WASM, one process: figures
 * are relative, a TimescaleDB server is faster) with our migrations:
 *
 * 1. A year of 1m candles of one series written directly (`insert … select generate_series`),
 *    the continuous aggregates refreshed by the service's maintenance; then p50 over 20 runs of
 *    the 1d rollup read for the year (`candles_rollup_fresh` + `select … from candles_1d`) vs the
 *    API's base-row aggregation of the same range, in the same run, with the ratio.
 * 2. Compression: every chunk compressed, the table size; a repair-like write (the service's
 *    upsert) of 1000 rows into 10 old, compressed days; the size after it, and after the
 *    maintenance's recompression.
 *
 * Prints figures; asserts nothing about timing.
 *
 * Run: deno run --no-prompt -P=dev tests/bench/rollup_timescale_bench.ts
 *
 * @module
 */
import { PGlite } from "pglite";
import { timescaledb } from "pglite/timescaledb";
import { applyAll, rows } from "../support/pglite.ts";
import { maintainWith, PARTIAL_CHUNKS_SQL, type RunStatement } from "../../src/db/rollup_maintenance.ts";

const DAY = 86_400_000;
const YEAR_START = "2024-01-01T00:00:00Z";
const YEAR_END = "2024-12-31T00:00:00Z"; // 365 days
const RUNS = 20;

/** The 1d rollup read of the API: freshness check, then the rows of the range. */
const ROLLUP_READ = `select ts, open, high, low, close, volume, n from candles_1d
  where series_id = $1 and ts >= $2::timestamptz and ts < $3::timestamptz order by ts`;
const ROLLUP_FRESH = `select candles_rollup_fresh('1d', $1::timestamptz, $2::timestamptz) as fresh`;

/** The API's base path (src/api/candle_query.ts): hash aggregate, then first/last by primary key. */
const BASE_AGGREGATION = `
with g as materialized (
  select time_bucket(interval '1 day', c.ts) as bucket, min(c.ts) as first_ts, max(c.ts) as last_ts,
         max(c.high) as high, min(c.low) as low, sum(c.volume::text::numeric) as volume, count(*)::int as n
  from candles c
  where c.series_id = $1 and c.ts >= $2::timestamptz and c.ts < $3::timestamptz
  group by 1
)
select g.bucket, g.high, g.low, g.volume, g.n,
       (select o.open from candles o where o.series_id = $1 and o.ts = g.first_ts) as open,
       (select l.close from candles l where l.series_id = $1 and l.ts = g.last_ts) as close
from g order by g.bucket`;

/** The service's upsert (src/ingest/store.ts) of rows given as arrays. */
const REPAIR_WRITE = `
insert into candles as c (series_id, ts, open, high, low, close, volume)
select $1::int, u.t, u.o, u.h, u.l, u.cl, u.v
from unnest($2::timestamptz[], $3::float8[], $4::float8[], $5::float8[], $6::float8[], $7::float8[]) as u(t, o, h, l, cl, v)
on conflict (series_id, ts) do update
  set open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close, volume = excluded.volume
  where (c.open, c.high, c.low, c.close, c.volume)
    is distinct from (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume)`;

function p50(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const value = await fn();
  return [value, performance.now() - t0];
}

function mb(bytes: number): string {
  return `${(bytes / 1_048_576).toFixed(2)} MB`;
}

/** Prints the TimescaleDB rollup figures (see the module documentation). */
export async function runTimescaleRollupBench(): Promise<void> {
  const db = await PGlite.create({ extensions: { timescaledb } });
  const run: RunStatement = async <T>(text: string, params: unknown[] = []) => (await db.query<T>(text, params)).rows;
  const size = async () =>
    (await rows<{ bytes: number }>(db, "select hypertable_size('candles')::float8 as bytes"))[0].bytes;
  try {
    await applyAll(db, { timescaledb: "auto", compressAfterMs: 7 * DAY });
    const [{ id }] = await rows<{ id: number }>(
      db,
      "insert into series (exchange, symbol, timeframe) values ('binance', 'BTC/USDT', '1m') returning id",
    );

    // 1000 minutes of 10 days in the first months are left out, for the repair-like write later.
    const gapDays = Array.from({ length: 10 }, (_, i) => Date.parse(YEAR_START) + (10 + i * 7) * DAY);
    const gaps = gapDays.flatMap((day) => Array.from({ length: 100 }, (_, k) => day + (200 + k * 9) * 60_000));
    const [, insertMs] = await timed(async () => {
      for (let month = 0; month < 12; month++) {
        await db.query(
          `insert into candles (series_id, ts, open, high, low, close, volume)
           select $1::int, m, b, b + (g % 5) * 0.1 + 0.3, b - (g % 3) * 0.1 - 0.2, b + 0.05, (g * 13 % 101) * 0.1 + 0.003
           from generate_series($2::timestamptz, least($2::timestamptz + interval '1 month', $3::timestamptz)
                                - interval '1 minute', interval '1 minute') m,
                lateral (select extract(epoch from m)::bigint / 60 as g) x,
                lateral (select 30000 + (x.g * 7919 % 997) / 7.0 as b) y`,
          [id, new Date(Date.UTC(2024, month, 1)).toISOString(), YEAR_END],
        );
      }
      await db.query("delete from candles where series_id = $1 and ts = any($2::timestamptz[])", [
        id,
        gaps.map((ms) => new Date(ms).toISOString()),
      ]);
    });
    const [{ n }] = await rows<{ n: number }>(db, "select count(*)::int as n from candles");
    console.log(`rows: ${n} 1m candles of one series (${(insertMs / 1000).toFixed(1)} s to insert)`);

    const [first, refreshMs] = await timed(() => maintainWith(run, { recompress: false }));
    console.log(
      `refresh at start: ${first.refreshed.map((r) => r.view).join(", ")} in ${(refreshMs / 1000).toFixed(1)} s`,
    );

    const range = [id, YEAR_START, YEAR_END];
    const rollupMs: number[] = [];
    const freshMs: number[] = [];
    const baseMs: number[] = [];
    let days = 0;
    for (let i = 0; i < RUNS + 1; i++) {
      const [fresh, f] = await timed(() => rows<{ fresh: boolean }>(db, ROLLUP_FRESH, [YEAR_START, YEAR_END]));
      const [read, r] = await timed(() => rows(db, ROLLUP_READ, range));
      const [base, b] = await timed(() => rows(db, BASE_AGGREGATION, range));
      if (!fresh[0].fresh) throw new Error("Cannot measure the rollup read: candles_rollup_fresh is false");
      if (read.length !== base.length) {
        throw new Error(`Cannot compare: current value is ${read.length} rollup rows vs ${base.length} base buckets`);
      }
      days = read.length;
      if (i === 0) continue; // warm-up
      freshMs.push(f);
      rollupMs.push(f + r);
      baseMs.push(b);
    }
    console.log(
      `1d over the year (${days} days), p50 of ${RUNS}: rollup ${p50(rollupMs).toFixed(2)} ms ` +
        `(of which candles_rollup_fresh ${p50(freshMs).toFixed(2)} ms), base-row aggregation ${
          p50(baseMs).toFixed(1)
        } ms, ratio ${(p50(baseMs) / p50(rollupMs)).toFixed(1)}× faster`,
    );

    const uncompressed = await size();
    const [, compressMs] = await timed(() => db.query("select count(compress_chunk(c)) from show_chunks('candles') c"));
    const compressed = await size();
    console.log(
      `compressed every chunk in ${(compressMs / 1000).toFixed(1)} s: candles ${mb(uncompressed)} → ${mb(compressed)}`,
    );

    // The repair: the 1000 missing minutes written back with the service's upsert, a day at a time.
    const [, writeMs] = await timed(async () => {
      for (const day of gapDays) {
        const ts = gaps.filter((ms) => ms >= day && ms < day + DAY);
        await db.query(REPAIR_WRITE, [
          id,
          ts.map((ms) => new Date(ms).toISOString()),
          ts.map(() => 30000),
          ts.map(() => 30001),
          ts.map(() => 29999),
          ts.map(() => 30000.5),
          ts.map(() => 1.25),
        ]);
      }
    });
    const partial = await rows<{ chunk: string; bytes: number }>(db, PARTIAL_CHUNKS_SQL);
    const written = await size();
    console.log(
      `repair-like write of ${gaps.length} rows into ${gapDays.length} compressed days in ${writeMs.toFixed(0)} ms: ` +
        `${partial.length} partial chunks, candles ${mb(written)}`,
    );
    const [result, maintainMs] = await timed(() => maintainWith(run));
    const after = await size();
    console.log(
      `maintenance in ${(maintainMs / 1000).toFixed(1)} s: refreshed ${
        result.refreshed.map((r) => r.view).join(", ") || "nothing"
      }, recompressed ${result.recompressed} chunks (${mb(result.bytesBefore)} → ${mb(result.bytesAfter)}); ` +
        `candles ${mb(after)} (compressed ${mb(compressed)}, after the write ${mb(written)})`,
    );
  } finally {
    await db.close();
  }
}

if (import.meta.main) await runTimescaleRollupBench();
