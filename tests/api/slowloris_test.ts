/**
 * Connection hardening of the API server (issue 9): request-head deadline (slowloris), head size cap, idle
 * keep-alive timeout, connection cap, normal traffic through the front, and `charset=utf-8`
 * on every text response. Real TCP connections to 127.0.0.1.
 *
 * @module
 */
import { assert, assertEquals } from "../support/assert.ts";
import { Database } from "../../src/db/client.ts";
import { migrate } from "../../src/db/migrate.ts";
import { Registry } from "../../src/metrics.ts";
import { type ApiDeps, type ConnectionLimits, type IngestControl, serveApi } from "../../src/api/server.ts";
import { registerSeries } from "../../src/ingest/series.ts";
import { createTestDatabase, type TestDatabase } from "../support/pg.ts";
import { makeCandles, MIN, seed, SETTINGS, testConfig } from "./helpers.ts";
import { freePort, spawnCandlekeep, waitFor } from "../support/child.ts";
import { serveGuarded } from "../../src/api/guard.ts";

const TOKEN = "slowloris-test-token-0123456789";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Served {
  base: string;
  port: number;
  t: TestDatabase;
  close(): Promise<void>;
}

async function serve(limits: Partial<ConnectionLimits>, ingest?: IngestControl): Promise<Served> {
  const t = await createTestDatabase();
  await migrate(t.sql, SETTINGS);
  const deps: ApiDeps = {
    db: new Database(t.sql, t.name),
    config: testConfig({ apiToken: TOKEN }),
    registry: new Registry(),
    ingest,
  };
  const ac = new AbortController();
  const server = serveApi(deps, { hostname: "127.0.0.1", port: 0, signal: ac.signal, limits });
  return {
    base: `http://127.0.0.1:${server.port}`,
    port: server.port,
    t,
    async close() {
      ac.abort();
      await server.finished;
      await t.drop();
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reads until the server closes the connection (or `deadlineMs` passes); returns what it sent. */
async function readUntilClosed(conn: Deno.Conn, deadlineMs: number): Promise<{ closed: boolean; text: string }> {
  const chunks: string[] = [];
  const buf = new Uint8Array(16 * 1024);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch { /* closed */ }
  }, deadlineMs);
  let closed = false;
  try {
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(decoder.decode(buf.subarray(0, n), { stream: true }));
    }
    closed = !timedOut;
  } catch {
    // ECONNRESET is the server closing too; after the deadline it is our own close.
    closed = !timedOut;
  } finally {
    clearTimeout(timer);
  }
  return { closed, text: chunks.join("") };
}

const pending = new WeakMap<Deno.Conn, Uint8Array>();

/**
 * Reads one response with a Content-Length body (none after a HEAD) from a keep-alive
 * connection; bytes after it are kept for the next call.
 */
async function readResponse(conn: Deno.Conn, head = false): Promise<{ status: number; headers: string; body: string }> {
  let data = pending.get(conn) ?? new Uint8Array(0);
  const buf = new Uint8Array(16 * 1024);
  while (true) {
    const text = decoder.decode(data);
    const end = text.indexOf("\r\n\r\n");
    if (end >= 0) {
      const headers = text.slice(0, end);
      const length = head ? 0 : Number(/content-length:\s*(\d+)/i.exec(headers)?.[1] ?? "0");
      const headBytes = encoder.encode(text.slice(0, end + 4)).byteLength;
      if (data.byteLength >= headBytes + length) {
        pending.set(conn, data.slice(headBytes + length));
        return {
          status: Number(headers.split(" ")[1]),
          headers,
          body: decoder.decode(data.subarray(headBytes, headBytes + length)),
        };
      }
    }
    const n = await conn.read(buf);
    if (n === null) throw new Error(`Cannot read a response: current bytes are ${JSON.stringify(text)}`);
    const next = new Uint8Array(data.byteLength + n);
    next.set(data);
    next.set(buf.subarray(0, n), data.byteLength);
    data = next;
  }
}

