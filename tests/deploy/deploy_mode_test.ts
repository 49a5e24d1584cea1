/**
 * `main.ts` on a Deploy-style host, driven by our simulator of Deno Deploy's cron control
 * plane (tests/support/deploy_cron_host.ts): crons registered at top level before serving,
 * bounded work per run under TICK_BUDGET, days of history caught up over several runs, no
 * files, no subprocesses, no FFI (`--deny-write --deny-run --deny-ffi`, the `deploy` task's
 * flags).
 */
import { assert, assertEquals } from "../support/assert.ts";
import { freePort, permissions, spawnCandlekeep, waitFor } from "../support/child.ts";
import { startCronHost } from "../support/deploy_cron_host.ts";
import { ingestWorld, storedCandles } from "../ingest/helpers.ts";

/** `main.ts` with exactly the `deploy` task's flags, in deploy mode. */
function spawnDeploy(env: Record<string, string>) {
  return spawnCandlekeep([], { DENO_DEPLOY: "1", ...env }, { task: "deploy" });
}

Deno.test("deploy: the flags of the deploy task deny writes, subprocesses and FFI", () => {
  const flags = permissions("deploy");
  for (const flag of ["--no-prompt", "-P=deploy", "--deny-write", "--deny-run", "--deny-ffi"]) {
    assert(flags.includes(flag), `the deploy task has ${flag}: ${flags.join(" ")}`);
  }
});

Deno.test("deploy: a missing DATABASE_URL or a bad TICK_BUDGET is a one-line error naming the variable", async () => {
  const cases: [Record<string, string>, string][] = [
    [{}, "DATABASE_URL"],
    [{ DATABASE_URL: "postgres://u@127.0.0.1:9/x", TICK_BUDGET: "soon" }, "TICK_BUDGET"],
    [{ DATABASE_URL: "postgres://u@127.0.0.1:9/x", TICK_BUDGET: "0s" }, "TICK_BUDGET"],
  ];
  for (const [env, variable] of cases) {
    const child = spawnDeploy(env);
    const status = await child.status;
    assertEquals(status.code, 2, child.output());
    const lines = child.output().split("\n").filter((l) => l.startsWith("Cannot"));
    assertEquals(lines.length, 1, child.output());
    assert(lines[0].startsWith(`Cannot start: invalid configuration: ${variable}=`), lines[0]);
  }
});

Deno.test("deploy: crons at top level, bounded runs, days of history caught up over several runs", async () => {
  const days = 10;
  const w = await ingestWorld({
    env: { SYMBOLS: "BTC/USDT,ETH/USDT", TIMEFRAMES: "1m", BACKFILL_SINCE: `${days}d` },
    // Slow pages: one second of budget covers only a part of the history.
    behaviour: { latencyMs: 150 },
  });
  const host = await startCronHost();
  const port = freePort();
  const child = spawnDeploy({
    ...w.env,
    DENO_UNSTABLE_CRON_SOCK: host.envValue,
    API_PORT: String(port),
    TICK_BUDGET: "1s",
  });
  try {
    const crons = await host.waitForRegistrations(2, 30_000).catch((e) => {
      throw new Error(`${e.message}\n${child.output()}`);
    });
    const live = crons.find((c) => c.name.includes("live"));
    const repair = crons.find((c) => c.name.includes("repair"));
    assert(live && repair, `a live and a repair cron: ${JSON.stringify(crons)}`);
    assertEquals(live.schedule, "* * * * *");
    assertEquals(live.backoffSchedule, []);
    // Registered before the server answers: the host now closes registration, as Deploy does.
    await waitFor("the API to answer", async () => {
      try {
        const response = await fetch(`http://127.0.0.1:${port}/health`);
        await response.body?.cancel();
        return response.ok;
      } catch {
        return false;
      }
    }, 30_000).catch((e) => {
      throw new Error(`${e.message}\n${child.output()}`);
    });
    await host.rejectNewCrons("the application is serving");

    const expectedCount = days * 1440;
    const stored = async () => {
      const rows = await w.t.sql<{ symbol: string; n: number }[]>`
        select s.symbol, count(c.ts)::int as n from series s left join candles c on c.series_id = s.id
        group by 1 order by 1`;
      return rows;
    };
    const runs: { ms: number; candles: number }[] = [];
    for (let i = 0; i < 12; i++) {
      const result = await host.invoke(live.name, 60_000);
      assert(result.success, `live run ${i + 1} failed:\n${child.output()}`);
      const counts = await stored();
      runs.push({ ms: Math.round(result.ms), candles: counts.reduce((n, r) => n + r.n, 0) });
      if (counts.length === 2 && counts.every((r) => r.n >= expectedCount - 2)) break;
    }
    console.log(`live runs (TICK_BUDGET 1s): ${runs.map((r) => `${r.ms} ms → ${r.candles} candles`).join("; ")}`);
    assert(runs.length >= 3, `days of history need several runs under a 1 s budget: ${JSON.stringify(runs)}`);
    assert(runs[0].candles < 2 * expectedCount * 0.7, `the first run stopped early: ${JSON.stringify(runs)}`);
    for (let i = 1; i < runs.length; i++) {
      assert(
        runs[i].candles > runs[i - 1].candles,
        `each run continued where the last stopped: ${JSON.stringify(runs)}`,
      );
    }
    for (const symbol of ["BTC/USDT", "ETH/USDT"]) {
      const candles = await storedCandles(w, { symbol, timeframe: "1m" });
      assert(candles.length >= expectedCount - 2, `${symbol}: ${candles.length} candles`);
      assertEquals(candles, w.fake.expected(symbol, "1m", candles[0].ts, candles.at(-1)!.ts + 60_000), symbol);
    }
    const states = await w.t.sql<{ state: string; owner: string | null }[]>`
      select state, lease_owner as owner from series`;
    assertEquals(states.map((s) => s.state), ["live", "live"]);
    assert(states.every((s) => s.owner === null), "leases released after each run");

    const repaired = await host.invoke(repair.name, 60_000);
    assert(repaired.success, `repair run failed:\n${child.output()}`);
    const again = await host.invoke(live.name, 60_000);
    assert(again.success, child.output());
    // The deploy path hands the exchange clients to /ready.
    const ready = await (await fetch(`http://127.0.0.1:${port}/ready`)).json();
    assertEquals(ready.status, "ready", JSON.stringify(ready));
    assertEquals(
      ready.exchanges.map((e: { id: string; reachable: boolean }) => [e.id, e.reachable]),
      [[w.fake.exchangeId, true]],
    );
    assert(!/NotCapable|PermissionDenied|Requires (write|run|ffi) access/.test(child.output()), child.output());
  } finally {
    try {
      child.process.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
    await host.close();
    await w.close();
  }
});
