/**
 * Restart benchmark: a `main.ts start` service is killed with `kill -9` of its process group
 * while live, its newest candles are deleted (as if time had passed while it was down), and
 * the same command is started again. Measures the time from the restart to the refilled
 * series, with the default identity (`<hostname>:<API_PORT>`, the service takes back its own
 * leases) against the baseline of a random identity (`API_PORT=0`: the restarted process must
 * wait for its dead predecessor's leases to expire after LEASE_TTL).
 *
 * Run: `deno task bench restart`.
 *
 * @module
 */
import { ingestWorld } from "../ingest/helpers.ts";
import { freePort, killGroup, spawnCandlekeep, waitFor } from "../support/child.ts";

const LEASE_TTL_S = 10;

/** Seconds from the restart until the deleted candles are stored again. */
async function restartOnce(fixedPort: boolean): Promise<number> {
  const w = await ingestWorld({
    env: { SYMBOLS: "BTC/USDT,ETH/USDT", TIMEFRAMES: "1m,5m", BACKFILL_SINCE: "2d", LEASE_TTL: `${LEASE_TTL_S}s` },
  });
  const env = { ...w.env, API_PORT: fixedPort ? String(freePort()) : "0" };
  const children = [];
  try {
    const first = spawnCandlekeep(["start"], env, { group: true });
    children.push(first);
    await waitFor("every series live", async () => {
      const [row] = await w.t.sql<{ n: number }[]>`select count(*)::int as n from series where state = 'live'`;
      return row.n === 4;
    }, 120_000);
    killGroup(first);
    await first.status;
    const deleted = await w.t.sql`delete from candles where ts > now() - interval '30 minutes'`;
    const started = performance.now();
    const second = spawnCandlekeep(["start"], env, { group: true });
    children.push(second);
    await waitFor("refilled", async () => {
      const [row] = await w.t.sql<{ n: number }[]>`
        select count(*)::int as n from candles where ts > now() - interval '30 minutes'`;
      return row.n >= deleted.count;
    }, 120_000);
    return (performance.now() - started) / 1000;
  } finally {
    for (const c of children) {
      try {
        c.process.kill("SIGTERM");
      } catch { /* gone */ }
      await c.status;
    }
    await w.close();
  }
}

/** Runs both variants and prints their figures and ratio. */
export async function runRestartBench(): Promise<{ fixedSeconds: number; randomSeconds: number }> {
  const fixedSeconds = await restartOnce(true);
  const randomSeconds = await restartOnce(false);
  console.log(`restart → refilled, identity host:port (own leases taken back): ${fixedSeconds.toFixed(2)} s`);
  console.log(
    `restart → refilled, random identity (baseline, waits LEASE_TTL=${LEASE_TTL_S}s): ${randomSeconds.toFixed(2)} s`,
  );
  console.log(`ratio: ${(fixedSeconds / randomSeconds).toFixed(3)}× the baseline`);
  return { fixedSeconds, randomSeconds };
}

if (import.meta.main) {
  await runRestartBench();
  Deno.exit(0);
}
