/**
 * Derivatives backfill benchmark (issue 13, part 8): 30 days of trade, mark, index and premium
 * 1m candles plus funding rates and 5m open interest for 2 perpetuals, through the ingest
 * engine and real ccxt against the fake's Binance USDⓈ-M dialect (20 ms latency, its `/fapi`
 * weight limit enforced), against the rate-limit floor of the same requests: the `/fapi` weight
 * they spent divided by the published limit (`/futures/data` has its own budget and is not in
 * the floor; it is counted). Then the same against the fake's Bybit v5 linear dialect, whose IP
 * window (every request counts 1) is set to 100 requests per 5 s instead of Bybit's 600: at 600
 * the ~440 requests fit in 4 s and the database, not the limit, sets the pace. The client
 * still assumes Bybit's 600 per 5 s; the fake's `X-Bapi-Limit-Status` headers hold it to 100.
 * Its floor: the fake's windows are fixed and the run starts with one, so no client can finish
 * before the start of the window its last request needs, (⌈requests ÷ 100⌉ − 1) × 5 s; the
 * smooth floor (requests ÷ 100 per 5 s, the Binance run's measure) is printed beside it. A last
 * run at Bybit's own 600 per 5 s is printed for reference.
 *
 * Run: `deno task bench derivatives`.
 *
 * @module
 */
import { ingestWorld } from "../ingest/helpers.ts";

const f = (n: number, digits = 1) => n.toFixed(digits);

const ENV = (days: number) => ({
  SYMBOLS: "BTC/USDT:USDT,ETH/USDT:USDT",
  CANDLE_PRICES: "trade,mark,index,premium",
  TIMEFRAMES: "1m",
  BACKFILL_SINCE: `${days}d`,
  FUNDING_RATES: "true",
  OPEN_INTEREST: "5m",
  BACKFILL_CONCURRENCY: "8",
});

/** Runs the benchmark (Binance, then Bybit) and prints its figures. */
export async function runDerivativesBench(
  options: { days?: number; limitPerMinute?: number; bybitLimitPer5s?: number } = {},
): Promise<void> {
  console.log("--- Binance USDⓈ-M");
  await runBinance(options);
  const limit = options.bybitLimitPer5s ?? 100;
  console.log(`--- Bybit v5 linear, the fake's IP limit set to ${limit} requests per 5 s (Bybit: 600)`);
  await runBybit({ ...options, bybitLimitPer5s: limit });
  console.log("--- Bybit v5 linear at Bybit's own 600 requests per 5 s (for reference: the database sets the pace)");
  await runBybit({ ...options, bybitLimitPer5s: 600 });
}

async function runBinance(options: { days?: number; limitPerMinute?: number }): Promise<void> {
  const days = options.days ?? 30;
  // A quarter of Binance's 2400 a minute keeps the run near a minute while staying limit-bound.
  const limit = options.limitPerMinute ?? 9600;
  const w = await ingestWorld({
    env: ENV(days),
    behaviour: { latencyMs: 20, futuresPublishedLimit: limit, futuresWeightLimit: limit, futuresWindowMs: 60_000 },
  });
  try {
    const client = w.clients.get("binance")!;
    w.fake.resetStats();
    const started = performance.now();
    const failures = await w.ingestor().backfillOnce();
    const seconds = (performance.now() - started) / 1000;
    if (failures.length > 0) throw new Error(`Cannot bench: ${JSON.stringify(failures)}`);
    const [candles] = await w.t.sql<{ n: number }[]>`select count(*)::int as n from candles`;
    const [funding] = await w.t.sql<{ n: number }[]>`select count(*)::int as n from funding_rates`;
    const [oi] = await w.t.sql<{ n: number }[]>`select count(*)::int as n from open_interest`;
    const byPath = w.fake.stats.byPath;
    const count = (re: RegExp) => Object.entries(byPath).filter(([p]) => re.test(p)).reduce((n, [, c]) => n + c, 0);
    const fapiWeight = client.limiters().get("fapi")?.spent ?? 0;
    const floor = fapiWeight / (limit / 60);
    const rejected = w.fake.stats.rejections.length;
    console.log(
      `stored: ${candles.n.toLocaleString("en-US")} candles (2 perpetuals × 4 prices × ${days} days of 1m), ` +
        `${funding.n} funding rates, ${oi.n.toLocaleString("en-US")} open-interest rows (5m)`,
    );
    console.log(
      `requests: ${count(/Klines|klines/)} klines, ${count(/fundingRate|fundingInfo/)} funding, ` +
        `${count(/openInterestHist/)} open interest; /fapi weight ${fapiWeight}; 429/418 answers: ${rejected}`,
    );
    const span = (re: RegExp) => {
      const at = w.fake.stats.log.filter((l) => re.test(l.path)).map((l) => l.at);
      return at.length === 0 ? "none" : `${f((Math.max(...at) - Math.min(...at)) / 1000)} s`;
    };
    console.log(
      `request spans: klines ${span(/[Kk]lines/)}, funding ${span(/funding/)}, open interest ${span(/openInterest/)}`,
    );
    console.log(`elapsed:  ${f(seconds)} s`);
    console.log(`floor:    ${f(floor)} s (/fapi weight ÷ ${limit} a minute)`);
    console.log(`elapsed / floor: ${f(seconds / floor, 2)}× (goal ≤ 1.15)`);
  } finally {
    await w.close();
  }
}

