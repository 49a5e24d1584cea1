/**
 * The derivatives REST dialects of the fake exchange (see fake_exchange.ts, which routes here):
 *
 * Binance USDⓈ-M (`/fapi/v1/...`, `/futures/data/...`): `exchangeInfo` (perpetuals and dated
 * contracts), `klines`, `markPriceKlines`, `indexPriceKlines` (takes `pair`, not `symbol`),
 * `premiumIndexKlines` (limit max 1500, default 500; oldest first; from `startTime` the first
 * `limit`, else the latest `limit` up to `endTime`), `fundingRate` (limit max 1000, default 100,
 * ascending, same paging; its own limit of `fundingRequestLimit` requests per
 * `fundingWindowMs`, shared with `fundingInfo`), `fundingInfo`, `time`, `ping`, and
 * `/futures/data/openInterestHist` (period 5m..1d, limit max 500, default 30; only the last 30 days:
 * a `startTime`/`endTime` older than that is HTTP 400 code -1130; its own limit of
 * `dataRequestLimit` requests per `dataWindowMs`, weight 0). `/dapi/v1/exchangeInfo` answers
 * with the inverse contracts, served by the same handlers under `/dapi/v1` (klines: [5] contracts,
 * [7] base volume, as ccxt reads them). Every `/fapi`, `/dapi` and `/futures/data` request is weighed in a
 * window of its own (`futuresWeightLimit` per `futuresWindowMs`, klines 1/2/5/10 by `limit` like
 * Binance, `/futures/data` 0), reported in `x-mbx-used-weight-1m` and `stats.weight`; the spot
 * window (`weightLimit`) never sees it.
 *
 * Bybit v5 (`category=linear` or `inverse`, each its own contracts): `instruments-info` (with
 * `fundingInterval` in minutes), `tickers`, `kline`, `mark-price-kline`, `index-price-kline`,
 * `premium-index-price-kline` (limit max 1000, default 200, newest first), `funding/history`
 * (limit max 200, default 200, newest first: the newest `limit` rows in `[startTime, endTime]`;
 * `startTime` alone is an error like Bybit's) and `open-interest` (`intervalTime` 5min..1d, limit
 * max 200, default 50, newest first, `nextPageCursor` paging to older rows).
 *
 * @module
 */
import type { Candle } from "../../src/candle.ts";
import { timeframeMs } from "../../src/timeframe.ts";
import type { FakeHole } from "./fake_candles.ts";
import {
  defaultContracts,
  expectedFundingRates,
  expectedOpenInterest,
  expectedPriceCandles,
  type FakeContract,
  type FakeDerivativeHole,
  type FakeFundingRow,
  type FakeOpenInterestRow,
  fundingIntervalMs,
  fundingRows,
  isInverse,
  isPerpetual,
  OPEN_INTEREST_PERIODS,
  OPEN_INTEREST_RETENTION_MS,
  openInterestRows,
  priceCandlesBackward,
  priceCandlesForward,
  type PriceKind,
} from "./fake_derivatives_data.ts";

export * from "./fake_derivatives_data.ts";

/** Derivatives knobs of `FakeBehaviour` (mutable from tests). */
export interface DerivativesBehaviour {
  /** Contract kline ranges without candles (all price kinds unless `price` is set); `holes` apply too. */
  priceHoles: FakeDerivativeHole[];
  /** Missing funding rows. */
  fundingHoles: FakeHole[];
  /** Missing open-interest rows. */
  openInterestHoles: FakeHole[];
  /** Binance `/futures/data/*` requests per `dataWindowMs` before a 429 (Binance: 1000 per 5 min). */
  dataRequestLimit: number;
  dataWindowMs: number;
  /** Binance `fundingRate` + `fundingInfo` requests per `fundingWindowMs` before a 429 (Binance: 500 per 5 min). */
  fundingRequestLimit: number;
  fundingWindowMs: number;
  /** Open-interest history kept by the Binance dialect (default 30 days). */
  openInterestRetentionMs: number;
  /**
   * Enforced request weight per `futuresWindowMs` of the Binance `/fapi` host (null: unlimited).
   * A window of its own, like Binance's: spot weight (`weightLimit`) and futures weight never mix.
   */
  futuresWeightLimit: number | null;
  futuresWindowMs: number;
  /** REQUEST_WEIGHT per minute published in `/fapi/v1/exchangeInfo` (Binance: 2400). */
  futuresPublishedLimit: number;
}

