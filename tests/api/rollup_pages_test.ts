/**
 * `GET /v1/candles` from the rollups (candles_1h, candles_1d): every page read from a rollup
 * equals the same range aggregated from the stored candles (values, exact volumes, partial
 * buckets over gaps and confirmed holes, paging in both directions, ranges cut mid-bucket), for
 * stored timeframes from 1m to 4h; writes behind the service's back show at once; and a rollup
 * that is not known to be fresh is not read.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { pageQuery, type PageSpec, planPage } from "../../src/api/candle_query.ts";
import { resolveSource } from "../../src/api/series_source.ts";
import { DAY, getJson, HOUR, type JsonBody, makeCandles, MIN, seed, startApi, type TestApi } from "./helpers.ts";

const T0 = Date.UTC(2024, 0, 1); // a Monday

type Range = { start?: number; end?: number };

/** The range aggregated straight from the stored candles (no rollup), as the API lists it. */
async function fromCandles(api: TestApi, symbol: string, tf: string, range: Range, complete: boolean) {
  const source = await resolveSource(api.t.sql, "binance", symbol, tf);
  const spec: PageSpec = {
    seriesId: source.seriesId,
    stepMs: source.stepMs,
    month: source.month,
    sourceStepMs: source.sourceStepMs,
    start: range.start ?? null,
    end: range.end ?? null,
    limit: 10_000,
    order: "asc",
    now: Date.now(),
    complete,
  };
  const rows = await pageQuery(api.t.sql, spec, await planPage(api.t.sql, spec));
  return rows.map((r) => {
    const c: Record<string, unknown> = {
      time: r.time,
      open: r.open,
      high: r.high,
      low: r.low,
      close: r.close,
      volume: Number(r.volume),
    };
    if (r.partial) c.partial = true;
    return c;
  });
}

/** Walks every page of the range through the API, checking each says where it was read. */
async function walk(api: TestApi, url: string, source: string): Promise<JsonBody[]> {
  const out: JsonBody[] = [];
  let next: string | null = url;
  for (let pages = 0; next !== null; pages++) {
    assert(pages < 200, `too many pages for ${url}`);
    const res = await getJson(`${api.base}${next}`);
    assertEquals(res.status, 200, next);
    assertEquals(res.body.source_timeframe, source, `source of ${next}`);
    out.push(...res.body.candles);
    next = res.body.next;
  }
  return out;
}

async function assertSameAsCandles(api: TestApi, symbol: string, tf: string, source: string): Promise<void> {
  const ranges: Range[] = [{}, { start: T0 + 3 * DAY + 17 * MIN, end: T0 + 11 * DAY + 5 * HOUR + 3 * MIN }];
  for (const range of ranges) {
    for (const complete of [false, true]) {
      const expected = await fromCandles(api, symbol, tf, range, complete);
      if (range.start === undefined) assert(expected.length > 0, `${symbol} ${tf}: no buckets`);
      const limit = Math.max(3, Math.ceil(expected.length / 5));
      const bounds = `${range.start ? `&start=${range.start}` : ""}${range.end ? `&end=${range.end}` : ""}`;
      const q =
        `/v1/candles?exchange=binance&symbol=${symbol}&timeframe=${tf}&complete=${complete}&limit=${limit}${bounds}`;
      const what = `${symbol} ${tf} ${JSON.stringify(range)} complete=${complete}`;
      assertEquals(await walk(api, `${q}&order=asc`, source), expected, `${what} asc`);
      const desc = await walk(api, `${q}&order=desc`, source);
      // desc pages come newest page first, each listed oldest first.
      const pages: JsonBody[][] = [];
      for (let i = 0; i < desc.length; i += limit) pages.push(desc.slice(i, i + limit));
      assertEquals(desc.length, expected.length, `${what} desc count`);
      assertEquals(new Set(desc.map((c: JsonBody) => c.time)).size, desc.length, `${what} desc overlap`);
      assertEquals(
        [...desc].sort((a: JsonBody, b: JsonBody) => a.time < b.time ? -1 : 1),
        expected,
        `${what} desc`,
      );
    }
  }
}

