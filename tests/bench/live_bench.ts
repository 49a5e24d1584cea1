/**
 * Live benchmark: 50 live 1m spot series kept live over WebSocket (`LIVE_MODE=ws`) and the same
 * 50 series over REST (`LIVE_MODE=rest`), each by its own engine (the service loop,
 * `Ingestor.start`) against its own fake exchange and database, both at once on the wall clock.
 * The live tick is called at every minute boundary + 1 s, as `Deno.cron("* * * * *")` would.
 *
 * Figures, over a window of whole minutes that starts once both engines are live:
 * - close-to-commit latency: each database is polled every 100 ms for new rows; a row's latency
 *   is the time its poll returned minus its candle's close (the same measure for both modes;
 *   an upper bound, within the poll period plus one query);
 * - REST requests and weight counted by each fake in the window, and their ratio ws / rest;
 * - whether every candle of the window was stored, equal to the exchange's;
 * - the process's peak RSS (`Deno.memoryUsage().rss` each second; both engines and both fakes).
 *
 * Run: deno task bench live (LIVE_BENCH_MINUTES=1 for a quick sanity run; default 5;
 *      LIVE_BENCH_SERIES, default 50; LIVE_BENCH_REST_CHECK sets the ws engine's LIVE_REST_CHECK).
 *
 * @module
 */
import postgres from "postgres";
import { createPool, Database } from "../../src/db/client.ts";
import { Registry } from "../../src/metrics.ts";
import type { FakeMarket } from "../support/fake_exchange.ts";
import { type IngestWorld, ingestWorld } from "../ingest/helpers.ts";

const MIN = 60_000;
const DAY = 86_400_000;
/** Where the live tick fires after each minute boundary. */
const TICK_AFTER_MS = 1000;
const POLL_MS = 100;

/** Options of {@linkcode runLiveBench}. */
export interface LiveBenchOptions {
  /** Minutes measured (default 5). */
  minutes?: number;
  /** Live 1m series per mode (default 50). */
  series?: number;
  /** `LIVE_REST_CHECK` of the ws engine (default: the service's, 15m). */
  restCheck?: string;
  /** Progress lines; default prints to stderr. */
  log?: (line: string) => void;
}

/** What one mode did in the window. */
export interface LiveModeResult {
  mode: "ws" | "rest";
  /** Close-to-commit latency of every candle of the window, ms, sorted. */
  latenciesMs: number[];
  /** Candles of the window expected (series × minutes), not seen, or not equal to the exchange's. */
  expected: number;
  missing: number;
  wrong: number;
  /** REST requests and weight in the window (whole run in brackets). */
  restRequests: number;
  restWeight: number;
  klinesRequests: number;
  runRequests: number;
  runWeight: number;
  /** ws only: mean and count of `candlekeep_ws_close_to_commit_seconds` (the engine's own timing). */
  histogram?: { count: number; meanMs: number };
  /** ws only: kline events the fake sent and WebSocket connections it accepted. */
  wsEvents?: number;
  wsConnections?: number;
}

/** What {@linkcode runLiveBench} measured. */
export interface LiveBenchResult {
  minutes: number;
  series: number;
  ws: LiveModeResult;
  rest: LiveModeResult;
  /** Resident set size when the benchmark began (modules loaded, nothing started), and its peak, bytes. */
  startRss: number;
  peakRss: number;
  /** The ws engine's `LIVE_REST_CHECK`, ms. */
  restCheckMs: number;
}

/** `count` active USDT markets listed 30 days ago (the fake's defaults list only four). */
function benchMarkets(count: number, now: number): FakeMarket[] {
  const listedAt = Math.floor((now - 30 * DAY) / MIN) * MIN;
  return Array.from({ length: count }, (_, i) => ({
    symbol: `L${String(i).padStart(2, "0")}/USDT`,
    listedAt,
    basePrice: 1 + i * 7.5,
    quoteVolume24h: 1e9 - i * 1e6,
  }));
}

