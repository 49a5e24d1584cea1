/**
 * `GET /v1/series` lists funding and open-interest histories beside the candle series
 * (`funding_rates`, `open_interest`), from rows ingested from the fake exchange with real ccxt,
 * holes included; `status --json` lists the same; OpenAPI describes every field.
 *
 * @module
 */
import { createHandler } from "../../src/api/server.ts";
import { FundingIngest } from "../../src/derivatives/funding_ingest.ts";
import { syncOpenInterest } from "../../src/derivatives/open_interest_sync.ts";
import { registerSeries } from "../../src/ingest/series.ts";
import { getLogger } from "../../src/log.ts";
import { Registry } from "../../src/metrics.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { spawnCandlekeep } from "../support/child.ts";
import { ingestWorld } from "../ingest/helpers.ts";
import { testConfig } from "./helpers.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const PERPS = ["BTC/USDT:USDT", "ETH/USDT:USDT"];
const iso = (ms: number) => new Date(ms).toISOString();

Deno.test("GET /v1/series: funding and open-interest histories with counts, holes and backfill state", async () => {
  const w = await ingestWorld({
    dialect: "binance",
    env: { SYMBOLS: ["BTC/USDT", ...PERPS].join(","), TIMEFRAMES: "1h", BACKFILL_SINCE: "20d", OPEN_INTEREST: "1h" },
  });
  try {
    // One BTC funding time and one BTC open-interest point the exchange never had.
    const fundingHole = Math.floor((w.now() - 10 * DAY) / (8 * HOUR)) * 8 * HOUR;
    const oiHole = Math.floor((w.now() - 5 * DAY) / HOUR) * HOUR;
    w.fake.behaviour.fundingHoles = [{ symbol: PERPS[0], from: fundingHole, to: fundingHole + 1 }];
    w.fake.behaviour.openInterestHoles = [{ symbol: PERPS[0], from: oiHole, to: oiHole + 1 }];
    await registerSeries(w.t.sql, { exchange: "binance", symbol: "BTC/USDT", timeframe: "1h" });
    const funding = new FundingIngest({
      db: w.db,
      sources: w.clients,
      symbols: PERPS,
      since: w.config.backfillSince,
      now: w.now,
    });
    for (const r of await funding.run()) assertEquals(r.error, undefined);
    for (const symbol of PERPS) {
      await syncOpenInterest(
        { db: w.db, log: getLogger("ingest"), now: w.now, since: w.config.backfillSince },
        w.clients.get("binance")!,
        { exchange: "binance", symbol, period: "1h" },
      );
    }
    const handler = createHandler({ db: w.db, config: testConfig(), registry: new Registry(), now: w.now });
    const res = await handler(new Request("http://api.test/v1/series"));
    assertEquals(res.status, 200);
    const body = await res.json();
    assertEquals(Object.keys(body), ["series", "funding_rates", "open_interest"]);
    assertEquals(body.series.map((s: { symbol: string }) => s.symbol), ["BTC/USDT"], "the series list is unchanged");

    const checkpoints = await w.t.sql<{ symbol: string; from: Date }[]>`
      select symbol, range_from as from from funding_checkpoints order by symbol`;
    assertEquals(
      body.funding_rates,
      checkpoints.map(({ symbol, from }) => {
        const rows = w.fake.derivatives.expectedFunding(symbol, from.getTime(), w.now() + 1);
        return {
          exchange: "binance",
          symbol,
          count: rows.length,
          first: iso(rows[0].ts),
          last: iso(rows.at(-1)!.ts),
          interval_ms: symbol === "ETH/USDT:USDT" ? 4 * HOUR : 8 * HOUR,
          gaps: 0,
          holes: symbol === PERPS[0] ? 1 : 0,
          backfilled: true,
        };
      }),
    );
    const stored = await w.t.sql<{ symbol: string; from: Date }[]>`
      select symbol, min(ts) as from from open_interest group by symbol order by symbol`;
    const oi = stored.map(({ symbol, from }) => {
      const rows = w.fake.derivatives.expectedOpenInterest(symbol, "1h", { from: from.getTime(), to: w.now() + 1 });
      const hole = symbol === PERPS[0] ? 1 : 0;
      return {
        exchange: "binance",
        symbol,
        period: "1h",
        first: iso(rows[0].ts),
        last: iso(rows.at(-1)!.ts),
        count: rows.length,
        missing: hole,
        holes: hole,
        backfilled: true,
      };
    });
    assert(oi[0].count > 400, `open-interest rows: ${oi[0].count}`);
    const withoutLag = (list: Record<string, unknown>[]) => list.map(({ lag_s: _, ...rest }) => rest);
    assertEquals(withoutLag(body.open_interest), oi);
    for (const r of body.open_interest) {
      const lag = Math.max(0, (w.now() - (Date.parse(r.last) + HOUR)) / 1000);
      assert(Math.abs(r.lag_s - lag) <= 2, `lag ${r.lag_s} vs ${lag}`);
    }

    // `status --json` lists the same histories (same helpers); lag moved on meanwhile.
    const child = spawnCandlekeep(["status", "--json"], w.env);
    assertEquals((await child.status).code, 0, child.output());
    const status = JSON.parse(child.stdout());
    assertEquals(status.funding_rates, body.funding_rates);
    assertEquals(withoutLag(status.open_interest), withoutLag(body.open_interest));
    assertEquals(status.series.length, 1);

    // OpenAPI: every field of every list is described, and nothing more.
    const doc = await (await handler(new Request("http://api.test/openapi.json"))).json();
    const schema = doc.paths["/v1/series"].get.responses["200"].content["application/json"].schema;
    assertEquals(schema.required, Object.keys(body));
    for (
      const [list, name] of [["series", "Series"], ["funding_rates", "FundingHistory"], [
        "open_interest",
        "OpenInterestHistory",
      ]]
    ) {
      assertEquals(schema.properties[list].items.$ref, `#/components/schemas/${name}`);
      const item = doc.components.schemas[name];
      assertEquals(Object.keys(item.properties), Object.keys(body[list][0]), name);
      assertEquals(item.required, Object.keys(body[list][0]), name);
    }
  } finally {
    await w.close();
  }
});
