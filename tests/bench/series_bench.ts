/**
 * Series list benchmark: `GET /v1/series` with 100 series × 21 days of 1-minute candles stored
 * (3,024,000 rows, a missing candle every 997), p50 over 20 requests, against the query it
 * replaced (a `count(*)`/`min`/`max` per series and a full gap scan per series, run directly
 * through postgres.js in the same run); and the write path with and without the statistics
 * kept by `writeCandles` (rows/s, pages of 1,000 into empty tables).
 *
 * Run: `deno task bench series` (or `deno run --no-prompt -P=dev tests/bench/series_bench.ts`).
 *
 * @module
 */
import postgres from "postgres";
import type { Candle } from "../../src/candle.ts";
import { Database } from "../../src/db/client.ts";
import { migrate } from "../../src/db/migrate.ts";
import { refreshSeriesStats } from "../../src/db/overview.ts";
import { Registry } from "../../src/metrics.ts";
import { serveApi } from "../../src/api/server.ts";
import { summarizeGaps } from "../../src/ingest/gaps.ts";
import { writeCandles } from "../../src/ingest/store.ts";
import { createTestDatabase } from "../support/pg.ts";
import { benchConfig } from "./api_bench.ts";

const MIN = 60_000;
const DAY = 86_400_000;
const SETTINGS = { timescaledb: "off", compressAfterMs: 7 * DAY } as const;

/** Options of {@linkcode runSeriesBench}. */
export interface SeriesBenchOptions {
  series?: number;
  days?: number;
  /** Requests per measured phase (default 20). */
  requests?: number;
  /** Rows per series of the write-path comparison (default 2,000; 100 series). */
  writeRows?: number;
  log?: (line: string) => void;
}

/** What {@linkcode runSeriesBench} measured. */
export interface SeriesBenchResult {
  series: number;
  rows: number;
  /** The replaced query, run directly: p50 and max in ms. */
  before: { p50Ms: number; maxMs: number };
  /** GET /v1/series over HTTP with the statistics and gap caches warm. */
  after: { p50Ms: number; maxMs: number };
  /** The one-time exact recount after the seeding by SQL, and the first request (fills the gap caches). */
  recountMs: number;
  firstRequestMs: number;
  /** GET /v1/series right after one new candle was written to every series (gap deltas only). */
  afterLiveTick: { p50Ms: number; maxMs: number };
  /** writeCandles rows/s with the statistics, the same statement without them, and the ratio. */
  write: { withStats: number; withoutStats: number; ratio: number };
}

function stats(ms: number[]): { p50Ms: number; maxMs: number } {
  const sorted = [...ms].sort((a, b) => a - b);
  return { p50Ms: sorted[Math.floor(sorted.length / 2)], maxMs: sorted[sorted.length - 1] };
}

