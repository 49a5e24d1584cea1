/**
 * Streamed candle pages and their admission: bytes identical to the page built whole, cursors
 * and permits released when the client goes away, stalls or the query fails, and 503 with
 * `Retry-After` when the gate is full.
 *
 * @module
 */
import { AdmissionGate, admissionGate, OverloadedError } from "../../src/api/admission.ts";
import { decimalText } from "../../src/api/decimal_text.ts";
import { type CandleRow, pageQuery, type PageSpec, planPage } from "../../src/api/candle_query.ts";
import { getCandles, resolveSource } from "../../src/api/candles.ts";
import { errorResponse } from "../../src/api/errors.ts";
import { createHandler } from "../../src/api/server.ts";
import { waitFor } from "../support/child.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { apiCandle, makeCandles, MIN, seed, startApi, type TestApi } from "./helpers.ts";

// Monday 2024-01-01 00:07 UTC, 12,000 minutes with a few missing: full 10,000-candle pages,
// and resampled buckets that are partial at both edges and around the gaps.
const T0 = Date.UTC(2024, 0, 1, 0, 7);
const MISSING = new Set([T0 + 5000 * MIN, T0 + 5001 * MIN, T0 + 11_000 * MIN]);
const ALL = makeCandles(T0, 12_000).filter((c) => !MISSING.has(c.ts));
const Q = "exchange=binance&symbol=BTC/USDT";

async function withApi(fn: (api: TestApi) => Promise<void>) {
  const api = await startApi();
  try {
    const id = await api.series("binance", "BTC/USDT", "1m");
    await seed(api.t.sql, id, ALL);
    await fn(api);
  } finally {
    await api.close();
  }
}

/** `JSON.rawJSON` (V8 has it; TypeScript's lib does not yet): a number written as this exact text. */
const rawJson = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

/** The page as the handler built it before streaming: the whole query awaited, then JSON.stringify. */
async function wholePage(api: TestApi, timeframe: string, limit: number, next: string | null): Promise<string> {
  // As requested with complete=false: partial buckets included and marked.
  const sql = api.t.sql;
  const source = await resolveSource(sql, "binance", "BTC/USDT", timeframe);
  const spec: PageSpec = {
    seriesId: source.seriesId,
    stepMs: source.stepMs,
    sourceStepMs: source.sourceStepMs,
    start: null,
    end: null,
    limit,
    now: Date.now(),
    complete: false,
  };
  const rows: CandleRow[] = await pageQuery(sql, spec, await planPage(sql, spec));
  const candles = rows.map((r) => {
    const c: Record<string, unknown> = {
      time: r.time,
      open: r.open,
      high: r.high,
      low: r.low,
      close: r.close,
      // A resampled volume is an exact decimal text, written as a JSON number as it is.
      volume: typeof r.volume === "string" ? rawJson(decimalText(r.volume)!) : r.volume,
    };
    if (r.partial) c.partial = true;
    return c;
  });
  return JSON.stringify({
    exchange: "binance",
    symbol: "BTC/USDT",
    timeframe,
    price: "trade",
    source_timeframe: source.rollup?.timeframe ?? source.sourceTimeframe,
    stored_timeframe: source.sourceTimeframe,
    candles,
    next,
  });
}

async function checksum(api: TestApi): Promise<string> {
  const [row] = await api.t.sql<{ n: number; s: number }[]>`
    select count(*)::int as n, sum(open + high + low + close + volume)::float8 as s from candles`;
  return `${row.n}:${row.s}`;
}

Deno.test("streaming: a 10,000-candle JSON page is byte for byte the page built whole, and CSV has the same rows", async () => {
  await withApi(async (api) => {
    const res = await fetch(`${api.base}/v1/candles?${Q}&timeframe=1m&limit=10000`);
    assertEquals(res.status, 200);
    assertEquals(res.headers.get("content-type"), "application/json; charset=utf-8");
    const text = await res.text();
    const body = JSON.parse(text);
    const expected = ALL.slice(-10_000).map(apiCandle);
    assertEquals(body.candles, expected);
    assertEquals(new URL(body.next, api.base).searchParams.get("end"), expected[0].time);
    assertEquals(text, JSON.stringify({ ...body }));
    assertEquals(text, await wholePage(api, "1m", 10_000, body.next));

    const csv = await fetch(`${api.base}/v1/candles?${Q}&timeframe=1m&limit=10000&format=csv`);
    assertEquals(csv.status, 200);
    const link = /^<(.+)>; rel="next"$/.exec(csv.headers.get("link") ?? "");
    assert(link, "CSV has a Link header");
    assertEquals(new URL(link[1], api.base).searchParams.get("end"), expected[0].time);
    const lines = (await csv.text()).split("\n");
    assertEquals(lines.length, 10_002);
    assertEquals(lines[0], "time,open,high,low,close,volume");
    assertEquals(lines.at(-1), "");
    assertEquals(
      lines.slice(1, -1),
      expected.map((c) => `${c.time},${c.open},${c.high},${c.low},${c.close},${c.volume}`),
    );
  });
});

