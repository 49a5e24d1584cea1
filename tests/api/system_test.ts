import { assert, assertEquals } from "../support/assert.ts";
import { createPool, Database } from "../../src/db/client.ts";
import { migrate } from "../../src/db/migrate.ts";
import { Registry } from "../../src/metrics.ts";
import { serveApi } from "../../src/api/server.ts";
import { startPrivateServer } from "../support/pg.ts";
import { getJson, makeCandles, MIN, seed, SETTINGS, startApi, testConfig } from "./helpers.ts";

Deno.test("system: /health answers with uptime", async () => {
  let now = 1_000_000;
  const api = await startApi({ now: () => now });
  try {
    now += 42_000;
    const res = await getJson(`${api.base}/health`);
    assertEquals(res.status, 200);
    assertEquals(res.body, { status: "ok", uptime_s: 42 });
  } finally {
    await api.close();
  }
});

Deno.test("system: /ready is 503 while the database is stopped and 200 once it is back", async () => {
  const server = await startPrivateServer();
  const sql = createPool(server.url, { max: 2, connectTimeout: 2 });
  const ac = new AbortController();
  try {
    const db = new Database(sql, "private");
    const deps = { db, config: testConfig(), registry: new Registry() };
    const api = serveApi(deps, { hostname: "127.0.0.1", port: 0, signal: ac.signal });
    const base = `http://127.0.0.1:${api.port}`;
    const before = await getJson(`${base}/ready`);
    assertEquals(before.status, 503, "not ready before migrations");
    assert(before.body.reason.includes("migrations"), before.body.reason);
    await migrate(sql, SETTINGS);
    assertEquals((await getJson(`${base}/ready`)).status, 200);

    await server.stop();
    const started = performance.now();
    const down = await getJson(`${base}/ready`);
    assertEquals(down.status, 503);
    assert(down.body.reason.includes("database unreachable"), down.body.reason);
    assert(performance.now() - started < 5_000, "answers quickly while the database is down");
    assertEquals((await getJson(`${base}/health`)).status, 200, "health does not depend on the database");
    // Routes that need the database answer 503, not 500.
    const candles = await getJson(`${base}/v1/series`);
    assertEquals(candles.status, 503);

    await server.start();
    let status = 0;
    for (let i = 0; i < 40 && status !== 200; i++) {
      status = (await getJson(`${base}/ready`)).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 250));
    }
    assertEquals(status, 200, "ready again after the database is back");
    ac.abort();
    await api.finished;
  } finally {
    ac.abort();
    await sql.end({ timeout: 1 }).catch(() => {});
    await server.cleanup();
  }
});

// Prometheus text format 0.0.4: comments, and samples `name{labels} value [timestamp]`.
const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
const VALUE = "(?:[+-]?(?:[0-9]*\\.?[0-9]+(?:[eE][+-]?[0-9]+)?|Inf)|NaN)";
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(?:${LABEL}(?:,${LABEL})*,?)?\\})? ${VALUE}(?: -?[0-9]+)?$`);
const HELP = new RegExp(`^# HELP (${NAME}) .*$`);
const TYPE = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);

/** Parses the text exposition format strictly; returns samples by metric name. */
function parsePrometheus(text: string): Map<string, string[]> {
  assert(text.endsWith("\n"), "ends with a newline");
  const types = new Map<string, string>();
  const samples = new Map<string, string[]>();
  text.slice(0, -1).split("\n").forEach((line, i) => {
    const type = TYPE.exec(line);
    if (type) {
      assert(!types.has(type[1]), `line ${i + 1}: TYPE given twice for ${type[1]}`);
      types.set(type[1], type[2]);
      return;
    }
    if (HELP.test(line)) return;
    assert(!line.startsWith("#") || line.startsWith("# "), `line ${i + 1}: malformed comment: ${line}`);
    if (line.startsWith("# ")) return;
    const m = SAMPLE.exec(line);
    assert(m, `line ${i + 1} is not a valid sample: ${JSON.stringify(line)}`);
    const family = m[1].replace(/_(bucket|sum|count)$/, "");
    assert(types.has(m[1]) || types.has(family), `line ${i + 1}: sample ${m[1]} before its TYPE`);
    const list = samples.get(m[1]) ?? [];
    list.push(line);
    samples.set(m[1], list);
  });
  return samples;
}

Deno.test("system: /metrics parses as Prometheus text with request latency and series gauges", async () => {
  const api = await startApi();
  try {
    const id = await api.series("binance", 'W"EIRD\\SYM', "1m");
    await seed(api.t.sql, id, makeCandles(Date.UTC(2024, 0, 1), 30));
    api.registry.counter("candlekeep_candles_written_total", "written").inc({ series: "x" }, 3);
    await getJson(`${api.base}/health`);
    await getJson(`${api.base}/nope`);
    await getJson(`${api.base}/v1/series/12/gaps`);
    const res = await fetch(`${api.base}/metrics`);
    assertEquals(res.status, 200);
    assert(res.headers.get("content-type")!.startsWith("text/plain; version=0.0.4"));
    const samples = parsePrometheus(await res.text());
    const latency = samples.get("candlekeep_http_request_duration_seconds_count") ?? [];
    assert(latency.some((l) => l.includes('route="/health"') && l.includes('status="200"')), latency.join("\n"));
    assert(latency.some((l) => l.includes('route="unmatched"') && l.includes('status="404"')), latency.join("\n"));
    assert(latency.some((l) => l.includes('route="/v1/series/:id/gaps"')), "routes are labelled by pattern");
    const stored = samples.get("candlekeep_series_candles_stored") ?? [];
    assertEquals(stored.length, 1);
    assert(stored[0].endsWith(" 30"), stored[0]);
    assert((samples.get("candlekeep_series_lag_seconds") ?? []).length === 1);
    void MIN;
  } finally {
    await api.close();
  }
});

Deno.test("system: /openapi.json is generated from the validation schemas", async () => {
  const api = await startApi();
  try {
    const res = await getJson(`${api.base}/openapi.json`);
    assertEquals(res.status, 200);
    assertEquals(res.body.openapi, "3.1.0");
    const params = res.body.paths["/v1/candles"].get.parameters as { name: string; required: boolean }[];
    assertEquals(params.map((p) => [p.name, p.required]), [
      ["exchange", true],
      ["symbol", true],
      ["timeframe", true],
      ["start", false],
      ["end", false],
      ["price", false],
      ["limit", false],
      ["order", false],
      ["complete", false],
      ["decimals", false],
      ["format", false],
    ]);
    const body = res.body.paths["/v1/series"].post.requestBody.content["application/json"].schema;
    assertEquals(body.required, ["exchange", "symbol", "timeframe"]);
    assertEquals(body.additionalProperties, false);
  } finally {
    await api.close();
  }
});