/** Probes `/health` every `everyMs` until `stop` resolves; returns every latency in ms. */
async function probeHealth(base: string, stop: Promise<unknown>, everyMs = 100): Promise<number[]> {
  let stopped = false;
  stop.finally(() => stopped = true);
  const latencies: number[] = [];
  while (!stopped) {
    const started = performance.now();
    const res = await fetch(`${base}/health`, { signal: AbortSignal.timeout(5_000) });
    const body = await res.json();
    latencies.push(performance.now() - started);
    assertEquals(res.status, 200);
    assertEquals(body.status, "ok");
    await sleep(everyMs);
  }
  return latencies;
}

const HEAD = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slowloris\r\nX-Padding: " + "a".repeat(200);

Deno.test("slowloris: 50 connections dribbling a head are closed while /health answers within 1 s", async () => {
  const api = await serve({ headerTimeoutMs: 2_000, idleTimeoutMs: 30_000 });
  try {
    const conns = await Promise.all(
      Array.from({ length: 50 }, () => Deno.connect({ hostname: "127.0.0.1", port: api.port })),
    );
    const started = performance.now();
    const results = conns.map(async (conn) => {
      // One byte every 250 ms: always within any per-byte timeout, never a whole head.
      let stop = false;
      const dribble = (async () => {
        for (let i = 0; i < HEAD.length && !stop; i++) {
          try {
            await conn.write(encoder.encode(HEAD[i]));
          } catch {
            return;
          }
          await sleep(250);
        }
      })();
      const result = await readUntilClosed(conn, 60_000);
      stop = true;
      await dribble;
      try {
        conn.close();
      } catch { /* closed by the deadline */ }
      return { ...result, afterMs: performance.now() - started };
    });
    const all = Promise.all(results);
    const latencies = await probeHealth(api.base, all);
    const closed = await all;
    const max = Math.max(...latencies);
    console.log(
      `slowloris: ${closed.filter((c) => c.closed).length}/50 closed, the last after ${
        Math.round(Math.max(...closed.map((c) => c.afterMs)))
      } ms; /health: ${latencies.length} probes, max ${Math.round(max)} ms`,
    );
    assertEquals(closed.filter((c) => c.closed).length, 50, "every slow connection is closed by the server");
    for (const c of closed) {
      assert(c.text.startsWith("HTTP/1.1 408 "), `a 408 before closing: ${c.text}`);
      assert(/content-type: application\/json; charset=utf-8/i.test(c.text), c.text);
      assert(c.afterMs < 60_000, `closed within 60 s: ${c.afterMs}`);
    }
    assert(latencies.length >= 5, `several probes ran: ${latencies.length}`);
    assert(max < 1_000, `/health answers within 1 s throughout: max ${max} ms`);
  } finally {
    await api.close();
  }
});

