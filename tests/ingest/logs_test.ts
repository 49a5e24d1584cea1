/**
 * Logs of a clean run: the service says at `info` that each series started backfilling and
 * when it is done (with counts), and nothing per page; a restart over complete series logs
 * nothing per series at `info`, and its catch-up and pages only at `debug`.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { freePort, spawnCandlekeep, waitFor } from "../support/child.ts";
import { ingestWorld } from "./helpers.ts";

interface Line {
  level: string;
  category: string;
  message: string;
}

function ingestLines(output: string, level: string): string[] {
  return output.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Line)
    .filter((l) => l.category === "candlekeep.ingest" && l.level === level).map((l) => l.message);
}

Deno.test("logs: a clean run says what each series does at info; a restart adds nothing per series", async () => {
  const w = await ingestWorld({ env: { SYMBOLS: "BTC/USDT,ETH/USDT", TIMEFRAMES: "1m,5m", BACKFILL_SINCE: "2d" } });
  const env = { ...w.env, API_PORT: String(freePort()) };
  const live = async () => {
    const [row] = await w.t.sql<{ n: number }[]>`select count(*)::int as n from series where state = 'live'`;
    return row.n === 4;
  };
  try {
    const first = spawnCandlekeep(["start"], env);
    await waitFor("four live series", live, 60_000).catch((e) => {
      throw new Error(`${e.message}\n${first.output()}`);
    });
    await waitFor(
      "four backfills logged",
      () => Promise.resolve(ingestLines(first.output(), "info").length >= 9),
      10_000,
    );
    first.process.kill("SIGTERM");
    assert((await first.status).success, first.output());
    const info = ingestLines(first.output(), "info");
    assertEquals(info.filter((m) => m.startsWith("Backfilling binance ")).length, 4, info.join("\n"));
    assertEquals(info.filter((m) => /^Backfill of binance .* complete: \d+ candles in \d+ pages?$/.test(m)).length, 4);
    assertEquals(info.length, 9, `one line a series at start and at the end, and the count:\n${info.join("\n")}`);

    const again = spawnCandlekeep(["start"], { ...env, LOG_LEVEL: "debug" });
    await waitFor(
      "the restart's catch-up",
      () =>
        Promise.resolve(
          ingestLines(again.output(), "debug").filter((m) => m.includes("was backfilled before")).length === 4,
        ),
      30_000,
    ).catch((e) => {
      throw new Error(`${e.message}\n${again.output()}`);
    });
    again.process.kill("SIGTERM");
    assert((await again.status).success, again.output());
    assertEquals(ingestLines(again.output(), "info"), ["4 series configured"]);
  } finally {
    await w.close();
  }
});
