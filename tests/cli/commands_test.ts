/**
 * The command line as a user runs it: real `main.ts` processes with the `cli` task's
 * permissions, against the fake exchange and a real database.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { spawnCandlekeep } from "../support/child.ts";
import { ingestWorld } from "../ingest/helpers.ts";

Deno.test("cli: usage and configuration errors exit 2 with a precise message", async () => {
  /** The lines a command printed, without Deno's own notices. */
  const printed = (text: string) => text.split("\n").filter((l) => l.trim() !== "" && !l.includes("Warning"));
  const unknown = spawnCandlekeep(["frobnicate"], {});
  assertEquals((await unknown.status).code, 2);
  assertEquals(printed(unknown.output()), [
    'Cannot run "frobnicate": unknown command; commands are start, migrate, backfill, status, gaps, export, help (deno task cli help)',
  ]);

  // Unknown flags: one line naming the flag, exit 2, before the configuration or the database is touched.
  for (const args of [["status", "--bogus"], ["backfill", "--symbol"], ["gaps", "extra"], ["migrate", "-x"]]) {
    const bad = spawnCandlekeep(args, { DATABASE_URL: "postgres://u:p@127.0.0.1:1/x", API_PORT: "not-a-port" });
    assertEquals((await bad.status).code, 2, bad.output());
    const out = printed(bad.output());
    assertEquals(out.length, 1, bad.output());
    assert(out[0].startsWith(`Cannot parse the options of ${args[0]}: `), out[0]);
  }
  // --help for every command (and `help <command>`): exit 0, no configuration needed.
  for (const command of ["start", "migrate", "backfill", "status", "gaps"]) {
    const help = spawnCandlekeep([command, "--help"], { API_PORT: "not-a-port" });
    assertEquals((await help.status).code, 0, help.output());
    assert(help.stdout().startsWith(`Usage: deno task cli ${command}`), help.stdout());
  }
  const helpTopic = spawnCandlekeep(["help", "backfill"], {});
  assertEquals((await helpTopic.status).code, 0);
  assert(helpTopic.stdout().includes("--symbol SYMBOL"), helpTopic.stdout());

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
    // Repeated and comma-listed symbols are all backfilled (added for this run).
    const several = spawnCandlekeep(
      ["backfill", "--symbol", "ETH/USDT", "--symbol", "SOL/USDT,DOGE-USDT", "--timeframe", "1h", "--since", "1d"],
      w.env,
    );
    assertEquals((await several.status).code, 0, several.output());
    for (const symbol of ["ETH/USDT", "SOL/USDT", "DOGE/USDT"]) {
      const [{ n }] = await w.t.sql<{ n: number }[]>`
        select count(*)::int as n from candles c join series s on s.id = c.series_id
        where s.symbol = ${symbol} and s.timeframe = '1h'`;
      assert(n >= 23, `${symbol} 1h: ${n} candles`);
      assert(several.stdout().includes(symbol), several.stdout());
    }
    const narrowStatus = spawnCandlekeep(["status", "--json", "--symbol", "sol-usdt,DOGE/USDT"], w.env);
    assertEquals((await narrowStatus.status).code, 0, narrowStatus.output());
    assertEquals(
      JSON.parse(narrowStatus.stdout()).series.map((s: { symbol: string }) => s.symbol).sort(),
      ["DOGE/USDT", "SOL/USDT"],
    );

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