Deno.test("slowloris: a connection that sends nothing is closed; an idle keep-alive one after the idle timeout", async () => {
  const api = await serve({ headerTimeoutMs: 1_000, idleTimeoutMs: 1_500 });
  try {
    const silent = await Deno.connect({ hostname: "127.0.0.1", port: api.port });
    const silentResult = readUntilClosed(silent, 15_000);

    const conn = await Deno.connect({ hostname: "127.0.0.1", port: api.port });
    // Keep-alive works: two requests on one connection, the second after a pause longer than
    // the header timeout (an idle connection waits for the idle timeout, not the header one).
    await conn.write(encoder.encode("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    const first = await readResponse(conn);
    assertEquals(first.status, 200);
    await sleep(1_200);
    await conn.write(encoder.encode("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
    const second = await readResponse(conn);
    assertEquals(second.status, 200);
    assertEquals(JSON.parse(second.body).status, "ok");
    // Then nothing: the server closes it.
    const idle = await readUntilClosed(conn, 15_000);
    assert(idle.closed, "the idle keep-alive connection is closed by the server");
    assertEquals(idle.text, "", "nothing is written to an idle connection before closing it");
    conn.close();

    const quiet = await silentResult;
    assert(quiet.closed, "a connection that never sends a head is closed");
    assert(quiet.text.startsWith("HTTP/1.1 408 "), quiet.text);
    silent.close();
  } finally {
    await api.close();
  }
});

Deno.test("slowloris: a slow body is closed after the body timeout", async () => {
  const api = await serve({ headerTimeoutMs: 1_000, bodyTimeoutMs: 1_500 }, fakeIngest());
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: api.port });
    await conn.write(encoder.encode(
      `POST /v1/series HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\n` +
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
    ));
    let stop = false;
    const dribble = (async () => {
      while (!stop) {
        await sleep(200);
        if (!stop) await conn.write(encoder.encode(" ")).catch(() => stop = true);
      }
    })();
    const result = await readUntilClosed(conn, 15_000);
    stop = true;
    await dribble;
    assert(result.closed, "the slow body's connection is closed by the server");
    conn.close();
  } finally {
    await api.close();
  }
});

Deno.test("slowloris: at the connection cap, waiting connections make room and busy ones get a 503", async () => {
  const api = await serve({ headerTimeoutMs: 30_000, bodyTimeoutMs: 30_000, maxConnections: 5 }, fakeIngest());
  const opened: Deno.Conn[] = [];
  try {
    // Five connections with a partial head: the cap is reached.
    const slow = await Promise.all(
      Array.from({ length: 5 }, () => Deno.connect({ hostname: "127.0.0.1", port: api.port })),
    );
    opened.push(...slow);
    for (const c of slow) await c.write(encoder.encode("GET /health HTTP/1.1\r\nHost"));
    await sleep(200);
    const closedSlow = slow.map((c) => readUntilClosed(c, 20_000));
    // /health still answers within 1 s: each new connection evicts the oldest waiting one.
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      const res = await fetch(`${api.base}/health`, { headers: { connection: "close" } });
      assertEquals(res.status, 200);
      await res.body?.cancel();
      const ms = performance.now() - started;
      assert(ms < 1_000, `/health within 1 s at the cap: ${ms} ms`);
    }
    await sleep(200);
    // Five connections in the middle of a request body: nothing can be evicted.
    const busy = await Promise.all(
      Array.from({ length: 5 }, () => Deno.connect({ hostname: "127.0.0.1", port: api.port })),
    );
    opened.push(...busy);
    for (const c of busy) {
      await c.write(encoder.encode(
        `POST /v1/series HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\n` +
          "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
      ));
    }
    await sleep(300);
    const slowResults = await Promise.all(closedSlow);
    assertEquals(slowResults.filter((r) => r.closed).length, 5, "every waiting connection was evicted");
    const refused = await Deno.connect({ hostname: "127.0.0.1", port: api.port });
    opened.push(refused);
    const answer = await readUntilClosed(refused, 10_000);
    assert(answer.closed, "the connection over the cap is closed");
    assert(answer.text.startsWith("HTTP/1.1 503 "), answer.text);
    assert(/retry-after: 1/i.test(answer.text), answer.text);
    assert(/content-type: application\/json; charset=utf-8/i.test(answer.text), answer.text);
    const body = JSON.parse(answer.text.slice(answer.text.indexOf("\r\n\r\n") + 4));
    assertEquals(body.error, "Cannot accept the connection: current open connections are 5, the limit");
    // The busy requests complete normally once their bodies arrive.
    const payload = JSON.stringify({ exchange: "binance", symbol: "BTC/USDT", timeframe: "1m" });
    for (const c of busy) {
      await c.write(encoder.encode(`${" ".repeat(100 - payload.length)}${payload.slice(1)}`));
      const res = await readResponse(c);
      assertEquals(res.status, 201, res.body);
    }
  } finally {
    for (const c of opened) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await api.close();
  }
});

function fakeIngest(): IngestControl {
  return {
    addSeries: () => Promise.resolve({ id: 1, created: true }),
    removeSeries: () => Promise.resolve(true),
  };
}

