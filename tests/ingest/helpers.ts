/**
 * Shared set-up for the ingest tests: a fake exchange, a fresh migrated database, exchange
 * clients pointed at the fake, and helpers to compare stored candles with the fake's.
 *
 * @module
 */
import type { Candle } from "../../src/candle.ts";
import { type Config, loadConfig } from "../../src/config.ts";
import { createPool, Database } from "../../src/db/client.ts";
import { migrate } from "../../src/db/migrate.ts";
import { createExchangeClients, type ExchangeClient } from "../../src/exchange/client.ts";
import { Ingestor, type IngestorOptions } from "../../src/ingest/engine.ts";
import { setupLogging } from "../../src/log.ts";
import {
  type FakeBehaviour,
  type FakeContract,
  type FakeDialect,
  type FakeExchange,
  type FakeMarket,
  type FakeWsBehaviour,
  startFakeExchange,
} from "../support/fake_exchange.ts";
import { createTestDatabase, type PrivateServer, startPrivateServer, type TestDatabase } from "../support/pg.ts";

/** Everything one ingest test needs. */
export interface IngestWorld {
  fake: FakeExchange;
  t: TestDatabase;
  /** The private server, when asked for. */
  server?: PrivateServer;
  db: Database;
  config: Config;
  clients: Map<string, ExchangeClient>;
  /** Environment that points a child `main.ts` at the same fake and database. */
  env: Record<string, string>;
  ingestor(options?: Partial<IngestorOptions>): Ingestor;
  /** The shared test clock: real time plus an offset that {@linkcode IngestWorld.advance} moves. */
  now(): number;
  /** Moves the fake exchange's, the clients' and the ingestors' clock forward by `ms`. */
  advance(ms: number): void;
  close(): Promise<void>;
}

/** Options of {@linkcode ingestWorld}. */
export interface WorldOptions {
  dialect?: FakeDialect;
  behaviour?: Partial<FakeBehaviour>;
  /** Raw configuration variables (SYMBOLS, TIMEFRAMES, BACKFILL_SINCE, ...). */
  env?: Record<string, string>;
  /** Contracts of the fake's derivatives dialects (default: its `defaultContracts()`). */
  contracts?: FakeContract[];
  /** Use a PostgreSQL server of its own (for outage tests: `world.server.stop()/start()`). */
  privateServer?: boolean;
  /** The fake's kline streams (default: its own defaults). */
  ws?: Partial<FakeWsBehaviour>;
  /** The fake's markets (default: its `defaultMarkets()`). */
  markets?: FakeMarket[];
  /** Where the shared clock starts (ms; default now): set before the clients read it. */
  startAt?: number;
}

/** Starts a fake exchange and a fresh migrated database, and configures Candlekeep for them. */
export async function ingestWorld(options: WorldOptions = {}): Promise<IngestWorld> {
  if (Deno.env.get("TEST_LOG")) setupLogging({ level: "debug", format: "pretty" });
  const dialect = options.dialect ?? "binance";
  const startOffset = options.startAt === undefined ? 0 : options.startAt - Date.now();
  const fake = await startFakeExchange({
    dialect,
    behaviour: options.startAt === undefined ? options.behaviour : { ...options.behaviour, nowOffsetMs: startOffset },
    contracts: options.contracts,
    ws: options.ws,
    markets: options.markets,
  });
  let server: PrivateServer | undefined;
  let t: TestDatabase;
  if (options.privateServer) {
    const own = await startPrivateServer();
    server = own;
    const sql = createPool(own.url, { max: 6 });
    t = {
      url: own.url,
      sql,
      name: "private",
      drop: async () => {
        await sql.end({ timeout: 1 }).catch(() => {});
        await own.cleanup();
      },
    };
  } else {
    t = await createTestDatabase();
  }
  await migrate(t.sql, { timescaledb: "auto", compressAfterMs: 7 * 86_400_000 });
  const env: Record<string, string> = {
    DATABASE_URL: t.url,
    EXCHANGES: fake.exchangeId,
    CCXT_CONFIG: JSON.stringify({ [fake.exchangeId]: fake.ccxtConfig() }),
    SYMBOLS: "BTC/USDT",
    TIMEFRAMES: "1m",
    BACKFILL_SINCE: "1d",
    BACKFILL_CONCURRENCY: "4",
    // Live over REST unless a test asks for streams: most tests count REST requests.
    LIVE_MODE: "rest",
    // REST only unless a test serves a fake archive (ARCHIVE_URL): there is no internet.
    ARCHIVE: "off",
    ...options.env,
  };
  const config = loadConfig(env);
  const db = new Database(t.sql, t.name, { baseMs: 300 });
  await db.ping();
  let offset = startOffset;
  const now = () => Date.now() + offset;
  const clock = { now, sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)) };
  const clients = await createExchangeClients(config, {
    baseDelayMs: 20,
    maxDelayMs: 200,
    defaultBanMs: 1000,
    maxAttempts: 4,
    clock,
  });
  const made: Ingestor[] = [];
  return {
    fake,
    t,
    server,
    db,
    config,
    clients,
    env,
    now,
    advance: (ms: number) => {
      offset += ms;
      fake.behaviour.nowOffsetMs = offset;
    },
    ingestor: (o = {}) => {
      const i = new Ingestor({ db, config, sources: clients, leaseTtlMs: 3000, now, ...o });
      made.push(i);
      return i;
    },
    close: async () => {
      for (const i of made) await i.stop(1000).catch(() => {});
      for (const c of clients.values()) c.close();
      await fake.close();
      await t.drop();
    },
  };
}

/** Stored candles of a series, oldest first. */
export async function storedCandles(
  world: IngestWorld,
  key: { exchange?: string; symbol: string; timeframe: string; price?: string },
): Promise<Candle[]> {
  const rows = await world.t.sql<
    { ts: Date; open: number; high: number; low: number; close: number; volume: number }[]
  >`
    select c.ts, c.open, c.high, c.low, c.close, c.volume
    from candles c join series s on s.id = c.series_id
    where s.exchange = ${key.exchange ?? world.fake.exchangeId} and s.symbol = ${key.symbol}
      and s.timeframe = ${key.timeframe} and s.price = ${key.price ?? "trade"}
    order by c.ts`;
  return rows.map((r) => ({
    ts: r.ts.getTime(),
    open: r.open,
    high: r.high,
    low: r.low,
    close: r.close,
    volume: r.volume,
  }));
}

/** Start of the current minute minus `n` minutes. */
export function minutesAgo(n: number): number {
  return Math.floor(Date.now() / 60_000) * 60_000 - n * 60_000;
}
