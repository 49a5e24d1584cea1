/**
 * A fake exchange for tests and benchmarks: an HTTP server on 127.0.0.1 that the real ccxt
 * library talks to (through `ccxtConfig` URL overrides), speaking the public spot REST dialects
 * of Binance (`/api/v3/...`) and Bybit v5 (`/v5/market/...`) over deterministic candles.
 *
 * Binance klines: `startTime`/`endTime`/`limit` (max 1000, default 500), open time >= startTime
 * and <= endTime, oldest first; without startTime the most recent `limit`. Bybit kline: `start`/
 * `end`/`limit` (max 1000, default 200), newest first; with `start`, the first `limit` candles
 * from it, without, the latest `limit` up to `end`. Both return the still-open current candle.
 *
 * Bybit's IP limit: every request counts 1 in a fixed window of `bybitIpLimit` requests per
 * `bybitIpWindowMs` (Bybit: 600 per 5 s); the one beyond it is answered HTTP 403 "access too
 * frequent" (plain text, no Retry-After, like Bybit's gateway) and the IP is banned for `banSec`
 * (Bybit: at least 10 minutes). Every other Bybit answer carries `X-Bapi-Limit` (the limit),
 * `X-Bapi-Limit-Status` (requests left in the window) and `X-Bapi-Limit-Reset-Timestamp` (the
 * fake's now, or when exhausted the window's end), unless `bybitLimitHeaders` is off. A scripted
 * retCode 10006/10018 answer (HTTP 200, Bybit's per-UID "Too many visits!") carries status 0 and
 * a reset `retryAfterSec` ahead; requests before that reset count as violations like after a 429.
 *
 * @module
 */
import type { Candle } from "../../src/candle.ts";
import { timeframeMs } from "../../src/timeframe.ts";
import {
  candlesBackward,
  candlesForward,
  expectedCandles,
  type FakeHole,
  type FakeMarket,
  unit,
} from "./fake_candles.ts";
import {
  createFakeDerivatives,
  defaultDerivativesBehaviour,
  type DerivativesBehaviour,
  type FakeContract,
  type FakeDerivatives,
  isInverse,
} from "./fake_derivatives.ts";
import { createFakeWs, type FakeWs, type FakeWsBehaviour, FUTURES_WS_PREFIX } from "./fake_ws.ts";

export type { FakeHole, FakeMarket } from "./fake_candles.ts";
export type { FakeContract, FakeDerivatives } from "./fake_derivatives.ts";
export type { FakeWs, FakeWsBehaviour } from "./fake_ws.ts";

/** A dialect the fake speaks. */
export type FakeDialect = "binance" | "bybit";

/** A scripted response for an upcoming klines request. */
export interface ScriptedFailure {
  /** HTTP status, e.g. 429, 418, 500, 503. */
  status: number;
  /** Exchange error code in the body (Binance `code`, Bybit `retCode`). */
  code?: number;
  msg?: string;
  /** Retry-After header in seconds. */
  retryAfterSec?: number;
}

/** A malformed candle the fake serves instead of the real one. */
export interface Malformation {
  symbol?: string;
  /** Open time of the candle (in the requested timeframe). */
  ts: number;
  kind: "high-below-low" | "negative-volume" | "nan" | "misaligned";
}

