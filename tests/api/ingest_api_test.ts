/**
 * The API driving the real ingest engine: POST /v1/series starts a backfill through real ccxt
 * against the fake exchange; bad series are refused with the exchange's reason; DELETE stops
 * (and with purge=true removes) a series.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { Registry } from "../../src/metrics.ts";
import { serveApi } from "../../src/api/server.ts";
import { loadConfig } from "../../src/config.ts";
import { ingestWorld, storedCandles } from "../ingest/helpers.ts";

const TOKEN = "a-long-enough-test-token";

Deno.test("api + engine: add a series, see it backfilled, refuse bad ones, delete and purge", async () => {
  const w = await ingestWorld({ env: { SYMBOLS: "BTC/USDT", BACKFILL_SINCE: "6h" } });
  const config = loadConfig({ ...w.env, API_TOKEN: TOKEN });
  const ingestor = w.ingestor();
  const api = serveApi({ db: w.db, config, registry: new Registry(), ingest: ingestor }, {
    hostname: "127.0.0.1",
    port: 0,
  });
  const base = `http://127.0.0.1:${api.port}`;
  const post = (body: unknown) =>
    fetch(`${base}/v1/series`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify(body),
    });
  try {
    await ingestor.syncSeries();
    const added = await post({ exchange: w.fake.exchangeId, symbol: "ETH/USDT", timeframe: "5m", since: "2h" });
    assertEquals(added.status, 201, await added.clone().text());
    const { id } = await added.json();
    const again = await post({ exchange: w.fake.exchangeId, symbol: "ETH/USDT", timeframe: "5m" });
    assertEquals(again.status, 200);
    await again.body?.cancel();

    // The backfill runs in the background; wait for it to finish.
    const deadline = Date.now() + 20_000;
    let state = "";
    while (Date.now() < deadline) {
      [{ state }] = await w.t.sql<{ state: string }[]>`select state from series where id = ${id}`;
      if (state === "live") break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assertEquals(state, "live");
    const stored = await storedCandles(w, { symbol: "ETH/USDT", timeframe: "5m" });
    assert(stored.length >= 23, `${stored.length} candles`);
    assertEquals(stored, w.fake.expected("ETH/USDT", "5m", stored[0].ts, stored.at(-1)!.ts + 300_000));

    // Served through the API right away (complete=false: a forming candle too, if one is stored).
    const q = `${base}/v1/candles?exchange=${w.fake.exchangeId}&symbol=ETH/USDT&timeframe=5m`;
    const candles = await fetch(`${q}&complete=false`);
    assertEquals(candles.status, 200);
    assertEquals((await candles.json()).candles.length, stored.length);
    // By default only the closed ones.
    const closedAt = (now: number) => stored.filter((c) => c.ts + 300_000 <= now).length;
    const before = Date.now();
    const served = (await (await fetch(q)).json()).candles.length;
    assert(served >= closedAt(before) && served <= closedAt(Date.now()), `${served} closed candles`);

    const unknown = await post({ exchange: w.fake.exchangeId, symbol: "NOPE/USDT", timeframe: "1m" });
    assertEquals(unknown.status, 422);
    assert((await unknown.json()).error.includes("NOPE/USDT"));
    const badExchange = await post({ exchange: "kraken", symbol: "BTC/USD", timeframe: "1m" });
    assertEquals(badExchange.status, 404);
    await badExchange.body?.cancel();
    const badSince = await post({ exchange: w.fake.exchangeId, symbol: "SOL/USDT", timeframe: "1m", since: "soon" });
    assertEquals(badSince.status, 400);
    await badSince.body?.cancel();

    const del = await fetch(`${base}/v1/series/${id}`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert(del.status === 200 || del.status === 204, `DELETE answered ${del.status}`);
    await del.body?.cancel();
    const [kept] = await w.t.sql<{ active: boolean; n: number }[]>`
      select active, (select count(*)::int from candles where series_id = ${id}) as n from series where id = ${id}`;
    assertEquals(kept, { active: false, n: stored.length }, "data kept without purge");
    const purge = await fetch(`${base}/v1/series/${id}?purge=true`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert(purge.status === 200 || purge.status === 204, `DELETE purge answered ${purge.status}`);
    await purge.body?.cancel();
    const [gone] = await w.t.sql<{ n: number }[]>`select count(*)::int as n from candles where series_id = ${id}`;
    assertEquals(gone.n, 0);
    // The purge kept the statistics exact itself: no recount pending, the series lists no candles.
    const dirty = await w.t.sql`select 1 from candlekeep_meta where key = 'series_stats_dirty'`;
    assertEquals(dirty.length, 0, "the purge is accounted for, not left to a recount");
    const listed = await (await fetch(`${base}/v1/series`)).json();
    const purged = listed.series.find((s: { id: number }) => s.id === id);
    assertEquals([purged.count, purged.first, purged.last], [0, null, null]);
  } finally {
    await api.shutdown();
    await w.close();
  }
});