async function runBybit(options: { days?: number; bybitLimitPer5s?: number }): Promise<void> {
  const days = options.days ?? 30;
  // A sixth of Bybit's 600 per 5 s keeps the run limit-bound (see the module doc).
  const limit = options.bybitLimitPer5s ?? 100;
  const windowMs = 5_000;
  const w = await ingestWorld({
    dialect: "bybit",
    env: ENV(days),
    behaviour: { latencyMs: 20, bybitIpLimit: limit, bybitIpWindowMs: windowMs },
  });
  try {
    const client = w.clients.get("bybit")!;
    // Start on a fresh window of the fake, as a client that has been idle would.
    await new Promise((r) => setTimeout(r, windowMs - (Date.now() % windowMs) + 10));
    w.fake.resetStats();
    const started = performance.now();
    const failures = await w.ingestor().backfillOnce();
    const seconds = (performance.now() - started) / 1000;
    if (failures.length > 0) throw new Error(`Cannot bench: ${JSON.stringify(failures)}`);
    const [candles] = await w.t.sql<{ n: number }[]>`select count(*)::int as n from candles`;
    const [funding] = await w.t.sql<{ n: number }[]>`select count(*)::int as n from funding_rates`;
    const [oi] = await w.t.sql<{ n: number }[]>`select count(*)::int as n from open_interest`;
    const byPath = w.fake.stats.byPath;
    const count = (re: RegExp) => Object.entries(byPath).filter(([p]) => re.test(p)).reduce((n, [, c]) => n + c, 0);
    const requests = w.fake.stats.requests;
    const smooth = requests / (limit / (windowMs / 1000));
    const floor = (Math.ceil(requests / limit) - 1) * windowMs / 1000;
    const rejected = w.fake.stats.rejections.length;
    const perWindow = new Map<number, number>();
    for (const l of w.fake.stats.log) {
      const k = Math.floor(l.at / windowMs);
      perWindow.set(k, (perWindow.get(k) ?? 0) + 1);
    }
    console.log(
      `stored: ${candles.n.toLocaleString("en-US")} candles (2 perpetuals × 4 prices × ${days} days of 1m), ` +
        `${funding.n} funding rates, ${oi.n.toLocaleString("en-US")} open-interest rows (5m)`,
    );
    console.log(
      `requests: ${count(/kline/)} klines, ${count(/funding/)} funding, ${count(/open-interest/)} open interest, ` +
        `${requests} in all (${client.limiter.capacity} per ${client.limiter.windowMs / 1000} s assumed, ` +
        `fake enforces ${limit}); most in one ${windowMs / 1000} s window: ${Math.max(...perWindow.values())}; ` +
        `403/10006 answers: ${rejected}`,
    );
    console.log(`elapsed:  ${f(seconds)} s`);
    if (limit >= 600) {
      // Bybit's own limit: every request fits in the first windows; the database sets the pace.
      console.log(`smooth floor: ${f(smooth)} s (requests ÷ ${limit} per ${windowMs / 1000} s); not limit-bound`);
      return;
    }
    console.log(
      `floor:    ${f(floor)} s (${Math.ceil(requests / limit) - 1} full fixed windows of ${windowMs / 1000} s before ` +
        `the last request's: the fake's limit, ${limit} requests per ${windowMs / 1000} s instead of Bybit's 600); ` +
        `smooth floor ${f(smooth)} s (requests ÷ ${limit} per ${windowMs / 1000} s)`,
    );
    console.log(
      `elapsed / floor: ${f(seconds / floor, 2)}× (goal ≤ 1.15); elapsed / smooth floor: ${f(seconds / smooth, 2)}×`,
    );
  } finally {
    await w.close();
  }
}