/** Switchable behaviour; mutate it from tests (derivatives knobs: fake_derivatives.ts). */
export interface FakeBehaviour extends DerivativesBehaviour {
  /** Enforced weight per window (null: unlimited). */
  weightLimit: number | null;
  /** Length of the enforced fixed window in ms (default 60 s). */
  windowMs: number;
  /** Limit published in Binance exchangeInfo (per minute); defaults to 6000. */
  publishedLimit: number;
  /** Retry-After (s) sent with a 429; default: until the window ends (at least 1). */
  retryAfterSec?: number;
  /** Requests arriving while a 429's Retry-After runs (beyond `violationGraceMs`) before a ban. */
  banAfterViolations: number;
  /** Requests this soon after a 429 are not violations (they were in flight). */
  violationGraceMs: number;
  /** Ban length (s) in the 418/403 Retry-After. */
  banSec: number;
  /** Bybit: requests per `bybitIpWindowMs` from the IP before a 403 and a ban (Bybit: 600 per 5 s; null: unlimited). */
  bybitIpLimit: number | null;
  bybitIpWindowMs: number;
  /** Bybit: send the `X-Bapi-Limit*` headers of the IP window (default true). */
  bybitLimitHeaders: boolean;
  /** Probability of a random 5xx on klines (seeded). */
  errorRate: number;
  /** Latency added to every response (ms). */
  latencyMs: number;
  /** The next N requests hang for `hangMs` before answering. */
  hangNext: number;
  hangMs: number;
  /** Ranges without candles. */
  holes: FakeHole[];
  /** Each klines page also repeats the candle just before its start (a duplicate on the page boundary). */
  duplicateBoundary: boolean;
  /** Malformed candles. */
  malformed: Malformation[];
  /** Symbols listed in the markets but answered as unknown by klines. */
  klinesUnknown: string[];
  /** Responses for the next klines requests, in order. */
  script: ScriptedFailure[];
  /** Offset of the fake's clock from the real one (ms). */
  nowOffsetMs: number;
}

/** One rejected request. */
export interface Rejection {
  at: number;
  status: number;
  path: string;
  retryAfterMs?: number;
}

/** What the fake saw. */
export interface FakeStats {
  requests: number;
  byPath: Record<string, number>;
  rejections: Rejection[];
  /** Arrival time and path of every request. */
  log: { at: number; path: string; query: string }[];
  /** Weight counted (all requests). */
  weight: number;
}

/** Options of {@linkcode startFakeExchange}. */
export interface FakeOptions {
  dialect: FakeDialect;
  markets?: FakeMarket[];
  behaviour?: Partial<FakeBehaviour>;
  /** Seed of the random 5xx. */
  seed?: number;
  /** Contracts of the derivatives dialects (default: `defaultContracts()` of fake_derivatives_data.ts). */
  contracts?: FakeContract[];
  /** Behaviour of the Binance kline streams (fake_ws.ts). */
  ws?: Partial<FakeWsBehaviour>;
}

/** A running fake exchange. */
export interface FakeExchange {
  dialect: FakeDialect;
  /** ccxt exchange id of the dialect. */
  exchangeId: string;
  url: string;
  port: number;
  markets: FakeMarket[];
  behaviour: FakeBehaviour;
  stats: FakeStats;
  /** Contracts, derivatives routes and their expected rows (fake_derivatives.ts). */
  derivatives: FakeDerivatives;
  /** Binance spot and USDⓈ-M kline WebSocket streams on the same port (fake_ws.ts). */
  ws: FakeWs;
  /** The ccxtConfig entry that points ccxt at this fake. */
  ccxtConfig(): Record<string, unknown>;
  /** The fake's clock. */
  now(): number;
  /** Expected closed candles for `[from, to)`, computed independently of HTTP. */
  expected(symbol: string, timeframe: string, from: number, to: number): Candle[];
  /** Clears the counters. */
  resetStats(): void;
  close(): Promise<void>;
}

const DAY = 86_400_000;

/** Default markets: four USDT pairs listed 30-400 days ago plus an inactive one. */
export function defaultMarkets(nowMs: number = Date.now()): FakeMarket[] {
  const day = (n: number) => Math.floor((nowMs - n * DAY) / 60_000) * 60_000 + 7 * 60_000;
  return [
    { symbol: "BTC/USDT", listedAt: day(400), basePrice: 60000, quoteVolume24h: 9e9 },
    { symbol: "ETH/USDT", listedAt: day(300), basePrice: 3000, quoteVolume24h: 5e9 },
    { symbol: "SOL/USDT", listedAt: day(120), basePrice: 150, quoteVolume24h: 2e9 },
    { symbol: "DOGE/USDT", listedAt: day(90), basePrice: 0.15, quoteVolume24h: 3e9 },
    { symbol: "ETH/BTC", listedAt: day(300), basePrice: 0.05, quoteVolume24h: 8e9 },
    { symbol: "OLD/USDT", listedAt: day(200), basePrice: 1, quoteVolume24h: 9.9e9, active: false },
  ];
}

