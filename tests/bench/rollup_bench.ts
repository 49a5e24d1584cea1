/**
 * Rollups benchmark (issue 12), every figure against a baseline measured in the same run:
 *
 * 1. Plain PostgreSQL (the embedded default): a year of 1m of one series written straight into
 *    the database, then `GET /v1/candles` 1d over the year through the real HTTP stack, p50 of
 *    20 requests: from the daily rollup, and with the rollup switched off (the API aggregating
 *    the stored candles), against the base-row SQL aggregation run directly.
 * 2. The write path: `writeCandles` of 1000-candle pages (a backfill) and of single candles (live
 *    updates), rows/s with the rollup triggers and with them disabled, alternating rounds.
 * 3. TimescaleDB (PGlite, WASM: no TimescaleDB server exists here): see
 *    `rollup_timescale_bench.ts`.
 *
 * Run: `deno task bench rollups`.
 *
 * @module
 */
import type { Candle } from "../../src/candle.ts";
import { writeCandles } from "../../src/ingest/store.ts";
import { startApi } from "../api/helpers.ts";

const MIN = 60_000;
const DAY = 86_400_000;

function p50(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const f = (n: number, digits = 1) => n.toFixed(digits);

async function timed(runs: number, fn: () => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < runs + 2; i++) {
    const t = performance.now();
    await fn();
    if (i >= 2) out.push(performance.now() - t);
  }
  return out;
}

function minutes(from: number, count: number, salt: number): Candle[] {
  return Array.from({ length: count }, (_, i) => {
    const open = 100 + ((i * 7919 + salt) % 997) / 13;
    return {
      ts: from + i * MIN,
      open,
      high: open + 0.5,
      low: open - 0.25,
      close: open + 0.125,
      volume: 1 + (i % 17) / 10,
    };
  });
}

const TRIGGERS = ["candles_rollup_insert", "candles_rollup_update", "candles_rollup_delete", "candles_rollup_truncate"];

