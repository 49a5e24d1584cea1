/**
 * The CLI beside a running service, as a user runs it: `deno task start` in one terminal and
 * `status`, `gaps`, `backfill`, `migrate` in another, on the same embedded database (one
 * PostgreSQL for the data folder, published by the process that runs it) and with
 * DATABASE_URL. The service keeps its leases, stays ready and keeps writing; a killed service's
 * embedded database is taken over by the next command.
 */
import postgres from "postgres";
import { assert, assertEquals } from "../support/assert.ts";
import { type Child, freePort, killGroup, spawnCandlekeep, waitFor } from "../support/child.ts";
import { type FakeExchange, startFakeExchange } from "../support/fake_exchange.ts";
import { ingestWorld } from "../ingest/helpers.ts";
import { readPublished } from "../../src/db/embedded/mod.ts";

const TOKEN = "a-long-enough-test-token";
const SYMBOLS = ["BTC/USDT", "ETH/USDT"];

function baseEnv(fake: FakeExchange): Record<string, string> {
  return {
    EXCHANGES: fake.exchangeId,
    CCXT_CONFIG: JSON.stringify({ [fake.exchangeId]: fake.ccxtConfig() }),
    SYMBOLS: SYMBOLS.join(","),
    TIMEFRAMES: "1m",
    BACKFILL_SINCE: "6h",
    LEASE_TTL: "6s",
    API_PORT: String(freePort()),
    API_TOKEN: TOKEN,
  };
}

async function readyStatus(base: string): Promise<number> {
  try {
    const response = await fetch(`${base}/ready`);
    await response.body?.cancel();
    return response.status;
  } catch {
    return 0;
  }
}

async function listSeries(base: string): Promise<{ symbol: string; count: number; state: string }[]> {
  const response = await fetch(`${base}/v1/series`);
  if (response.status !== 200) {
    await response.body?.cancel();
    return [];
  }
  return (await response.json()).series;
}

/** Waits until the service answers /ready with 200 and every configured series has candles. */
async function waitServing(service: Child, base: string): Promise<void> {
  await waitFor("the service ready with candles", async () => {
    if ((await readyStatus(base)) !== 200) return false;
    const series = await listSeries(base);
    return SYMBOLS.every((s) => series.some((r) => r.symbol === s && r.count > 0 && r.state === "live"));
  }, 90_000).catch((e) => {
    throw new Error(`${e.message}\n${service.output()}`);
  });
}

/**
 * While running, polls /ready and the leases: every answer must be 200, and every series must
 * stay leased by the service (a one-shot command must not make it give any up).
 */
function watchService(base: string, sql: postgres.Sql, owner: string) {
  const problems: string[] = [];
  let checks = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const status = await readyStatus(base);
      if (status !== 200) problems.push(`/ready answered ${status}`);
      const rows = await sql<{ symbol: string; lease_owner: string | null }[]>`
        select symbol, lease_owner from series where active`;
      for (const r of rows) {
        if (r.lease_owner !== owner) problems.push(`${r.symbol} leased by ${r.lease_owner}, not ${owner}`);
      }
      checks++;
      await new Promise((r) => setTimeout(r, 150));
    }
  })();
  return {
    async stop(): Promise<{ problems: string[]; checks: number }> {
      running = false;
      await loop;
      return { problems, checks };
    },
  };
}

interface Done {
  name: string;
  code: number;
  stdout: string;
  output: string;
}

async function runAll(commands: Record<string, string[]>, env: Record<string, string>): Promise<Map<string, Done>> {
  const children = Object.entries(commands).map(([name, args]) => ({ name, child: spawnCandlekeep(args, env) }));
  const done = new Map<string, Done>();
  for (const { name, child } of children) {
    const { code } = await child.status;
    done.set(name, { name, code, stdout: child.stdout(), output: child.output() });
  }
  return done;
}

function expectExit0(done: Map<string, Done>): void {
  for (const d of done.values()) assertEquals(d.code, 0, `${d.name} exited with ${d.code}:\n${d.output}`);
}