function defaultBehaviour(): FakeBehaviour {
  return {
    weightLimit: null,
    windowMs: 60_000,
    publishedLimit: 6000,
    banAfterViolations: 3,
    violationGraceMs: 100,
    banSec: 1,
    bybitIpLimit: 600,
    bybitIpWindowMs: 5_000,
    bybitLimitHeaders: true,
    errorRate: 0,
    latencyMs: 0,
    hangNext: 0,
    hangMs: 0,
    holes: [],
    duplicateBoundary: false,
    malformed: [],
    klinesUnknown: [],
    script: [],
    nowOffsetMs: 0,
    ...defaultDerivativesBehaviour(),
  };
}

const BINANCE_INTERVALS = ["1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w"];
const BINANCE_WEIGHT: Record<string, number> = {
  "/api/v3/klines": 2,
  "/api/v3/exchangeInfo": 20,
  "/api/v3/ticker/24hr": 80,
  "/api/v3/time": 1,
  "/api/v3/ping": 1,
};

function bybitInterval(value: string | null): number | null {
  if (value === null) return null;
  if (/^[0-9]+$/.test(value)) return Number(value) * 60_000;
  if (value === "D") return DAY;
  if (value === "W") return 7 * DAY;
  return null;
}

function marketId(symbol: string): string {
  return symbol.replace("/", "");
}

function str(x: number): string {
  return String(x);
}

