import { assert, assertEquals, assertThrows } from "../support/assert.ts";
import { createHandler } from "../../src/api/server.ts";
import { ConfigError, loadConfig } from "../../src/config.ts";
import { Registry } from "../../src/metrics.ts";
import { DAY, HOUR, makeCandles, MIN, seed, startApi, type TestApi, testConfig } from "./helpers.ts";

const T0 = Date.UTC(2024, 0, 1);
const ROWS = makeCandles(T0, 3000).filter((c) => c.ts !== T0 + 100 * MIN);
const Q = "exchange=binance&symbol=BTC/USDT&timeframe=1m";
const HTTP = {
  headerTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  idleTimeoutMs: 30_000,
  maxConnections: 256,
  maxPages: 8,
};

async function withHandler(
  http: Partial<typeof HTTP> & { trustedProxy?: boolean; corsOrigins?: string[] },
  fn: (handle: (path: string, init?: RequestInit) => Promise<Response>, api: TestApi) => Promise<void>,
) {
  const api = await startApi({ config: { http: { ...HTTP, ...http } } });
  try {
    await seed(api.t.sql, await api.series("binance", "BTC/USDT", "1m"), ROWS);
    // The handler alone, no port: requests carry exactly the headers given.
    const handler = createHandler({ ...api.deps, registry: new Registry() });
    await fn((path, init) => handler(new Request(`http://api.test${path}`, init)), api);
  } finally {
    await api.close();
  }
}

async function gunzip(res: Response): Promise<string> {
  return await new Response(res.body!.pipeThrough(new DecompressionStream("gzip"))).text();
}

Deno.test("http: pages are gzipped when accepted, streamed; tiny bodies and other clients get plain text", async () => {
  await withHandler({}, async (handle) => {
    const path = `/v1/candles?${Q}&limit=2000`;
    const plain = await handle(path);
    assertEquals(plain.headers.get("content-encoding"), null);
    const text = await plain.text();
    const gz = await handle(path, { headers: { "accept-encoding": "br, gzip;q=0.8" } });
    assertEquals(gz.headers.get("content-encoding"), "gzip");
    assert(gz.headers.get("vary")!.includes("Accept-Encoding"));
    const bytes = new Uint8Array(await gz.clone().arrayBuffer());
    assert(bytes.length < text.length / 3, `compressed ${bytes.length} of ${text.length}`);
    assertEquals(await gunzip(gz), text);
    const csv = await handle(`${path}&format=csv`, { headers: { "accept-encoding": "gzip" } });
    assertEquals(csv.headers.get("content-encoding"), "gzip");
    assert((await gunzip(csv)).startsWith("time,open,high,low,close,volume\n"));
    const refused = await handle(path, { headers: { "accept-encoding": "gzip;q=0, identity" } });
    assertEquals(refused.headers.get("content-encoding"), null);
    assertEquals(await refused.text(), text);
    const tiny = await handle("/health", { headers: { "accept-encoding": "gzip" } });
    assertEquals(tiny.headers.get("content-encoding"), null);
    assertEquals((await tiny.json()).status, "ok");
  });
});

Deno.test("http: a complete page has an ETag and answers 304; repairing a gap in its range changes it", async () => {
  await withHandler({}, async (handle, api) => {
    const path = `/v1/candles?${Q}&start=${T0}&end=${T0 + 200 * MIN}`;
    const first = await handle(path);
    const etag = first.headers.get("etag")!;
    assert(etag?.startsWith('W/"'), `etag ${etag}`);
    const body = await first.text();
    const again = await handle(path, { headers: { "if-none-match": etag } });
    assertEquals(again.status, 304);
    assertEquals(again.body, null);
    assertEquals(again.headers.get("etag"), etag);
    // Same page, other format or options: another ETag.
    const csv = await handle(`${path}&format=csv`, { headers: { "if-none-match": etag } });
    assertEquals(csv.status, 200);
    assert(csv.headers.get("etag") !== etag);
    await csv.body?.cancel();
    // The 1h resampled page over the same range also gets one, and changes with the repair.
    const hourPath = `/v1/candles?exchange=binance&symbol=BTC/USDT&timeframe=1h&start=${T0}&end=${T0 + 4 * HOUR}`;
    const hour = await handle(hourPath);
    const hourEtag = hour.headers.get("etag")!;
    assertEquals((await hour.json()).candles.length, 3, "the hour with the gap is not complete");
    // Repair the gap.
    const missing = makeCandles(T0, 3000).find((c) => c.ts === T0 + 100 * MIN)!;
    await seed(api.t.sql, 1, [missing]);
    const repaired = await handle(path, { headers: { "if-none-match": etag } });
    assertEquals(repaired.status, 200);
    assert(repaired.headers.get("etag") !== etag, "the repair changes the ETag");
    assert((await repaired.text()) !== body);
    const hourAfter = await handle(hourPath, { headers: { "if-none-match": hourEtag } });
    assertEquals(hourAfter.status, 200);
    assertEquals((await hourAfter.json()).candles.length, 4);
    // Open-ended pages (still growing) and pages with partial candles have none.
    const open = await handle(`/v1/candles?${Q}&start=${T0}&order=asc&limit=10`);
    assertEquals(open.headers.get("etag"), null);
    await open.body?.cancel();
    const partial = await handle(`${path}&complete=false`);
    assertEquals(partial.headers.get("etag"), null);
    await partial.body?.cancel();
    // A page that may read more than ETAG_MAX_SOURCE_ROWS stored candles (10,000 × 45 of 1m) has
    // none; 1000 days read from the daily rollup (1000 rows) have one.
    const long = await handle(
      `/v1/candles?exchange=binance&symbol=BTC/USDT&timeframe=45m&end=${T0 + 3 * DAY}&limit=10000`,
    );
    assertEquals(long.status, 200);
    assertEquals(long.headers.get("etag"), null);
    await long.body?.cancel();
    const days = await handle(
      `/v1/candles?exchange=binance&symbol=BTC/USDT&timeframe=1d&end=${T0 + 3 * DAY}&limit=1000`,
    );
    assertEquals(days.headers.get("x-source-timeframe"), "1d");
    assert(days.headers.get("etag") !== null, "a rollup page has an ETag");
    await days.body?.cancel();
  });
});

