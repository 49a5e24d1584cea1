/**
 * The fake exchange's Binance kline streams (tests/support/fake_ws.ts) at the protocol level,
 * with plain Deno WebSocket / TCP clients: raw and combined endpoints, SUBSCRIBE / UNSUBSCRIBE /
 * LIST_SUBSCRIPTIONS, the stream, message and connection limits, server pings, silence and
 * forced disconnects.
 *
 * @module
 */
import { assert, assertEquals } from "../support/assert.ts";
import { type FakeExchange, type FakeWsBehaviour, startFakeExchange } from "../support/fake_exchange.ts";
import { within } from "../support/wait.ts";

const MINUTE = 60_000;

/** A WebSocket client that queues what it receives. */
interface Client {
  socket: WebSocket;
  /** The next message (JSON-parsed); rejects after `timeoutMs`. */
  next(timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Messages received and not taken by `next`. */
  pending: Record<string, unknown>[];
  send(message: unknown): void;
  closed: Promise<CloseEvent>;
}

/** Opens a client on `url`; rejects when the upgrade fails. */
function connect(url: string): Promise<Client> {
  const socket = new WebSocket(url);
  const pending: Record<string, unknown>[] = [];
  const waiters: ((m: Record<string, unknown>) => void)[] = [];
  socket.onmessage = (e) => {
    const message = JSON.parse(String(e.data));
    const waiter = waiters.shift();
    if (waiter) waiter(message);
    else pending.push(message);
  };
  const closed = new Promise<CloseEvent>((resolve) => socket.addEventListener("close", (e) => resolve(e)));
  const client: Client = {
    socket,
    pending,
    closed,
    send: (message) => socket.send(typeof message === "string" ? message : JSON.stringify(message)),
    next(timeoutMs = 2000) {
      if (pending.length > 0) return Promise.resolve(pending.shift()!);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(done), 1);
          reject(new Error(`Cannot read a message: current value is none after ${timeoutMs} ms`));
        }, timeoutMs);
        const done = (m: Record<string, unknown>) => {
          clearTimeout(timer);
          resolve(m);
        };
        waiters.push(done);
      });
    },
  };
  return new Promise((resolve, reject) => {
    socket.onopen = () => resolve(client);
    socket.onerror = (e) => reject(new Error(`Cannot connect to ${url}: ${(e as ErrorEvent).message}`));
  });
}

/** Runs `fn` with a binance fake on a manual stream clock 10 s into a minute; closes clients and fake afterwards. */
async function withFake(
  fn: (fake: FakeExchange, open: (path: string) => Promise<Client>) => Promise<void>,
  ws: Partial<FakeWsBehaviour> = {},
): Promise<void> {
  const fake = await startFakeExchange({ dialect: "binance", ws: { clock: "manual", ...ws } });
  fake.behaviour.nowOffsetMs = Math.floor(Date.now() / MINUTE) * MINUTE + 10_000 - Date.now(); // 10 s into a minute
  const clients: Client[] = [];
  const open = async (path: string) => {
    const client = await connect(`ws://127.0.0.1:${fake.port}${path}`);
    clients.push(client);
    return client;
  };
  try {
    await fn(fake, open);
  } finally {
    for (const c of clients) c.socket.close();
    await Promise.all(clients.map((c) => c.closed));
    await fake.close();
  }
}

type Kline = { t: number; s: string; i: string; x: boolean; o: string; c: string };