Deno.test("rollups: pages read from candles_1h and candles_1d equal the stored candles' aggregation", async () => {
  const api = await startApi();
  try {
    const sql = api.t.sql;
    // 1m from 00:30 on day 0 (a partial first hour and day) to day 20.
    const m1 = await api.series("binance", "BTC/USDT", "1m");
    await seed(sql, m1, makeCandles(T0 + 30 * MIN, 20 * 1440 - 30));
    // An unconfirmed gap on day 2; a confirmed hole on day 5 (that day stays complete).
    await sql`delete from candles where series_id = ${m1}
      and ts >= to_timestamp(${(T0 + 2 * DAY + 100 * MIN) / 1000}) and ts < to_timestamp(${
      (T0 + 2 * DAY + 150 * MIN) / 1000
    })`;
    await sql`delete from candles where series_id = ${m1}
      and ts >= to_timestamp(${(T0 + 5 * DAY + 3 * HOUR) / 1000}) and ts < to_timestamp(${
      (T0 + 5 * DAY + 7 * HOUR) / 1000
    })`;
    await sql`insert into confirmed_holes (series_id, from_ts, to_ts, reason) values
      (${m1}, to_timestamp(${(T0 + 5 * DAY + 3 * HOUR) / 1000}), to_timestamp(${
      (T0 + 5 * DAY + 7 * HOUR) / 1000
    }), 'no trades')`;
    const m5 = await api.series("binance", "ETH/USDT", "5m");
    await seed(sql, m5, makeCandles(T0, 18 * 288, 5 * MIN));
    const h1 = await api.series("binance", "SOL/USDT", "1h");
    await seed(sql, h1, makeCandles(T0 - 40 * DAY, 70 * 24, HOUR));
    const h4 = await api.series("binance", "XRP/USDT", "4h");
    await seed(sql, h4, makeCandles(T0 - 60 * DAY, 90 * 6, 4 * HOUR));

    for (const [tf, source] of [["1h", "1h"], ["2h", "1h"], ["4h", "1h"], ["1d", "1d"], ["3d", "1d"], ["1w", "1d"]]) {
      await assertSameAsCandles(api, "BTC/USDT", tf, source);
    }
    for (const [tf, source] of [["1h", "1h"], ["12h", "1h"], ["1d", "1d"], ["1w", "1d"]]) {
      await assertSameAsCandles(api, "ETH/USDT", tf, source);
    }
    for (const [tf, source] of [["1d", "1d"], ["1w", "1d"], ["1M", "1d"]]) {
      await assertSameAsCandles(api, "SOL/USDT", tf, source);
      await assertSameAsCandles(api, "XRP/USDT", tf, source);
    }
    // A page from a rollup may hold as many buckets as the rollup's rows allow (1w from 1m
    // directly: at most 198).
    const weeks = await getJson(`${api.base}/v1/candles?exchange=binance&symbol=BTC/USDT&timeframe=1w&limit=1000`);
    assertEquals(weeks.status, 200);
    assertEquals(weeks.body.source_timeframe, "1d");
    // A stored timeframe is read as stored; 5m from 1m needs no rollup.
    await assertSameAsCandles(api, "SOL/USDT", "1h", "1h");
    await assertSameAsCandles(api, "BTC/USDT", "5m", "1m");
  } finally {
    await api.close();
  }
});

Deno.test("rollups: writes behind the service's back show at once; a rollup not known fresh is not read", async () => {
  const api = await startApi();
  try {
    const sql = api.t.sql;
    const id = await api.series("binance", "BTC/USDT", "1m");
    await seed(sql, id, makeCandles(T0, 3 * 1440));
    const url = `${api.base}/v1/candles?exchange=binance&symbol=BTC/USDT&timeframe=1d&complete=false`;
    const before = await getJson(url);
    assertEquals(before.body.source_timeframe, "1d");
    assertEquals(before.body.candles.length, 3);

    // psql: a new high on day 1, day 2 deleted but its first hour, day 3 inserted.
    await sql`update candles set high = 1000.125 where series_id = ${id} and ts = to_timestamp(${
      (T0 + DAY + 77 * MIN) / 1000
    })`;
    await sql`delete from candles where series_id = ${id} and ts >= to_timestamp(${(T0 + 2 * DAY + HOUR) / 1000})`;
    await sql`insert into candles (series_id, ts, open, high, low, close, volume)
      select ${id}, to_timestamp(${(T0 + 3 * DAY) / 1000} + g * 60), 5, 6, 4, 5.5, 0.1 from generate_series(0, 9) g`;
    const after = await getJson(url);
    assertEquals(after.body.source_timeframe, "1d");
    assertEquals(after.body.candles, await fromCandles(api, "BTC/USDT", "1d", {}, false));
    assertEquals(after.body.candles[1].high, 1000.125);
    assertEquals(after.body.candles.length, 4);
    assertEquals(after.body.candles[3].volume, 1);

    // When the database cannot vouch for the rollup, the stored candles are aggregated instead.
    await sql`create or replace function candles_rollup_fresh(width text, lo timestamptz, hi timestamptz)
      returns boolean language sql as $$ select false $$`;
    const fallback = await getJson(url);
    assertEquals(fallback.body.source_timeframe, "1m");
    assertEquals(fallback.body.candles, after.body.candles);
    // A limit allowed from the rollup is then clamped to what the stored candles allow, not refused.
    const weeks = await getJson(`${api.base}/v1/candles?exchange=binance&symbol=BTC/USDT&timeframe=1w&limit=1000`);
    assertEquals(weeks.status, 200);
    assertEquals(weeks.body.source_timeframe, "1m");
  } finally {
    await api.close();
  }
});
