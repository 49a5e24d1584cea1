import { assert, assertEquals, assertThrows } from "./support/assert.ts";
import {
  ConfigError,
  isCron,
  loadConfig,
  maskSecrets,
  maskUrl,
  normalizeSymbol,
  parseBackfillSince,
  parseDuration,
  redactConfig,
  resolveSince,
  splitList,
} from "../src/config.ts";
import { instanceIdentity } from "../src/ingest/leases.ts";

Deno.test("config: defaults for an empty environment", () => {
  const c = loadConfig({});
  assertEquals(c.databaseUrl, undefined);
  assertEquals(c.dataDir, "./data");
  assertEquals(c.exchanges, ["binance"]);
  assertEquals(c.symbols, ["BTC/USDT", "ETH/USDT"]);
  assertEquals(c.topSymbols, 0);
  assertEquals(c.quote, "USDT");
  assertEquals(c.timeframes, ["1m"]);
  assertEquals(c.backfillSince, { kind: "duration", ms: 30 * 86_400_000 });
  assertEquals(c.ccxtConfig, {});
  assertEquals(c.apiHost, "127.0.0.1");
  assertEquals(c.apiPort, 8000);
  assertEquals(c.apiToken, undefined);
  assertEquals(c.logLevel, "info");
  assertEquals(c.logFormat, "auto");
  assertEquals(c.liveSchedule, "* * * * *");
  assertEquals(c.repairSchedule, "17 * * * *");
  assertEquals(c.timescaledb, "auto");
  assertEquals(c.compressAfterMs, 7 * 86_400_000);
  assertEquals(c.retentionMs, undefined);
  assertEquals(c.marketType, "spot");
  assertEquals(c.backfillConcurrency, 4);
  assertEquals(c.leaseTtlMs, 30_000);
  assertEquals(c.dbPoolMax, 10);
});

Deno.test("config: every variable is parsed", () => {
  const c = loadConfig({
    DATABASE_URL: "postgres://u:p@db:5433/candles",
    DATA_DIR: "/srv/ck",
    EXCHANGES: " binance , bybit,, ",
    SYMBOLS: "btc/usdt, ETH-USDT ,SOLUSDT,,BTC/USDT",
    TOP_SYMBOLS: "5",
    QUOTE: "usdc",
    TIMEFRAMES: "1m, 5m,1h,1d",
    BACKFILL_SINCE: "2024-01-01",
    CCXT_CONFIG: '{"binance":{"timeout":5000,"urls":{"api":{"public":"http://127.0.0.1:1"}}}}',
    API_HOST: "0.0.0.0",
    API_PORT: "9000",
    API_TOKEN: "0123456789abcdef0123",
    LOG_LEVEL: "DEBUG",
    LOG_FORMAT: "pretty",
    LIVE_SCHEDULE: "*/2 * * * *",
    REPAIR_SCHEDULE: "0 * * * *",
    TIMESCALEDB: "require",
    COMPRESS_AFTER: "3d",
    RETENTION: "52w",
    MARKET_TYPE: "swap",
    BACKFILL_CONCURRENCY: "8",
    LEASE_TTL: "2m",
    DB_POOL_MAX: "20",
  });
  assertEquals(c.databaseUrl, "postgres://u:p@db:5433/candles");
  assertEquals(c.dataDir, "/srv/ck");
  assertEquals(c.exchanges, ["binance", "bybit"]);
  assertEquals(c.symbols, ["BTC/USDT", "ETH/USDT", "SOL/USDT"]);
  assertEquals(c.topSymbols, 5);
  assertEquals(c.quote, "USDC");
  assertEquals(c.timeframes, ["1m", "5m", "1h", "1d"]);
  assertEquals(c.backfillSince, { kind: "date", ms: Date.UTC(2024, 0, 1) });
  assertEquals((c.ccxtConfig.binance as { timeout: number }).timeout, 5000);
  assertEquals(c.apiHost, "0.0.0.0");
  assertEquals(c.apiPort, 9000);
  assertEquals(c.apiToken, "0123456789abcdef0123");
  assertEquals(c.logLevel, "debug");
  assertEquals(c.logFormat, "pretty");
  assertEquals(c.liveSchedule, "*/2 * * * *");
  assertEquals(c.repairSchedule, "0 * * * *");
  assertEquals(c.timescaledb, "require");
  assertEquals(c.compressAfterMs, 3 * 86_400_000);
  assertEquals(c.retentionMs, 52 * 7 * 86_400_000);
  assertEquals(c.marketType, "swap");
  assertEquals(c.backfillConcurrency, 8);
  assertEquals(c.leaseTtlMs, 120_000);
  assertEquals(c.dbPoolMax, 20);
});

