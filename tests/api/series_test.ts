import { assert, assertEquals } from "../support/assert.ts";
import { IngestRequestError } from "../../src/api/errors.ts";
import type { IngestControl } from "../../src/api/server.ts";
import { getJson, HOUR, makeCandles, MIN, seed, startApi } from "./helpers.ts";

const T0 = Date.UTC(2024, 0, 1);

Deno.test("series: overview lists coverage, gaps, holes, lag and state; /gaps lists ranges", async () => {
  const now = T0 + 200 * MIN + 30_000;
  const api = await startApi({ now: () => now });
  try {
    const id = await api.series("binance", "BTC/USDT", "1m");
    await seed(api.t.sql, id, makeCandles(T0, 200).filter((c) => !(c.ts >= T0 + 10 * MIN && c.ts < T0 + 14 * MIN)));
    await api.t.sql`delete from candles where series_id = ${id} and ts = to_timestamp(${(T0 + 50 * MIN) / 1000})`;
    await api.t.sql`insert into confirmed_holes (series_id, from_ts, to_ts, reason)
      values (${id}, to_timestamp(${(T0 + 10 * MIN) / 1000}), to_timestamp(${
      (T0 + 12 * MIN) / 1000
    }), 'no data from exchange')`;
    const other = await api.series("kraken", "ETH/USD", "1h");
    await api.t.sql`update series set state = 'live' where id = ${id}`;
    const res = await getJson(`${api.base}/v1/series`);
    assertEquals(res.status, 200);
    assertEquals(res.body.series, [
      {
        id,
        exchange: "binance",
        symbol: "BTC/USDT",
        timeframe: "1m",
        market_type: "spot",
        price: "trade",
        active: true,
        state: "live",
        state_reason: null,
        since: null,
        first: "2024-01-01T00:00:00.000Z",
        last: new Date(T0 + 199 * MIN).toISOString(),
        count: 195,
        gaps: { missing: 3, ranges: 2 },
        holes: { ranges: 1, ms: 2 * MIN },
        lag_s: 30,
        live_source: "rest",
      },
      {
        id: other,
        exchange: "kraken",
        symbol: "ETH/USD",
        timeframe: "1h",
        market_type: "spot",
        price: "trade",
        active: true,
        state: "new",
        state_reason: null,
        since: null,
        first: null,
        last: null,
        count: 0,
        gaps: { missing: 0, ranges: 0 },
        holes: { ranges: 0, ms: 0 },
        lag_s: null,
        live_source: "rest",
      },
    ]);
    const gaps = await getJson(`${api.base}/v1/series/${id}/gaps`);
    assertEquals(gaps.status, 200);
    assertEquals(gaps.body.gaps, [
      { from: new Date(T0 + 12 * MIN).toISOString(), to: new Date(T0 + 14 * MIN).toISOString(), count: 2 },
      { from: new Date(T0 + 50 * MIN).toISOString(), to: new Date(T0 + 51 * MIN).toISOString(), count: 1 },
    ]);
    assertEquals(gaps.body.holes.map((h: { from: string; reason: string }) => [h.from, h.reason]), [
      ["2024-01-01T00:10:00.000Z", "no data from exchange"],
    ]);
    assertEquals((await getJson(`${api.base}/v1/series/999/gaps`)).status, 404);
    assertEquals((await getJson(`${api.base}/v1/series/abc/gaps`)).status, 400);
    void HOUR;
  } finally {
    await api.close();
  }
});

/** A test double of the ingest engine that records calls. */
function fakeIngest() {
  const calls: unknown[] = [];
  const ingest: IngestControl = {
    addSeries(input) {
      calls.push(["add", input]);
      if (input.symbol === "NOPE/USDT") {
        return Promise.reject(new IngestRequestError(404, "Cannot add series: binance has no market NOPE/USDT"));
      }
      return Promise.resolve({ id: 7, created: input.timeframe !== "1h" });
    },
    removeSeries(id, options) {
      calls.push(["remove", id, options]);
      return Promise.resolve(id === 7);
    },
  };
  return { ingest, calls };
}