/** Postmasters (processes started as `postgres -D <clusterDir>`) of one cluster. */
async function postmasters(clusterDir: string): Promise<number[]> {
  const out = await new Deno.Command("ps", { args: ["-eo", "pid=,args="], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).split("\n")
    .filter((line) => /\/postgres -D /.test(line) && line.includes(`-D ${clusterDir} `))
    .map((line) => Number(line.trim().split(/\s+/)[0]));
}

function checkCommandOutputs(done: Map<string, Done>): void {
  const status = JSON.parse(done.get("status")!.stdout);
  assertEquals(status.series.map((s: { symbol: string }) => s.symbol).sort(), [...SYMBOLS].sort());
  const gaps = JSON.parse(done.get("gaps")!.stdout);
  assertEquals(gaps.map((r: { series: { symbol: string } }) => r.series.symbol).sort(), [...SYMBOLS].sort());
  for (const name of ["repair", "backfill"]) {
    const text = done.get(name)!.output;
    for (const symbol of SYMBOLS) {
      assert(
        new RegExp(`${symbol.replace("/", "\\/")} 1m is kept by the running instance \\S+; skipped`).test(text),
        `${name}: no notice for ${symbol}:\n${text}`,
      );
    }
    assert(!text.includes("FAILED"), `${name} reported a failure:\n${text}`);
  }
  assert(/BTC\/USDT\s+1m\s+\S+Z\s+\S+Z/.test(done.get("backfill")!.stdout), done.get("backfill")!.stdout);
}

/** The commands run beside the service, by name. */
const COMMANDS: Record<string, string[]> = {
  status: ["status", "--json"],
  gaps: ["gaps", "--json"],
  repair: ["gaps", "--repair"],
  backfill: ["backfill"],
  migrate: ["migrate"],
};

Deno.test("cli beside the service on the embedded database: one server, clients exit 0, a killed owner is taken over", async () => {
  const fake = await startFakeExchange({ dialect: "binance" });
  const dataDir = await Deno.makeTempDir({ prefix: "candlekeep-beside-" });
  // makeTempDir makes 0700; the server's unprivileged user (as root) must reach the folder.
  await Deno.chmod(dataDir, 0o755);
  const env: Record<string, string> = { ...baseEnv(fake), DATA_DIR: dataDir, DATABASE_URL: "" };
  const base = `http://127.0.0.1:${env.API_PORT}`;
  const service = spawnCandlekeep(["start"], env, { group: true });
  let sql: postgres.Sql | undefined;
  let killed = false;
  try {
    await waitServing(service, base);
    const published = await readPublished(dataDir);
    assert(published, "the service published its server in DATA_DIR/postgres.json");
    assertEquals(published.ownerPid, service.process.pid);
    assertEquals((await Deno.stat(`${dataDir}/postgres.json`)).mode! & 0o777, 0o600);
    const clusterDir = published.clusterDir;
    assertEquals(await postmasters(clusterDir), [published.postmasterPid]);

    const password = (await Deno.readTextFile(`${dataDir}/postgres.password`)).trim();
    sql = postgres({
      host: "127.0.0.1",
      port: published.port,
      user: "candlekeep",
      pass: password,
      database: "candlekeep",
      max: 2,
      onnotice: () => {},
    });
    const [{ owner }] = await sql<{ owner: string }[]>`
      select min(lease_owner) as owner from series where active having count(distinct lease_owner) = 1`;
    assert(owner, "the service holds every series");

    const watch = watchService(base, sql, owner);
    const done = await runAll(COMMANDS, env);
    const { problems, checks } = await watch.stop();
    expectExit0(done);
    for (const d of done.values()) {
      assert(d.output.includes("connecting as a client"), `${d.name} did not connect as a client:\n${d.output}`);
      assert(!d.output.includes("Embedded PostgreSQL stopped"), `${d.name} stopped the server:\n${d.output}`);
    }
    checkCommandOutputs(done);
    assert(checks > 0);
    assertEquals(problems, []);
    const [{ n: oneShotInstances }] = await sql<{ n: number }[]>`
      select count(*)::int as n from instances where id <> ${owner}`;
    assertEquals(oneShotInstances, 0, "the one-shot commands did not register as instances");

    // The service still works: a series added now is backfilled by it.
    const added = await fetch(`${base}/v1/series`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify({ exchange: fake.exchangeId, symbol: "SOL/USDT", timeframe: "1m", since: "2h" }),
    });
    assertEquals(added.status, 201, await added.clone().text());
    await added.body?.cancel();
    await waitFor(
      "the service backfilling a new series",
      async () => (await listSeries(base)).some((s) => s.symbol === "SOL/USDT" && s.count > 0),
      30_000,
    );
    assertEquals(await readyStatus(base), 200);
    assertEquals(await postmasters(clusterDir), [published.postmasterPid], "still exactly one postmaster");
    await sql.end();
    sql = undefined;

    // kill -9 of the service's whole process group: the next commands take the database over.
    killGroup(service, "SIGKILL");
    await service.status;
    killed = true;
    const after = await runAll({ first: ["status", "--json"], second: ["status", "--json"] }, env);
    expectExit0(after);
    const outputs = [...after.values()].map((d) => d.output).join("\n");
    assert(outputs.includes("which has exited: the file is stale"), outputs);
    assert(outputs.includes("this process stops it on exit"), outputs);
    for (const d of after.values()) {
      const symbols = JSON.parse(d.stdout).series.map((s: { symbol: string }) => s.symbol).sort();
      assertEquals(symbols, [...SYMBOLS, "SOL/USDT"].sort());
    }
    assertEquals(await postmasters(clusterDir), [], "the last command stopped the server");
    assertEquals(await readPublished(dataDir), undefined, "and withdrew it");
  } finally {
    await sql?.end().catch(() => {});
    if (!killed) {
      try {
        killGroup(service, "SIGTERM");
      } catch { /* already gone */ }
      await service.status;
    }
    await fake.close();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});

Deno.test("cli beside the service with DATABASE_URL: clients exit 0, the service keeps its leases", async () => {
  const w = await ingestWorld({ env: { SYMBOLS: SYMBOLS.join(","), TIMEFRAMES: "1m", BACKFILL_SINCE: "6h" } });
  const env: Record<string, string> = { ...w.env, ...baseEnv(w.fake) };
  const base = `http://127.0.0.1:${env.API_PORT}`;
  const service = spawnCandlekeep(["start"], env);
  try {
    await waitServing(service, base);
    const [{ owner }] = await w.t.sql<{ owner: string }[]>`
      select min(lease_owner) as owner from series where active having count(distinct lease_owner) = 1`;
    assert(owner, "the service holds every series");
    const watch = watchService(base, w.t.sql, owner);
    const done = await runAll(COMMANDS, env);
    const { problems, checks } = await watch.stop();
    expectExit0(done);
    checkCommandOutputs(done);
    assert(checks > 0);
    assertEquals(problems, []);
    assertEquals(await readyStatus(base), 200);
    service.process.kill("SIGTERM");
    assertEquals((await service.status).code, 0, service.output());
  } finally {
    try {
      service.process.kill("SIGTERM");
    } catch { /* already gone */ }
    await service.status;
    await w.close();
  }
});
