/**
 * `GET /v1/funding-rates` over funding rows ingested from the fake exchange with real ccxt:
 * exact decimals (numbers and strings), paging with `next` both ways, CSV, 404, OpenAPI.
 */
import { createHandler } from "../../src/api/server.ts";
import { decimalText } from "../../src/api/decimal_text.ts";
import { FundingIngest } from "../../src/derivatives/funding_ingest.ts";
import { Registry } from "../../src/metrics.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { type IngestWorld, ingestWorld } from "../ingest/helpers.ts";
import { testConfig } from "./helpers.ts";

const SYMBOL = "ETH/USDT:USDT";

async function withFunding(
  fn: (w: IngestWorld, get: (query: string) => Promise<Response>) => Promise<void>,
): Promise<void> {
  const w = await ingestWorld({
    dialect: "binance",
    env: { SYMBOLS: SYMBOL, TIMEFRAMES: "1d", BACKFILL_SINCE: "40d" },
  });
  try {
    await new FundingIngest({
      db: w.db,
      sources: w.clients,
      symbols: [SYMBOL],
      since: w.config.backfillSince,
      now: w.now,
    }).run();
    const handler = createHandler({ db: w.db, config: testConfig(), registry: new Registry() });
    await fn(w, (query) => handler(new Request(`http://api.test/v1/funding-rates?${query}`)));
  } finally {
    await w.close();
  }
}

async function expectedRows(w: IngestWorld) {
  const [cp] = await w.t.sql<{ from: Date }[]>`select range_from as from from funding_checkpoints`;
  return w.fake.derivatives.expectedFunding(SYMBOL, cp.from.getTime(), w.now() + 1);
}

Deno.test("GET /v1/funding-rates: exact decimals, pages with next (desc and asc), CSV", async () => {
  await withFunding(async (w, get) => {
    const want = await expectedRows(w);
    assert(want.length > 200, `rows: ${want.length}`);
    const q = `exchange=binance&symbol=${encodeURIComponent(SYMBOL)}`;

    // desc (default): newest pages first, each oldest first; rates written as the exchange's decimals
    let url: string | null = `${q}&limit=70`;
    const pages: { time: string; rate: number; mark_price: number }[][] = [];
    let raw = "";
    while (url !== null) {
      const res = await get(url.replace(/^\/v1\/funding-rates\?/, ""));
      assertEquals(res.status, 200);
      const text = await res.text();
      raw += text;
      const body = JSON.parse(text);
      assertEquals([body.exchange, body.symbol], ["binance", SYMBOL]);
      pages.push(body.funding_rates);
      url = body.next;
    }
    assertEquals(pages.length, Math.ceil(want.length / 70));
    const desc = pages.reverse().flat();
    assertEquals(
      desc.map((r) => [Date.parse(r.time), r.rate, r.mark_price]),
      want.map((r) => [r.ts, Number(r.rate), Number(r.markPrice)]),
    );
    for (const r of want) assert(raw.includes(`"rate":${decimalText(r.rate)}`), `rate text ${r.rate}`);

    // asc with decimals=string: strings are the exact decimals
    url = `${q}&order=asc&limit=100&decimals=string`;
    const asc: { time: string; rate: string; mark_price: string }[] = [];
    while (url !== null) {
      const body: { funding_rates: typeof asc; next: string | null } = await (await get(
        url.replace(/^\/v1\/funding-rates\?/, ""),
      )).json();
      asc.push(...body.funding_rates);
      url = body.next;
    }
    assertEquals(
      asc.map((r) => [Date.parse(r.time), r.rate, r.mark_price]),
      want.map((r) => [r.ts, decimalText(r.rate), decimalText(r.markPrice)]),
    );

    // a range, as CSV
    const start = new Date(want[10].ts).toISOString();
    const end = new Date(want[15].ts).toISOString();
    const csv = await get(`${q}&start=${start}&end=${end}&format=csv`);
    assertEquals(csv.headers.get("content-type"), "text/csv; charset=utf-8");
    assertEquals(
      await csv.text(),
      "time,rate,mark_price\n" +
        want.slice(10, 15).map((r) =>
          `${new Date(r.ts).toISOString()},${decimalText(r.rate)},${decimalText(r.markPrice)}\n`
        ).join(""),
    );
  });
});

Deno.test("GET /v1/funding-rates: 404 names what is stored; 400 for bad parameters; in OpenAPI", async () => {
  await withFunding(async (_w, get) => {
    const missing = await get("exchange=binance&symbol=BTC%2FUSDT%3AUSDT");
    assertEquals(missing.status, 404);
    const body = await missing.json();
    assertEquals(
      body.error,
      `Cannot find funding rates of binance BTC/USDT:USDT: stored funding rates are of binance ${SYMBOL}`,
    );
    const bad = await get(`exchange=binance&symbol=${encodeURIComponent(SYMBOL)}&limit=0`);
    assertEquals(bad.status, 400);
    // Query problems read "<parameter> must be …; current value is …", never zod's own wording.
    const q = `exchange=binance&symbol=${encodeURIComponent(SYMBOL)}`;
    const problems = await get(`${q}&format=xml&order=up&timeframe=1h`);
    assertEquals(problems.status, 400);
    assertEquals(
      (await problems.json()).error,
      'Cannot accept the query: order must be one of asc, desc; current value is "up"; ' +
        'format must be one of json, csv; current value is "xml"; timeframe is not a parameter of /v1/funding-rates',
    );
    // start at or after end is a 400, as on /v1/candles.
    const reversed = await get(`${q}&start=2024-01-02T00:00:00Z&end=2024-01-01T00:00:00Z`);
    assertEquals(reversed.status, 400);
    assertEquals(await reversed.json(), {
      error: "Cannot accept the query: end must be later than start (2024-01-02T00:00:00.000Z); " +
        "current value is 2024-01-01T00:00:00.000Z",
      details: [{
        parameter: "end",
        problem: "must be later than start (2024-01-02T00:00:00.000Z); current value is 2024-01-01T00:00:00.000Z",
      }],
    });
    const empty = await get(`exchange=binance&symbol=${encodeURIComponent(SYMBOL)}&end=2001-01-01T00:00:00Z`);
    assertEquals(await empty.json(), { exchange: "binance", symbol: SYMBOL, funding_rates: [], next: null });
  });
  const { openApiDocument } = await import("../../src/api/openapi.ts");
  const doc = openApiDocument("http://x") as { paths: Record<string, { get: { parameters: { name: string }[] } }> };
  assertEquals(
    doc.paths["/v1/funding-rates"].get.parameters.map((p) => p.name).sort(),
    ["decimals", "end", "exchange", "format", "limit", "order", "start", "symbol"],
  );
});