/** Defaults of {@linkcode DerivativesBehaviour}: Binance's published limits. */
export function defaultDerivativesBehaviour(): DerivativesBehaviour {
  return {
    priceHoles: [],
    fundingHoles: [],
    openInterestHoles: [],
    dataRequestLimit: 1000,
    dataWindowMs: 300_000,
    fundingRequestLimit: 500,
    fundingWindowMs: 300_000,
    openInterestRetentionMs: OPEN_INTEREST_RETENTION_MS,
    futuresWeightLimit: null,
    futuresWindowMs: 60_000,
    futuresPublishedLimit: 2400,
  };
}

/** What the derivatives routes need from the fake exchange. */
export interface DerivativesContext {
  dialect: "binance" | "bybit";
  behaviour: DerivativesBehaviour & { holes: FakeHole[] };
  now(): number;
  /** Called for each 429 of a derivatives limit. */
  onReject(path: string, status: number, retryAfterSec: number): void;
  /** Called with the weight of each admitted `/fapi` request (added to the stats). */
  onWeight(weight: number): void;
}

/** The derivatives side of a fake exchange. */
export interface FakeDerivatives {
  contracts: FakeContract[];
  /** The response for `path`, or null when the path/category is not a derivatives one. */
  route(path: string, query: URLSearchParams): Response | null;
  /**
   * Weight the fake's spot window counts for a derivatives path: 0 (their weight goes to the
   * `/fapi` window and `stats.weight`); undefined for other paths.
   */
  weight(path: string, query: URLSearchParams): number | undefined;
  /** Weight a Binance derivatives request costs in the `/fapi` window (klines by `limit`, `/futures/data` 0). */
  futuresWeight(path: string, query: URLSearchParams): number;
  /** Expected closed `price` candles of a contract in `[from, to)`. */
  expectedCandles(symbol: string, timeframe: string, range: { from: number; to: number; price?: PriceKind }): Candle[];
  /** Expected funding rows of a perpetual in `[from, to)`, oldest first. */
  expectedFunding(symbol: string, from: number, to: number): FakeFundingRow[];
  /** Expected open-interest rows in `[from, to)`, oldest first (Binance: only the retained window). */
  expectedOpenInterest(symbol: string, period: string, range: { from: number; to: number }): FakeOpenInterestRow[];
  /** Exchange id of a contract (Binance `BTCUSDT`, `BTCUSDT_261226`; Bybit `BTCUSDT`, `BTCUSDT-26DEC26`). */
  contractId(symbol: string): string;
}

const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const FAPI_INTERVALS = ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w"];
const BYBIT_OI: Record<string, string> = {
  "5min": "5m",
  "15min": "15m",
  "30min": "30m",
  "1h": "1h",
  "4h": "4h",
  "1d": "1d",
};
const BINANCE_KIND: Record<string, PriceKind> = {
  "/fapi/v1/klines": "trade",
  "/fapi/v1/markPriceKlines": "mark",
  "/fapi/v1/indexPriceKlines": "index",
  "/fapi/v1/premiumIndexKlines": "premiumIndex",
};
const BYBIT_KIND: Record<string, PriceKind> = {
  "/v5/market/kline": "trade",
  "/v5/market/mark-price-kline": "mark",
  "/v5/market/index-price-kline": "index",
  "/v5/market/premium-index-price-kline": "premiumIndex",
};

function parts(symbol: string): { base: string; quote: string; settle: string } {
  const [pair, settlePart] = symbol.split(":");
  const [base, quote] = pair.split("/");
  return { base, quote, settle: settlePart.split("-")[0] };
}

function num(q: URLSearchParams, key: string): number | null {
  const v = q.get(key);
  return v === null || v === "" ? null : Number(v);
}

function fmt(kind: PriceKind, x: number): string {
  return kind === "premiumIndex" ? x.toFixed(8) : String(x);
}

/**
 * A Binance kline row of `contract` as `/fapi` (`/dapi` for inverse contracts) sends it: prices
 * as strings (premium index with 8 decimals), linear [5] base and [7] quote volume, inverse [5]
 * contracts and [7] base volume; mark, index and premium-index rows have "0" volumes and the
 * number of minutes in [8]. The fake archive writes the same rows.
 */
