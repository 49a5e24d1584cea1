import { assert, assertEquals } from "../support/assert.ts";
import { candleAt, type FakeMarket, minuteCandle } from "../support/fake_candles.ts";
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
import type { Candle } from "../../src/candle.ts";

// A year of hourly candles from Friday 2023-03-03 05:00 UTC (mid-day, mid-week, mid-month),
// with gaps: a missing day, a missing week and scattered hours.
const Y0 = Date.UTC(2023, 2, 3, 5);
const YEAR = makeCandles(Y0, 365 * 24, HOUR).filter((c) => {
  const i = (c.ts - Y0) / HOUR;
  return !(i >= 1000 && i < 1024) && !(i >= 5000 && i < 5168) && i % 2897 !== 13;
});
const LAST = YEAR[YEAR.length - 1].ts;
const Q = "exchange=binance&symbol=BTC/USDT";

/** Follows `next` from `url` and returns the pages in the order they were fetched. */
async function walk(base: string, url: string): Promise<JsonBody[][]> {
  const pages: JsonBody[][] = [];
  let next: string | null = url;
  while (next !== null) {
    const page: { status: number; body: JsonBody } = await getJson(new URL(next, base).toString());
    assertEquals(page.status, 200, next);
    pages.push(page.body.candles);
    next = page.body.next;
    assert(pages.length < 10_000, "the walk ends");
  }
  return pages;
}

function monthsJs(candles: Candle[]): Record<string, unknown>[] {
  const by = new Map<number, Candle[]>();
  for (const c of candles) {
    const d = new Date(c.ts);
    const m = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    by.set(m, [...(by.get(m) ?? []), c]);
  }
  return [...by.entries()].sort((a, b) => a[0] - b[0]).map(([m, cs]) => {
    const d = new Date(m);
    const hours = (Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) - m) / HOUR;
    const out: Record<string, unknown> = {
      time: new Date(m).toISOString(),
      open: cs[0].open,
      high: Math.max(...cs.map((c) => c.high)),
      low: Math.min(...cs.map((c) => c.low)),
      close: cs[cs.length - 1].close,
    };
    if (cs.length < hours) out.partial = true;
    return out;
  });
}

const noVolume = (cs: Record<string, unknown>[]) => cs.map(({ volume: _v, ...rest }) => rest);

