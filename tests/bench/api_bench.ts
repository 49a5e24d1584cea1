/**
 * API benchmark: `/v1/candles` over real HTTP against the same query run directly through
 * postgres.js, and the latency of resampling one year of 1-minute candles to 1d.
 *
 * Data: 100 series × 30 days of 1-minute candles (4.32M rows) plus one series with 365 days
 * (525,600 rows), seeded with one `insert … select generate_series` per series (not measured).
 * Database: a fresh database on DATABASE_URL's server when set, else the test server of
 * `tests/support/pg.ts` (TEST_DATABASE_URL or an embedded PostgreSQL 18).
 *
 * Run: deno run --allow-net --allow-sys --allow-env --allow-read --allow-write=./data,/var/lib/candlekeep,/tmp
 *      --allow-run tests/bench/api_bench.ts [--seconds=8] [--series=100]
 *
 * @module
 */
import postgres from "postgres";
import { Database } from "../../src/db/client.ts";
import { migrate } from "../../src/db/migrate.ts";
import { Registry } from "../../src/metrics.ts";
import { serveApi } from "../../src/api/server.ts";
import { createTestDatabase } from "../support/pg.ts";
import type { Config } from "../../src/config_types.ts";

const MIN = 60_000;
const DAY = 86_400_000;

/** Options of {@linkcode runApiBench}. */
export interface ApiBenchOptions {
  /** Series of 30 days of 1m candles (default 100). */
  series?: number;
  /** Days per series (default 30). */
  days?: number;
  /** Concurrent clients (default 8). */
  clients?: number;
  /** Seconds each throughput phase runs (default 8). */
  seconds?: number;
  /** Resample runs (default 15). */
  resampleRuns?: number;
  /** Progress lines; default prints to stderr. */
  log?: (line: string) => void;
}

/** Throughput and latency of one phase. */
export interface PhaseResult {
  requests: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/** What {@linkcode runApiBench} measured. */
export interface ApiBenchResult {
  rows: number;
  /** Through the API as Deno's fetch asks by default (gzip). */
  api: PhaseResult;
  /** Through the API with `Accept-Encoding: identity` (no compression). */
  apiIdentity: PhaseResult;
  direct: PhaseResult;
  /** api.perSecond / direct.perSecond (target ≥ 0.4). */
  ratio: number;
  /** One year of 1m candles resampled to 1d through the API. */
  resample: { p50Ms: number; maxMs: number; buckets: number };
  /** The same resample query directly through postgres.js. */
  resampleDirect: { p50Ms: number };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

function phase(latencies: number[], elapsedMs: number): PhaseResult {
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    requests: latencies.length,
    perSecond: latencies.length / (elapsedMs / 1000),
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
  };
}

/** Runs `clients` loops of `fn` for `seconds` (and at most 100,000 calls each); returns latencies. */
async function load(clients: number, seconds: number, fn: (i: number) => Promise<void>): Promise<PhaseResult> {
  const latencies: number[] = [];
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let counter = 0;
  await Promise.all(Array.from({ length: clients }, async () => {
    for (let n = 0; n < 100_000 && performance.now() < deadline; n++) {
      const t = performance.now();
      await fn(counter++);
      latencies.push(performance.now() - t);
    }
  }));
  return phase(latencies, performance.now() - started);
}

/** A service configuration for the benchmarks' API servers (no exchange is contacted). */
export function benchConfig(): Config {
  return {
    dataDir: "./data",
    exchanges: ["bench"],
    symbols: [],
    topSymbols: 0,
    quote: "USDT",
    timeframes: ["1m"],
    backfillSince: { kind: "earliest" },
    ccxtConfig: {},
    apiHost: "127.0.0.1",
    apiPort: 0,
    logLevel: "warning",
    logFormat: "json",
    liveSchedule: "* * * * *",
    repairSchedule: "0 * * * *",
    timescaledb: "off",
    compressAfterMs: 7 * DAY,
    marketType: "spot",
    backfillConcurrency: 1,
    leaseTtlMs: 60_000,
    dbPoolMax: 10,
    tickBudgetMs: 5_000,
    http: { headerTimeoutMs: 10_000, bodyTimeoutMs: 30_000, idleTimeoutMs: 30_000, maxConnections: 256, maxPages: 8 },
    deploy: false,
  };
}

async function openBenchDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const external = Deno.env.get("DATABASE_URL");
  if (!external) {
    const t = await createTestDatabase();
    await t.sql.end({ timeout: 1 });
    return { url: t.url, drop: () => t.drop() };
  }
  const name = `candlekeep_bench_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
  const admin = postgres(external, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${name}"`);
  await admin.end();
  const u = new URL(external);
  u.pathname = `/${name}`;
  return {
    url: u.toString(),
    async drop() {
      const a = postgres(external, { max: 1, onnotice: () => {} });
      await a.unsafe(`drop database if exists "${name}" with (force)`);
      await a.end();
    },
  };
}