/** The overview query this issue replaced: counted every series' candles on every request. */
async function oldOverview(sql: postgres.Sql): Promise<number> {
  const rows = await sql<{ id: number; n: number }[]>`
    select s.id, (extract(epoch from st.first_ts) * 1000)::float8 as "firstTs",
           (extract(epoch from st.last_ts) * 1000)::float8 as "lastTs", st.n::float8 as n,
           h.ranges::int as "holeRanges", coalesce(h.ms, 0)::float8 as "holeMs"
    from series s
    left join lateral (
      select min(c.ts) as first_ts, max(c.ts) as last_ts, count(*) as n from candles c where c.series_id = s.id
    ) st on true
    left join lateral (
      select count(*) as ranges, sum(extract(epoch from (ch.to_ts - ch.from_ts)) * 1000) as ms
      from confirmed_holes ch where ch.series_id = s.id
    ) h on true
    order by s.id`;
  let missing = 0;
  let next = 0;
  const worker = async () => {
    while (next < rows.length) {
      const r = rows[next++];
      if (r.n < 2) continue;
      const gaps = await summarizeGaps(sql, r.id, MIN);
      missing += gaps.missing;
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return missing;
}

/** The write statement before this issue: the same upsert without the statistics. */
async function writeWithoutStats(sql: postgres.Sql, seriesId: number, candles: readonly Candle[]): Promise<void> {
  const col = (f: (c: Candle) => number) => candles.map(f);
  await sql`
    with written as (
      insert into candles_plain as c (series_id, ts, open, high, low, close, volume)
      select ${seriesId}::int, to_timestamp(t / 1000.0), o, h, l, cl, v
      from unnest(
        ${col((c) => c.ts)}::float8[], ${col((c) => c.open)}::float8[], ${col((c) => c.high)}::float8[],
        ${col((c) => c.low)}::float8[], ${col((c) => c.close)}::float8[], ${col((c) => c.volume)}::float8[]
      ) as u(t, o, h, l, cl, v)
      on conflict (series_id, ts) do update
        set open = excluded.open, high = excluded.high, low = excluded.low,
            close = excluded.close, volume = excluded.volume
        where (c.open, c.high, c.low, c.close, c.volume)
          is distinct from (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume)
      returning (xmax = 0) as fresh
    )
    select count(*) filter (where fresh)::int as inserted, count(*) filter (where not fresh)::int as updated
    from written`;
}

function page(seriesIndex: number, from: number, count: number): Candle[] {
  return Array.from({ length: count }, (_, i) => {
    const p = 100 + seriesIndex + Math.sin((from / MIN + i) / 300) * 5;
    return { ts: from + i * MIN, open: p, high: p + 0.5, low: p - 0.5, close: p + 0.1, volume: 1 + (i % 17) };
  });
}

async function writePath(
  sql: postgres.Sql,
  options: { series: number; rows: number; log: (line: string) => void },
): Promise<SeriesBenchResult["write"]> {
  await sql`create table candles_plain (like candles including all)`;
  const start = Date.UTC(2024, 0, 1);
  const data = Array.from({ length: options.series }, (_, s) => page(s, start, options.rows));
  const total = options.series * options.rows;
  const run = async (round: number, write: (id: number, candles: Candle[]) => Promise<unknown>) => {
    const t = performance.now();
    for (let s = 0; s < options.series; s++) {
      for (let i = 0; i < options.rows; i += 1000) await write(round * 1000 + s + 1, data[s].slice(i, i + 1000));
    }
    return total / ((performance.now() - t) / 1000);
  };
  // Two rounds each, interleaved, on fresh series ids; the better round of each counts.
  const withStats: number[] = [];
  const withoutStats: number[] = [];
  for (let round = 0; round < 2; round++) {
    withoutStats.push(await run(round, (id, c) => writeWithoutStats(sql, id, c)));
    withStats.push(await run(round, (id, c) => writeCandles(sql, id, c)));
  }
  const best = { withStats: Math.max(...withStats), withoutStats: Math.max(...withoutStats) };
  options.log(
    `write path: ${total} rows, ${Math.round(best.withStats)} rows/s with statistics, ${
      Math.round(best.withoutStats)
    } rows/s without`,
  );
  return { ...best, ratio: best.withStats / best.withoutStats };
}

/** Seeds, measures and returns the figures (see the module documentation). */
export async function runSeriesBench(options: SeriesBenchOptions = {}): Promise<SeriesBenchResult> {
  const seriesCount = options.series ?? 100;
  const days = options.days ?? 21;
  const requests = options.requests ?? 20;
  const log = options.log ?? ((line: string) => console.error(line));
  const writeDb = await createTestDatabase();
  let write: SeriesBenchResult["write"];
  try {
    await migrate(writeDb.sql, SETTINGS);
    write = await writePath(writeDb.sql, { series: seriesCount, rows: options.writeRows ?? 2000, log });
  } finally {
    await writeDb.drop();
  }

  const t = await createTestDatabase();
  await t.sql.end({ timeout: 1 });
  const sql = postgres(t.url, { max: 10, onnotice: () => {}, connection: { TimeZone: "UTC" } });
  const ac = new AbortController();
  try {
    await migrate(sql, SETTINGS);
    const end = Date.UTC(2024, 6, 1);
    const start = end - days * DAY;
    const seeded = performance.now();
    for (let i = 0; i < seriesCount; i++) {
      const [{ id }] = await sql<{ id: number }[]>`
        insert into series (exchange, symbol, timeframe) values ('bench', ${`S${i}/USDT`}, '1m') returning id`;
      await sql`
        insert into candles (series_id, ts, open, high, low, close, volume)
        select ${id}, to_timestamp(${start}::float8 / 1000) + g * interval '1 minute',
               100 + sin(g / 500.0) * 10, 101 + sin(g / 500.0) * 10, 99 + sin(g / 500.0) * 10,
               100 + sin((g + 1) / 500.0) * 10, 1 + (g % 37)
        from generate_series(0, ${days * 1440 - 1}) as g
        where (g + ${i}) % 997 <> 0 or g = 0 or g = ${days * 1440 - 1}`;
    }
    await sql`vacuum analyze candles`;
    const [{ n: rows }] = await sql<{ n: number }[]>`select count(*)::float8 as n from candles`;
    let expectedRows = rows;
    log(`seeded ${rows.toLocaleString("en-US")} rows in ${((performance.now() - seeded) / 1000).toFixed(1)} s`);

    // The seeding was SQL behind the service's back: the first reader recounts once.
    let clock = performance.now();
    if (!(await refreshSeriesStats(sql))) throw new Error("Cannot trust the run: the SQL seeding was not noticed");
    const recountMs = performance.now() - clock;

    const beforeMs: number[] = [];
    let oldMissing = 0;
    for (let i = 0; i < requests; i++) {
      clock = performance.now();
      oldMissing = await oldOverview(sql);
      beforeMs.push(performance.now() - clock);
    }
    log(`before (the replaced query, direct): p50 ${stats(beforeMs).p50Ms.toFixed(1)} ms`);

    const server = serveApi({ db: new Database(sql, "bench"), config: benchConfig(), registry: new Registry() }, {
      hostname: "127.0.0.1",
      port: 0,
      signal: ac.signal,
    });
    const url = `http://127.0.0.1:${server.port}/v1/series`;
    const get = async () => {
      const started = performance.now();
      const res = await fetch(url);
      const body = await res.json() as { series: { count: number; gaps: { missing: number } }[] };
      const ms = performance.now() - started;
      const missing = body.series.reduce((sum, s) => sum + s.gaps.missing, 0);
      const count = body.series.reduce((sum, s) => sum + s.count, 0);
      if (res.status !== 200 || missing !== oldMissing || count !== expectedRows) {
        throw new Error(`Cannot trust the run: ${res.status}, ${count} rows and ${missing} missing in the API`);
      }
      return ms;
    };
    const firstRequestMs = await get();
    const afterMs: number[] = [];
    for (let i = 0; i < requests; i++) afterMs.push(await get());
    log(`after (GET /v1/series): p50 ${stats(afterMs).p50Ms.toFixed(1)} ms`);

    // A live tick: one new candle per series (after a one-candle gap), then the dashboard's poll.
    const tickMs: number[] = [];
    const ids = (await sql<{ id: number }[]>`select id from series order by id`).map((r) => r.id);
    for (let i = 0; i < requests; i++) {
      const ts = end + (2 * i + 1) * MIN;
      for (const [s, id] of ids.entries()) await writeCandles(sql, id, page(s, ts, 1));
      oldMissing += ids.length; // one more missing candle per series
      expectedRows += ids.length;
      tickMs.push(await get());
    }
    const result: SeriesBenchResult = {
      series: seriesCount,
      rows,
      before: stats(beforeMs),
      after: stats(afterMs),
      recountMs,
      firstRequestMs,
      afterLiveTick: stats(tickMs),
      write,
    };
    printSeriesBench(result);
    return result;
  } finally {
    ac.abort();
    await sql.end({ timeout: 1 });
    await t.drop();
  }
}

/** Prints the figures as the README's table. */
export function printSeriesBench(r: SeriesBenchResult): void {
  const f = (ms: number) => `${ms.toFixed(1)} ms`;
  console.log(`\nGET /v1/series with ${r.rows.toLocaleString("en-US")} candles in ${r.series} series`);
  console.log("| path | p50 | max |");
  console.log("| --- | --- | --- |");
  console.log(`| replaced query (count + gap scan per series), direct | ${f(r.before.p50Ms)} | ${f(r.before.maxMs)} |`);
  console.log(`| GET /v1/series (statistics and gap caches) | ${f(r.after.p50Ms)} | ${f(r.after.maxMs)} |`);
  console.log(
    `| GET /v1/series after a live tick (1 new candle per series) | ${f(r.afterLiveTick.p50Ms)} | ${
      f(r.afterLiveTick.maxMs)
    } |`,
  );
  console.log(`ratio p50 after/before: ${(r.after.p50Ms / r.before.p50Ms).toFixed(3)}×`);
  console.log(
    `one-time recount after SQL writes: ${f(r.recountMs)}; first request (fills the gap caches): ${
      f(r.firstRequestMs)
    }`,
  );
  console.log(
    `write path: ${Math.round(r.write.withStats)} rows/s with statistics, ${
      Math.round(r.write.withoutStats)
    } without: ${r.write.ratio.toFixed(2)}× (target ≥ 0.8×)`,
  );
}

if (import.meta.main) {
  await runSeriesBench();
  Deno.exit(0);
}
