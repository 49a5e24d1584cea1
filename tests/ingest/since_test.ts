/**
 * A series added through the API keeps its own start: `since: "1d"` means one day before it
 * was added, also after a restart under `BACKFILL_SINCE=30d`; when the configuration later
 * lists it too, the earlier of the two starts wins.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { Registry } from "../../src/metrics.ts";
import { serveApi } from "../../src/api/server.ts";
import { loadConfig } from "../../src/config.ts";
import { type IngestWorld, ingestWorld, storedCandles } from "./helpers.ts";

const TOKEN = "a-long-enough-test-token";
const DAY = 86_400_000;
const HOUR = 3_600_000;

function klines(w: IngestWorld): number {
  return Object.entries(w.fake.stats.byPath).filter(([p]) => p.includes("kline")).reduce((n, [, c]) => n + c, 0);
}

async function waitLive(w: IngestWorld, id: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const [{ state }] = await w.t.sql<{ state: string }[]>`select state from series where id = ${id}`;
    if (state === "live") return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`series ${id} did not become live`);
}

Deno.test("since: a series added through the API with since=1d keeps it after a restart under BACKFILL_SINCE=30d", async () => {
  // The configured series is hourly (30 days = one page); the API series is 1-minute.
  const w = await ingestWorld({ env: { SYMBOLS: "BTC/USDT", TIMEFRAMES: "1h", BACKFILL_SINCE: "30d" } });
  const config = loadConfig({ ...w.env, API_TOKEN: TOKEN });
  const first = w.ingestor();
  const api = serveApi({ db: w.db, config, registry: new Registry(), ingest: first }, {
    hostname: "127.0.0.1",
    port: 0,
  });
  try {
    await first.syncSeries();
    const addedAt = Date.now();
    const res = await fetch(`http://127.0.0.1:${api.port}/v1/series`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ exchange: w.fake.exchangeId, symbol: "ETH/USDT", timeframe: "1m", since: "1d" }),
    });
    assertEquals(res.status, 201, await res.clone().text());
    const { id } = await res.json();
    await waitLive(w, id);
    const [row] = await w.t.sql<{ since: string; origin: string }[]>`
      select backfill_since as since, origin from series where id = ${id}`;
    assertEquals(row.origin, "api");
    const recorded = Date.parse(row.since);
    assert(Math.abs(recorded - (addedAt - DAY)) < 10_000, `recorded start ${row.since}, added at ${addedAt}`);
    const before = await storedCandles(w, { symbol: "ETH/USDT", timeframe: "1m" });
    assert(before[0].ts >= addedAt - DAY - 60_000, `first candle ${new Date(before[0].ts).toISOString()}`);
  } finally {
    await api.shutdown();
    await first.stop();
  }

  try {
    // A new engine on the same database, as after a restart: what start() does first.
    w.fake.resetStats();
    const restarted = w.ingestor();
    await restarted.syncSeries();
    await restarted.coordinate();
    assertEquals(restarted.owned.length, 2);
    assertEquals(await restarted.backfillPending(), []);
    const eth = await storedCandles(w, { symbol: "ETH/USDT", timeframe: "1m" });
    assert(eth[0].ts >= w.now() - DAY - 2 * 60_000, `ETH went back to ${new Date(eth[0].ts).toISOString()}`);
    // 29 more days of 1-minute candles would be 42 pages; about one request per series.
    assert(klines(w) <= 4, `the restart made ${klines(w)} candle requests`);
    assertEquals(eth, w.fake.expected("ETH/USDT", "1m", eth[0].ts, eth.at(-1)!.ts + 60_000));
    // BACKFILL_SINCE still applies to the configured series.
    const btc = await storedCandles(w, { symbol: "BTC/USDT", timeframe: "1h" });
    assert(Math.abs(btc[0].ts - (w.now() - 30 * DAY)) <= HOUR, `BTC starts ${new Date(btc[0].ts).toISOString()}`);
    await restarted.stop();
  } finally {
    await w.close();
  }
});

Deno.test("since: when the configuration also lists a series added through the API, the earlier start wins", async () => {
  const w = await ingestWorld({ env: { SYMBOLS: "none", TIMEFRAMES: "1m", BACKFILL_SINCE: "30d" } });
  try {
    const added = w.ingestor();
    await added.syncSeries();
    const { id } = await added.addSeries({
      exchange: w.fake.exchangeId,
      symbol: "ETH/USDT",
      timeframe: "1m",
      since: "1d",
    });
    await waitLive(w, id);
    await added.stop();
    const firstOf = async () => (await storedCandles(w, { symbol: "ETH/USDT", timeframe: "1m" }))[0].ts;
    const own = await firstOf();

    // Listed with a later BACKFILL_SINCE: its own start (1 day) is kept, nothing older fetched.
    const later = w.ingestor({ config: loadConfig({ ...w.env, SYMBOLS: "ETH/USDT", BACKFILL_SINCE: "12h" }) });
    assertEquals(await later.backfillOnce(), []);
    assertEquals(await firstOf(), own);
    const [row] = await w.t.sql<{ origin: string }[]>`select origin from series where id = ${id}`;
    assertEquals(row.origin, "config");

    // Listed with an earlier BACKFILL_SINCE: backfilled back to it.
    const earlier = w.ingestor({ config: loadConfig({ ...w.env, SYMBOLS: "ETH/USDT", BACKFILL_SINCE: "2d" }) });
    assertEquals(await earlier.backfillOnce(), []);
    const from = await firstOf();
    assert(Math.abs(from - (w.now() - 2 * DAY)) <= 2 * 60_000, `starts ${new Date(from).toISOString()}`);
    const all = await storedCandles(w, { symbol: "ETH/USDT", timeframe: "1m" });
    assertEquals(all, w.fake.expected("ETH/USDT", "1m", from, all.at(-1)!.ts + 60_000));
  } finally {
    await w.close();
  }
});