/** Seeds, measures and returns the figures (see the module documentation). */
export async function runApiBench(options: ApiBenchOptions = {}): Promise<ApiBenchResult> {
  const seriesCount = options.series ?? 100;
  const days = options.days ?? 30;
  const clients = options.clients ?? 8;
  const seconds = options.seconds ?? 8;
  const log = options.log ?? ((line: string) => console.error(line));
  const target = await openBenchDatabase();
  const sql = postgres(target.url, { max: 10, onnotice: () => {}, connection: { TimeZone: "UTC" } });
  const direct = postgres(target.url, { max: clients, onnotice: () => {}, connection: { TimeZone: "UTC" } });
  const ac = new AbortController();
  try {
    await migrate(sql, { timescaledb: "off", compressAfterMs: 7 * DAY });
    const end = Date.UTC(2024, 6, 1);
    const start = end - days * DAY;
    const yearStart = end - 365 * DAY;
    const t0 = performance.now();
    const ids: number[] = [];
    for (let i = 0; i < seriesCount + 1; i++) {
      const year = i === seriesCount;
      const [{ id }] = await sql<{ id: number }[]>`
        insert into series (exchange, symbol, timeframe) values ('bench', ${year ? "YEAR/USDT" : `S${i}/USDT`}, '1m')
        returning id`;
      if (!year) ids.push(id);
      const from = year ? yearStart : start;
      // deterministic random walk-ish prices; one statement per series
      await sql`
        insert into candles (series_id, ts, open, high, low, close, volume)
        select ${id}, to_timestamp(${from}::float8 / 1000) + g * interval '1 minute',
               100 + sin(g / 500.0) * 10, 101 + sin(g / 500.0) * 10 + (g % 7) * 0.01,
               99 + sin(g / 500.0) * 10, 100 + sin((g + 1) / 500.0) * 10, 1 + (g::bigint * 7919 % 1000) / 37.0
        from generate_series(0, ${Math.round((end - from) / MIN) - 1}) as g`;
    }
    await sql`vacuum analyze candles`;
    const [{ n: rows }] = await sql<{ n: number }[]>`select count(*)::float8 as n from candles`;
    log(`seeded ${rows.toLocaleString("en-US")} rows in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const db = new Database(sql, "bench");
    const server = serveApi({ db, config: benchConfig(), registry: new Registry() }, {
      hostname: "127.0.0.1",
      port: 0,
      signal: ac.signal,
    });
    const base = `http://127.0.0.1:${server.port}`;
    const pick = (i: number) => {
      const s = (i * 37) % seriesCount;
      const day = (i * 11) % days;
      return { s, from: start + day * DAY, to: start + (day + 1) * DAY };
    };
    // Warm up both paths (and check the API returns the whole day).
    for (let i = 0; i < 20; i++) {
      const { s, from, to } = pick(i);
      const res = await fetch(
        `${base}/v1/candles?exchange=bench&symbol=S${s}/USDT&timeframe=1m&start=${from}&end=${to}&limit=1440`,
      );
      const body = await res.json();
      if (body.candles?.length !== 1440) throw new Error(`Cannot benchmark: the API returned ${res.status}`);
    }
    const directQuery = (i: number) => {
      const { s, from, to } = pick(i);
      return direct`
        select c.ts, c.open, c.high, c.low, c.close, c.volume from candles c
        where c.series_id = ${ids[s]} and c.ts >= to_timestamp(${from}::float8 / 1000)
          and c.ts < to_timestamp(${to}::float8 / 1000)
        order by c.ts`;
    };
    for (let i = 0; i < 20; i++) await directQuery(i);

    log(`direct: ${clients} clients × ${seconds} s …`);
    const directResult = await load(clients, seconds, async (i) => {
      const r = await directQuery(i);
      if (r.length !== 1440) throw new Error(`direct query returned ${r.length} rows`);
    });
    log(`api: ${clients} clients × ${seconds} s …`);
    const apiResult = await load(clients, seconds, async (i) => {
      const { s, from, to } = pick(i);
      const res = await fetch(
        `${base}/v1/candles?exchange=bench&symbol=S${s}/USDT&timeframe=1m&start=${from}&end=${to}&limit=1440`,
      );
      const body = await res.json();
      if (body.candles.length !== 1440) throw new Error(`API returned ${body.candles.length} candles`);
    });
    log(`api without gzip: ${clients} clients × ${seconds} s …`);
    const apiIdentity = await load(clients, seconds, async (i) => {
      const { s, from, to } = pick(i);
      const res = await fetch(
        `${base}/v1/candles?exchange=bench&symbol=S${s}/USDT&timeframe=1m&start=${from}&end=${to}&limit=1440`,
        { headers: { "accept-encoding": "identity" } },
      );
      const body = await res.json();
      if (body.candles.length !== 1440) throw new Error(`API returned ${body.candles.length} candles`);
    });

    const runs = options.resampleRuns ?? 15;
    const resampleMs: number[] = [];
    let buckets = 0;
    const yearUrl = `${base}/v1/candles?exchange=bench&symbol=YEAR/USDT&timeframe=1d&start=${yearStart}&end=${end}`;
    for (let i = 0; i < runs + 2; i++) {
      const t = performance.now();
      const body = await (await fetch(yearUrl)).json();
      const ms = performance.now() - t;
      buckets = body.candles.length;
      if (i >= 2) resampleMs.push(ms);
    }
    const yearId = ids.length > 0
      ? (await sql<{ id: number }[]>`select id from series where symbol = 'YEAR/USDT'`)[0].id
      : 0;
    const directResample: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      await direct`
        with g as materialized (
          select date_bin(interval '1 day', ts, timestamptz '1970-01-01') as b, min(ts) as f, max(ts) as l,
                 max(high) as h, min(low) as lo, sum(volume) as v, count(*) as n
          from candles where series_id = ${yearId}
            and ts >= to_timestamp(${yearStart}::float8 / 1000) and ts < to_timestamp(${end}::float8 / 1000)
          group by 1
        )
        select g.b, (select open from candles o where o.series_id = ${yearId} and o.ts = g.f), g.h, g.lo,
               (select close from candles c where c.series_id = ${yearId} and c.ts = g.l), g.v, g.n
        from g order by g.b`;
      directResample.push(performance.now() - t);
    }
    resampleMs.sort((a, b) => a - b);
    directResample.sort((a, b) => a - b);
    ac.abort();
    await server.finished;
    return {
      rows,
      api: apiResult,
      apiIdentity,
      direct: directResult,
      ratio: apiResult.perSecond / directResult.perSecond,
      resample: { p50Ms: percentile(resampleMs, 0.5), maxMs: resampleMs[resampleMs.length - 1], buckets },
      resampleDirect: { p50Ms: percentile(directResample, 0.5) },
    };
  } finally {
    ac.abort();
    await direct.end({ timeout: 2 }).catch(() => {});
    await sql.end({ timeout: 2 }).catch(() => {});
    await target.drop().catch(() => {});
  }
}