Deno.test("slowloris: large CSV pages, POST bodies (sized and chunked) and HEAD work through the front", async () => {
  const api = await serve({ headerTimeoutMs: 2_000, idleTimeoutMs: 2_000 }, fakeIngest());
  try {
    const T0 = Date.UTC(2024, 0, 1);
    const id = (await registerSeries(api.t.sql, { exchange: "binance", symbol: "BTC/USDT", timeframe: "1m" })).id;
    await seed(api.t.sql, id, makeCandles(T0, 12_000));
    const q = `${api.base}/v1/candles?exchange=binance&symbol=BTC/USDT&timeframe=1m&start=${T0}&end=${
      T0 + 12_000 * MIN
    }&limit=10000`;
    const csv = await fetch(`${q}&format=csv`);
    assertEquals(csv.status, 200);
    const text = await csv.text();
    assertEquals(text.trimEnd().split("\n").length, 10_001);
    assert(text.length > 500_000, `a large page: ${text.length} characters`);
    const page = await (await fetch(q)).json();
    assertEquals(page.candles.length, 10_000);

    const payload = { exchange: "binance", symbol: "ETH/USDT", timeframe: "1h" };
    const sized = await fetch(`${api.base}/v1/series`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify(payload),
    });
    assertEquals(sized.status, 201);
    assertEquals(await sized.json(), { id: 1, created: true });
    const bytes = encoder.encode(JSON.stringify(payload));
    const chunked = await fetch(`${api.base}/v1/series`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < bytes.length; i += 7) controller.enqueue(bytes.subarray(i, i + 7));
          controller.close();
        },
      }),
    });
    assertEquals(chunked.status, 201);
    await chunked.body?.cancel();

    // Pipelined requests with bodies on one raw connection.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: api.port });
    const body = JSON.stringify(payload);
    const post = `POST /v1/series HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${encoder.encode(body).byteLength}\r\n\r\n${body}`;
    await conn.write(encoder.encode(post + "HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n" + post));
    assertEquals((await readResponse(conn)).status, 201);
    const head = await readResponse(conn, true);
    assertEquals(head.status, 200);
    assertEquals((await readResponse(conn)).status, 201);
    conn.close();
  } finally {
    await api.close();
  }
});

Deno.test("charset: every text response of the API and dashboard says charset=utf-8", async () => {
  const api = await serve({}, fakeIngest());
  try {
    const id = (await registerSeries(api.t.sql, { exchange: "binance", symbol: "BTC/USDT", timeframe: "1m" })).id;
    await seed(api.t.sql, id, makeCandles(Date.UTC(2024, 0, 1), 10));
    const auth = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
    const requests: [string, RequestInit?][] = [
      ["/"],
      ["/assets/app.js"],
      ["/assets/style.css"],
      ["/assets/lightweight-charts.js"],
      ["/openapi.json"],
      ["/health"],
      ["/ready"],
      ["/metrics"],
      ["/v1/series"],
      [`/v1/series/${id}/gaps`],
      ["/v1/candles?exchange=binance&symbol=BTC/USDT&timeframe=1m"],
      ["/v1/candles?exchange=binance&symbol=BTC/USDT&timeframe=1m&format=csv"],
      ["/v1/candles?exchange=binance&symbol=BTC/USDT&timeframe=1h"],
      ["/v1/candles?exchange=nope"], // 400
      ["/nowhere"], // 404
      ["/health", { method: "POST" }], // 405
      ["/v1/series", { method: "POST", headers: auth, body: "{}" }], // 400
      ["/v1/series", { method: "POST", body: "{}" }], // 401
      ["/v1/series", {
        method: "POST",
        headers: auth,
        body: '{"exchange":"binance","symbol":"BTC/USDT","timeframe":"1m"}',
      }],
      [`/v1/series/${id}`, { method: "DELETE", headers: auth }],
      ["/health", { method: "HEAD" }],
    ];
    for (const [path, init] of requests) {
      const res = await fetch(`${api.base}${path}`, init);
      await res.body?.cancel();
      const type = res.headers.get("content-type");
      assert(type !== null, `${init?.method ?? "GET"} ${path} (${res.status}) has a content type`);
      assert(
        /;\s*charset=utf-8/i.test(type),
        `${init?.method ?? "GET"} ${path} (${res.status}): content-type "${type}" says charset=utf-8`,
      );
    }
  } finally {
    await api.close();
  }
});