Deno.test("streaming: resampled pages (partial buckets) and an empty page are byte for byte the pages built whole", async () => {
  await withApi(async (api) => {
    for (const [tf, limit] of [["5m", 3000], ["1h", 1000], ["1d", 10]] as const) {
      const res = await fetch(`${api.base}/v1/candles?${Q}&timeframe=${tf}&limit=${limit}&complete=false`);
      assertEquals(res.status, 200, tf);
      const text = await res.text();
      const body = JSON.parse(text);
      assert(body.candles.some((c: { partial?: boolean }) => c.partial === true), `${tf} has partial buckets`);
      assertEquals(text, await wholePage(api, tf, limit, body.next), tf);
    }
    await api.series("binance", "ETH/USDT", "1m");
    const empty = await fetch(`${api.base}/v1/candles?exchange=binance&symbol=ETH/USDT&timeframe=1m`);
    assertEquals(
      await empty.text(),
      '{"exchange":"binance","symbol":"ETH/USDT","timeframe":"1m","price":"trade","source_timeframe":"1m","stored_timeframe":"1m","candles":[],"next":null}',
    );
  });
});

/** Sends a raw HTTP request, reads until `bytes` of the response arrived, and drops the connection. */
async function readAndHangUp(port: number, path: string, bytes: number): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`));
    const buffer = new Uint8Array(16 * 1024);
    let got = "";
    while (got.length < bytes) {
      const n = await conn.read(buffer);
      if (n === null) break;
      got += new TextDecoder().decode(buffer.subarray(0, n));
    }
    return got;
  } finally {
    conn.close();
  }
}

Deno.test("streaming: clients that hang up mid-page release their cursors; the pool serves the next requests", async () => {
  await withApi(async (api) => {
    const gate = admissionGate(api.t.sql);
    const port = Number(new URL(api.base).port);
    const before = gate.stats().admitted;
    // More hang-ups than the pool has connections (4): a leaked cursor would hold one each.
    for (let i = 0; i < 8; i++) {
      const got = await readAndHangUp(port, `/v1/candles?${Q}&timeframe=1m&limit=10000`, 20_000);
      assert(got.startsWith("HTTP/1.1 200"), got.slice(0, 40));
    }
    await waitFor(
      "every hung-up page to release its permit",
      () => Promise.resolve(gate.stats().running === 0),
      10_000,
    );
    assertEquals(gate.stats().admitted - before, 8);
    const pages = await Promise.all(
      Array.from(
        { length: 4 },
        () => fetch(`${api.base}/v1/candles?${Q}&timeframe=1m&limit=10000`).then((r) => r.json()),
      ),
    );
    for (const page of pages) assertEquals(page.candles.length, 10_000);
    const [{ n }] = await api.t.sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid() and state <> 'idle'`;
    assertEquals(n, 0, "no query is left running");
  });
});

Deno.test("streaming: a page nobody reads is aborted after the idle time and frees its permit", async () => {
  await withApi(async (api) => {
    const gate = new AdmissionGate(1);
    const res = await getCandles(api.t.sql, new URL(`${api.base}/v1/candles?${Q}&timeframe=1m&limit=10000`), {
      gate,
      idleMs: 100,
    });
    assertEquals(res.status, 200);
    assertEquals(gate.stats().running, 1);
    await waitFor("the idle page to be aborted", () => Promise.resolve(gate.stats().running === 0), 10_000);
    let failed = false;
    try {
      await res.text();
    } catch {
      failed = true;
    }
    assert(failed, "the aborted body errors instead of ending as if complete");
    const again = await getCandles(api.t.sql, new URL(`${api.base}/v1/candles?${Q}&timeframe=1m&limit=10`), { gate });
    assertEquals((await again.json()).candles.length, 10);
  });
});

Deno.test("streaming: a query that fails after the headers aborts the body and frees its permit", async () => {
  await withApi(async (api) => {
    const gate = new AdmissionGate(1);
    const res = await getCandles(api.t.sql, new URL(`${api.base}/v1/candles?${Q}&timeframe=1m&limit=10000`), {
      gate,
    });
    const reader = res.body!.getReader();
    await reader.read(); // the head and the first batch are ready; the cursor waits on the server
    const killed = await api.t.sql<{ ok: boolean }[]>`
      select pg_terminate_backend(pid) as ok from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid() and query like '%to_char(c.ts%'`;
    assertEquals(killed.length, 1, "the cursor's backend was found");
    let failed = false;
    try {
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
      }
    } catch {
      failed = true;
    }
    assert(failed, "the body is aborted, not ended as if complete");
    assertEquals(gate.stats().running, 0);
    const again = await getCandles(api.t.sql, new URL(`${api.base}/v1/candles?${Q}&timeframe=1m&limit=10`), { gate });
    assertEquals((await again.json()).candles.length, 10);
  });
});