Deno.test("raw /ws/<streams>: events unwrapped; SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS answer by id; bad requests", async () => {
  await withFake(async (fake, open) => {
    const client = await open("/ws/btcusdt@kline_1m/ethusdt@kline_5m");
    const before = fake.now();
    fake.ws.pump();
    const after = fake.now();
    const events = [await client.next(), await client.next()];
    assertEquals(events.map((e) => [e.e, e.s, (e.k as Kline).i, (e.k as Kline).x]), [
      ["kline", "BTCUSDT", "1m", false],
      ["kline", "ETHUSDT", "5m", false],
    ]);
    assertEquals((events[1].k as Kline).t, Math.floor(after / (5 * MINUTE)) * 5 * MINUTE);
    const eventTime = events[0].E as number;
    assert(eventTime >= before && eventTime <= after, `event time ${eventTime} on the fake's clock`);

    client.send({ method: "LIST_SUBSCRIPTIONS", id: 1 });
    assertEquals(await client.next(), { result: ["btcusdt@kline_1m", "ethusdt@kline_5m"], id: 1 });
    client.send({ method: "UNSUBSCRIBE", params: ["ethusdt@kline_5m"], id: "two" });
    assertEquals(await client.next(), { result: null, id: "two" });
    client.send({ method: "SUBSCRIBE", params: ["xyzusdt@kline_1m"], id: 3 });
    assertEquals(await client.next(), { result: null, id: 3 });
    client.send({ method: "LIST_SUBSCRIPTIONS", id: 4 });
    assertEquals(await client.next(), { result: ["btcusdt@kline_1m", "xyzusdt@kline_1m"], id: 4 });
    await new Promise((r) => setTimeout(r, 1100)); // the 5 messages/s limit
    client.send({ method: "SUBSCRIBE", params: ["solusdt@kline_1m", "btcusdt@depth"], id: 5 });
    assertEquals(await client.next(), {
      error: { code: 2, msg: 'Invalid request: invalid stream name "btcusdt@depth"' },
      id: 5,
    });
    client.send("{not json");
    assertEquals(await client.next(), { error: { code: 3, msg: "Invalid JSON: expected an object" }, id: null });
    client.send({ method: "SET_PROPERTY", params: ["combined", true], id: 7 });
    assertEquals(await client.next(), {
      error: { code: 2, msg: 'Invalid request: unknown method "SET_PROPERTY"' },
      id: 7,
    });

    // An unknown symbol is accepted but quiet: one event (BTC) per pump.
    fake.ws.pump();
    assertEquals((await client.next()).s, "BTCUSDT");
    await assertSilent(client);
  });
});

/** Asserts nothing arrives within `ms`. */
async function assertSilent(client: Client, ms = 200): Promise<void> {
  const got = await client.next(ms).then((m) => m, () => null);
  assertEquals(got, null);
}

Deno.test("combined /stream?streams=a/b: events wrapped as {stream, data}, same payload as the raw stream", async () => {
  await withFake(async (fake, open) => {
    const combined = await open("/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m");
    const raw = await open("/ws/btcusdt@kline_1m");
    fake.ws.advance(30_000);
    const wrapped = [await combined.next(), await combined.next()];
    assertEquals(wrapped.map((m) => m.stream), ["btcusdt@kline_1m", "ethusdt@kline_1m"]);
    assertEquals(wrapped[0].data, await raw.next());
    assertEquals(fake.ws.connections().map((c) => [c.combined, c.streams.length]), [[true, 2], [false, 1]]);
  });
});

Deno.test("a candle's close: one x:true event equal to the REST row, then the next candle forming; holes stay quiet", async () => {
  await withFake(async (fake, open) => {
    const minute = Math.floor(fake.now() / MINUTE) * MINUTE;
    fake.behaviour.nowOffsetMs += minute + 50_000 - fake.now();
    const client = await open("/ws/btcusdt@kline_1m");
    fake.ws.pump();
    await client.next();
    fake.ws.advance(3 * MINUTE);
    const got = [await client.next(), await client.next(), await client.next(), await client.next()];
    assertEquals(got.map((e) => [(e.k as Kline).t, (e.k as Kline).x]), [
      [minute, true],
      [minute + MINUTE, true],
      [minute + 2 * MINUTE, true],
      [minute + 3 * MINUTE, false],
    ]);
    const rows = await (await fetch(`${fake.url}/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime=${minute}&limit=3`))
      .json() as unknown[][];
    for (const [i, e] of got.slice(0, 3).entries()) {
      const k = e.k as Record<string, unknown>;
      assertEquals([k.t, k.o, k.h, k.l, k.c, k.v, k.T, k.q, k.n, k.V, k.Q], rows[i].slice(0, 11));
    }
    fake.behaviour.holes.push({ symbol: "BTC/USDT", from: minute + 4 * MINUTE, to: minute + 6 * MINUTE });
    fake.ws.advance(MINUTE);
    assertEquals(((await client.next()).k as Kline).t, minute + 3 * MINUTE); // the close before the hole
    await assertSilent(client);
    fake.ws.advance(2 * MINUTE);
    assertEquals(((await client.next()).k as Kline).t, minute + 6 * MINUTE);
  });
});

