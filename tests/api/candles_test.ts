import { assert, assertAlmostEquals, assertEquals } from "../support/assert.ts";
import {
  apiCandle,
  DAY,
  getJson,
  HOUR,
  type JsonBody,
  makeCandles,
  MIN,
  resampleJs,
  seed,
  startApi,
} from "./helpers.ts";

// Saturday 2024-01-06 12:00 UTC: the data starts mid-day and mid-week, so the first day
// and week buckets are partial, and it runs 17.5 days, so the last ones are too.
const T0 = Date.UTC(2024, 0, 6, 12, 0);
const COUNT = Math.round(17.5 * DAY / MIN);
// A few missing minutes inside the range.
const MISSING = new Set([T0 + 3000 * MIN, T0 + 3001 * MIN, T0 + 9000 * MIN]);
const ALL = makeCandles(T0, COUNT).filter((c) => !MISSING.has(c.ts));
const Q = "exchange=binance&symbol=BTC/USDT";

async function withApi(fn: (base: string) => Promise<void>) {
  const api = await startApi();
  try {
    const id = await api.series("binance", "BTC/USDT", "1m");
    await seed(api.t.sql, id, ALL);
    await api.series("binance", "ETH/USDT", "1h");
    await fn(api.base);
  } finally {
    await api.close();
  }
}

function sameCandles(actual: Record<string, unknown>[], expected: Record<string, unknown>[], what: string) {
  assertEquals(actual.length, expected.length, `${what}: count`);
  for (let i = 0; i < expected.length; i++) {
    const { volume: av, ...a } = actual[i];
    const { volume: ev, ...e } = expected[i];
    assertEquals(a, e, `${what}: candle ${i}`);
    assertAlmostEquals(av as number, ev as number, Math.abs(ev as number) * 1e-12, `${what}: volume ${i}`);
  }
}

Deno.test("candles: exact candles of a range, start inclusive, end exclusive, ISO or epoch ms", async () => {
  await withApi(async (base) => {
    const from = T0 + 2990 * MIN, to = T0 + 3010 * MIN;
    const expected = ALL.filter((c) => c.ts >= from && c.ts < to).map(apiCandle);
    const iso = await getJson(
      `${base}/v1/candles?${Q}&timeframe=1m&start=${new Date(from).toISOString()}&end=${new Date(to).toISOString()}`,
    );
    assertEquals(iso.status, 200);
    assertEquals(iso.body, {
      exchange: "binance",
      symbol: "BTC/USDT",
      timeframe: "1m",
      price: "trade",
      source_timeframe: "1m",
      stored_timeframe: "1m",
      candles: expected,
      next: null,
    });
    assertEquals(expected.length, 18);
    const ms = await getJson(`${base}/v1/candles?${Q}&timeframe=1m&start=${from}&end=${to}`);
    assertEquals(ms.body.candles, expected);
    // Symbol spelling is normalised.
    const lower = await getJson(
      `${base}/v1/candles?exchange=binance&symbol=btc-usdt&timeframe=1m&start=${from}&end=${to}`,
    );
    assertEquals(lower.body.candles, expected);
  });
});

Deno.test("candles: default page is the newest `limit`, oldest first, with next", async () => {
  await withApi(async (base) => {
    const page = await getJson(`${base}/v1/candles?${Q}&timeframe=1m&limit=5`);
    assertEquals(page.status, 200);
    assertEquals(page.body.candles, ALL.slice(-5).map(apiCandle));
    assert(page.body.next.startsWith("/v1/candles?"), "next is relative by default");
    const next = new URL(page.body.next, base);
    assertEquals(next.searchParams.get("end"), new Date(ALL[ALL.length - 5].ts).toISOString());
    assertEquals(next.searchParams.get("limit"), "5");
    const def = await getJson(`${base}/v1/candles?${Q}&timeframe=1m`);
    assertEquals(def.body.candles.length, 1000);
  });
});

Deno.test("candles: following next walks a long range with no overlap or loss", async () => {
  await withApi(async (base) => {
    const from = T0 + 100 * MIN, to = T0 + 10_000 * MIN;
    const expected = ALL.filter((c) => c.ts >= from && c.ts < to).map(apiCandle);
    let url: string | null = `${base}/v1/candles?${Q}&timeframe=1m&start=${from}&end=${to}&limit=700`;
    const pages: Record<string, unknown>[][] = [];
    while (url !== null && pages.length < 100) {
      const page: { status: number; body: JsonBody } = await getJson(url);
      assertEquals(page.status, 200);
      pages.push(page.body.candles);
      url = page.body.next === null ? null : new URL(page.body.next, base).toString();
    }
    assertEquals(url, null, "the walk ends");
    const walked = pages.reverse().flat();
    assertEquals(walked.length, expected.length);
    assertEquals(walked, expected);
    assert(pages.slice(1).every((p) => p.length === 700), "every page but the oldest is full");
    // The walk works the same for resampled timeframes.
    let rurl: string | null = `${base}/v1/candles?${Q}&timeframe=15m&start=${from}&end=${to}&limit=37`;
    const rpages: Record<string, unknown>[][] = [];
    while (rurl !== null && rpages.length < 100) {
      const page: { status: number; body: JsonBody } = await getJson(rurl);
      rpages.push(page.body.candles);
      rurl = page.body.next === null ? null : new URL(page.body.next, base).toString();
    }
    const whole = await getJson(`${base}/v1/candles?${Q}&timeframe=15m&start=${from}&end=${to}&limit=5000`);
    assertEquals(rpages.reverse().flat(), whole.body.candles);
  });
});