Deno.test("config: empty strings count as unset", () => {
  const c = loadConfig({ DATABASE_URL: "", API_TOKEN: " ", SYMBOLS: "" });
  assertEquals(c.databaseUrl, undefined);
  assertEquals(c.apiToken, undefined);
  assertEquals(c.symbols, ["BTC/USDT", "ETH/USDT"], "an empty SYMBOLS means the default");
});

Deno.test("config: one error lists every bad variable with masked secrets", () => {
  const error = assertThrows(
    () =>
      loadConfig({
        DATABASE_URL: "mysql://root:hunter2@db/x",
        EXCHANGES: "binance,Bad-Id",
        SYMBOLS: "BTC/USDT,???",
        TOP_SYMBOLS: "-1",
        TIMEFRAMES: "1m,1M,7x",
        BACKFILL_SINCE: "yesterday",
        CCXT_CONFIG: '{"binance":{"apiKey":"AKIA-SECRET","secret":"s3cr3t"},"okx":[]}',
        API_PORT: "70000",
        API_TOKEN: "short-secret",
        LOG_LEVEL: "loud",
        LOG_FORMAT: "xml",
        LIVE_SCHEDULE: "every minute",
        TIMESCALEDB: "maybe",
        COMPRESS_AFTER: "7 days",
        RETENTION: "forever",
        MARKET_TYPE: "perp",
        BACKFILL_CONCURRENCY: "0",
      }),
    ConfigError,
  );
  const names = error.issues.map((i) => i.variable).sort();
  assertEquals(names, [
    "API_PORT",
    "API_TOKEN",
    "BACKFILL_CONCURRENCY",
    "BACKFILL_SINCE",
    "CCXT_CONFIG",
    "COMPRESS_AFTER",
    "DATABASE_URL",
    "EXCHANGES",
    "LIVE_SCHEDULE",
    "LOG_FORMAT",
    "LOG_LEVEL",
    "MARKET_TYPE",
    "RETENTION",
    "SYMBOLS",
    "TIMEFRAMES",
    "TIMESCALEDB",
    "TOP_SYMBOLS",
  ]);
  assert(!error.message.includes("hunter2"), "database password leaked");
  assert(!error.message.includes("AKIA-SECRET"), "apiKey leaked");
  assert(!error.message.includes("s3cr3t"), "secret leaked");
  assert(!error.message.includes("short-secret"), "API token leaked");
  assert(error.message.includes("Bad-Id"), "names the bad exchange id");
  assert(error.message.includes("1M, 7x"), "names the bad timeframes");
  assert(error.message.includes("???"), "names the bad symbol");
  assert(error.message.startsWith("Cannot start: invalid configuration (17 variables)"));
});