Deno.test("stream limit: at most maxStreams (1024) per connection, by SUBSCRIBE and by URL", async () => {
  assertEquals((await import("../support/fake_ws.ts")).defaultWsBehaviour().maxStreams, 1024);
  await withFake(async (fake, open) => {
    const names = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `s${from + i}usdt@kline_1m`);
    const client = await open("/ws/0");
    client.send({ method: "SUBSCRIBE", params: names(1025), id: 1 });
    assertEquals(await client.next(), {
      error: {
        code: 2,
        msg: "Invalid request: a connection carries at most 1024 streams (current 0, asked 1025 more)",
      },
      id: 1,
    });
    client.send({ method: "SUBSCRIBE", params: names(1024), id: 2 });
    assertEquals(await client.next(), { result: null, id: 2 });
    client.send({ method: "SUBSCRIBE", params: names(1, 5000), id: 3 });
    assertEquals(((await client.next()).error as { code: number }).code, 2);
    assertEquals(fake.ws.connections()[0].streams.length, 1024);

    let refused = "";
    await open(`/stream?streams=${names(1025).join("/")}`).catch((e) => (refused = e.message));
    assert(refused.startsWith("Cannot connect"), refused);
    assertEquals(fake.ws.stats.rejectedConnections, 1);
    await open(`/stream?streams=${names(1024).join("/")}`);
  });
});

Deno.test("message limit: a sixth message within a second closes the socket with 1008; five per second pass", async () => {
  await withFake(async (fake, open) => {
    const steady = await open("/ws/0");
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 5; i++) steady.send({ method: "LIST_SUBSCRIPTIONS", id: i });
      for (let i = 0; i < 5; i++) assertEquals((await steady.next()).id, i);
      await new Promise((r) => setTimeout(r, 1050));
    }
    const burst = await open("/ws/0");
    for (let i = 0; i < 6; i++) burst.send({ method: "LIST_SUBSCRIPTIONS", id: i });
    const closed = await within(burst.closed, 3000, "the close of the sixth message");
    assertEquals([closed.code, closed.reason], [1008, "Too many messages: more than 5 per second"]);
    assertEquals(burst.pending.length, 5);
    assertEquals(fake.ws.stats.closes.map((c) => c.code), [1008]);
    assertEquals(fake.ws.connections().length, 1);
  });
});

Deno.test("connection limit: attempts beyond maxConnections per window are refused with 429", async () => {
  const defaults = (await import("../support/fake_ws.ts")).defaultWsBehaviour();
  assertEquals([defaults.maxConnections, defaults.connectionWindowMs, defaults.maxMessagesPerSec], [300, 300_000, 5]);
  await withFake(async (fake, open) => {
    for (let i = 0; i < 3; i++) await open("/ws/0");
    let refused = "";
    await open("/ws/0").catch((e) => (refused = e.message));
    assert(refused.startsWith("Cannot connect"), refused);
    const response = await fetch(`${fake.url}/ws/0`, { headers: { upgrade: "websocket" } });
    assertEquals([response.status, (await response.json()).code], [429, -1003]);
    assertEquals(fake.ws.stats.rejectedConnections, 2);
  }, { maxConnections: 3, connectionWindowMs: 60_000 });
});

