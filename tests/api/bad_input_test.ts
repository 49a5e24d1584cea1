import { assert, assertEquals } from "../support/assert.ts";
import { createHandler, type IngestControl } from "../../src/api/server.ts";
import { makeCandles, seed, startApi } from "./helpers.ts";

interface Case {
  name: string;
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
  status: number;
  /** A parameter named in `details` (400s). */
  param?: string;
}

const C = "/v1/candles?exchange=binance&symbol=BTC/USDT";
const AUTH = { authorization: "Bearer tok", "content-type": "application/json" };
const INJECTIONS = [
  "BTC/USDT';drop table candles;--",
  "BTC/USDT' or '1'='1",
  "'; delete from candles; --",
  'BTC/USDT"; truncate candles; --',
  "$1",
  "%27%3B%20drop%20table%20candles%3B--",
  "BTC/USDT)--",
  "../../etc/passwd",
  "BTC/USDT\u0000",
  "<script>alert(1)</script>",
];

const cases: Case[] = [
  // Missing and unknown parameters.
  { name: "no params", path: "/v1/candles", status: 400, param: "exchange" },
  { name: "no timeframe", path: C, status: 400, param: "timeframe" },
  { name: "no symbol", path: "/v1/candles?exchange=binance&timeframe=1m", status: 400, param: "symbol" },
  { name: "no exchange", path: "/v1/candles?symbol=BTC/USDT&timeframe=1m", status: 400, param: "exchange" },
  { name: "unknown param", path: `${C}&timeframe=1m&foo=1`, status: 400, param: "foo" },
  { name: "empty exchange", path: "/v1/candles?exchange=&symbol=BTC/USDT&timeframe=1m", status: 400 },
  { name: "empty symbol", path: "/v1/candles?exchange=binance&symbol=&timeframe=1m", status: 400 },
  // Duplicates.
  { name: "dup timeframe", path: `${C}&timeframe=1m&timeframe=5m`, status: 400, param: "timeframe" },
  { name: "dup limit", path: `${C}&timeframe=1m&limit=1&limit=2`, status: 400, param: "limit" },
  { name: "dup symbol", path: `${C}&symbol=ETH/USDT&timeframe=1m`, status: 400, param: "symbol" },
  { name: "dup start", path: `${C}&timeframe=1m&start=0&start=1`, status: 400, param: "start" },
  // Timeframes.
  ...["0m", "2M", "1y", "m1", "1.5h", "-1m", "99999m", "1mm", "NaN", "1 m", "%00", "1m;drop", "", "10000d"].map((
    tf,
  ) => ({ name: `timeframe ${JSON.stringify(tf)}`, path: `${C}&timeframe=${encodeURIComponent(tf)}`, status: 400 })),
  { name: "timeframe finer than stored", path: `${C}&timeframe=30s`, status: 404 },
  { name: "timeframe coarser mismatch", path: `${C}&timeframe=90s`, status: 404 },
  // Limits.
  ...["0", "-1", "-100", "10001", "99999999999", "1e3", "1.5", "NaN", "Infinity", "abc", "", " 5", "0x10", "+5"].map((
    l,
  ) => ({
    name: `limit ${JSON.stringify(l)}`,
    path: `${C}&timeframe=1m&limit=${encodeURIComponent(l)}`,
    status: 400,
    param: "limit",
  })),
  { name: "limit above resample cap", path: `${C}&timeframe=1001m&limit=5000`, status: 400, param: "limit" },
  // Times.
  ...[
    "yesterday",
    "1969-12-31T23:59:59Z",
    "-1",
    "-86400000",
    "10000-01-01T00:00:00Z",
    "253402300800000",
    "99999999999999999",
    "2024-13-01",
    "2024-02-30",
    "2024-01-01T25:00:00Z",
    "2024-01-01T10:61Z",
    "2024-01-01T00:00:00+25:00",
    "NaN",
    "Infinity",
    "",
    "0x10",
    "1e12",
    "2024-01-01'; drop table candles; --",
    "x".repeat(500),
    "2024/01/01",
  ].map((t) => ({
    name: `start ${JSON.stringify(t.slice(0, 30))}`,
    path: `${C}&timeframe=1m&start=${encodeURIComponent(t)}`,
    status: 400,
    param: "start",
  })),
  { name: "end before 1970", path: `${C}&timeframe=1m&end=1900-01-01`, status: 400, param: "end" },
  { name: "end after 9999", path: `${C}&timeframe=1m&end=99999-01-01`, status: 400, param: "end" },
  { name: "end equals start", path: `${C}&timeframe=1m&start=1000&end=1000`, status: 400, param: "end" },
  { name: "end before start", path: `${C}&timeframe=1m&start=2024-01-02&end=2024-01-01`, status: 400, param: "end" },
  // Huge but valid ranges: bounded by limit, so fine.
  { name: "huge range", path: `${C}&timeframe=1m&start=0&end=253402300799999`, status: 200 },
  { name: "huge range resampled", path: `${C}&timeframe=1d&start=1970-01-01&end=9999-12-31`, status: 200 },
  { name: "huge range weekly max limit", path: `${C}&timeframe=1w&start=0&limit=198`, status: 200 },
  { name: "max limit", path: `${C}&timeframe=1m&limit=10000`, status: 200 },
  // Formats.
  ...["xml", "JSON", "", "csv;", "../json"].map((f) => ({
    name: `format ${JSON.stringify(f)}`,
    path: `${C}&timeframe=1m&format=${encodeURIComponent(f)}`,
    status: 400,
    param: "format",
  })),
  // Injections through every text parameter.
  ...INJECTIONS.map((s) => ({
    name: `symbol injection ${JSON.stringify(s)}`,
    path: `/v1/candles?exchange=binance&symbol=${encodeURIComponent(s)}&timeframe=1m`,
    status: 400,
    param: "symbol",
  })),
  ...INJECTIONS.map((s) => ({
    name: `exchange injection ${JSON.stringify(s)}`,
    path: `/v1/candles?exchange=${encodeURIComponent(s)}&symbol=BTC/USDT&timeframe=1m`,
    status: 400,
    param: "exchange",
  })),
  { name: "symbol too long", path: `/v1/candles?exchange=binance&symbol=${"A".repeat(65)}&timeframe=1m`, status: 400 },
  { name: "unknown symbol", path: `/v1/candles?exchange=binance&symbol=DOGE/USDT&timeframe=1m`, status: 404 },
  { name: "unknown exchange", path: `/v1/candles?exchange=kraken&symbol=BTC/USDT&timeframe=1m`, status: 404 },
  // Series routes.
  ...["0", "-1", "abc", "1.5", "99999999999", "1e3", "%27%3B--", "2147483648"].map((id) => ({
    name: `gaps id ${id}`,
    path: `/v1/series/${id}/gaps`,
    status: 400,
    param: "id",
  })),
  { name: "gaps unknown id", path: "/v1/series/424242/gaps", status: 404 },
  { name: "series unknown param", path: "/v1/series?x=1", status: 400, param: "x" },
  { name: "health with params", path: "/health?verbose=1", status: 400 },
  // Unknown routes and wrong methods.
  ...["/v2/candles", "/v1", "/v1/candle", "/admin", "/v1/series/1/gaps/x", "/assets/x.js", "/%2e%2e/etc/passwd"].map((
    p,
  ) => ({ name: `route ${p}`, path: p, status: 404 })),
  ...[
    ["POST", "/v1/candles"],
    ["PUT", "/v1/series"],
    ["PATCH", "/v1/series/1"],
    ["GET", "/v1/series/1"],
    ["DELETE", "/v1/candles"],
    ["POST", "/health"],
    ["DELETE", "/metrics"],
    ["PUT", "/"],
    ["OPTIONS", "/v1/candles"],
  ].map(([method, path]) => ({ name: `${method} ${path}`, method, path, status: 405 })),
  // Mutating routes: auth first, then body checks.
  { name: "post without token", method: "POST", path: "/v1/series", body: "{}", status: 401 },
  {
    name: "post wrong scheme",
    method: "POST",
    path: "/v1/series",
    headers: { authorization: "Basic dG9rOg==" },
    status: 401,
  },
  { name: "delete without token", method: "DELETE", path: "/v1/series/1", status: 401 },
  { name: "post broken json", method: "POST", path: "/v1/series", headers: AUTH, body: "{", status: 400 },
  { name: "post trailing garbage", method: "POST", path: "/v1/series", headers: AUTH, body: "{}x", status: 400 },
  { name: "post empty body", method: "POST", path: "/v1/series", headers: AUTH, body: "", status: 400 },
  { name: "post json array", method: "POST", path: "/v1/series", headers: AUTH, body: "[]", status: 400 },
  { name: "post json null", method: "POST", path: "/v1/series", headers: AUTH, body: "null", status: 400 },
  { name: "post json string", method: "POST", path: "/v1/series", headers: AUTH, body: '"x"', status: 400 },
  {
    name: "post wrong types",
    method: "POST",
    path: "/v1/series",
    headers: AUTH,
    body: JSON.stringify({ exchange: 1, symbol: ["BTC/USDT"], timeframe: null }),
    status: 400,
    param: "body.exchange",
  },
  {
    name: "post extra field",
    method: "POST",
    path: "/v1/series",
    headers: AUTH,
    body: JSON.stringify({ exchange: "binance", symbol: "BTC/USDT", timeframe: "1m", admin: true }),
    status: 400,
    param: "body.admin",
  },
  {
    name: "post bad since",
    method: "POST",
    path: "/v1/series",
    headers: AUTH,
    body: JSON.stringify({ exchange: "binance", symbol: "BTC/USDT", timeframe: "1m", since: "last tuesday" }),
    status: 400,
    param: "body.since",
  },
  {
    name: "post injection symbol",
    method: "POST",
    path: "/v1/series",
    headers: AUTH,
    body: JSON.stringify({ exchange: "binance", symbol: INJECTIONS[0], timeframe: "1m" }),
    status: 400,
    param: "body.symbol",
  },
  {
    name: "post text/plain",
    method: "POST",
    path: "/v1/series",
    headers: { authorization: "Bearer tok", "content-type": "text/plain" },
    body: "{}",
    status: 415,
  },
  {
    name: "post form",
    method: "POST",
    path: "/v1/series",
    headers: { authorization: "Bearer tok", "content-type": "application/x-www-form-urlencoded" },
    body: "exchange=binance",
    status: 415,
  },
  {
    name: "post no content type",
    method: "POST",
    path: "/v1/series",
    headers: { authorization: "Bearer tok" },
    body: "{}",
    status: 415,
  },
  {
    name: "post huge body",
    method: "POST",
    path: "/v1/series",
    headers: AUTH,
    body: JSON.stringify({ exchange: "binance", symbol: "x".repeat(100_000) }),
    status: 413,
  },
  {
    name: "post invalid utf-8 is not valid JSON",
    method: "POST",
    path: "/v1/series",
    headers: AUTH,
    body: '{"exchange":"\udc00"}',
    status: 400,
  },
  { name: "delete bad id", method: "DELETE", path: "/v1/series/abc", headers: AUTH, status: 400, param: "id" },
  {
    name: "delete bad purge",
    method: "DELETE",
    path: "/v1/series/1?purge=yes",
    headers: AUTH,
    status: 400,
    param: "purge",
  },
  {
    name: "delete dup purge",
    method: "DELETE",
    path: "/v1/series/1?purge=true&purge=false",
    headers: AUTH,
    status: 400,
    param: "purge",
  },
  { name: "delete unknown id", method: "DELETE", path: "/v1/series/999", headers: AUTH, status: 404 },
];