/** Runs parts 1 and 2 and prints their figures. */
export async function runRollupBench(options: { runs?: number; log?: (line: string) => void } = {}): Promise<void> {
  const log = options.log ?? console.log;
  const runs = options.runs ?? 20;
  const api = await startApi();
  try {
    const sql = api.t.sql;
    const [meta] = await sql<{ value: string }[]>`select value from candlekeep_meta where key = 'rollups'`;
    log(`rollups: ${meta.value}`);

    // 1. A year of 1m, written directly (one statement: the triggers build the rollups).
    const id = await api.series("bench", "YEAR/USDT", "1m");
    const end = Date.UTC(2026, 0, 1);
    const start = end - 365 * DAY;
    let t = performance.now();
    await sql`
      insert into candles (series_id, ts, open, high, low, close, volume)
      select ${id}, to_timestamp(${start / 1000} + g * 60), 100 + (g % 997) / 13.0, 101 + (g % 997) / 13.0,
             99 + (g % 997) / 13.0, 100.5 + (g % 997) / 13.0, 1 + (g % 17) / 10.0
      from generate_series(0, 525599) g`;
    log(`seeded 525,600 candles in one statement in ${f((performance.now() - t) / 1000, 2)} s`);
    const url = `${api.base}/v1/candles?exchange=bench&symbol=YEAR/USDT&timeframe=1d&start=${start}&end=${end}`;
    let source = "";
    const fromRollup = await timed(runs, async () => {
      const body = await (await fetch(url)).json();
      if (body.candles.length !== 365) throw new Error(`Cannot bench: ${body.candles.length} buckets`);
      source = body.source_timeframe;
    });
    // Timeframes served by resampling a rollup: 4h from the hourly one, 1w from the daily one.
    const resampled: string[] = [];
    for (const [tf, buckets] of [["4h", 2190], ["1w", 51]] as const) {
      const u =
        `${api.base}/v1/candles?exchange=bench&symbol=YEAR/USDT&timeframe=${tf}&start=${start}&end=${end}&limit=10000`;
      let read = "";
      const ms = await timed(runs, async () => {
        const body = await (await fetch(u)).json();
        if (body.candles.length < buckets) throw new Error(`Cannot bench: ${body.candles.length} ${tf} buckets`);
        read = body.source_timeframe;
      });
      resampled.push(`1y of 1m → ${tf} via API (${read} rollup): p50 ${f(p50(ms))} ms`);
    }
    // The cheapest exact aggregation of the stored candles: one statement, hash aggregate, two
    // primary-key probes per day for open and close, exact numeric volume.
    const direct = await timed(runs, async () => {
      const rows = await sql`
        select g.b, (select open from candles o where o.series_id = ${id} and o.ts = g.f) as open, g.h, g.lo,
               (select close from candles c where c.series_id = ${id} and c.ts = g.l) as close, g.v, g.n
        from (
          select date_bin(interval '1 day', ts, timestamptz 'epoch') as b, min(ts) as f, max(ts) as l,
                 max(high) as h, min(low) as lo, sum(volume::text::numeric) as v, count(*) as n
          from candles where series_id = ${id}
            and ts >= to_timestamp(${start}::float8 / 1000) and ts < to_timestamp(${end}::float8 / 1000)
          group by 1
        ) g order by g.b`;
      if (rows.length !== 365) throw new Error(`Cannot bench: ${rows.length} buckets`);
    });
    // The API as it was before rollups: the same request, aggregating the stored candles.
    await sql`alter function candles_rollup_fresh(text, timestamptz, timestamptz) rename to candles_rollup_fresh_bench`;
    await sql`create function candles_rollup_fresh(text, timestamptz, timestamptz) returns boolean
      language sql as $$ select false $$`;
    let baseSource = "";
    const fromCandles = await timed(runs, async () => {
      const body = await (await fetch(url)).json();
      if (body.candles.length !== 365) throw new Error(`Cannot bench: ${body.candles.length} buckets`);
      baseSource = body.source_timeframe;
    });
    await sql`drop function candles_rollup_fresh(text, timestamptz, timestamptz)`;
    await sql`alter function candles_rollup_fresh_bench(text, timestamptz, timestamptz) rename to candles_rollup_fresh`;
    log(
      `1y of 1m → 1d via API, rollup (${source}):     p50 ${f(p50(fromRollup))} ms  max ${
        f(Math.max(...fromRollup))
      } ms  (goal < 20 ms)`,
    );
    log(`same via API, no rollup (${baseSource}):        p50 ${f(p50(fromCandles))} ms`);
    log(`base-row aggregation in SQL, direct: p50 ${f(p50(direct))} ms`);
    for (const line of resampled) log(line);
    log(`rollup API vs direct base SQL:       ${f(p50(direct) / p50(fromRollup))}× faster`);

    // 2. The write path, with and without the triggers, alternating rounds on fresh series; the
    // ratio is the median of the rounds' ratios (checkpoints and the like hit one round, not all).
    const rounds = 5;
    const pages = 43; // 43,000 candles ≈ 30 days of 1m per round
    const live = 600;
    const bulk: Record<"with" | "without", number[]> = { with: [], without: [] };
    const single: Record<"with" | "without", number[]> = { with: [], without: [] };
    for (let round = 0; round < rounds; round++) {
      const modes = round % 2 === 0 ? (["with", "without"] as const) : (["without", "with"] as const);
      for (const mode of modes) {
        for (const name of TRIGGERS) {
          await sql`alter table candles ${mode === "with" ? sql`enable` : sql`disable`} trigger ${sql(name)}`;
        }
        const sid = await api.series("bench", `W${round}${mode}/USDT`, "1m");
        const from = Date.UTC(2025, 0, 1);
        t = performance.now();
        for (let p = 0; p < pages; p++) await writeCandles(sql, sid, minutes(from + p * 1000 * MIN, 1000, round));
        bulk[mode].push((pages * 1000) / ((performance.now() - t) / 1000));
        const liveFrom = from + pages * 1000 * MIN;
        t = performance.now();
        for (let i = 0; i < live; i++) await writeCandles(sql, sid, minutes(liveFrom + i * MIN, 1, i));
        single[mode].push((performance.now() - t) / live);
      }
    }
    for (const name of TRIGGERS) await sql`alter table candles enable trigger ${sql(name)}`;
    const ratios = (a: number[], b: number[]) => a.map((x, i) => x / b[i]);
    log(`backfill pages (1000 candles), with rollups:    ${f(p50(bulk.with), 0)} rows/s (median of ${rounds} rounds)`);
    log(`backfill pages (1000 candles), without rollups: ${f(p50(bulk.without), 0)} rows/s`);
    log(`with / without:                                 ${f(p50(ratios(bulk.with, bulk.without)), 2)}× (goal ≥ 0.8)`);
    log(`live writes (1 candle), with rollups:    ${f(p50(single.with), 2)} ms each`);
    log(`live writes (1 candle), without rollups: ${f(p50(single.without), 2)} ms each`);
    log(`with / without (rows/s):                 ${f(p50(ratios(single.without, single.with)), 2)}×`);
    // The rollups written by the triggers are still exact.
    const [check] = await sql<{ bad: number }[]>`
      select count(*)::int as bad from candles_1d d
      where d.n <> (select count(*) from candles c where c.series_id = d.series_id
                    and c.ts >= d.ts and c.ts < d.ts + interval '24 hours')`;
    log(`daily rollup rows whose count disagrees with the candles: ${check.bad}`);
  } finally {
    await api.close();
  }
}