function flag(name: string): number | undefined {
  const arg = Deno.args.find((a) => a.startsWith(`--${name}=`));
  return arg ? Number(arg.split("=")[1]) : undefined;
}

/** Prints the figures of {@linkcode runApiBench}. */
export function printApiBench(r: ApiBenchResult): void {
  const f = (n: number) => n.toFixed(1);
  console.log(`rows stored:                     ${r.rows.toLocaleString("en-US")}`);
  console.log(
    `direct postgres.js (1440 rows):  ${f(r.direct.perSecond)} req/s  p50 ${f(r.direct.p50Ms)} ms  p99 ${
      f(r.direct.p99Ms)
    } ms  (${r.direct.requests} requests)`,
  );
  console.log(
    `API /v1/candles (1440 rows):     ${f(r.api.perSecond)} req/s  p50 ${f(r.api.p50Ms)} ms  p99 ${
      f(r.api.p99Ms)
    } ms  (${r.api.requests} requests)`,
  );
  console.log(
    `API, no gzip (identity):         ${f(r.apiIdentity.perSecond)} req/s  p50 ${f(r.apiIdentity.p50Ms)} ms  p99 ${
      f(r.apiIdentity.p99Ms)
    } ms  (${r.apiIdentity.requests} requests)`,
  );
  console.log(`API / direct throughput:         ${r.ratio.toFixed(2)}× (target ≥ 0.40)`);
  console.log(`API no gzip / direct:            ${(r.apiIdentity.perSecond / r.direct.perSecond).toFixed(2)}×`);
  console.log(
    `1y of 1m → 1d via API:           p50 ${f(r.resample.p50Ms)} ms  max ${
      f(r.resample.maxMs)
    } ms  (${r.resample.buckets} buckets; target < 300 ms)`,
  );
  console.log(`same resample directly:          p50 ${f(r.resampleDirect.p50Ms)} ms`);
}

if (import.meta.main) {
  printApiBench(await runApiBench({ seconds: flag("seconds"), series: flag("series") }));
  Deno.exit(0);
}
