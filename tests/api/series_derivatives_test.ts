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
import { type IngestWorld, ingestWorld } from "../ingest/helpers.ts";
import { testConfig } from "./helpers.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const PERPS = ["BTC/USDT:USDT", "ETH/USDT:USDT"];
const iso = (ms: number) => new Date(ms).toISOString();

/**
 * A world with a spot series and two perpetuals whose funding and 1h open interest were
 * ingested from the fake (one BTC funding time and one BTC open-interest point missing at the
 * exchange); `fn` gets it, a handler on it and a clock `offset` (ms) the handler sees.
 */
async function withHistories(
  fn: (w: IngestWorld, handler: (req: Request) => Promise<Response>, clock: { offset: number }) => Promise<void>,
): Promise<void> {
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
    const clock = { offset: 0 };
    const now = () => w.now() + clock.offset;
    await fn(w, createHandler({ db: w.db, config: testConfig(), registry: new Registry(), now }), clock);
  } finally {
    await w.close();
  }
}

Deno.test("GET /v1/series: funding and open-interest histories with counts, holes and backfill state", async () => {
  await withHistories(async (w, handler) => {
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
    // --symbol narrows the funding list as it narrows the open-interest list
    const one = spawnCandlekeep(["status", "--json", "--symbol", PERPS[1]], w.env);
    assertEquals((await one.status).code, 0, one.output());
    const narrowed = JSON.parse(one.stdout());
    assertEquals(narrowed.funding_rates, body.funding_rates.filter((r: { symbol: string }) => r.symbol === PERPS[1]));
    assertEquals(narrowed.open_interest.map((r: { symbol: string }) => r.symbol), [PERPS[1]]);
    const table = spawnCandlekeep(["status", "--symbol", PERPS[1]], w.env);
    assertEquals((await table.status).code, 0, table.output());
    assert(!table.stdout().includes(PERPS[0]), table.stdout());

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
  });
});

/** The samples of `name` in a Prometheus text: labels (as `k="v",...`) → value. */
function samples(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)\{(.*)\} (\S+)$/.exec(line);
    if (m && m[1] === name) out.set(m[2], Number(m[3]));
  }
  return out;
}

Deno.test("/metrics: funding and open-interest gauges per history, gone with the history", async () => {
  await withHistories(async (w, handler, clock) => {
    const scrape = async () => await (await handler(new Request("http://api.test/metrics"))).text();
    const text = await scrape();
    const funding = await w.t.sql<{ symbol: string; n: number; last: Date }[]>`
      select symbol, count(*)::int as n, max(ts) as last from funding_rates group by symbol order by symbol`;
    const oi = await w.t.sql<{ symbol: string; n: number; last: Date }[]>`
      select symbol, count(*)::int as n, max(ts) as last from open_interest group by symbol order by symbol`;
    assertEquals(funding.map((f) => f.symbol), PERPS);
    const f = (symbol: string) => `exchange="binance",symbol="${symbol}"`;
    const o = (symbol: string) => `exchange="binance",symbol="${symbol}",period="1h"`;
    assertEquals(
      samples(text, "candlekeep_funding_rows_stored"),
      new Map(funding.map((r) => [f(r.symbol), r.n])),
    );
    assertEquals(samples(text, "candlekeep_funding_holes"), new Map([[f(PERPS[0]), 1], [f(PERPS[1]), 0]]));
    assertEquals(
      samples(text, "candlekeep_funding_last_timestamp_seconds"),
      new Map(funding.map((r) => [f(r.symbol), r.last.getTime() / 1000])),
    );
    assertEquals(
      samples(text, "candlekeep_open_interest_rows_stored"),
      new Map(oi.map((r) => [o(r.symbol), r.n])),
    );
    assert(oi[0].n > 400, `open-interest rows: ${oi[0].n}`);
    assertEquals(samples(text, "candlekeep_open_interest_holes"), new Map([[o(PERPS[0]), 1], [o(PERPS[1]), 0]]));
    assertEquals(
      samples(text, "candlekeep_open_interest_last_timestamp_seconds"),
      new Map(oi.map((r) => [o(r.symbol), r.last.getTime() / 1000])),
    );
    for (
      const [name, rows, label] of [
        ["candlekeep_funding_age_seconds", funding, f],
        ["candlekeep_open_interest_age_seconds", oi, o],
      ] as const
    ) {
      const ages = samples(text, name);
      assertEquals(ages.size, 2, name);
      for (const r of rows) {
        const age = (w.now() - r.last.getTime()) / 1000;
        assert(Math.abs(ages.get(label(r.symbol))! - age) < 5, `${name} ${r.symbol}: ${ages.get(label(r.symbol))}`);
      }
    }

    // A history that disappears takes its label set with it (on the next refresh, 10 s later).
    await w.t.sql`delete from funding_rates where symbol = ${PERPS[1]}`;
    await w.t.sql`delete from open_interest where symbol = ${PERPS[1]}`;
    await w.t.sql`delete from open_interest_progress where symbol = ${PERPS[1]}`;
    clock.offset += 11_000;
    const after = await scrape();
    assertEquals([...samples(after, "candlekeep_funding_rows_stored").keys()], [f(PERPS[0])]);
    assertEquals([...samples(after, "candlekeep_funding_age_seconds").keys()], [f(PERPS[0])]);
    assertEquals([...samples(after, "candlekeep_open_interest_holes").keys()], [o(PERPS[0])]);
    assertEquals([...samples(after, "candlekeep_open_interest_last_timestamp_seconds").keys()], [o(PERPS[0])]);

    // A row lost from storage is a gap, not a hole: the holes gauge counts confirmed holes only.
    await w.t.sql`delete from open_interest where symbol = ${PERPS[0]} and ts = (
      select min(ts) + interval '2 hours' from open_interest where symbol = ${PERPS[0]})`;
    clock.offset += 11_000;
    const lost = await scrape();
    assertEquals(samples(lost, "candlekeep_open_interest_holes"), new Map([[o(PERPS[0]), 1]]));
  });
});