interface Side {
  mode: "ws" | "rest";
  world: IngestWorld;
  registry: Registry;
  engine: ReturnType<IngestWorld["ingestor"]>;
  pool: ReturnType<typeof createPool>;
  /** First time each `seriesId:ts` was seen by the poller. */
  seen: Map<string, number>;
}

async function openSide(mode: "ws" | "rest", markets: FakeMarket[], restCheck?: string): Promise<Side> {
  const world = await ingestWorld({
    markets,
    env: {
      SYMBOLS: markets.map((m) => m.symbol).join(","),
      TIMEFRAMES: "1m",
      BACKFILL_SINCE: "30m",
      LIVE_MODE: mode,
      LOG_LEVEL: "warning",
      ...(restCheck ? { LIVE_REST_CHECK: restCheck } : {}),
    },
    ws: { clock: "wall" },
  });
  const registry = new Registry();
  // The service's pool size and lease timeout, not the tests' small ones.
  const pool = createPool(world.t.url, { max: world.config.dbPoolMax });
  const db = new Database(pool, world.t.name);
  const engine = world.ingestor({ db, registry, leaseTtlMs: world.config.leaseTtlMs });
  return { mode, world, registry, engine, pool, seen: new Map() };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));

/** Resolves when `condition` holds (checked every 200 ms), or throws after `timeoutMs`. */
async function waitFor(condition: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`Cannot wait for ${what}: still false after ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** Every series has every closed candle up to now. */
async function caughtUp(side: Side, seriesCount: number): Promise<boolean> {
  const closedUpTo = Math.floor(Date.now() / MIN) * MIN - MIN;
  const [{ n }] = await side.pool<{ n: number }[]>`
    select count(*)::int as n from series s
    where s.active and exists (select 1 from candles c where c.series_id = s.id and c.ts >= ${new Date(closedUpTo)})`;
  return n >= seriesCount;
}

/** Runs the benchmark (see the module documentation). */
export async function runLiveBench(options: LiveBenchOptions = {}): Promise<LiveBenchResult> {
  const minutes = options.minutes ?? 5;
  const seriesCount = options.series ?? 50;
  const log = options.log ?? ((line: string) => console.error(line));
  const startRss = Deno.memoryUsage().rss;
  let peakRss = startRss;
  const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, Deno.memoryUsage().rss)), 1000);
  const markets = benchMarkets(seriesCount, Date.now());
  const sides: Side[] = [];
  let ticking = true;
  let tickLoop: Promise<void> = Promise.resolve();
  const pollers: Promise<void>[] = [];
  let polling = true;
  try {
    sides.push(...await Promise.all([openSide("ws", markets, options.restCheck), openSide("rest", markets)]));
    const t0 = performance.now();
    await Promise.all(sides.map((s) => s.engine.start({ cron: false })));
    // The live tick, as Deno.cron would call it: every minute boundary + 1 s.
    tickLoop = (async () => {
      while (ticking) {
        const next = Math.floor(Date.now() / MIN) * MIN + MIN + TICK_AFTER_MS;
        while (ticking && Date.now() < next) await sleep(Math.min(250, next - Date.now()));
        if (!ticking) return;
        await Promise.all(sides.map((s) => s.engine.liveTick().catch(() => false)));
      }
    })();
    const ws = sides[0];
    const connections = () => ws.registry.gauge("candlekeep_ws_connections", "").get({ exchange: "binance" });
    await waitFor(
      async () => (connections() ?? 0) >= 1 && await caughtUp(ws, seriesCount),
      "the ws engine to be live",
      180_000,
    );
    await waitFor(() => caughtUp(sides[1], seriesCount), "the rest engine to be live", 180_000);
    log(`both engines live after ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // The window: `minutes` whole minutes from the next boundary M0; its candles close at
    // M0, M0 + 1 min, …; the counters are read just before M0 and just before M0 + minutes.
    const m0 = Math.floor(Date.now() / MIN) * MIN + MIN;
    const firstTs = m0 - MIN;
    for (const side of sides) {
      const reader = postgres(side.world.t.url, { max: 1, onnotice: () => {} });
      pollers.push((async () => {
        try {
          while (polling) {
            const rows = await reader<{ series_id: number; ts: Date }[]>`
              select series_id, ts from candles where ts >= ${new Date(firstTs)}`;
            const at = Date.now();
            for (const r of rows) {
              const k = `${r.series_id}:${r.ts.getTime()}`;
              if (!side.seen.has(k)) side.seen.set(k, at);
            }
            await sleep(POLL_MS);
          }
        } finally {
          await reader.end({ timeout: 1 });
        }
      })());
    }
    await sleep(m0 - 500 - Date.now());
    const before = sides.map((s) => ({ ...s.world.fake.stats, byPath: { ...s.world.fake.stats.byPath } }));
    log(`window: ${minutes} min from ${new Date(m0).toISOString()}`);
    for (let k = 1; k <= minutes; k++) {
      await sleep(m0 + k * MIN - 500 - Date.now());
      if (k < minutes) log(`  minute ${k}/${minutes}`);
    }
    const after = sides.map((s) => ({ ...s.world.fake.stats, byPath: { ...s.world.fake.stats.byPath } }));
    // The last candle of the window closed half a second ago: give its REST tick time to land.
    const lastClose = firstTs + minutes * MIN;
    const expectedKeys = (side: Side) => {
      const keys: string[] = [];
      for (const id of side.engine.owned) {
        for (let ts = firstTs; ts < lastClose; ts += MIN) keys.push(`${id}:${ts}`);
      }
      return keys;
    };
    await waitFor(
      () => Promise.resolve(sides.every((s) => expectedKeys(s).every((k) => s.seen.has(k)))),
      "the window's last candles",
      30_000,
    ).catch((error) => log(String(error)));
    polling = false;
    ticking = false;
    await Promise.all(pollers);
    await tickLoop;

    const results: LiveModeResult[] = [];
    for (const [i, side] of sides.entries()) {
      const keys = expectedKeys(side);
      const latenciesMs = keys.filter((k) => side.seen.has(k))
        .map((k) => side.seen.get(k)! - (Number(k.split(":")[1]) + MIN))
        .sort((a, b) => a - b);
      const rows = await side.pool<
        { symbol: string; ts: Date; open: number; high: number; low: number; close: number; volume: number }[]
      >`
        select s.symbol, c.ts, c.open, c.high, c.low, c.close, c.volume
        from candles c join series s on s.id = c.series_id
        where c.ts >= ${new Date(firstTs)} and c.ts < ${new Date(lastClose)} order by s.symbol, c.ts`;
      let wrong = 0;
      for (const m of markets) {
        const want = side.world.fake.expected(m.symbol, "1m", firstTs, lastClose);
        const have = new Map(rows.filter((r) => r.symbol === m.symbol).map((r) => [r.ts.getTime(), r]));
        for (const c of want) {
          const r = have.get(c.ts);
          if (
            r && (r.open !== c.open || r.high !== c.high || r.low !== c.low || r.close !== c.close ||
              r.volume !== c.volume)
          ) wrong++;
        }
      }
      const b = before[i];
      const a = after[i];
      const result: LiveModeResult = {
        mode: side.mode,
        latenciesMs,
        expected: seriesCount * minutes,
        missing: seriesCount * minutes - latenciesMs.length,
        wrong,
        restRequests: a.requests - b.requests,
        restWeight: a.weight - b.weight,
        klinesRequests: (a.byPath["/api/v3/klines"] ?? 0) - (b.byPath["/api/v3/klines"] ?? 0),
        runRequests: a.requests,
        runWeight: a.weight,
      };
      if (side.mode === "ws") {
        const text = await side.registry.render();
        const count = Number(/candlekeep_ws_close_to_commit_seconds_count\{[^}]*\} (\S+)/.exec(text)?.[1] ?? 0);
        const sum = Number(/candlekeep_ws_close_to_commit_seconds_sum\{[^}]*\} (\S+)/.exec(text)?.[1] ?? 0);
        result.histogram = { count, meanMs: count > 0 ? (sum / count) * 1000 : NaN };
        result.wsEvents = side.world.fake.ws.stats.eventsOut;
        result.wsConnections = side.world.fake.ws.stats.connections;
      }
      results.push(result);
    }
    const restCheckMs = sides[0].world.config.live?.restCheckMs ?? 15 * MIN;
    return { minutes, series: seriesCount, ws: results[0], rest: results[1], startRss, peakRss, restCheckMs };
  } finally {
    polling = false;
    ticking = false;
    clearInterval(rssTimer);
    await Promise.allSettled(pollers);
    await tickLoop.catch(() => {});
    for (const side of sides) {
      await side.engine.stop(2000).catch(() => {});
      await side.pool.end({ timeout: 1 }).catch(() => {});
      await side.world.close().catch(() => {});
    }
  }
}