Deno.test("candles paging: a year walked forwards and backwards, stored and resampled, loses and repeats nothing", async () => {
  // Half an hour into the last stored hour: that candle is still forming.
  const api = await startApi({ now: () => LAST + 30 * MIN });
  try {
    const id = await api.series("binance", "BTC/USDT", "1h");
    await seed(api.t.sql, id, YEAR);
    const closed = YEAR.slice(0, -1).map(apiCandle);
    for (const limit of [1, 500, 10_000]) {
      if (limit === 1) {
        // limit 1 over a year is 8,000 requests: walk a week of it.
        const from = Y0 + 999 * HOUR, to = from + 7 * DAY;
        const want = closed.filter((c) => Date.parse(c.time as string) >= from && Date.parse(c.time as string) < to);
        const asc = await walk(api.base, `/v1/candles?${Q}&timeframe=1h&order=asc&limit=1&start=${from}&end=${to}`);
        assertEquals(asc.flat(), want);
        const desc = await walk(api.base, `/v1/candles?${Q}&timeframe=1h&limit=1&start=${from}&end=${to}`);
        assertEquals(desc.reverse().flat(), want);
        continue;
      }
      const asc = await walk(api.base, `/v1/candles?${Q}&timeframe=1h&order=asc&limit=${limit}&start=${Y0}`);
      assertEquals(asc.flat(), closed, `asc ${limit}`);
      assert(asc.slice(0, -1).every((p) => p.length === limit), "full pages forwards");
      const desc = await walk(api.base, `/v1/candles?${Q}&timeframe=1h&limit=${limit}`);
      assertEquals(desc.reverse().flat(), closed, `desc ${limit}`);
    }
    // The forming candle only with complete=false, marked partial.
    const all = await walk(api.base, `/v1/candles?${Q}&timeframe=1h&order=asc&limit=10000&complete=false`);
    assertEquals(all.flat(), [...closed, { ...apiCandle(YEAR[YEAR.length - 1]), partial: true }]);

    // Resampled: only complete buckets by default; every bucket with complete=false.
    for (const [tf, step, limit] of [["1d", DAY, 40], ["1w", 7 * DAY, 7], ["6h", 6 * HOUR, 333]] as const) {
      const every = resampleJs(YEAR, step, HOUR).map((c) =>
        c.time === new Date(Math.floor(LAST / step) * step).toISOString() ? { ...c, partial: true } : c
      );
      for (const complete of [true, false]) {
        const want = noVolume(complete ? every.filter((c) => !c.partial) : every);
        const q = `/v1/candles?${Q}&timeframe=${tf}&limit=${limit}&complete=${complete}`;
        const asc = await walk(api.base, `${q}&order=asc`);
        assertEquals(noVolume(asc.flat()), want, `${tf} asc complete=${complete}`);
        const desc = await walk(api.base, q);
        assertEquals(noVolume(desc.reverse().flat()), want, `${tf} desc complete=${complete}`);
      }
    }
    // Calendar months: the first (from the 3rd) and last (forming) are partial, and so are the
    // months with gaps; July 2023 (31 days) and the rest are whole.
    const months = monthsJs(YEAR).map((c, i, a) => i === a.length - 1 ? { ...c, partial: true } : c);
    const m = await walk(api.base, `/v1/candles?${Q}&timeframe=1M&order=asc&limit=5&complete=false`);
    assertEquals(noVolume(m.flat()), months);
    const mDesc = await walk(api.base, `/v1/candles?${Q}&timeframe=1M&limit=5`);
    assertEquals(noVolume(mDesc.reverse().flat()), months.filter((c) => !c.partial));
    assert(months.filter((c) => !c.partial).length >= 6, "whole months are returned");
  } finally {
    await api.close();
  }
});

Deno.test("candles paging: a bucket whose missing candles are a confirmed hole is complete", async () => {
  const t0 = Date.UTC(2024, 0, 1);
  const rows = makeCandles(t0, 3 * 24 * 60).filter((c) => !(c.ts >= t0 + 30 * HOUR && c.ts < t0 + 31 * HOUR));
  const api = await startApi();
  try {
    const id = await api.series("binance", "BTC/USDT", "1m");
    await seed(api.t.sql, id, rows);
    const days = async () =>
      (await getJson(`${api.base}/v1/candles?${Q}&timeframe=1d`)).body.candles.map((c: JsonBody) => c.time);
    assertEquals(await days(), ["2024-01-01T00:00:00.000Z", "2024-01-03T00:00:00.000Z"]);
    await api.t.sql`insert into confirmed_holes (series_id, from_ts, to_ts, reason)
      values (${id}, ${new Date(t0 + 30 * HOUR)}, ${new Date(t0 + 31 * HOUR)}, 'test')`;
    assertEquals(await days(), ["2024-01-01T00:00:00.000Z", "2024-01-02T00:00:00.000Z", "2024-01-03T00:00:00.000Z"]);
  } finally {
    await api.close();
  }
});