Deno.test("admission: a full gate answers 503 with Retry-After: 1; queued pages are served; the table is unchanged", async () => {
  await withApi(async (api) => {
    const sum = await checksum(api);
    const gate = admissionGate(api.t.sql);
    assertEquals(gate.limit, 2, "a pool of 4 keeps 2 connections for the rest");
    const held = [await gate.acquire(), await gate.acquire()];
    const extra = 5;
    const url = `${api.base}/v1/candles?${Q}&timeframe=1m&limit=10000`;
    const answers = Array.from(
      { length: gate.queueLimit + extra },
      () => fetch(url).then(async (res) => ({ res, text: await res.text() })),
    );
    await waitFor(
      "the queue to fill and the rest to be turned away",
      () => Promise.resolve(gate.stats().queued === gate.queueLimit && gate.stats().rejected === extra),
      10_000,
    );
    for (const permit of held) permit.release();
    const done = await Promise.all(answers);
    const statuses = done.map((d) => d.res.status);
    assertEquals(statuses.filter((s) => s === 200).length, gate.queueLimit);
    assertEquals(statuses.filter((s) => s === 503).length, extra);
    for (const { res, text } of done) {
      if (res.status === 200) {
        assertEquals(JSON.parse(text).candles.length, 10_000);
      } else {
        assertEquals(res.headers.get("retry-after"), "1");
        assertEquals(res.headers.get("content-type"), "application/json; charset=utf-8");
        const body = JSON.parse(text);
        assert(body.error.startsWith("Cannot serve the page now: current value is 2 pages running"), body.error);
      }
    }
    assertEquals(gate.stats().running, 0);
    assertEquals(await checksum(api), sum);
  });
});

Deno.test("admission: a burst of 60 pages gets full pages or 503, never another status", async () => {
  await withApi(async (api) => {
    const sum = await checksum(api);
    const answers = await Promise.all(Array.from({ length: 60 }, async (_, i) => {
      const csv = i % 3 === 0;
      const res = await fetch(
        `${api.base}/v1/candles?${Q}&timeframe=${i % 2 ? "1m" : "5m"}&limit=${i % 2 ? 10_000 : 2000}&complete=false${
          csv ? "&format=csv" : ""
        }`,
      );
      const text = await res.text();
      if (res.status !== 200) return { status: res.status, retryAfter: res.headers.get("retry-after") };
      const count = csv ? text.split("\n").length - 2 : JSON.parse(text).candles.length;
      return { status: count === (i % 2 ? 10_000 : 2000) ? 200 : -1, retryAfter: null };
    }));
    for (const a of answers) {
      assert(a.status === 200 || (a.status === 503 && a.retryAfter === "1"), JSON.stringify(a));
    }
    assert(answers.some((a) => a.status === 200), "some pages are served");
    assertEquals(admissionGate(api.t.sql).stats().running, 0);
    assertEquals(await checksum(api), sum);
  });
});

Deno.test("admission: a queued request that waits too long is turned away; the error maps to 503 with Retry-After: 1", async () => {
  const gate = new AdmissionGate(1, 1, 50);
  const held = await gate.acquire();
  let error: unknown;
  try {
    await gate.acquire();
  } catch (e) {
    error = e;
  }
  assert(error instanceof OverloadedError, String(error));
  const res = errorResponse(error);
  assertEquals(res.status, 503);
  assertEquals(res.headers.get("retry-after"), "1");
  assert((await res.json()).error.includes("current value is 1 pages running after 50 ms"));
  held.release();
  held.release();
  assertEquals(gate.stats(), { running: 0, queued: 0, admitted: 1, rejected: 1 });
});

Deno.test("streaming: a HEAD of a page frees its cursor and permit at once; HTTP_MAX_PAGES sizes the gate", async () => {
  const api = await startApi({
    config: {
      http: { headerTimeoutMs: 10_000, bodyTimeoutMs: 30_000, idleTimeoutMs: 30_000, maxConnections: 256, maxPages: 1 },
    },
  });
  try {
    const id = await api.series("binance", "BTC/USDT", "1m");
    await seed(api.t.sql, id, ALL.slice(0, 3000));
    const handler = createHandler(api.deps);
    const gate = admissionGate(api.t.sql);
    assertEquals(gate.limit, 1, "HTTP_MAX_PAGES=1");
    for (let i = 0; i < 3; i++) {
      const res = await handler(
        new Request(`http://localhost/v1/candles?${Q}&timeframe=1m&limit=2000`, { method: "HEAD" }),
      );
      assertEquals(res.status, 200);
      assertEquals(res.body, null);
      // Released before the response is returned, not after the stream's idle time.
      assertEquals(gate.stats().running, 0, `HEAD ${i + 1}`);
    }
    const res = await handler(new Request(`http://localhost/v1/candles?${Q}&timeframe=1m&limit=2000`));
    assertEquals((await res.json()).candles.length, 2000);
  } finally {
    await api.close();
  }
});
