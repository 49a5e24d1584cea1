/**
 * `GET /v1/stream` (Server-Sent Events) over a real HTTP server, a real database and candles
 * ingested from the fake exchange with real ccxt: the last closed candle first, each newly
 * closed candle once as the live tick writes it, resampled timeframes, forming candles
 * published on the forming channel, resuming with `Last-Event-ID` without loss, heartbeats,
 * dropping a slow client, bad queries, and shutdown ending open streams.
 *
 * @module
 */
import { serveApi } from "../../src/api/server.ts";
import { decodeEventId, encodeEventId, getStream, parseStreamQuery } from "../../src/api/stream.ts";
import { StreamHub } from "../../src/api/stream_hub.ts";
import { FORMING_CHANNEL } from "../../src/ingest/store.ts";
import { Registry } from "../../src/metrics.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "../support/assert.ts";
import { type IngestWorld, ingestWorld, storedCandles } from "../ingest/helpers.ts";
import { BadRequestError } from "../../src/api/errors.ts";

const MIN = 60_000;

interface SseEvent {
  event: string | null;
  id: string | null;
  data: string | null;
  comment: boolean;
}

/** Reads Server-Sent Events from a response body. */
class SseReader {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  readonly events: SseEvent[] = [];

  constructor(body: ReadableStream<Uint8Array>) {
    this.#reader = body.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next event (comments included), or null when the stream ended; fails after `timeoutMs`. */
  async next(timeoutMs = 10_000): Promise<SseEvent | null> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#buffer.includes("\n\n")) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const step = await Promise.race([
        this.#reader.read(),
        new Promise<never>((_, reject) =>
          timer = setTimeout(
            () =>
              reject(
                new Error(
                  `no event in time after ${this.events.length} events; last: ${JSON.stringify(this.events.at(-1))}`,
                ),
              ),
            Math.max(1, deadline - Date.now()),
          )
        ),
      ]).finally(() => clearTimeout(timer));
      if (step.done) return null;
      this.#buffer += step.value;
    }
    const at = this.#buffer.indexOf("\n\n");
    const block = this.#buffer.slice(0, at);
    this.#buffer = this.#buffer.slice(at + 2);
    const e: SseEvent = { event: null, id: null, data: null, comment: false };
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) e.comment = true;
      else if (line.startsWith("event: ")) e.event = line.slice(7);
      else if (line.startsWith("id: ")) e.id = line.slice(4);
      else if (line.startsWith("data: ")) e.data = line.slice(6);
    }
    this.events.push(e);
    return e;
  }

  /** The next `candle` event's data (skipping comments and `retry`). */
  async candle(timeoutMs = 10_000): Promise<{ id: string | null; data: Record<string, unknown> }> {
    for (;;) {
      const e = await this.next(timeoutMs);
      if (e === null) throw new Error("the stream ended");
      if (e.event === "candle" && e.data !== null) return { id: e.id, data: JSON.parse(e.data) };
    }
  }

  cancel(): Promise<void> {
    return this.#reader.cancel().catch(() => {});
  }
}

