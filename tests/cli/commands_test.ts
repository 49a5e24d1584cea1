/**
 * The command line as a user runs it: real `main.ts` processes with the `cli` task's
 * permissions, against the fake exchange and a real database.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { spawnCandlekeep } from "../support/child.ts";
import { ingestWorld } from "../ingest/helpers.ts";

Deno.test("cli: usage and configuration errors exit 2 with a precise message", async () => {
  const unknown = spawnCandlekeep(["frobnicate"], {});
  assertEquals((await unknown.status).code, 2);
  assert(unknown.output().includes("Unknown command: frobnicate"), unknown.output());
  assert(unknown.output().includes("Usage:"));

  const badFlag = spawnCandlekeep(["status", "--bogus"], { DATABASE_URL: "postgres://u:p@127.0.0.1:1/x" });
  assertEquals((await badFlag.status).code, 2);
  assert(badFlag.output().includes("unknown option --bogus"), badFlag.output());

  const badConfig = spawnCandlekeep(["migrate"], {
    TIMEFRAMES: "1m,1y",
    API_PORT: "http",
    DATABASE_URL: "postgres://user:hunter2@127.0.0.1:1/x",
    CCXT_CONFIG: "{not json",
  });
  assertEquals((await badConfig.status).code, 2);
  const text = badConfig.output();
  for (const v of ["TIMEFRAMES", "API_PORT", "CCXT_CONFIG"]) assert(text.includes(v), `${v} not named: ${text}`);
  assert(!text.includes("hunter2"), "password leaked");

  const help = spawnCandlekeep(["help"], {});
  assertEquals((await help.status).code, 0);
  assert(help.stdout().includes("backfill"));

  // A DATA_DIR the service may not write to: one line naming it, before anything starts.
  const outside = spawnCandlekeep(["status"], { DATA_DIR: "/srv/candlekeep-not-allowed" });
  assertEquals((await outside.status).code, 2, outside.output());
  const lines = outside.output().split("\n").filter((l) => l.startsWith("Cannot"));
  assertEquals(lines.length, 1, outside.output());
  assert(
    lines[0].startsWith('Cannot start: invalid configuration: DATA_DIR="/srv/candlekeep-not-allowed": '),
    lines[0],
  );
  assert(!outside.output().includes("PostgreSQL"), `nothing started: ${outside.output()}`);
});

Deno.test("cli: a port already in use is named, with what to do", async () => {
  const w = await ingestWorld();
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (busy.addr as Deno.NetAddr).port;
    const child = spawnCandlekeep(["start"], { ...w.env, API_PORT: String(port) });
    assertEquals((await child.status).code, 1, child.output());
    assert(
      child.output().includes(`Cannot serve the API on 127.0.0.1:${port}: the port is in use`),
      child.output(),
    );
  } finally {
    busy.close();
    await w.close();
  }
});

Deno.test("cli: backfill exits 1 naming a failed series, others complete; status and gaps as JSON", async () => {
  const w = await ingestWorld({ env: { SYMBOLS: "BTC/USDT,NOPE/USDT", TIMEFRAMES: "1m", BACKFILL_SINCE: "3h" } });
  try {
    const backfill = spawnCandlekeep(["backfill"], w.env);
    const status = await backfill.status;
    assertEquals(status.code, 1, backfill.output());
    assert(/FAILED \S+ NOPE\/USDT 1m: .*NOPE\/USDT/.test(backfill.output()), backfill.output());
    assert(!/FAILED \S+ BTC\/USDT/.test(backfill.output()), "BTC/USDT should have completed");

    const narrowed = spawnCandlekeep(["backfill", "--symbol", "btc-usdt", "--since", "4h"], w.env);
    assertEquals((await narrowed.status).code, 0, narrowed.output());

    const json = spawnCandlekeep(["status", "--json"], w.env);
    assertEquals((await json.status).code, 0, json.output());
    const doc = JSON.parse(json.stdout());
    const btc = doc.series.find((s: { symbol: string }) => s.symbol === "BTC/USDT");
    const nope = doc.series.find((s: { symbol: string }) => s.symbol === "NOPE/USDT");
    assertEquals(btc.state, "live");
    assert(btc.count >= 4 * 60 - 2, `count ${btc.count}`);
    assert(btc.last.endsWith("Z") && btc.first.endsWith("Z"));
    assertEquals(btc.gaps, { missing: 0, ranges: 0 });
    assertEquals(nope.state, "invalid");
    assertEquals(nope.count, 0);

    // A gap made by hand is listed, then repaired by `gaps --repair`.
    await w.t.sql`
      delete from candles where ts in (select ts from candles order by ts desc offset 10 limit 5)`;
    const gaps = spawnCandlekeep(["gaps", "--json"], w.env);
    assertEquals((await gaps.status).code, 0, gaps.output());
    const listed = JSON.parse(gaps.stdout());
    const btcGaps = listed.find((r: { series: { symbol: string } }) => r.series.symbol === "BTC/USDT").gaps;
    assertEquals(btcGaps.length, 1);
    assertEquals(btcGaps[0].count, 5);
    const repair = spawnCandlekeep(["gaps", "--repair", "--json"], { ...w.env, SYMBOLS: "BTC/USDT" });
    assertEquals((await repair.status).code, 0, repair.output());
    const after = JSON.parse(repair.stdout());
    assertEquals(after.find((r: { series: { symbol: string } }) => r.series.symbol === "BTC/USDT").gaps, []);

    const table = spawnCandlekeep(["status"], w.env);
    assertEquals((await table.status).code, 0);
    assert(/BTC\/USDT\s+1m\s+\S+Z\s+\S+Z/.test(table.stdout()), table.stdout());
  } finally {
    await w.close();
  }
});