Deno.test(`bad input: ${cases.length} malformed requests get their documented status, never a 5xx`, async () => {
  assert(cases.length >= 100, `only ${cases.length} cases`);
  const ingest: IngestControl = {
    addSeries: () => Promise.resolve({ id: 1, created: true }),
    removeSeries: () => Promise.resolve(false),
  };
  const api = await startApi({ ingest, config: { apiToken: "tok" } });
  try {
    const id = await api.series("binance", "BTC/USDT", "1m");
    await seed(api.t.sql, id, makeCandles(Date.UTC(2024, 0, 1), 3000));
    const fingerprint = () =>
      api.t.sql`select count(*)::int as n, sum(open + high + low + close + volume)::float8 as s from candles`;
    const before = await fingerprint();
    const failures: string[] = [];
    for (const c of cases) {
      const res = await fetch(`${api.base}${c.path}`, { method: c.method ?? "GET", headers: c.headers, body: c.body });
      const text = await res.text();
      if (res.status >= 500) failures.push(`${c.name}: ${res.status} ${text}`);
      else if (res.status !== c.status) {
        failures.push(`${c.name}: expected ${c.status}, got ${res.status} ${text.slice(0, 300)}`);
      } else if (c.status >= 400) {
        const body = JSON.parse(text);
        if (typeof body.error !== "string" || body.error.length === 0) failures.push(`${c.name}: no error message`);
        if (c.param && !body.details?.some((d: { parameter: string }) => d.parameter === c.param)) {
          failures.push(`${c.name}: details do not name ${c.param}: ${text}`);
        }
        if (c.status === 405 && !res.headers.get("allow")) failures.push(`${c.name}: no Allow header`);
        // Our own sentences, never zod's ("Invalid option: expected one of ...").
        if (/Invalid (option|input)|Unrecognized key|unknown parameter/.test(body.error)) {
          failures.push(`${c.name}: library wording: ${body.error}`);
        }
      }
    }
    assertEquals(failures, []);
    assertEquals(await fingerprint(), before, "the candles table is unchanged");
    const tables = await api.t.sql`select count(*)::int as n from series`;
    assertEquals(tables[0].n, 1);
  } finally {
    await api.close();
  }
});