async function withStreamApi(
  fn: (w: IngestWorld, base: string, ingest: ReturnType<IngestWorld["ingestor"]>) => Promise<void>,
): Promise<void> {
  const w = await ingestWorld({ env: { SYMBOLS: "BTC/USDT,ETH/USDT", TIMEFRAMES: "1m", BACKFILL_SINCE: "3h" } });
  const ac = new AbortController();
  try {
    const ingest = w.ingestor();
    await ingest.syncSeries();
    await ingest.coordinate();
    assertEquals(await ingest.backfillPending(), []);
    const server = serveApi({ db: w.db, config: w.config, registry: new Registry(), now: w.now }, {
      hostname: "127.0.0.1",
      port: 0,
      signal: ac.signal,
    });
    try {
      await fn(w, `http://127.0.0.1:${server.port}`, ingest);
    } finally {
      ac.abort();
      await server.finished;
    }
  } finally {
    await w.close();
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

Deno.test("stream: the last closed candle, then each new closed candle once, exactly as stored", async () => {
  await withStreamApi(async (w, base, ingest) => {
    const res = await fetch(`${base}/v1/stream?exchange=${w.fake.exchangeId}&symbol=BTC/USDT&timeframe=1m`);
    assertEquals(res.status, 200);
    assertEquals(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
    assertEquals(res.headers.get("content-encoding"), null);
    const sse = new SseReader(res.body!);
    const stored = await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" });
    const last = stored[stored.length - 1];
    const first = await sse.candle();
    assertEquals(first.data, {
      exchange: w.fake.exchangeId,
      symbol: "BTC/USDT",
      timeframe: "1m",
      price: "trade",
      time: iso(last.ts),
      open: last.open,
      high: last.high,
      low: last.low,
      close: last.close,
      volume: last.volume,
      closed: true,
    });
    assertEquals(decodeEventId(first.id!, 1), [last.ts]);
    // Three minutes pass; the live tick writes three candles: each arrives once, in order.
    w.advance(3 * MIN);
    assert(await ingest.liveTick(), "live tick ran");
    const after = (await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" })).filter((c) => c.ts > last.ts);
    assertEquals(after.length, 3);
    for (const c of after) {
      const e = await sse.candle();
      assertEquals([e.data.time, e.data.close, e.data.closed], [iso(c.ts), c.close, true]);
      assertEquals(decodeEventId(e.id!, 1), [c.ts]);
    }
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert(metrics.includes("\ncandlekeep_stream_clients 1\n"), metrics);
    assert(metrics.includes('\ncandlekeep_stream_events_total{kind="closed"} 4\n'), metrics);
    await sse.cancel();
  });
});

Deno.test("stream: several series, a resampled timeframe, forming candles, resume without loss", async () => {
  await withStreamApi(async (w, base, ingest) => {
    const ex = w.fake.exchangeId;
    const url = `${base}/v1/stream?exchange=${ex}&symbol=BTC/USDT&symbol=ETH/USDT&timeframe=5m&timeframe=1m`;
    const res = await fetch(url);
    const sse = new SseReader(res.body!);
    const btc = await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" });
    const eth = await storedCandles(w, { symbol: "ETH/USDT", timeframe: "1m" });
    // First: the last closed candle of each, then BTC's forming 5m bucket when it has stored candles.
    const seen = new Map<string, Record<string, unknown>[]>();
    const take = async (n: number) => {
      let id: string | null = null;
      for (let i = 0; i < n; i++) {
        const e = await sse.candle();
        const key = `${e.data.symbol} ${e.data.closed ? "closed" : "forming"}`;
        seen.set(key, [...(seen.get(key) ?? []), e.data]);
        if (e.id) id = e.id;
      }
      return id;
    };
    const lastBtcOpen = btc[btc.length - 1].ts;
    const bucket = lastBtcOpen - (lastBtcOpen % (5 * MIN));
    const formingStored = btc.filter((c) => c.ts >= bucket);
    const lastClosedBucket = lastBtcOpen + MIN - ((lastBtcOpen + MIN) % (5 * MIN)) - 5 * MIN;
    const firstId = await take(formingStored.length > 0 && bucket + 5 * MIN > w.now() ? 3 : 2);
    assertEquals(seen.get("ETH/USDT closed")![0].time, iso(eth[eth.length - 1].ts));
    const btcClosed = seen.get("BTC/USDT closed")![0];
    assertEquals(btcClosed.timeframe, "5m");
    assertEquals(btcClosed.time, iso(lastClosedBucket));
    const inBucket = btc.filter((c) => c.ts >= lastClosedBucket && c.ts < lastClosedBucket + 5 * MIN);
    assertEquals(inBucket.length, 5);
    assertEquals(btcClosed.high, Math.max(...inBucket.map((c) => c.high)));
    assertEquals(btcClosed.close, inBucket[4].close);
    assert(firstId !== null);

    // A forming 1m candle of ETH published by the WebSocket ingest reaches the client as is.
    const [{ id: ethId }] = await w.t.sql<{ id: number }[]>`select id from series where symbol = 'ETH/USDT'`;
    const t = eth[eth.length - 1].ts + MIN;
    const forming = { s: ethId, t, o: 10.5, h: 11.25, l: 10, c: 11, v: 0.1 };
    await w.t.sql`select pg_notify(${FORMING_CHANNEL}, ${JSON.stringify(forming)})`;
    let e = await sse.candle();
    while (e.data.symbol !== "ETH/USDT") e = await sse.candle();
    assertEquals(e.data, {
      exchange: ex,
      symbol: "ETH/USDT",
      timeframe: "1m",
      price: "trade",
      time: iso(t),
      open: 10.5,
      high: 11.25,
      low: 10,
      close: 11,
      volume: 0.1,
      closed: false,
    });
    assertEquals(e.id, null, "forming events carry no id");
    const resumeId = encodeEventId(decodeEventId(firstId!, 2));
    await sse.cancel();

    // Disconnected; ten minutes pass and are stored; reconnecting with the id replays them all.
    w.advance(10 * MIN);
    assert(await ingest.liveTick(), "live tick ran");
    const res2 = await fetch(url, { headers: { "last-event-id": resumeId } });
    const again = new SseReader(res2.body!);
    const ethAfter = (await storedCandles(w, { symbol: "ETH/USDT", timeframe: "1m" })).filter((c) =>
      c.ts > eth[eth.length - 1].ts
    );
    assert(ethAfter.length >= 10, `ETH candles written: ${ethAfter.length}`);
    const replayed: string[] = [];
    let btcBuckets = 0;
    while (replayed.length < ethAfter.length || btcBuckets < 2) {
      const c = await again.candle();
      if (c.data.symbol === "ETH/USDT" && c.data.closed) replayed.push(String(c.data.time));
      if (c.data.symbol === "BTC/USDT" && c.data.closed) btcBuckets++;
    }
    assertEquals(replayed, ethAfter.map((c) => iso(c.ts)));
    await again.cancel();
  });
});

Deno.test("stream: bad queries and ids are 400s naming the problem; unknown series 404", async () => {
  await withStreamApi(async (w, base) => {
    const ex = w.fake.exchangeId;
    const cases: [string, number, string][] = [
      [`/v1/stream?exchange=${ex}&timeframe=1m`, 400, "symbol is required"],
      [
        `/v1/stream?exchange=${ex}&symbol=BTC/USDT&symbol=ETH/USDT&timeframe=1m&timeframe=5m&timeframe=1h`,
        400,
        "symbol is given 2 times for 3 series",
      ],
      [`/v1/stream?exchange=${ex}&symbol=BTC/USDT&timeframe=7q`, 400, "timeframe must be a timeframe"],
      [`/v1/stream?exchange=${ex}&symbol=BTC/USDT&timeframe=1m&limit=5`, 400, "limit is not a parameter of /v1/stream"],
      [`/v1/stream?exchange=${ex}&symbol=DOGE/USDT&timeframe=1m`, 404, "DOGE/USDT"],
      // One price applies to every series: the one without mark candles is named.
      [
        `/v1/stream?exchange=${ex}&symbol=BTC/USDT&symbol=ETH/USDT&timeframe=1m&price=mark`,
        404,
        `Cannot find mark candles of ${ex} BTC/USDT: stored prices are trade`,
      ],
      [
        `/v1/stream?exchange=${ex}&symbol=BTC/USDT&timeframe=1m&price=last`,
        400,
        'price must be one of trade, mark, index, premium; current value is \\"last\\"',
      ],
      [`/v1/stream?exchange=${ex}&symbol=BTC/USDT&timeframe=1m&last_event_id=c1:1,2`, 400, "holds 2 series positions"],
    ];
    for (const [path, status, text] of cases) {
      const res = await fetch(`${base}${path}`);
      const body = await res.json();
      assertEquals(res.status, status, `${path}: ${JSON.stringify(body)}`);
      assert(JSON.stringify(body).includes(text), `${path}: ${JSON.stringify(body)}`);
    }
  });
  assertThrows(() => decodeEventId("nope", 1), BadRequestError);
  assertEquals(decodeEventId(encodeEventId([Date.UTC(2026, 0, 1), null]), 2), [Date.UTC(2026, 0, 1), null]);
  assertEquals(
    parseStreamQuery(new URL("http://x/v1/stream?exchange=binance&symbol=btc-usdt&symbol=ETH/USDT&timeframe=1h")).keys
      .map((k) => `${k.exchange} ${k.symbol} ${k.timeframe} ${k.price}`),
    ["binance BTC/USDT 1h trade", "binance ETH/USDT 1h trade"],
  );
});

Deno.test("stream: heartbeats; a client that does not read is dropped; shutdown ends open streams", async () => {
  const w = await ingestWorld({ env: { SYMBOLS: "BTC/USDT", TIMEFRAMES: "1m", BACKFILL_SINCE: "2d" } });
  const hub = new StreamHub(w.db.sql, { pollMs: 200 });
  try {
    assertEquals(await w.ingestor().backfillOnce(), []);
    const ex = w.fake.exchangeId;
    const quiet = await getStream(
      w.db.sql,
      new Request("http://x/"),
      new URL(`http://x/v1/stream?exchange=${ex}&symbol=BTC/USDT&timeframe=1m`),
      { hub, now: w.now, heartbeatMs: 50 },
    );
    const sse = new SseReader(quiet.body!);
    await sse.candle();
    // A heartbeat within 2 s (a candle event may come first when a minute closes meanwhile).
    const until = Date.now() + 2000;
    let beat = await sse.next(2000);
    while (beat !== null && !beat.comment && Date.now() < until) beat = await sse.next(until - Date.now());
    assert(beat?.comment, "a heartbeat comment");
    await sse.cancel();

    // Resuming from two days back replays ~2,880 candles; the client never reads.
    const from = (await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1m" }))[0].ts;
    const slow = await getStream(
      w.db.sql,
      new Request("http://x/", { headers: { "last-event-id": encodeEventId([from]) } }),
      new URL(`http://x/v1/stream?exchange=${ex}&symbol=BTC/USDT&timeframe=1m`),
      { hub, now: w.now, maxBufferBytes: 16 * 1024 },
    );
    const reader = slow.body!.getReader();
    // Nothing is read for a while: the queue stays bounded and the stream is dropped once over.
    const waited = Date.now();
    while (hub.size > 0 && Date.now() - waited < 5000) await new Promise((r) => setTimeout(r, 50));
    assertEquals(hub.size, 0, "the slow client was dropped");
    await assertRejects(async () => {
      for (;;) if ((await reader.read()).done) break;
    });

    // Shutdown ends what is open.
    const open = await getStream(
      w.db.sql,
      new Request("http://x/"),
      new URL(`http://x/v1/stream?exchange=${ex}&symbol=BTC/USDT&timeframe=1m`),
      { hub, now: w.now },
    );
    const last = new SseReader(open.body!);
    await last.candle();
    await hub.close();
    let ended = false;
    for (let i = 0; i < 5 && !ended; i++) ended = (await last.next(2000)) === null;
    assert(ended, "the stream ended at shutdown");
  } finally {
    await hub.close();
    await w.close();
  }
});