export function binanceKlineRow(
  contract: FakeContract,
  kind: PriceKind,
  timeframeMs: number,
  candle: Candle,
): (string | number)[] {
  const r = candle;
  const inverse = isInverse(contract);
  const size = contract.contractSize ?? 1;
  return [
    r.ts,
    fmt(kind, r.open),
    fmt(kind, r.high),
    fmt(kind, r.low),
    fmt(kind, r.close),
    kind !== "trade" ? "0" : inverse ? String(Math.round(r.volume * r.close / size)) : String(r.volume),
    r.ts + timeframeMs - 1,
    kind !== "trade" ? "0" : inverse ? String(r.volume) : String(Math.round(r.volume * r.close * 100) / 100),
    kind === "trade" ? 10 : timeframeMs / 60_000,
    "0",
    "0",
    "0",
  ];
}

function bybitInterval(value: string | null): number | null {
  if (value === null) return null;
  if (/^[0-9]+$/.test(value)) return Number(value) * 60_000;
  if (value === "D") return 86_400_000;
  if (value === "W") return 7 * 86_400_000;
  return null;
}

/** Builds the derivatives routes of one fake exchange over `contracts` (default {@linkcode defaultContracts}). */
export function createFakeDerivatives(ctx: DerivativesContext, contracts?: FakeContract[]): FakeDerivatives {
  const list = contracts ?? defaultContracts(ctx.now());
  const b = ctx.behaviour;
  const contractId = (symbol: string): string => {
    const { base, quote } = parts(symbol);
    const c = list.find((x) => x.symbol === symbol);
    const inverseBinance = ctx.dialect === "binance" && c !== undefined && isInverse(c);
    if (!c?.expiry) return inverseBinance ? `${base}${quote}_PERP` : base + quote;
    const d = new Date(c.expiry);
    if (ctx.dialect === "binance") return `${base}${quote}_${symbol.split("-")[1]}`;
    const dd = String(d.getUTCDate()).padStart(2, "0");
    return `${base}${quote}-${dd}${MONTHS[d.getUTCMonth()]}${String(d.getUTCFullYear()).slice(2)}`;
  };
  const bySymbol = (symbol: string) => {
    const c = list.find((x) => x.symbol === symbol);
    if (!c) throw new Error(`Cannot find fake contract: current symbol is ${symbol}, not listed`);
    return c;
  };
  const holes = (): FakeDerivativeHole[] => [...b.holes, ...b.priceHoles];
  const windows = new Map<string, number>();
  const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
  const binanceError = (status: number, code: number, msg: string) => json({ code, msg }, status);
  const bybitOk = (result: unknown) => json({ retCode: 0, retMsg: "OK", result, retExtInfo: {}, time: ctx.now() });
  const bybitError = (code: number, msg: string) =>
    json({ retCode: code, retMsg: msg, result: {}, retExtInfo: {}, time: ctx.now() });

  /** A fixed-window request counter of its own; a 429 beyond `limit`. */
  const ownLimit = (name: string, path: string, limit: number, windowMs: number): Response | null => {
    const t = Date.now();
    const window = Math.floor(t / windowMs);
    const key = `${name}:${window}`;
    const used = (windows.get(key) ?? 0) + 1;
    windows.set(key, used);
    if (used <= limit) return null;
    const retryAfter = Math.max(1, Math.ceil(((window + 1) * windowMs - t) / 1000));
    ctx.onReject(path, 429, retryAfter);
    return json(
      {
        code: -1003,
        msg: `Too many requests; current limit of ${name} is ${limit} requests per ${windowMs / 1000} s.`,
      },
      429,
      {
        "retry-after": String(retryAfter),
      },
    );
  };

  const candleRows = (
    c: FakeContract,
    kind: PriceKind,
    tf: number,
    q: { start: number | null; end: number | null; limit: number },
  ) => {
    const nowMs = ctx.now();
    return q.start !== null
      ? priceCandlesForward(c, kind, tf, { from: q.start, toInclusive: q.end ?? nowMs, nowMs, limit: q.limit }, holes())
      : priceCandlesBackward(c, kind, tf, { toInclusive: q.end ?? nowMs, nowMs, limit: q.limit }, holes());
  };

  // ---------------------------------------------------------------- Binance
  const binanceMarket = (c: FakeContract) => {
    const { base, quote, settle } = parts(c.symbol);
    return {
      symbol: contractId(c.symbol),
      pair: base + quote,
      contractType: isPerpetual(c) ? "PERPETUAL" : "CURRENT_QUARTER",
      deliveryDate: c.expiry ?? 4133404800000,
      onboardDate: c.listedAt,
      status: c.active === false ? "SETTLING" : "TRADING",
      maintMarginPercent: "2.5000",
      requiredMarginPercent: "5.0000",
      baseAsset: base,
      quoteAsset: quote,
      marginAsset: settle,
      contractSize: c.contractSize ?? 1,
      pricePrecision: 2,
      quantityPrecision: 3,
      baseAssetPrecision: 8,
      quotePrecision: 8,
      underlyingType: "COIN",
      underlyingSubType: [],
      triggerProtect: "0.0500",
      liquidationFee: "0.012500",
      marketTakeBound: "0.05",
      maxMoveOrderLimit: 10000,
      filters: [
        { filterType: "PRICE_FILTER", minPrice: "0.10", maxPrice: "4529764", tickSize: "0.10" },
        { filterType: "LOT_SIZE", minQty: "0.001", maxQty: "1000", stepSize: "0.001" },
        { filterType: "MARKET_LOT_SIZE", minQty: "0.001", maxQty: "120", stepSize: "0.001" },
        { filterType: "MIN_NOTIONAL", notional: "100" },
      ],
      orderTypes: ["LIMIT", "MARKET"],
      timeInForce: ["GTC", "IOC", "FOK", "GTX"],
    };
  };

  const binanceKlines = (kind: PriceKind, q: URLSearchParams, scope: FakeContract[]): Response => {
    const interval = q.get("interval") ?? "";
    if (!FAPI_INTERVALS.includes(interval)) return binanceError(400, -1120, "Invalid interval.");
    const tf = timeframeMs(interval);
    let c: FakeContract | undefined;
    if (kind === "index") {
      if (q.get("pair") === null) {
        return binanceError(400, -1102, "Mandatory parameter 'pair' was not sent, was empty/null, or malformed.");
      }
      c = scope.filter((x) => isPerpetual(x)).find((x) => contractId(x.symbol) === q.get("pair")) ??
        scope.find((x) => contractId(x.symbol).split("_")[0] === q.get("pair"));
    } else {
      c = scope.find((x) => contractId(x.symbol) === q.get("symbol"));
    }
    if (!c) return binanceError(400, -1121, "Invalid symbol.");
    const limit = Math.min(1500, num(q, "limit") ?? 500);
    const rows = candleRows(c, kind, tf, { start: num(q, "startTime"), end: num(q, "endTime"), limit });
    const contract = c;
    return json(rows.map((r) => binanceKlineRow(contract, kind, tf, r)));
  };

  /** Rows with `from <= ts <= to`: from `start` the first `limit`, else the latest `limit` up to `end`. */
  const page = <T extends { ts: number }>(
    rows: (from: number, to: number) => T[],
    q: URLSearchParams,
    limit: number,
  ) => {
    const start = num(q, "startTime");
    const end = num(q, "endTime") ?? ctx.now();
    const all = rows(start ?? 0, end);
    return start !== null ? all.slice(0, limit) : all.slice(Math.max(0, all.length - limit));
  };

  const futuresWeight = (path: string, query: URLSearchParams): number => {
    if (path.startsWith("/futures/data/")) return 0;
    if (BINANCE_KIND[path]) {
      const limit = num(query, "limit") ?? 500;
      return limit < 100 ? 1 : limit < 500 ? 2 : limit <= 1000 ? 5 : 10;
    }
    return 1;
  };

  /** The `/fapi` weight window: counts, answers 429 beyond `futuresWeightLimit`, sets the used-weight header. */
  const binanceAdmitted = (path: string, q: URLSearchParams): Response | null => {
    const weight = futuresWeight(path, q);
    const t = Date.now();
    const window = Math.floor(t / b.futuresWindowMs);
    const key = `fapi-weight:${window}`;
    const used = (windows.get(key) ?? 0) + weight;
    windows.set(key, used);
    ctx.onWeight(weight);
    const header = { "x-mbx-used-weight-1m": String(used) };
    if (b.futuresWeightLimit !== null && used > b.futuresWeightLimit) {
      const retryAfter = Math.max(1, Math.ceil(((window + 1) * b.futuresWindowMs - t) / 1000));
      ctx.onReject(path, 429, retryAfter);
      return json({ code: -1003, msg: "Too much request weight used; current limit exceeded" }, 429, {
        ...header,
        "retry-after": String(retryAfter),
      });
    }
    const response = binanceRoute(path, q);
    response?.headers.set("x-mbx-used-weight-1m", String(used));
    return response;
  };

  const binanceRoute = (rawPath: string, q: URLSearchParams): Response | null => {
    // COIN-M (`/dapi`) serves the inverse contracts with the same handlers as USDⓈ-M (`/fapi`)
    const coinM = rawPath.startsWith("/dapi/");
    const path = coinM ? rawPath.replace(/^\/dapi\//, "/fapi/") : rawPath;
    const scope = path.startsWith("/futures/data/") ? list : list.filter((c) => isInverse(c) === coinM);
    const byId = new Map(scope.map((c) => [contractId(c.symbol), c]));
    const kind = BINANCE_KIND[path];
    if (kind) return binanceKlines(kind, q, scope);
    switch (path) {
      case "/fapi/v1/ping":
        return json({});
      case "/fapi/v1/time":
        return json({ serverTime: ctx.now() });
      case "/fapi/v1/exchangeInfo":
        return json({
          timezone: "UTC",
          serverTime: ctx.now(),
          futuresType: coinM ? "COIN_MARGINED" : "U_MARGINED",
          rateLimits: [
            { rateLimitType: "REQUEST_WEIGHT", interval: "MINUTE", intervalNum: 1, limit: b.futuresPublishedLimit },
            { rateLimitType: "ORDERS", interval: "MINUTE", intervalNum: 1, limit: 1200 },
          ],
          exchangeFilters: [],
          assets: [],
          symbols: scope.map(binanceMarket),
        });
      case "/fapi/v1/fundingInfo":
        return ownLimit("fundingRate", path, b.fundingRequestLimit, b.fundingWindowMs) ??
          json(
            scope.filter(isPerpetual).map((c) => ({
              symbol: contractId(c.symbol),
              adjustedFundingRateCap: "0.02000000",
              adjustedFundingRateFloor: "-0.02000000",
              fundingIntervalHours: c.fundingIntervalHours ?? 8,
              disclaimer: false,
            })),
          );
      case "/fapi/v1/fundingRate": {
        const denied = ownLimit("fundingRate", path, b.fundingRequestLimit, b.fundingWindowMs);
        if (denied) return denied;
        const c = byId.get(q.get("symbol") ?? "");
        if (!c) return q.get("symbol") === null ? json([]) : binanceError(400, -1121, "Invalid symbol.");
        const limit = Math.min(1000, num(q, "limit") ?? 100);
        const nowMs = ctx.now();
        const rows = page((from, to) => fundingRows(c, { from, toInclusive: to, nowMs }, b.fundingHoles), q, limit);
        return json(rows.map((r) => ({
          symbol: contractId(c.symbol),
          fundingTime: r.ts,
          fundingRate: r.rate,
          markPrice: r.markPrice,
        })));
      }
      case "/futures/data/openInterestHist": {
        const denied = ownLimit("/futures/data", path, b.dataRequestLimit, b.dataWindowMs);
        if (denied) return denied;
        const c = byId.get(q.get("symbol") ?? q.get("pair") ?? "");
        if (!c) return binanceError(400, -1121, "Invalid symbol.");
        const period = OPEN_INTEREST_PERIODS[q.get("period") ?? ""];
        if (!period) return binanceError(400, -1130, "parameter 'period' is invalid.");
        const nowMs = ctx.now();
        const floor = nowMs - b.openInterestRetentionMs;
        for (const key of ["startTime", "endTime"]) {
          const v = num(q, key);
          if (v !== null && v < floor) return binanceError(400, -1130, `parameter '${key}' is invalid.`);
        }
        const limit = Math.min(500, num(q, "limit") ?? 30);
        const rows = page(
          (from, to) =>
            openInterestRows(c, period, { from: Math.max(from, floor), toInclusive: to, nowMs }, b.openInterestHoles),
          q,
          limit,
        );
        return json(rows.map((r) => ({
          symbol: contractId(c.symbol),
          sumOpenInterest: r.amount,
          sumOpenInterestValue: r.value,
          CMCCirculatingSupply: "0",
          timestamp: r.ts,
        })));
      }
    }
    return binanceError(404, -1000, `Unknown path ${path}`);
  };

  // ---------------------------------------------------------------- Bybit
  const bybitInstrument = (c: FakeContract) => {
    const { base, quote, settle } = parts(c.symbol);
    return {
      symbol: contractId(c.symbol),
      contractType: isInverse(c)
        ? (isPerpetual(c) ? "InversePerpetual" : "InverseFutures")
        : (isPerpetual(c) ? "LinearPerpetual" : "LinearFutures"),
      status: c.active === false ? "Closed" : "Trading",
      baseCoin: base,
      quoteCoin: quote,
      launchTime: String(c.listedAt),
      deliveryTime: String(c.expiry ?? 0),
      deliveryFeeRate: isPerpetual(c) ? "" : "0.0005",
      priceScale: "2",
      leverageFilter: { minLeverage: "1", maxLeverage: "100.00", leverageStep: "0.01" },
      priceFilter: { minPrice: "0.10", maxPrice: "1999999.80", tickSize: "0.10" },
      lotSizeFilter: {
        maxOrderQty: "1190.000",
        minOrderQty: isInverse(c) ? String(c.contractSize ?? 1) : "0.001",
        qtyStep: "0.001",
        postOnlyMaxOrderQty: "1190.000",
        maxMktOrderQty: "500.000",
        minNotionalValue: "5",
      },
      unifiedMarginTrade: true,
      fundingInterval: isPerpetual(c) ? fundingIntervalMs(c) / 60_000 : 0,
      settleCoin: settle,
      copyTrading: "both",
      upperFundingRate: isPerpetual(c) ? "0.02" : "",
      lowerFundingRate: isPerpetual(c) ? "-0.02" : "",
    };
  };

  const bybitRoute = (path: string, q: URLSearchParams): Response | null => {
    const category = q.get("category");
    if (category !== "linear" && category !== "inverse") return null;
    const linear = list.filter((c) => isInverse(c) === (category === "inverse"));
    const find = (id: string | null) => (id === null ? undefined : linear.find((c) => contractId(c.symbol) === id));
    const kind = BYBIT_KIND[path];
    if (kind) {
      const c = find(q.get("symbol"));
      if (!c) return bybitError(10001, "Not supported symbols");
      const tf = bybitInterval(q.get("interval"));
      if (tf === null) return bybitError(10001, "Invalid period!");
      const limit = Math.min(1000, num(q, "limit") ?? 200);
      const rows = candleRows(c, kind, tf, { start: num(q, "start"), end: num(q, "end"), limit }).reverse();
      return bybitOk({
        category,
        symbol: contractId(c.symbol),
        list: rows.map((r) => {
          const row = [String(r.ts), fmt(kind, r.open), fmt(kind, r.high), fmt(kind, r.low), fmt(kind, r.close)];
          if (kind !== "trade") return row;
          // linear: [5] base volume, [6] quote turnover; inverse: [5] contracts, [6] base turnover
          if (isInverse(c)) {
            return [...row, String(Math.round(r.volume * r.close / (c.contractSize ?? 1))), String(r.volume)];
          }
          return [...row, String(r.volume), String(Math.round(r.volume * r.close * 100) / 100)];
        }),
      });
    }
    switch (path) {
      case "/v5/market/instruments-info": {
        const rows = q.get("status") === "PreLaunch" || q.has("cursor") ? [] : linear.map(bybitInstrument);
        return bybitOk({ category, list: rows, nextPageCursor: "" });
      }
      case "/v5/market/tickers":
        return bybitOk({
          category,
          list: linear.map((c) => ({
            symbol: contractId(c.symbol),
            lastPrice: String(c.basePrice),
            markPrice: String(c.basePrice),
            indexPrice: String(c.basePrice),
            prevPrice24h: String(c.basePrice),
            price24hPcnt: "0",
            highPrice24h: String(c.basePrice),
            lowPrice24h: String(c.basePrice),
            turnover24h: String(c.quoteVolume24h),
            volume24h: String(c.quoteVolume24h / c.basePrice),
            openInterest: String(c.openInterest),
            fundingRate: "0.0001",
            bid1Price: String(c.basePrice),
            ask1Price: String(c.basePrice),
          })),
        });
      case "/v5/market/funding/history": {
        const c = find(q.get("symbol"));
        if (!c || !isPerpetual(c)) return bybitError(10001, "params error: symbol invalid");
        const start = num(q, "startTime");
        const end = num(q, "endTime");
        if (start !== null && end === null) {
          return bybitError(10001, "params error: endTime is required with startTime");
        }
        const limit = Math.min(200, num(q, "limit") ?? 200);
        const nowMs = ctx.now();
        const all = fundingRows(c, { from: start ?? 0, toInclusive: end ?? nowMs, nowMs }, b.fundingHoles);
        return bybitOk({
          category,
          list: all.slice(Math.max(0, all.length - limit)).reverse().map((r) => ({
            symbol: contractId(c.symbol),
            fundingRate: r.rate,
            fundingRateTimestamp: String(r.ts),
          })),
        });
      }
      case "/v5/market/open-interest": {
        const c = find(q.get("symbol"));
        if (!c) return bybitError(10001, "params error: symbol invalid");
        const periodName = BYBIT_OI[q.get("intervalTime") ?? ""];
        if (!periodName) return bybitError(10001, "params error: intervalTime invalid");
        const period = OPEN_INTEREST_PERIODS[periodName];
        const limit = Math.min(200, num(q, "limit") ?? 50);
        const nowMs = ctx.now();
        const cursor = q.get("cursor");
        const cursorEnd = cursor ? Number(cursor.replace(/^t/, "")) : Infinity;
        const end = Math.min(num(q, "endTime") ?? nowMs, cursorEnd);
        const all = openInterestRows(
          c,
          period,
          { from: num(q, "startTime") ?? 0, toInclusive: end, nowMs },
          b.openInterestHoles,
        );
        const rows = all.slice(Math.max(0, all.length - limit)).reverse();
        const more = all.length > limit;
        return bybitOk({
          category,
          symbol: contractId(c.symbol),
          list: rows.map((r) => ({ openInterest: Number(r.amount).toFixed(8), timestamp: String(r.ts) })),
          nextPageCursor: more ? `t${rows[rows.length - 1].ts - 1}` : "",
        });
      }
    }
    return null;
  };

  return {
    contracts: list,
    contractId,
    route(path, query) {
      if (ctx.dialect === "bybit") return bybitRoute(path, query);
      const derivative = path.startsWith("/fapi/") || path.startsWith("/dapi/") || path.startsWith("/futures/data/");
      return derivative ? binanceAdmitted(path, query) : null;
    },
    weight(path) {
      if (ctx.dialect !== "binance") return undefined;
      const derivative = path.startsWith("/fapi/") || path.startsWith("/dapi/") || path.startsWith("/futures/data/");
      return derivative ? 0 : undefined;
    },
    futuresWeight,
    expectedCandles(symbol, timeframe, range) {
      return expectedPriceCandles(bySymbol(symbol), range.price ?? "trade", timeframeMs(timeframe), {
        from: range.from,
        to: range.to,
        nowMs: ctx.now(),
      }, holes());
    },
    expectedFunding(symbol, from, to) {
      return expectedFundingRates(bySymbol(symbol), { from, to, nowMs: ctx.now() }, b.fundingHoles);
    },
    expectedOpenInterest(symbol, period, range) {
      const ms = OPEN_INTEREST_PERIODS[period];
      if (!ms) throw new Error(`Cannot compute expected open interest: current period is ${period}, not one of 5m..1d`);
      return expectedOpenInterest(bySymbol(symbol), ms, {
        ...range,
        nowMs: ctx.now(),
        retainMs: ctx.dialect === "binance" ? b.openInterestRetentionMs : undefined,
      }, b.openInterestHoles);
    },
  };
}