Deno.test("candles: resampling 1m to 5m, 1h, 1d and 1w equals an independent computation", async () => {
  await withApi(async (base) => {
    for (const [tf, step] of [["5m", 5 * MIN], ["1h", HOUR], ["1d", DAY], ["1w", 7 * DAY]] as const) {
      const limit = tf === "5m" ? "&limit=10000" : "";
      const res = await getJson(`${base}/v1/candles?${Q}&timeframe=${tf}${limit}&complete=false`);
      assertEquals(res.status, 200, tf);
      // 1h and its multiples read the hourly rollup, 1d and its multiples the daily one.
      assertEquals(res.body.source_timeframe, tf === "5m" ? "1m" : tf === "1h" ? "1h" : "1d", tf);
      assertEquals(res.body.stored_timeframe, "1m");
      const expected = resampleJs(ALL, step, MIN);
      sameCandles(res.body.candles, expected, tf);
      assertEquals(res.body.next, null);
      // By default only the complete buckets.
      const complete = await getJson(`${base}/v1/candles?${Q}&timeframe=${tf}${limit}`);
      sameCandles(complete.body.candles, expected.filter((c) => !c.partial), `${tf} complete`);
    }
    // Weeks start on Monday; the first (partial) week is the one of Monday 2024-01-01.
    const weeks = await getJson(`${base}/v1/candles?${Q}&timeframe=1w&complete=false`);
    // A page reads at most 2,000,000 stored rows: 1001m buckets from 1m, at most 1998 a page
    // (1w reads the daily rollup: 7 rows a bucket, so 1000 is fine).
    const big = await getJson(`${base}/v1/candles?${Q}&timeframe=1001m&limit=2000`);
    assertEquals(big.status, 400);
    assert(big.body.details[0].problem.includes("at most 1998"), big.body.error);
    assertEquals((await getJson(`${base}/v1/candles?${Q}&timeframe=1w&limit=1000`)).status, 200);
    assertEquals(weeks.body.candles[0].time, "2024-01-01T00:00:00.000Z");
    assertEquals(weeks.body.candles[0].partial, true);
    assert(weeks.body.candles[1].partial === true, "a week with missing minutes is partial");
    assert(!("partial" in weeks.body.candles[2]), "a complete week has no flag");
    // start/end select buckets by open time and never clip them.
    const day = await getJson(
      `${base}/v1/candles?${Q}&timeframe=1d&start=2024-01-08T06:00:00Z&end=2024-01-10T00:00:01Z&complete=false`,
    );
    sameCandles(
      day.body.candles,
      resampleJs(ALL, DAY, MIN).filter((c) =>
        ["2024-01-09T00:00:00.000Z", "2024-01-10T00:00:00.000Z"].includes(c.time as string)
      ),
      "1d window",
    );
  });
});

Deno.test("candles: CSV streams the same values as JSON", async () => {
  await withApi(async (base) => {
    for (const tf of ["1m", "4h"]) {
      const q = `${base}/v1/candles?${Q}&timeframe=${tf}&start=${T0 + 500 * MIN}&limit=3000`;
      const j = await getJson(q);
      // Exact decimals: the CSV holds the same text as JSON with decimals=string.
      const exact = await getJson(`${q}&decimals=string`);
      const res = await fetch(`${q}&format=csv`);
      assertEquals(res.status, 200);
      assert(res.headers.get("content-type")!.startsWith("text/csv"));
      const lines = (await res.text()).trimEnd().split("\n");
      assertEquals(lines[0], "time,open,high,low,close,volume");
      const rows = lines.slice(1).map((l) => l.split(","));
      assertEquals(rows.length, j.body.candles.length);
      for (let i = 0; i < rows.length; i++) {
        const c = j.body.candles[i];
        const e = exact.body.candles[i];
        assertEquals(rows[i], [c.time, e.open, e.high, e.low, e.close, e.volume]);
        assertEquals(rows[i].slice(1).map(Number), [c.open, c.high, c.low, c.close, c.volume]);
      }
      if (j.body.next) {
        const link = /^<(.+)>; rel="next"$/.exec(res.headers.get("link") ?? "");
        assert(link, "CSV has a Link header");
        const [linked, next] = [new URL(link[1], base), new URL(j.body.next, base)];
        assertEquals(linked.searchParams.get("end"), next.searchParams.get("end"));
        assertEquals(linked.searchParams.get("format"), "csv");
      }
    }
  });
});

Deno.test("candles: unknown series and timeframes answer 404 naming what exists", async () => {
  await withApi(async (base) => {
    const sym = await getJson(`${base}/v1/candles?exchange=binance&symbol=XRP/USDT&timeframe=1m`);
    assertEquals(sym.status, 404);
    assert(sym.body.error.includes("BTC/USDT") && sym.body.error.includes("ETH/USDT"), sym.body.error);
    const ex = await getJson(`${base}/v1/candles?exchange=kraken&symbol=BTC/USDT&timeframe=1m`);
    assertEquals(ex.status, 404);
    assert(ex.body.error.includes("binance"), ex.body.error);
    const tf = await getJson(`${base}/v1/candles?${Q}&timeframe=7s`);
    assertEquals(tf.status, 404);
    assert(tf.body.error.includes("stored timeframes are 1m"), tf.body.error);
    const coarse = await getJson(`${base}/v1/candles?exchange=binance&symbol=ETH/USDT&timeframe=30m`);
    assertEquals(coarse.status, 404);
    assert(coarse.body.error.includes("1h"), coarse.body.error);
    // A known series without candles is an empty page, not an error.
    const empty = await getJson(`${base}/v1/candles?exchange=binance&symbol=ETH/USDT&timeframe=4h`);
    assertEquals(empty.status, 200);
    assertEquals(empty.body.candles, []);
    assertEquals(empty.body.next, null);
  });
});
