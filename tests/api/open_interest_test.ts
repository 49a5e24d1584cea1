/**
 * `GET /v1/open-interest` over open interest ingested from the fake exchange with real ccxt
 * (Binance USDⓈ-M): exact decimals, paging both ways, CSV, 404 naming what is stored, OpenAPI.
 *
 * @module
 */
import { serveApi } from "../../src/api/server.ts";
import { decimalText } from "../../src/api/decimal_text.ts";
import { syncOpenInterest } from "../../src/derivatives/open_interest_sync.ts";
import { getLogger } from "../../src/log.ts";
import { Registry } from "../../src/metrics.ts";
import { assert, assertEquals } from "../support/assert.ts";
import { type IngestWorld, ingestWorld } from "../ingest/helpers.ts";
import { getJson, type JsonBody } from "./helpers.ts";

const SYMBOL = "BTC/USDT:USDT";

async function withApi(fn: (w: IngestWorld, base: string) => Promise<void>): Promise<void> {
  const w = await ingestWorld({
    dialect: "binance",
    env: { SYMBOLS: SYMBOL, TIMEFRAMES: "1h", BACKFILL_SINCE: "60d", OPEN_INTEREST: "1h" },
  });
  const ac = new AbortController();
  try {
    await syncOpenInterest(
      { db: w.db, log: getLogger("ingest"), now: w.now, since: w.config.backfillSince },
      w.clients.get("binance")!,
      { exchange: "binance", symbol: SYMBOL, period: "1h" },
    );
    const server = serveApi({ db: w.db, config: w.config, registry: new Registry() }, {
      hostname: "127.0.0.1",
      port: 0,
      signal: ac.signal,
    });
    try {
      await fn(w, `http://127.0.0.1:${server.port}`);
    } finally {
      ac.abort();
      await server.finished;
    }
  } finally {
    await w.close();
  }
}

/** The fake's rows from the first stored one on, as the API gives them with decimals=string. */
function expectedRows(w: IngestWorld, from: number) {
  return w.fake.derivatives.expectedOpenInterest(SYMBOL, "1h", { from, to: w.now() + 1 }).map((r) => ({
    time: new Date(r.ts).toISOString(),
    amount: decimalText(r.amount),
    value: decimalText(r.value),
  }));
}

async function walk(base: string, first: string): Promise<{ rows: JsonBody[]; pages: number }> {
  const rows: JsonBody[] = [];
  let url: string | null = first;
  let pages = 0;
  while (url !== null) {
    const { status, body } = await getJson(`${base}${url}`);
    assertEquals(status, 200, JSON.stringify(body));
    assertEquals([body.exchange, body.symbol, body.period], ["binance", SYMBOL, "1h"]);
    rows.push(body.open_interest);
    url = body.next;
    pages++;
  }
  return { rows, pages };
}

Deno.test("GET /v1/open-interest: exact decimals, desc and asc paging without loss, CSV, 404, OpenAPI", async () => {
  await withApi(async (w, base) => {
    const q = `/v1/open-interest?exchange=binance&symbol=${encodeURIComponent(SYMBOL)}&period=1h`;
    const desc = await walk(base, `${q}&limit=300&decimals=string`);
    // Each desc page is oldest first; pages go newer to older.
    const all = desc.rows.reverse().flat();
    const from = Date.parse(all[0].time);
    const expected = expectedRows(w, from);
    assert(expected.length >= 719, `${expected.length} rows`);
    assertEquals(all, expected);
    assertEquals(desc.pages, Math.ceil(expected.length / 300));
    const asc = await walk(base, `${q}&limit=250&order=asc&decimals=string`);
    assertEquals(asc.rows.flat(), expected);

    // JSON numbers are the exact decimals, written as such.
    const res = await fetch(`${base}${q}&limit=1&order=asc`);
    const text = await res.text();
    assert(
      text.includes(`"amount":${expected[0].amount},"value":${expected[0].value}}`),
      `${text.slice(0, 300)} lacks ${expected[0].amount}`,
    );
    // start/end bound the range: [start, end).
    const range = await getJson(`${base}${q}&start=${expected[10].time}&end=${expected[13].time}&decimals=string`);
    assertEquals([range.body.open_interest, range.body.next], [expected.slice(10, 13), null]);

    const csv = await fetch(`${base}${q}&format=csv&limit=2`);
    assertEquals(csv.headers.get("content-type"), "text/csv; charset=utf-8");
    const lines = (await csv.text()).trim().split("\n");
    const last2 = expected.slice(-2);
    assertEquals(lines, ["time,amount,value", ...last2.map((r) => `${r.time},${r.amount},${r.value}`)]);
    assert(csv.headers.get("link")?.includes(`end=${encodeURIComponent(last2[0].time)}`), csv.headers.get("link")!);

    const missing = await getJson(`${base}/v1/open-interest?exchange=binance&symbol=ETH/USDT:USDT&period=1h`);
    assertEquals(missing.status, 404);
    assert(
      missing.body.error.startsWith(
        "Cannot find open interest of binance ETH/USDT:USDT 1h: stored open interest is binance BTC/USDT:USDT 1h",
      ),
      JSON.stringify(missing.body),
    );
    const bad = await getJson(`${q.replace("period=1h", "period=7m")}`.replace(/^/, base));
    assertEquals(bad.status, 400);
    assertEquals(
      bad.body.error,
      'Cannot accept the query: period must be one of 5m, 15m, 30m, 1h, 2h, 4h, 6h, 12h, 1d; current value is "7m"',
    );
    const noPeriod = await getJson(`${base}${q.replace("&period=1h", "")}`);
    assertEquals([noPeriod.status, noPeriod.body.error], [400, "Cannot accept the query: period is required"]);
    const reversed = await getJson(`${base}${q}&start=2024-01-02&end=2024-01-01`);
    assertEquals(reversed.status, 400);
    assertEquals(reversed.body.details, [{
      parameter: "end",
      problem: "must be later than start (2024-01-02T00:00:00.000Z); current value is 2024-01-01T00:00:00.000Z",
    }]);

    const doc = (await getJson(`${base}/openapi.json`)).body;
    const params = doc.paths["/v1/open-interest"].get.parameters.map((p: { name: string }) => p.name);
    assertEquals(params, ["exchange", "symbol", "period", "start", "end", "limit", "order", "decimals", "format"]);
  });
});