Deno.test("server pings: a client that pongs stays open; one that does not is closed (1001) after the interval", async () => {
  await withFake(async (fake, open) => {
    const ponging = await open("/ws/btcusdt@kline_1m");
    const tcp = await Deno.connect({ hostname: "127.0.0.1", port: fake.port });
    const key = btoa("0123456789abcdef");
    await tcp.write(new TextEncoder().encode(
      `GET /ws/ethusdt@kline_1m HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ));
    const started = Date.now();
    const frames: { opcode: number; at: number }[] = [];
    const buffer = new Uint8Array(4096);
    for (let n = await tcp.read(buffer); n !== null; n = await tcp.read(buffer)) {
      const text = new TextDecoder().decode(buffer.subarray(0, n));
      if (!text.startsWith("HTTP/1.1 101")) frames.push({ opcode: buffer[0] & 0x0f, at: Date.now() - started });
    }
    tcp.close();
    assertEquals(frames.map((f) => f.opcode), [0x9, 0x8]); // a ping, then the close
    assert(frames[0].at >= 900 && frames[0].at < 1800, `ping after ${frames[0].at} ms`);
    assert(frames[1].at - frames[0].at >= 900, `closed ${frames[1].at - frames[0].at} ms after the ping`);
    assertEquals(fake.ws.stats.ended.map((e) => [e.code, e.reason]), [[1001, "No response from ping frame."]]);
    // The Deno client answered every ping: still open, still streaming.
    assertEquals(fake.ws.connections().map((c) => c.streams), [["btcusdt@kline_1m"]]);
    fake.ws.pump();
    assertEquals((await ponging.next()).s, "BTCUSDT");
  }, { pingIntervalSec: 1 });
});

Deno.test("silence and forced disconnects, per connection or all", async () => {
  await withFake(async (fake, open) => {
    const a = await open("/ws/btcusdt@kline_1m");
    const b = await open("/ws/btcusdt@kline_1m");
    const [idA, idB] = fake.ws.connections().map((c) => c.id);
    fake.ws.silence(true, idA);
    fake.ws.pump();
    assertEquals((await b.next()).s, "BTCUSDT");
    await assertSilent(a);
    a.send({ method: "LIST_SUBSCRIPTIONS", id: 1 });
    assertEquals(await a.next(), { result: ["btcusdt@kline_1m"], id: 1 }); // replies still come
    fake.ws.silence(false, idA);
    fake.ws.pump();
    assertEquals([(await a.next()).s, (await b.next()).s], ["BTCUSDT", "BTCUSDT"]);

    fake.ws.behaviour.silent = true;
    fake.ws.pump();
    await assertSilent(b);
    fake.ws.behaviour.silent = false;

    fake.ws.disconnect(idB, 1011, "Internal error");
    const closed = await within(b.closed, 3000, "the forced close");
    assertEquals([closed.code, closed.reason], [1011, "Internal error"]);
    assertEquals(fake.ws.connections().map((c) => c.id), [idA]);
    fake.ws.disconnect();
    assertEquals((await within(a.closed, 3000, "the forced close")).code, 1001);
    assertEquals(fake.ws.stats.closes.map((c) => [c.id, c.code]), [[idB, 1011], [idA, 1001]]);
  });
});

Deno.test("a connection is closed (1001) when its lifetime ends (Binance: 24 hours)", async () => {
  assertEquals((await import("../support/fake_ws.ts")).defaultWsBehaviour().maxLifetimeMs, 86_400_000);
  await withFake(async (fake, open) => {
    const started = Date.now();
    const client = await open("/ws/btcusdt@kline_1m");
    const closed = await within(client.closed, 2000, "the end of the lifetime");
    const lived = Date.now() - started;
    assertEquals([closed.code, closed.reason], [1001, "Connection lifetime reached"]);
    assert(lived >= 300 && lived < 1000, `closed after ${lived} ms`);
    assertEquals(fake.ws.connections(), []);
  }, { maxLifetimeMs: 300 });
});

Deno.test("sendDuplicate and sendOutOfOrder replay earlier events verbatim", async () => {
  await withFake(async (fake, open) => {
    const client = await open("/stream?streams=btcusdt@kline_1m");
    fake.ws.pump();
    const first = await client.next();
    fake.ws.advance(5000);
    const second = await client.next();
    fake.ws.sendDuplicate("btcusdt@kline_1m");
    assertEquals(await client.next(), second);
    fake.ws.sendOutOfOrder("btcusdt@kline_1m");
    assertEquals(await client.next(), first);
    assert((first.data as { E: number }).E < (second.data as { E: number }).E);
  });
});