Deno.test("config: comma lists, symbols, durations, dates and cron", () => {
  assertEquals(splitList(" a, ,b,,c "), ["a", "b", "c"]);
  assertEquals(normalizeSymbol("btc/usdt"), "BTC/USDT");
  assertEquals(normalizeSymbol("eth_btc"), "ETH/BTC");
  assertEquals(normalizeSymbol("BTCUSDT"), "BTC/USDT");
  assertEquals(normalizeSymbol("BTC/USDT:USDT"), "BTC/USDT:USDT");
  assertEquals(normalizeSymbol("btc/usd:btc"), "BTC/USD:BTC");
  assertEquals(normalizeSymbol("BTC/USDT:USDT-261225"), "BTC/USDT:USDT-261225");
  assertEquals(normalizeSymbol("BTC/USD:BTC-261225-60000-C"), "BTC/USD:BTC-261225-60000-C");
  assertEquals(normalizeSymbol("BTC/USDT:USDT-2612"), null);
  assertEquals(normalizeSymbol("BTC"), null);
  assertEquals(normalizeSymbol("BTC/"), null);
  assertEquals(normalizeSymbol("BTC/USDT'; drop table series;--"), null);
  assertEquals(parseDuration("90s"), 90_000);
  assertEquals(parseDuration("15m"), 900_000);
  assertEquals(parseDuration("2w"), 14 * 86_400_000);
  assertEquals(parseDuration("0d"), null);
  assertEquals(parseDuration("1y"), null);
  assertEquals(parseBackfillSince("earliest"), { kind: "earliest" });
  assertEquals(parseBackfillSince("2d"), { kind: "duration", ms: 2 * 86_400_000 });
  assertEquals(parseBackfillSince("2024-03-01T12:30:00"), { kind: "date", ms: Date.UTC(2024, 2, 1, 12, 30) });
  assertEquals(parseBackfillSince("2024-03-01T12:30:00+02:00"), { kind: "date", ms: Date.UTC(2024, 2, 1, 10, 30) });
  assertEquals(parseBackfillSince("2024-13-45"), null);
  assertEquals(resolveSince({ kind: "duration", ms: 1000 }, 5000), 4000);
  assertEquals(resolveSince({ kind: "earliest" }, 5000), "earliest");
  assert(isCron("* * * * *"));
  assert(isCron("*/5 0-6 1,15 * 1"));
  assert(!isCron("* * * *"));
  assert(!isCron("@hourly"));
});

Deno.test("config: secrets are masked for logging", () => {
  assertEquals(maskUrl("postgres://user:pw@host:5432/db"), "postgres://user:***@host:5432/db");
  assertEquals(maskSecrets({ binance: { apiKey: "k", secret: "s", options: { x: 1 }, password: "p" } }), {
    binance: { apiKey: "***", secret: "***", options: { x: 1 }, password: "***" },
  });
  const c = loadConfig({
    DATABASE_URL: "postgres://u:topsecret@h/db",
    API_TOKEN: "abcdefghijklmnopqrstuvwxyz",
    CCXT_CONFIG: '{"binance":{"apiKey":"KEY123","secret":"SEC456"}}',
  });
  const text = JSON.stringify(redactConfig(c));
  for (const secret of ["topsecret", "abcdefghijklmnopqrstuvwxyz", "KEY123", "SEC456"]) {
    assert(!text.includes(secret), `${secret} leaked`);
  }
});

Deno.test("config: deploy mode needs DATABASE_URL; TICK_BUDGET and INSTANCE_ID are checked; one bad variable is one line", () => {
  const deploy = assertThrows(() => loadConfig({ DENO_DEPLOY: "1" }), ConfigError);
  assertEquals(deploy.issues.map((i) => i.variable), ["DATABASE_URL"]);
  assert(!deploy.message.includes("\n"), deploy.message);
  assert(deploy.message.startsWith("Cannot start: invalid configuration: DATABASE_URL=(unset): "), deploy.message);
  const ok = loadConfig({ DENO_DEPLOY: "1", DATABASE_URL: "postgres://u@h/db", TICK_BUDGET: "30s" });
  assertEquals([ok.deploy, ok.tickBudgetMs], [true, 30_000]);
  const plain = loadConfig({});
  assertEquals([plain.deploy, plain.tickBudgetMs, plain.instanceId], [false, 5_000, undefined]);
  for (const bad of ["5x", "0s", "1h", "-1s"]) {
    const error = assertThrows(() => loadConfig({ TICK_BUDGET: bad }), ConfigError);
    assertEquals(error.issues.map((i) => i.variable), ["TICK_BUDGET"], bad);
    assert(error.message.startsWith(`Cannot start: invalid configuration: TICK_BUDGET="${bad}": `), error.message);
  }
  assertEquals(loadConfig({ INSTANCE_ID: "worker-1.eu" }).instanceId, "worker-1.eu");
  assertEquals(assertThrows(() => loadConfig({ INSTANCE_ID: "a b" }), ConfigError).issues[0].variable, "INSTANCE_ID");
});

