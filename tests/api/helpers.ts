/**
 * Shared setup of the API tests: a fresh migrated database, the API served over real HTTP on
 * port 0, and seeding through the ingestion write path.
 *
 * @module
 */
import type { Candle } from "../../src/candle.ts";
import type { Config } from "../../src/config_types.ts";
import { Database } from "../../src/db/client.ts";
import { migrate } from "../../src/db/migrate.ts";
import { registerSeries } from "../../src/ingest/series.ts";
import { writeCandles } from "../../src/ingest/store.ts";
import { Registry } from "../../src/metrics.ts";
import { type ApiDeps, type IngestControl, serveApi } from "../../src/api/server.ts";
import { createTestDatabase, type TestDatabase } from "../support/pg.ts";

/** Migration settings used by every API test. */
export const SETTINGS = { timescaledb: "auto", compressAfterMs: 7 * 86_400_000 } as const;

export const MIN = 60_000;
export const HOUR = 60 * MIN;
export const DAY = 24 * HOUR;

/** A complete Config for tests. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return {
    dataDir: "./data",
    exchanges: ["binance"],
    symbols: ["BTC/USDT"],
    topSymbols: 0,
    quote: "USDT",
    timeframes: ["1m"],
    backfillSince: { kind: "duration", ms: DAY },
    ccxtConfig: {},
    apiHost: "127.0.0.1",
    apiPort: 0,
    logLevel: "warning",
    logFormat: "json",
    liveSchedule: "* * * * *",
    repairSchedule: "0 * * * *",
    timescaledb: "auto",
    compressAfterMs: 7 * DAY,
    marketType: "spot",
    backfillConcurrency: 1,
    leaseTtlMs: 60_000,
    dbPoolMax: 4,
    tickBudgetMs: 5_000,
    http: { headerTimeoutMs: 10_000, bodyTimeoutMs: 30_000, idleTimeoutMs: 30_000, maxConnections: 256, maxPages: 8 },
    deploy: false,
    ...overrides,
  };
}

/** Deterministic, irregular candles every `stepMs` from `from` (values depend on the time only). */
export function makeCandles(from: number, count: number, stepMs = MIN): Candle[] {
  const out: Candle[] = [];
  for (let i = 0; i < count; i++) {
    const ts = from + i * stepMs;
    const k = ts / stepMs;
    const open = 100 + 10 * Math.sin(k / 97) + (k % 7) * 0.013;
    const close = open + Math.cos(k / 13) * 0.7;
    const high = Math.max(open, close) + 0.25 + (k % 5) * 0.01;
    const low = Math.min(open, close) - 0.25 - (k % 3) * 0.01;
    const volume = 1 + ((k * 7919) % 1000) / 37;
    out.push({ ts, open, high, low, close, volume });
  }
  return out;
}

/** Writes candles through `writeCandles` in pages. */
export async function seed(db: TestDatabase["sql"], seriesId: number, candles: Candle[]): Promise<void> {
  for (let i = 0; i < candles.length; i += 5000) {
    await writeCandles(db, seriesId, candles.slice(i, i + 5000));
  }
}

/** A running API over a fresh database. */
export interface TestApi {
  base: string;
  db: Database;
  t: TestDatabase;
  registry: Registry;
  deps: ApiDeps;
  /** Registers a series and returns its id. */
  series(exchange: string, symbol: string, timeframe: string): Promise<number>;
  close(): Promise<void>;
}

/** Starts the API on port 0 over a new migrated database. */
export async function startApi(
  options: { config?: Partial<Config>; ingest?: IngestControl; now?: () => number } = {},
): Promise<TestApi> {
  const t = await createTestDatabase();
  await migrate(t.sql, SETTINGS);
  const db = new Database(t.sql, t.name);
  const registry = new Registry();
  const deps: ApiDeps = {
    db,
    config: testConfig(options.config),
    registry,
    ingest: options.ingest,
    now: options.now,
  };
  const ac = new AbortController();
  const server = serveApi(deps, { hostname: "127.0.0.1", port: 0, signal: ac.signal });
  return {
    base: `http://127.0.0.1:${server.port}`,
    db,
    t,
    registry,
    deps,
    async series(exchange, symbol, timeframe) {
      return (await registerSeries(t.sql, { exchange, symbol, timeframe })).id;
    },
    async close() {
      ac.abort();
      await server.finished;
      await t.drop();
    },
  };
}

/** A parsed JSON response body, navigated freely by the assertions. */
// deno-lint-ignore no-explicit-any
export type JsonBody = any;

/** Fetches a JSON document and returns status and body (the text when it is not JSON). */
export async function getJson(url: string, init?: RequestInit): Promise<{ status: number; body: JsonBody }> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: res.status, body };
}

/** Candles as the API returns them in JSON. */
export function apiCandle(c: Candle): Record<string, unknown> {
  return {
    time: new Date(c.ts).toISOString(),
    open: c.open,
    high: c.high,
    low: c.low,
    close: c.close,
    volume: c.volume,
  };
}

/** Resamples candles in JS (independent of the SQL): UTC buckets, weeks from Monday. */
export function resampleJs(candles: Candle[], stepMs: number, sourceStepMs: number): Record<string, unknown>[] {
  const origin = stepMs % (7 * DAY) === 0 ? 4 * DAY : 0; // 1970-01-05 was a Monday
  const buckets = new Map<number, Candle[]>();
  for (const c of [...candles].sort((a, b) => a.ts - b.ts)) {
    const b = Math.floor((c.ts - origin) / stepMs) * stepMs + origin;
    if (!buckets.has(b)) buckets.set(b, []);
    buckets.get(b)!.push(c);
  }
  return [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([b, cs]) => {
    const out: Record<string, unknown> = {
      time: new Date(b).toISOString(),
      open: cs[0].open,
      high: Math.max(...cs.map((c) => c.high)),
      low: Math.min(...cs.map((c) => c.low)),
      close: cs[cs.length - 1].close,
      volume: cs.reduce((s, c) => s + c.volume, 0),
    };
    if (cs.length < stepMs / sourceStepMs) out.partial = true;
    return out;
  });
}