const BODY = JSON.stringify({ exchange: "binance", symbol: "BTC/USDT", timeframe: "1m", since: "2024-01-01" });

function post(base: string, token?: string, body = BODY) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  return getJson(`${base}/v1/series`, { method: "POST", headers, body });
}

function del(base: string, path: string, token?: string) {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  return getJson(`${base}${path}`, { method: "DELETE", headers });
}

Deno.test("series: mutating routes answer 403 without API_TOKEN configured", async () => {
  const { ingest, calls } = fakeIngest();
  const api = await startApi({ ingest });
  try {
    const res = await post(api.base, "anything");
    assertEquals(res.status, 403);
    assert(res.body.error.includes("API_TOKEN"), res.body.error);
    assertEquals((await del(api.base, "/v1/series/7", "anything")).status, 403);
    assertEquals(calls, []);
  } finally {
    await api.close();
  }
});

Deno.test("series: 401 with a missing or wrong token, 2xx with the right one", async () => {
  const { ingest, calls } = fakeIngest();
  const api = await startApi({ ingest, config: { apiToken: "s3cret-token" } });
  try {
    assertEquals((await post(api.base)).status, 401);
    assertEquals((await post(api.base, "s3cret-tokem")).status, 401);
    assertEquals((await post(api.base, "s3cret-token-longer")).status, 401);
    assertEquals((await del(api.base, "/v1/series/7")).status, 401);
    assertEquals(calls, [], "nothing reaches the engine without the token");

    const created = await post(api.base, "s3cret-token");
    assertEquals(created.status, 201);
    assertEquals(created.body, { id: 7, created: true });
    const existing = await post(
      api.base,
      "s3cret-token",
      JSON.stringify({ exchange: "binance", symbol: "btc-usdt", timeframe: "1h" }),
    );
    assertEquals(existing.status, 200);
    const unknown = await post(
      api.base,
      "s3cret-token",
      JSON.stringify({ exchange: "binance", symbol: "NOPE/USDT", timeframe: "1m" }),
    );
    assertEquals(unknown.status, 404);
    assert(unknown.body.error.includes("NOPE/USDT"));
    const bad = await post(api.base, "s3cret-token", JSON.stringify({ exchange: "binance", timeframe: "7x" }));
    assertEquals(bad.status, 400);
    assertEquals(bad.body.details.map((d: { parameter: string }) => d.parameter).sort(), [
      "body.symbol",
      "body.timeframe",
    ]);

    assertEquals((await del(api.base, "/v1/series/7", "s3cret-token")).status, 200);
    assertEquals((await del(api.base, "/v1/series/7?purge=true", "s3cret-token")).body, {
      id: 7,
      removed: true,
      purged: true,
    });
    assertEquals((await del(api.base, "/v1/series/8", "s3cret-token")).status, 404);
    assertEquals(calls, [
      ["add", { exchange: "binance", symbol: "BTC/USDT", timeframe: "1m", since: "2024-01-01" }],
      ["add", { exchange: "binance", symbol: "BTC/USDT", timeframe: "1h" }],
      ["add", { exchange: "binance", symbol: "NOPE/USDT", timeframe: "1m" }],
      ["remove", 7, { purge: false }],
      ["remove", 7, { purge: true }],
      ["remove", 8, { purge: false }],
    ]);
  } finally {
    await api.close();
  }
});

Deno.test("series: 503 with an explanation when the ingest engine is absent", async () => {
  const api = await startApi({ config: { apiToken: "t" } });
  try {
    const res = await post(api.base, "t");
    assertEquals(res.status, 503);
    assert(res.body.error.includes("ingest engine"), res.body.error);
  } finally {
    await api.close();
  }
});