Deno.test("bad input: a POST body cut off by the connection is a 400 naming the body, not a 500", async () => {
  let added = 0;
  const ingest: IngestControl = {
    addSeries: () => {
      added++;
      return Promise.resolve({ id: 1, created: true });
    },
    removeSeries: () => Promise.resolve(false),
  };
  const api = await startApi({ ingest, config: { apiToken: "tok" } });
  try {
    const handler = createHandler(api.deps);
    let sent = false;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (!sent) {
          sent = true;
          controller.enqueue(new TextEncoder().encode('{"exchange":"binance",'));
        } else controller.error(new Error("connection reset"));
      },
    });
    const res = await handler(
      new Request("http://localhost/v1/series", { method: "POST", headers: AUTH, body }),
    );
    assertEquals(res.status, 400);
    const json = await res.json();
    assertEquals(json.details?.[0]?.parameter, "body");
    assert(json.error.startsWith("Cannot read the body: ended after 22 bytes"), json.error);
    assertEquals(added, 0, "nothing was added");
  } finally {
    await api.close();
  }
});

Deno.test("bad input: each problem reads '<parameter> must be …; current value is …'", async () => {
  const ingest: IngestControl = {
    addSeries: () => Promise.resolve({ id: 1, created: true }),
    removeSeries: () => Promise.resolve(false),
  };
  const api = await startApi({ ingest, config: { apiToken: "tok" } });
  try {
    const error = async (path: string, init?: RequestInit) => {
      const res = await fetch(`${api.base}${path}`, init);
      assertEquals(res.status, 400, path);
      return (await res.json()).error;
    };
    assertEquals(
      await error(`${C}&timeframe=1m&format=xml&order=up&price=last&foo=1`),
      'Cannot accept the query: price must be one of trade, mark, index, premium; current value is "last"; ' +
        'order must be one of asc, desc; current value is "up"; format must be one of json, csv, ccxt; ' +
        'current value is "xml"; foo is not a parameter of /v1/candles',
    );
    assertEquals(
      await error(`${C}&timeframe=1m&start=2024-01-02&end=2024-01-01`),
      "Cannot accept the query: end must be later than start (2024-01-02T00:00:00.000Z); " +
        "current value is 2024-01-01T00:00:00.000Z",
    );
    const post = (body: unknown) => ({ method: "POST", headers: AUTH, body: JSON.stringify(body) });
    assertEquals(
      await error("/v1/series", post({ exchange: 5, symbol: "BTC/USDT", timeframe: "1m", foo: 1 })),
      "Cannot accept the body: body.exchange must be a string; current value is 5; body.foo is not a field of the body",
    );
    assertEquals(await error("/v1/series", post([])), "Cannot accept the body: body must be an object");
    assertEquals(
      await error("/v1/series", post({ exchange: "binance", symbol: "BTC/USDT" })),
      "Cannot accept the body: body.timeframe is required",
    );
  } finally {
    await api.close();
  }
});
