/**
 * Derivatives backfill benchmark (issue 13, part 8): 30 days of trade, mark, index and premium
 * 1m candles plus funding rates and 5m open interest for 2 perpetuals, through the ingest
 * engine and real ccxt against the fake's Binance USDⓈ-M dialect (20 ms latency, its `/fapi`
 * weight limit enforced), against the rate-limit floor of the same requests: the `/fapi` weight
 * they spent divided by the published limit (`/futures/data` has its own budget and is not in
 * the floor; it is counted).
 *
 * Run: `deno task bench derivatives`.
 *
 * @module
 */
import { ingestWorld } from "../ingest/helpers.ts";

const f = (n: number, digits = 1) => n.toFixed(digits);

/** Runs the benchmark and prints its figures. */
export async function runDerivativesBench(options: { days?: number; limitPerMinute?: number } = {}): Promise<void> {
  const days = options.days ?? 30;
  // A quarter of Binance's 2400 a minute keeps the run near a minute while staying limit-bound.
  const limit = options.limitPerMinute ?? 9600;
  const w = await ingestWorld({
    env: {
      SYMBOLS: "BTC/USDT:USDT,ETH/USDT:USDT",
      CANDLE_PRICES: "trade,mark,index,premium",
      TIMEFRAMES: "1m",
      BACKFILL_SINCE: `${days}d`,
      FUNDING_RATES: "true",
      OPEN_INTEREST: "5m",
      BACKFILL_CONCURRENCY: "8",
    },
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