Deno.test("slowloris: the service applies HTTP_HEADER_TIMEOUT and HTTP_MAX_CONNECTIONS from its environment", async () => {
  const t = await createTestDatabase();
  const port = freePort();
  const service = spawnCandlekeep(["start"], {
    DATABASE_URL: t.url,
    API_PORT: String(port),
    EXCHANGES: "binance",
    // No exchange is reachable here and none is needed: nothing is configured to collect.
    CCXT_CONFIG: JSON.stringify({ binance: { urls: { api: { public: "http://127.0.0.1:9/api/v3" } }, timeout: 500 } }),
    HTTP_HEADER_TIMEOUT: "1s",
    HTTP_MAX_CONNECTIONS: "3",
    // With a token, POST /v1/series reads its body (without one it answers 403 at once).
    API_TOKEN: TOKEN,
  });
  const opened: Deno.Conn[] = [];
  try {
    await waitFor("the API to listen", async () => {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/health`);
        await res.body?.cancel();
        return res.ok;
      } catch {
        return false;
      }
    }, 60_000);
    // A connection that sends half a head is closed after about 1 s (the default is 10 s).
    const silent = await Deno.connect({ hostname: "127.0.0.1", port });
    opened.push(silent);
    await silent.write(encoder.encode("GET /health HTTP/1.1\r\n"));
    const started = performance.now();
    const result = await readUntilClosed(silent, 8_000);
    const ms = performance.now() - started;
    assert(result.closed, "the slow head's connection is closed");
    assert(ms < 5_000, `closed after ${ms.toFixed(0)} ms, with HTTP_HEADER_TIMEOUT=1s`);
    assert(result.text.startsWith("HTTP/1.1 408 "), result.text);
    // Three connections in the middle of a body fill the cap of 3: the fourth gets a 503.
    for (let i = 0; i < 3; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      opened.push(c);
      await c.write(encoder.encode(
        `POST /v1/series HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\n` +
          "Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{",
      ));
    }
    await sleep(300);
    const over = await Deno.connect({ hostname: "127.0.0.1", port });
    opened.push(over);
    const answer = await readUntilClosed(over, 5_000);
    assert(answer.text.startsWith("HTTP/1.1 503 "), answer.text);
    assert(answer.text.includes("current open connections are 3, the limit"), answer.text);
  } finally {
    for (const c of opened) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    service.process.kill("SIGTERM");
    await service.status;
    await t.drop();
  }
});

Deno.test("slowloris: the internal loopback server refuses connections that do not come through the front", async () => {
  const ac = new AbortController();
  const server = serveGuarded(() => new Response("ok"), { hostname: "127.0.0.1", port: 0, signal: ac.signal });
  try {
    const through = await fetch(`http://127.0.0.1:${server.port}/`);
    assertEquals([through.status, await through.text()], [200, "ok"]);
    const direct = await fetch(`http://127.0.0.1:${server.internalPort}/`);
    assertEquals(direct.status, 403);
    assertEquals((await direct.json()).error, "Cannot serve this connection: connect through the API port");
  } finally {
    ac.abort();
    await server.finished;
  }
});

Deno.test("slowloris: a request head over maxHeadBytes gets a 431 and is closed; a smaller one is served", async () => {
  const ac = new AbortController();
  const reasons: string[] = [];
  const server = serveGuarded(() => new Response("ok"), {
    hostname: "127.0.0.1",
    port: 0,
    signal: ac.signal,
    limits: { maxHeadBytes: 1024 },
    onClose: (reason) => reasons.push(reason),
  });
  try {
    const big = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    // Never ends its head: only its size can end it.
    await big.write(encoder.encode(`GET / HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(2000)}`));
    const { closed, text } = await readUntilClosed(big, 5000);
    assert(closed, "the connection stays open");
    assert(text.startsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n"), text);
    assert(text.includes("Cannot read the request head: current size is over 1024 bytes, the limit"), text);
    assertEquals(reasons, ["head-too-large"]);

    const small = await fetch(`http://127.0.0.1:${server.port}/`, { headers: { "x-big": "a".repeat(600) } });
    assertEquals([small.status, await small.text()], [200, "ok"]);
    assertEquals(reasons, ["head-too-large"]);
  } finally {
    ac.abort();
    await server.finished;
  }
});