Deno.test("http: next and Link are relative unless the proxy is trusted", async () => {
  const proxied = { headers: { "x-forwarded-proto": "https", "x-forwarded-host": "data.example:8443" } };
  await withHandler({}, async (handle) => {
    const page = await (await handle(`/v1/candles?${Q}&limit=10`, proxied)).json();
    assert(page.next.startsWith("/v1/candles?exchange=binance"), page.next);
    const csv = await handle(`/v1/candles?${Q}&limit=10&format=csv`, proxied);
    assert(csv.headers.get("link")!.startsWith("</v1/candles?"), csv.headers.get("link")!);
    await csv.body?.cancel();
  });
  await withHandler({ trustedProxy: true }, async (handle) => {
    const page = await (await handle(`/v1/candles?${Q}&limit=10`, proxied)).json();
    assert(page.next.startsWith("https://data.example:8443/v1/candles?"), page.next);
    const bad = { headers: { "x-forwarded-proto": "https", "x-forwarded-host": "evil.example/<x>" } };
    const fallback = await (await handle(`/v1/candles?${Q}&limit=10`, bad)).json();
    assert(fallback.next.startsWith("/v1/candles?"), fallback.next);
  });
});

Deno.test("http: CORS is off by default and on for the configured origins, preflight included", async () => {
  const preflight = {
    method: "OPTIONS",
    headers: { origin: "https://app.example", "access-control-request-method": "GET" },
  };
  await withHandler({}, async (handle) => {
    const res = await handle(`/v1/candles?${Q}&limit=1`, { headers: { origin: "https://app.example" } });
    assertEquals(res.headers.get("access-control-allow-origin"), null);
    await res.body?.cancel();
    assertEquals((await handle("/v1/candles", preflight)).status, 405);
  });
  await withHandler({ corsOrigins: ["https://app.example"] }, async (handle) => {
    const pre = await handle("/v1/candles", preflight);
    assertEquals(pre.status, 204);
    assertEquals(pre.headers.get("access-control-allow-origin"), "https://app.example");
    assert(pre.headers.get("access-control-allow-methods")!.includes("GET"));
    const res = await handle(`/v1/candles?${Q}&limit=1`, { headers: { origin: "https://app.example" } });
    assertEquals(res.headers.get("access-control-allow-origin"), "https://app.example");
    assert(res.headers.get("access-control-expose-headers")!.includes("Link"));
    await res.body?.cancel();
    const other = await handle(`/v1/candles?${Q}&limit=1`, { headers: { origin: "https://other.example" } });
    assertEquals(other.headers.get("access-control-allow-origin"), null);
    await other.body?.cancel();
    const err = await handle("/v1/candles?nope=1", { headers: { origin: "https://app.example" } });
    assertEquals(err.status, 400);
    assertEquals(err.headers.get("access-control-allow-origin"), "https://app.example");
  });
});

Deno.test("http: API_TRUSTED_PROXY and API_CORS_ORIGINS are validated", () => {
  const base = { EXCHANGES: "binance" };
  const ok = loadConfig({
    ...base,
    API_TRUSTED_PROXY: "true",
    API_CORS_ORIGINS: "https://a.example, http://localhost:3000",
  });
  assertEquals(ok.http?.trustedProxy, true);
  assertEquals(ok.http?.corsOrigins, ["https://a.example", "http://localhost:3000"]);
  const def = loadConfig(base);
  assertEquals([def.http?.trustedProxy, def.http?.corsOrigins], [false, []]);
  const e = assertThrows(() => loadConfig({ ...base, API_CORS_ORIGINS: "https://a.example/path" }), ConfigError);
  assert(e.message.includes("API_CORS_ORIGINS"), e.message);
  assertThrows(() => loadConfig({ ...base, API_TRUSTED_PROXY: "yes" }), ConfigError);
  assertEquals(testConfig().http?.corsOrigins, undefined);
});