Deno.test("config: an instance identity is host:port for a fixed port, random otherwise", () => {
  assertEquals(instanceIdentity({ hostname: "box", port: 8000 }), "box:8000");
  const a = instanceIdentity({ hostname: "box", port: 0 });
  const b = instanceIdentity({ hostname: "box" });
  assert(a.startsWith(`box:${Deno.pid}:`) && b.startsWith(`box:${Deno.pid}:`), `${a} ${b}`);
  assert(a !== b, "random identities differ");
});

Deno.test("config: HTTP limits have defaults, accept durations and integers, and name a bad variable", () => {
  assertEquals(loadConfig({}).http, {
    headerTimeoutMs: 10_000,
    bodyTimeoutMs: 30_000,
    idleTimeoutMs: 30_000,
    maxConnections: 256,
    maxPages: 8,
    trustedProxy: false,
    corsOrigins: [],
  });
  const set = loadConfig({
    HTTP_HEADER_TIMEOUT: "5s",
    HTTP_BODY_TIMEOUT: "1m",
    HTTP_IDLE_TIMEOUT: "15s",
    HTTP_MAX_CONNECTIONS: "64",
    HTTP_MAX_PAGES: "2",
  });
  assertEquals(set.http, {
    headerTimeoutMs: 5_000,
    bodyTimeoutMs: 60_000,
    idleTimeoutMs: 15_000,
    maxConnections: 64,
    maxPages: 2,
    trustedProxy: false,
    corsOrigins: [],
  });
  for (
    const [variable, value] of [
      ["HTTP_HEADER_TIMEOUT", "0s"],
      ["HTTP_HEADER_TIMEOUT", "10"],
      ["HTTP_BODY_TIMEOUT", "2h"],
      ["HTTP_IDLE_TIMEOUT", "soon"],
      ["HTTP_MAX_CONNECTIONS", "0"],
      ["HTTP_MAX_PAGES", "1000"],
    ]
  ) {
    const error = assertThrows(() => loadConfig({ [variable]: value }), ConfigError);
    assertEquals(error.issues.map((i) => i.variable), [variable], `${variable}=${value}`);
    assert(error.message.includes(`${variable}="${value}"`), error.message);
  }
});

Deno.test("config: SYMBOLS defaults only when TOP_SYMBOLS is unset too; none; TOP_SYMBOLS as a number or a list", () => {
  assertEquals(loadConfig({ SYMBOLS: "none" }).symbols, []);
  assertEquals(loadConfig({ SYMBOLS: " None " }).symbols, []);
  assertEquals(loadConfig({ SYMBOLS: "sol-usdt" }).symbols, ["SOL/USDT"]);
  // TOP_SYMBOLS alone replaces the default symbols.
  const top = loadConfig({ TOP_SYMBOLS: "10" });
  assertEquals([top.symbols, top.topSymbols], [[], 10]);
  const off = loadConfig({ TOP_SYMBOLS: "0" });
  assertEquals([off.symbols, off.topSymbols], [[], 0]);
  // The seed's form: a comma list of symbols, merged with SYMBOLS (normalised, de-duplicated).
  const list = loadConfig({ TOP_SYMBOLS: "BTC/USDT,eth-usdt" });
  assertEquals([list.symbols, list.topSymbols], [["BTC/USDT", "ETH/USDT"], 0]);
  const merged = loadConfig({ SYMBOLS: "SOL/USDT,BTC/USDT", TOP_SYMBOLS: "BTCUSDT, XRP/USDT" });
  assertEquals(merged.symbols, ["SOL/USDT", "BTC/USDT", "XRP/USDT"]);
  for (const bad of ["-1", "1001", "BTC/USDT,???", "ten"]) {
    const error = assertThrows(() => loadConfig({ TOP_SYMBOLS: bad }), ConfigError);
    assertEquals(error.issues.map((i) => i.variable), ["TOP_SYMBOLS"], bad);
    assert(error.message.includes("a number from 0 to 1000"), error.message);
  }
  assertEquals(loadConfig({ LOG_FORMAT: "AUTO" }).logFormat, "auto");
});