/** Prints the figures of {@linkcode runLiveBench}. */
export function printLiveBench(r: LiveBenchResult): void {
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  console.log(`${r.series} live 1m spot series per mode, ${r.minutes} min window, both modes at once`);
  for (const m of [r.ws, r.rest]) {
    const l = m.latenciesMs;
    console.log(
      `${m.mode.padEnd(5)} close→commit: p50 ${s(percentile(l, 0.5))}  p99 ${s(percentile(l, 0.99))}  max ${
        s(l[l.length - 1] ?? NaN)
      }  (${l.length} candles; missing ${m.missing}, not equal to the exchange's ${m.wrong})`,
    );
  }
  if (r.ws.histogram) {
    console.log(
      `ws    histogram candlekeep_ws_close_to_commit_seconds: ${r.ws.histogram.count} closes, mean ${
        s(r.ws.histogram.meanMs)
      } (engine's own timing; ${r.ws.wsConnections} connections, ${r.ws.wsEvents} kline events sent)`,
    );
  }
  for (const m of [r.ws, r.rest]) {
    console.log(
      `${
        m.mode.padEnd(5)
      } REST in the window: ${m.restRequests} requests (${m.klinesRequests} klines), weight ${m.restWeight}` +
        `  [whole run incl. start-up and backfill: ${m.runRequests} requests, weight ${m.runWeight}]`,
    );
  }
  const ratio = r.rest.restWeight > 0 ? r.ws.restWeight / r.rest.restWeight : NaN;
  console.log(`REST weight ws / rest:  ${(ratio * 100).toFixed(1)} % in the window (target < 10 %)`);
  // In the steady state a streamed series costs one klines request per LIVE_REST_CHECK, where
  // REST mode makes one per minute: the window may hold none of those checks.
  const perCheck = MIN / r.restCheckMs;
  console.log(
    `  steady state, LIVE_REST_CHECK=${r.restCheckMs / MIN}m: one klines request per series per check → ${
      (perCheck * 100).toFixed(1)
    } % of REST mode's klines weight`,
  );
  console.log(`ws p99 target < 2 s:    ${percentile(r.ws.latenciesMs, 0.99) < 2000 ? "met" : "missed"}`);
  const mib = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MiB`;
  console.log(`peak RSS (process: both engines and both fakes): ${mib(r.peakRss)} (at the start: ${mib(r.startRss)})`);
}

if (import.meta.main) {
  const minutes = Number(Deno.env.get("LIVE_BENCH_MINUTES") ?? 5);
  const series = Number(Deno.env.get("LIVE_BENCH_SERIES") ?? 50);
  printLiveBench(await runLiveBench({ minutes, series, restCheck: Deno.env.get("LIVE_BENCH_REST_CHECK") }));
  Deno.exit(0);
}