/** Starts the fake on 127.0.0.1 at a random port. */
export async function startFakeExchange(options: FakeOptions): Promise<FakeExchange> {
  const behaviour: FakeBehaviour = { ...defaultBehaviour(), ...options.behaviour };
  const markets = options.markets ?? defaultMarkets();
  const byId = new Map(markets.map((m) => [marketId(m.symbol), m]));
  const stats: FakeStats = { requests: 0, byPath: {}, rejections: [], log: [], weight: 0 };
  const seed = options.seed ?? 42;
  let randomCounter = 0;
  const windows = new Map<number, number>();
  const ipWindows = new Map<number, number>();
  let rateLimitedUntil = 0;
  let lastRateLimitAt = 0;
  let violations = 0;
  let bannedUntil = 0;
  const now = () => Date.now() + behaviour.nowOffsetMs;
  const dialect = options.dialect;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const derivatives = createFakeDerivatives({
    dialect,
    behaviour,
    now,
    onReject: (path, status, retryAfterSec) =>
      stats.rejections.push({ at: Date.now(), status, path, retryAfterMs: retryAfterSec * 1000 }),
    onWeight: (weight) => (stats.weight += weight),
  }, options.contracts);

  const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

  const errorResponse = (status: number, code: number, msg: string, headers: Record<string, string> = {}) =>
    dialect === "binance"
      ? json({ code, msg }, status, headers)
      : status === 403
      ? new Response(msg, { status, headers })
      : json({ retCode: code, retMsg: msg, result: {}, retExtInfo: {}, time: now() }, status, headers);

  const reject = (path: string, status: number, retryAfterSec: number | undefined, code: number, msg: string) => {
    stats.rejections.push({
      at: Date.now(),
      status,
      path,
      retryAfterMs: retryAfterSec === undefined ? undefined : retryAfterSec * 1000,
    });
    const headers: Record<string, string> = retryAfterSec === undefined ? {} : { "retry-after": String(retryAfterSec) };
    return errorResponse(status, code, msg, headers);
  };

  /** Weight accounting, 429s and bans (Binance style; Bybit answers a ban with 403). */
  const admit = (path: string, weight: number): Response | null => {
    const t = Date.now();
    if (bannedUntil > t) {
      return reject(path, dialect === "binance" ? 418 : 403, Math.ceil((bannedUntil - t) / 1000), -1003, "IP banned");
    }
    if (rateLimitedUntil > t && t - lastRateLimitAt > behaviour.violationGraceMs) {
      violations++;
      if (violations >= behaviour.banAfterViolations) {
        bannedUntil = t + behaviour.banSec * 1000;
        violations = 0;
        return reject(path, dialect === "binance" ? 418 : 403, behaviour.banSec, -1003, "IP banned for ignoring 429");
      }
    }
    const window = Math.floor(t / behaviour.windowMs);
    const used = (windows.get(window) ?? 0) + weight;
    windows.set(window, used);
    stats.weight += weight;
    if (behaviour.weightLimit !== null && used > behaviour.weightLimit) {
      const untilEnd = Math.max(1, Math.ceil(((window + 1) * behaviour.windowMs - t) / 1000));
      const retryAfter = behaviour.retryAfterSec ?? untilEnd;
      rateLimitedUntil = t + retryAfter * 1000;
      lastRateLimitAt = t;
      return reject(
        path,
        429,
        retryAfter,
        dialect === "binance" ? -1003 : 10006,
        "Too much request weight used; current limit exceeded",
      );
    }
    return null;
  };

  /** Bybit's IP window: counts the request, and beyond the limit answers 403 and bans the IP. */
  const bybitIpAdmit = (path: string): Response | null => {
    if (dialect !== "bybit") return null;
    const t = Date.now();
    const window = Math.floor(t / behaviour.bybitIpWindowMs);
    const used = (ipWindows.get(window) ?? 0) + 1;
    ipWindows.set(window, used);
    if (behaviour.bybitIpLimit === null || used <= behaviour.bybitIpLimit) return null;
    bannedUntil = t + behaviour.banSec * 1000;
    stats.rejections.push({ at: t, status: 403, path });
    return new Response("403 Forbidden: access too frequent", { status: 403 });
  };

  /** The `X-Bapi-Limit*` headers of Bybit's IP window (the reset in the fake's clock). */
  const bybitLimitHeaders = (): Record<string, string> => {
    if (dialect !== "bybit" || !behaviour.bybitLimitHeaders || behaviour.bybitIpLimit === null) return {};
    const t = Date.now();
    const window = Math.floor(t / behaviour.bybitIpWindowMs);
    const left = Math.max(0, behaviour.bybitIpLimit - (ipWindows.get(window) ?? 0));
    const reset = left > 0 ? now() : now() + ((window + 1) * behaviour.bybitIpWindowMs - t);
    return {
      "x-bapi-limit": String(behaviour.bybitIpLimit),
      "x-bapi-limit-status": String(left),
      "x-bapi-limit-reset-timestamp": String(reset),
    };
  };

  const usedHeader = (): Record<string, string> => {
    const window = Math.floor(Date.now() / behaviour.windowMs);
    return dialect === "binance" ? { "x-mbx-used-weight-1m": String(windows.get(window) ?? 0) } : {};
  };

  const applyFaults = (candles: Candle[], symbol: string, tf: number, from: number | null): unknown[][] => {
    const market = byId.get(marketId(symbol))!;
    let list = candles;
    if (behaviour.duplicateBoundary && from !== null && list.length > 0 && list[0].ts === from) {
      const before = candlesBackward(market, tf, from - tf, now(), behaviour.holes, 1);
      if (before.length === 1 && before[0].ts === from - tf) list = [before[0], ...list];
    }
    return list.map((c) => {
      const bad = behaviour.malformed.find((m) => m.ts === c.ts && (m.symbol === undefined || m.symbol === symbol));
      const row: unknown[] = [c.ts, c.open, c.high, c.low, c.close, c.volume];
      if (bad?.kind === "high-below-low") row[2] = c.low - 1;
      if (bad?.kind === "negative-volume") row[5] = -5;
      if (bad?.kind === "nan") row[4] = "NaN";
      if (bad?.kind === "misaligned") row[0] = c.ts + 1000;
      return row;
    });
  };

  const klines = (
    symbolId: string | null,
    tf: number | null,
    start: number | null,
    end: number | null,
    limit: number,
  ): Response => {
    const market = symbolId === null ? undefined : byId.get(symbolId);
    if (!market || behaviour.klinesUnknown.includes(market.symbol)) {
      return dialect === "binance"
        ? json({ code: -1121, msg: "Invalid symbol." }, 400)
        : json({ retCode: 10001, retMsg: "Not supported symbols", result: {}, retExtInfo: {}, time: now() });
    }
    if (tf === null) {
      return dialect === "binance"
        ? json({ code: -1120, msg: "Invalid interval." }, 400)
        : json({ retCode: 10001, retMsg: "Invalid period!", result: {}, retExtInfo: {}, time: now() });
    }
    const t = now();
    const candles = start !== null
      ? candlesForward(market, tf, start, end ?? t, t, behaviour.holes, limit)
      : candlesBackward(market, tf, end ?? t, t, behaviour.holes, limit);
    const rows = applyFaults(candles, market.symbol, tf, start);
    if (dialect === "binance") {
      return json(
        rows.map((r) => [
          r[0],
          String(r[1]),
          String(r[2]),
          String(r[3]),
          String(r[4]),
          String(r[5]),
          (r[0] as number) + tf - 1,
          "0",
          10,
          "0",
          "0",
          "0",
        ]),
        200,
        usedHeader(),
      );
    }
    return json({
      retCode: 0,
      retMsg: "OK",
      result: {
        category: "spot",
        symbol: symbolId,
        list: rows.reverse().map((
          r,
        ) => [String(r[0]), String(r[1]), String(r[2]), String(r[3]), String(r[4]), String(r[5]), "0"]),
      },
      retExtInfo: {},
      time: t,
    });
  };

  const binanceRoute = (path: string, q: URLSearchParams): Response => {
    switch (path) {
      case "/api/v3/ping":
        return json({}, 200, usedHeader());
      case "/api/v3/time":
        return json({ serverTime: now() }, 200, usedHeader());
      case "/api/v3/exchangeInfo":
        return json(
          {
            timezone: "UTC",
            serverTime: now(),
            rateLimits: [
              { rateLimitType: "REQUEST_WEIGHT", interval: "MINUTE", intervalNum: 1, limit: behaviour.publishedLimit },
              { rateLimitType: "ORDERS", interval: "SECOND", intervalNum: 10, limit: 100 },
              { rateLimitType: "RAW_REQUESTS", interval: "MINUTE", intervalNum: 5, limit: 61000 },
            ],
            exchangeFilters: [],
            symbols: markets.map((m) => {
              const [base, quote] = m.symbol.split("/");
              return {
                symbol: marketId(m.symbol),
                status: m.active === false ? "BREAK" : "TRADING",
                baseAsset: base,
                baseAssetPrecision: 8,
                quoteAsset: quote,
                quotePrecision: 8,
                quoteAssetPrecision: 8,
                baseCommissionPrecision: 8,
                quoteCommissionPrecision: 8,
                orderTypes: ["LIMIT", "MARKET"],
                icebergAllowed: true,
                ocoAllowed: true,
                isSpotTradingAllowed: true,
                isMarginTradingAllowed: false,
                filters: [
                  {
                    filterType: "PRICE_FILTER",
                    minPrice: "0.01000000",
                    maxPrice: "1000000.00000000",
                    tickSize: "0.01000000",
                  },
                  { filterType: "LOT_SIZE", minQty: "0.00001000", maxQty: "9000.00000000", stepSize: "0.00001000" },
                ],
                permissions: [],
                permissionSets: [["SPOT"]],
              };
            }),
          },
          200,
          usedHeader(),
        );
      case "/api/v3/ticker/24hr":
        return json(
          markets.map((m) => ({
            symbol: marketId(m.symbol),
            priceChange: "0",
            priceChangePercent: "0",
            weightedAvgPrice: String(m.basePrice),
            prevClosePrice: String(m.basePrice),
            lastPrice: String(m.basePrice),
            bidPrice: String(m.basePrice),
            askPrice: String(m.basePrice),
            openPrice: String(m.basePrice),
            highPrice: String(m.basePrice),
            lowPrice: String(m.basePrice),
            volume: String(m.quoteVolume24h / m.basePrice),
            quoteVolume: String(m.quoteVolume24h),
            openTime: now() - DAY,
            closeTime: now(),
            count: 1000,
          })),
          200,
          usedHeader(),
        );
      case "/api/v3/klines": {
        const interval = q.get("interval") ?? "";
        const tf = BINANCE_INTERVALS.includes(interval) && interval !== "1s" ? timeframeMs(interval) : null;
        const limit = Math.min(1000, Number(q.get("limit") ?? 500));
        const start = q.get("startTime");
        const end = q.get("endTime");
        return klines(
          q.get("symbol"),
          tf,
          start === null ? null : Number(start),
          end === null ? null : Number(end),
          limit,
        );
      }
    }
    return json({ code: -1000, msg: `Unknown path ${path}` }, 404);
  };

  const bybitRoute = (path: string, q: URLSearchParams): Response => {
    const ok = (result: unknown) => json({ retCode: 0, retMsg: "OK", result, retExtInfo: {}, time: now() });
    if (path !== "/v5/market/time" && q.get("category") !== "spot") {
      return json({
        retCode: 10001,
        retMsg: `category ${q.get("category")} not served by the fake`,
        result: {},
        time: now(),
      });
    }
    switch (path) {
      case "/v5/market/time":
        return ok({ timeSecond: String(Math.floor(now() / 1000)), timeNano: String(now() * 1e6) });
      case "/v5/market/instruments-info":
        return ok({
          category: "spot",
          nextPageCursor: "",
          list: markets.map((m) => {
            const [base, quote] = m.symbol.split("/");
            return {
              symbol: marketId(m.symbol),
              baseCoin: base,
              quoteCoin: quote,
              innovation: "0",
              status: m.active === false ? "PreLaunch" : "Trading",
              marginTrading: "none",
              lotSizeFilter: {
                basePrecision: "0.000001",
                quotePrecision: "0.00000001",
                minOrderQty: "0.000001",
                maxOrderQty: "10000",
                minOrderAmt: "1",
                maxOrderAmt: "2000000",
              },
              priceFilter: { tickSize: "0.01" },
            };
          }),
        });
      case "/v5/market/tickers":
        return ok({
          category: "spot",
          list: markets.map((m) => ({
            symbol: marketId(m.symbol),
            bid1Price: str(m.basePrice),
            ask1Price: str(m.basePrice),
            lastPrice: str(m.basePrice),
            prevPrice24h: str(m.basePrice),
            price24hPcnt: "0",
            highPrice24h: str(m.basePrice),
            lowPrice24h: str(m.basePrice),
            turnover24h: str(m.quoteVolume24h),
            volume24h: str(m.quoteVolume24h / m.basePrice),
          })),
        });
      case "/v5/market/kline": {
        const limit = Math.min(1000, Number(q.get("limit") ?? 200));
        const start = q.get("start");
        const end = q.get("end");
        return klines(
          q.get("symbol"),
          bybitInterval(q.get("interval")),
          start === null ? null : Number(start),
          end === null ? null : Number(end),
          limit,
        );
      }
    }
    return json({ retCode: 10001, retMsg: `Unknown path ${path}`, result: {}, time: now() }, 404);
  };

  const ws = createFakeWs({
    markets,
    clock: { now, shift: (ms) => (behaviour.nowOffsetMs += ms) },
    holes: () => behaviour.holes,
    behaviour: options.ws,
    futures: {
      // USDⓈ-M only: the trade candles /fapi/v1/klines serves (holes of every kind or of trade).
      byId: new Map(
        derivatives.contracts.filter((c) => !isInverse(c)).map((c) => [derivatives.contractId(c.symbol), c]),
      ),
      holes: () => [...behaviour.holes, ...behaviour.priceHoles.filter((h) => !h.price || h.price === "trade")],
    },
  });

  const handler = async (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Promise<Response> => {
    const stream = dialect === "binance" ? ws.handle(request, info.remoteAddr.hostname) : null;
    if (stream) return stream;
    const response = await answer(request);
    if (response.status !== 403) {
      for (const [k, v] of Object.entries(bybitLimitHeaders())) {
        if (!response.headers.has(k)) response.headers.set(k, v);
      }
    }
    return response;
  };

  const answer = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const path = url.pathname;
    stats.requests++;
    stats.byPath[path] = (stats.byPath[path] ?? 0) + 1;
    stats.log.push({ at: Date.now(), path, query: url.search });
    if (behaviour.hangNext > 0) {
      behaviour.hangNext--;
      await sleep(behaviour.hangMs);
    }
    if (behaviour.latencyMs > 0) await sleep(behaviour.latencyMs);
    const weight = derivatives.weight(path, url.searchParams) ??
      (dialect === "binance" ? BINANCE_WEIGHT[path] ?? 1 : 1);
    const denied = admit(path, weight) ?? bybitIpAdmit(path);
    if (denied) return denied;
    const isKlines = path.endsWith("/klines") || path.endsWith("/kline");
    if (isKlines && behaviour.script.length > 0) {
      const s = behaviour.script.shift()!;
      if (dialect === "bybit" && s.status === 200 && (s.code === 10006 || s.code === 10018)) {
        // Bybit's per-UID limit: HTTP 200, the code in the body, the reset in the headers.
        const t = Date.now();
        rateLimitedUntil = t + (s.retryAfterSec ?? 1) * 1000;
        lastRateLimitAt = t;
        stats.rejections.push({ at: t, status: 200, path, retryAfterMs: (s.retryAfterSec ?? 1) * 1000 });
        return json(
          { retCode: s.code, retMsg: s.msg ?? "Too many visits!", result: {}, retExtInfo: {}, time: now() },
          200,
          {
            "x-bapi-limit": "10",
            "x-bapi-limit-status": "0",
            "x-bapi-limit-reset-timestamp": String(now() + (s.retryAfterSec ?? 1) * 1000),
          },
        );
      }
      if (s.status === 429 || s.status === 418 || s.status === 403) {
        const t = Date.now();
        if (s.status === 429) {
          rateLimitedUntil = t + (s.retryAfterSec ?? 1) * 1000;
          lastRateLimitAt = t;
        } else {
          bannedUntil = t + (s.retryAfterSec ?? behaviour.banSec) * 1000;
        }
      }
      const defaultCode = s.status === 429
        ? (dialect === "binance" ? -1003 : 10006)
        : s.status >= 500
        ? (dialect === "binance" ? -1001 : 10016)
        : (dialect === "binance" ? -1000 : 10001);
      return reject(path, s.status, s.retryAfterSec, s.code ?? defaultCode, s.msg ?? `scripted ${s.status}`);
    }
    if (isKlines && behaviour.errorRate > 0 && unit(seed, randomCounter++, 99) < behaviour.errorRate) {
      return reject(path, 503, undefined, dialect === "binance" ? -1008 : 10016, "Service unavailable (random)");
    }
    const q = url.searchParams;
    const derivative = derivatives.route(path, q);
    if (derivative) return derivative;
    return dialect === "binance" ? binanceRoute(path, q) : bybitRoute(path, q);
  };

  let resolvePort: (port: number) => void;
  const portPromise = new Promise<number>((resolve) => (resolvePort = resolve));
  const server = Deno.serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen: ({ port }) => resolvePort(port),
  }, handler);
  const port = await portPromise;
  const url = `http://127.0.0.1:${port}`;
  /** `/stream` in the path makes ccxt map events to spot markets (see fake_ws.ts). */
  const wsUrl = `ws://127.0.0.1:${port}/stream.binance`;
  const futuresWsUrl = `ws://127.0.0.1:${port}${FUTURES_WS_PREFIX}/ws`;

  return {
    dialect,
    exchangeId: dialect,
    url,
    port,
    markets,
    behaviour,
    stats,
    derivatives,
    ws,
    now,
    ccxtConfig(): Record<string, unknown> {
      if (dialect === "binance") {
        return {
          urls: {
            api: {
              public: `${url}/api/v3`,
              v1: `${url}/api/v1`,
              fapiPublic: `${url}/fapi/v1`,
              fapiPublicV2: `${url}/fapi/v2`,
              fapiPublicV3: `${url}/fapi/v3`,
              fapiData: `${url}/futures/data`,
              dapiPublic: `${url}/dapi/v1`,
              dapiData: `${url}/futures/data`,
              ws: { spot: `${wsUrl}/ws`, margin: `${wsUrl}/ws`, future: futuresWsUrl },
            },
          },
        };
      }
      return {
        // No rateLimit: the client paces Bybit by its published IP limit (src/exchange/usage.ts).
        urls: { api: { spot: url, futures: url, v2: url, public: url } },
      };
    },
    expected(symbol, timeframe, from, to) {
      const market = byId.get(marketId(symbol));
      if (!market) throw new Error(`Cannot compute expected candles: current symbol is ${symbol}, not listed`);
      return expectedCandles(market, timeframeMs(timeframe), from, to, now(), behaviour.holes);
    },
    resetStats() {
      stats.requests = 0;
      stats.byPath = {};
      stats.rejections = [];
      stats.log = [];
      stats.weight = 0;
    },
    async close() {
      ws.close();
      await server.shutdown();
    },
  };
}
