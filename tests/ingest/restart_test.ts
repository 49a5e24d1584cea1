/**
 * Restart in seconds: `kill -9` of a service's whole process group, then the same command
 * again. The restarted instance has the same identity (host name and API port), so it takes
 * back its own leases at once instead of waiting LEASE_TTL for them; the leases of another
 * live instance stay where they are; the data ends exact.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { timeframeMs } from "../../src/timeframe.ts";
import { ingestWorld, storedCandles } from "./helpers.ts";
import { type Child, freePort, killGroup, spawnCandlekeep, waitFor } from "../support/child.ts";

Deno.test("restart after kill -9 of the process group: own leases taken back at once, others' kept, data exact", async () => {
  const symbols = ["BTC/USDT", "ETH/USDT"];
  const timeframes = ["1m", "5m"];
  // A long LEASE_TTL: a restart that waited for its own leases to expire would miss every
  // deadline below.
  const w = await ingestWorld({
    env: { SYMBOLS: symbols.join(","), TIMEFRAMES: timeframes.join(","), BACKFILL_SINCE: "2d", LEASE_TTL: "45s" },
  });
  const portA = freePort();
  const portB = freePort();
  const children: Child[] = [];
  const owners = async () =>
    await w.t.sql<{ id: number; owner: string | null }[]>`
      select id, lease_owner as owner from series order by id`;
  try {
    const a = spawnCandlekeep(["start"], { ...w.env, API_PORT: String(portA) }, { group: true });
    children.push(a);
    const b = spawnCandlekeep(["start"], { ...w.env, API_PORT: String(portB) });
    children.push(b);
    const all = () => children.map((c) => c.output()).join("\n---\n");
    await waitFor("both instances live with two series each", async () => {
      const rows = await w.t.sql<{ owner: string; n: number; live: number }[]>`
        select lease_owner as owner, count(*)::int as n, count(*) filter (where state = 'live')::int as live
        from series where lease_owner is not null group by 1`;
      return rows.length === 2 && rows.every((r) => r.n === 2 && r.live === 2);
    }, 90_000).catch((e) => {
      throw new Error(`${e.message}\n${all()}`);
    });
    const before = await owners();
    const ownerA = before.find((r) => r.owner?.endsWith(`:${portA}`))?.owner;
    const ownerB = before.find((r) => r.owner?.endsWith(`:${portB}`))?.owner;
    assert(ownerA && ownerB, `identities are host:port: ${JSON.stringify(before)}`);
    const seriesOfA = before.filter((r) => r.owner === ownerA).map((r) => r.id);
    const seriesOfB = before.filter((r) => r.owner === ownerB).map((r) => r.id);

    killGroup(a, "SIGKILL");
    assert(!(await a.status).success, "A was killed");
    // While A is down, the newest candles of its series are lost (as if time had passed).
    const deleted = await w.t.sql`
      delete from candles where series_id = any(${seriesOfA}::int[])
        and ts > now() - interval '30 minutes'`;
    assert(deleted.count > 0, "candles removed while A was down");

    const restarted = performance.now();
    const again = spawnCandlekeep(["start"], { ...w.env, API_PORT: String(portA) }, { group: true });
    children.push(again);
    await waitFor("A's series refilled by the restarted A", async () => {
      const [row] = await w.t.sql<{ n: number }[]>`
        select count(*)::int as n from candles
        where series_id = any(${seriesOfA}::int[]) and ts > now() - interval '30 minutes'`;
      return row.n >= deleted.count;
    }, 20_000).catch((e) => {
      throw new Error(`${e.message}\n${again.output()}`);
    });
    const seconds = (performance.now() - restarted) / 1000;
    console.log(`restart to refilled: ${seconds.toFixed(1)} s (LEASE_TTL 45 s)`);
    assert(
      again.output().includes("Taking back 2 series leased by this instance"),
      `the restarted instance took its own leases back:\n${again.output()}`,
    );
    const after = await owners();
    assertEquals(after.filter((r) => r.owner === ownerA).map((r) => r.id), seriesOfA, "A holds its series again");
    assertEquals(after.filter((r) => r.owner === ownerB).map((r) => r.id), seriesOfB, "B kept its series");

    for (const symbol of symbols) {
      for (const tf of timeframes) {
        const stored = await storedCandles(w, { symbol, timeframe: tf });
        const step = timeframeMs(tf);
        const expected = w.fake.expected(symbol, tf, stored[0].ts, stored.at(-1)!.ts + step);
        assertEquals(stored, expected, `${symbol} ${tf}: no holes, no duplicates, exact values`);
      }
    }
  } finally {
    for (const c of children) {
      try {
        c.process.kill("SIGTERM");
      } catch { /* already gone */ }
    }
    for (const c of children) await c.status;
    await w.close();
  }
});