Deno.test("candles paging: resampled values are the exchange's own candles, as exact decimals", async () => {
  const market: FakeMarket = { symbol: "BTC/USDT", listedAt: 0, basePrice: 43_000, quoteVolume24h: 1e9 };
  const t0 = Date.UTC(2024, 4, 1);
  const minutes: Candle[] = [];
  for (let ts = t0; ts < t0 + 2 * DAY; ts += MIN) minutes.push(minuteCandle(market, ts));
  const api = await startApi();
  try {
    const id = await api.series("binance", "BTC/USDT", "1m");
    await seed(api.t.sql, id, minutes);
    let noisy = 0;
    for (const [tf, step] of [["1h", HOUR], ["1d", DAY], ["15m", 15 * MIN]] as const) {
      const want: string[][] = [];
      for (let ts = t0; ts < t0 + 2 * DAY; ts += step) {
        const c = candleAt(market, step, ts, Infinity)!;
        want.push([new Date(ts).toISOString(), ...[c.open, c.high, c.low, c.close, c.volume].map(String)]);
        const floatSum = minutes.filter((m) => m.ts >= ts && m.ts < ts + step).reduce((s, m) => s + m.volume, 0);
        if (String(floatSum) !== String(c.volume)) noisy++;
      }
      const q = `${api.base}/v1/candles?${Q}&timeframe=${tf}&limit=1000`;
      const strings = await getJson(`${q}&decimals=string`);
      assertEquals(
        strings.body.candles.map((c: JsonBody) => [c.time, c.open, c.high, c.low, c.close, c.volume]),
        want,
        tf,
      );
      // JSON numbers are written as the same shortest decimals, with no float noise.
      const text = await (await fetch(q)).text();
      assertEquals([...text.matchAll(/"volume":([^,}]+)/g)].map((m) => m[1]), want.map((w) => w[5]), tf);
      const csv = (await (await fetch(`${q}&format=csv`)).text()).trimEnd().split("\n").slice(1);
      assertEquals(csv, want.map((w) => w.join(",")), `${tf} csv`);
      const ccxt = await getJson(`${q}&format=ccxt`);
      assertEquals(ccxt.body, want.map(([time, ...v]) => [Date.parse(time), ...v.map(Number)]), `${tf} ccxt`);
      const ccxtStrings = await getJson(`${q}&format=ccxt&decimals=string`);
      assertEquals(ccxtStrings.body, want.map(([time, ...v]) => [Date.parse(time), ...v]), `${tf} ccxt strings`);
    }
    assert(noisy > 0, "a double-precision sum would have printed noise for some buckets");
  } finally {
    await api.close();
  }
});

Deno.test("candles paging: CSV with complete=false has a partial column", async () => {
  const t0 = Date.UTC(2024, 0, 1, 0, 30);
  const api = await startApi({ now: () => t0 + 100 * MIN });
  try {
    const id = await api.series("binance", "BTC/USDT", "1m");
    await seed(api.t.sql, id, makeCandles(t0, 100));
    const csv = async (extra: string) =>
      (await (await fetch(`${api.base}/v1/candles?${Q}&timeframe=1h&format=csv${extra}`)).text()).trimEnd().split(
        "\n",
      );
    const all = await csv("&complete=false");
    assertEquals(all[0], "time,open,high,low,close,volume,partial");
    assertEquals(all.slice(1).map((l) => l.split(",")[6]), ["true", "false", "true"]);
    const complete = await csv("");
    assertEquals(complete[0], "time,open,high,low,close,volume");
    assertEquals(complete.slice(1).map((l) => l.split(",")[0]), ["2024-01-01T01:00:00.000Z"]);
    assertEquals(complete[1], all[2].replace(/,false$/, ""));
  } finally {
    await api.close();
  }
});

Deno.test("export: 1M exports the same complete months as /v1/candles (calendar months, UTC)", async () => {
  const api = await startApi({ now: () => LAST + 30 * DAY });
  try {
    const id = await api.series("binance", "BTC/USDT", "1h");
    await seed(api.t.sql, id, YEAR);
    const { getExport } = await import("../../src/api/export.ts");
    const q = `${Q}&timeframe=1M`;
    const file = await getExport(api.t.sql, new URL(`http://x/v1/export?${q}&format=json`), {
      now: () => LAST + 30 * DAY,
    });
    assertEquals(file.status, 200);
    const exported: number[][] = await file.json();
    const page = await getJson(`${api.base}/v1/candles?${q}&format=ccxt&order=asc&limit=100`);
    const served = page.body as unknown as number[][];
    assertEquals(exported, served);
    // Complete months only: the seeded year's whole months without a gap (6 of them).
    const complete = monthsJs(YEAR).filter((m) => !m.partial).map((m) => Date.parse(m.time as string));
    assertEquals(exported.map((r) => r[0]), complete);
    assert(exported.length >= 5, `${exported.length} months`);
  } finally {
    await api.close();
  }
});
