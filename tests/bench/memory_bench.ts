/**
 * Memory benchmark: peak RSS of the serving process under 200 concurrent 10,000-candle pages.
 *
 * 2 series × 10 days of 1-minute candles (28,800 rows) are stored with one
 * `insert … select generate_series` per series; the real service (`main.ts start`, with the
 * `cli` task's flags, so `--v8-flags=--max-old-space-size=160,--max-semi-space-size=4`) runs as its own process against
 * that database, with a fake exchange on 127.0.0.1 for its market list and no configured series
 * (nothing is ingested while measuring). Phases, each with the process's peak RSS (VmHWM from
 * /proc, reset before the phase through `/proc/<pid>/clear_refs`):
 *
 * - baseline: the same 200 `GET /v1/candles?…&limit=10000` JSON requests sent one at a time;
 * - 200 concurrent JSON requests: full pages (exactly 10,000 contiguous candles in valid
 *   JSON), 503s (with `Retry-After`) and any other status are counted;
 * - the same with `format=csv`;
 * - 200 concurrent clients that retry a 503 after its `Retry-After` until each has its page
 *   (every page is served; throughput against the baseline's).
 *
 * Run: `deno task bench memory` (or `deno run --no-prompt -P=dev tests/bench/memory_bench.ts`).
 *
 * @module
 */
import { migrate } from "../../src/db/migrate.ts";
import { freePort, spawnCandlekeep, waitFor } from "../support/child.ts";
import { startFakeExchange } from "../support/fake_exchange.ts";
import { createTestDatabase } from "../support/pg.ts";

const MIN = 60_000;
const DAY = 86_400_000;
const SERIES = 2;
const DAYS = 10;
const PAGE = 10_000;
const REQUESTS = 200;

/** Figures of one phase. */
export interface MemoryPhase {
  name: string;
  /** Peak RSS of the service during the phase (MB). */
  peakRssMb: number;
  /** Whether the peak is VmHWM after a reset (true) or the largest sampled VmRSS (false). */
  exactPeak: boolean;
  /** Full, verified pages. */
  full: number;
  /** 503 answers, all with Retry-After. */
  unavailable: number;
  /** 503 answers without Retry-After (should be 0). */
  unavailableWithoutRetryAfter: number;
  /** Any other status, or a 200 whose body was not a full page: status → count. */
  other: Record<string, number>;
  seconds: number;
  /** Full pages per second. */
  pagesPerSecond: number;
}

/** What {@linkcode runMemoryBench} measured. */
export interface MemoryBenchResult {
  rows: number;
  /** RSS of the idle service before the load (MB). */
  idleRssMb: number;
  phases: MemoryPhase[];
}

async function procStatus(pid: number): Promise<string> {
  // Through `cat`: Deno's file reads trust the size /proc reports (0) and return nothing.
  const out = await new Deno.Command("cat", { args: [`/proc/${pid}/status`], stdout: "piped", stderr: "null" })
    .output();
  return new TextDecoder().decode(out.stdout);
}

function kb(status: string, field: string): number {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/** Resets the process's VmHWM to its current RSS (Linux `clear_refs` value 5). */
async function resetPeak(pid: number): Promise<boolean> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `echo 5 > /proc/${pid}/clear_refs`],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.success;
}

/** Measures the peak RSS of `pid` while `work` runs. */
async function withPeak<T>(pid: number, work: () => Promise<T>): Promise<{ value: T; peak: number; exact: boolean }> {
  const exact = await resetPeak(pid);
  let sampled = 0;
  let running = true;
  const sampler = (async () => {
    while (running) {
      sampled = Math.max(sampled, kb(await procStatus(pid), "VmRSS"));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  try {
    const value = await work();
    return { value, peak: exact ? Math.max(sampled, kb(await procStatus(pid), "VmHWM")) : sampled, exact };
  } finally {
    running = false;
    await sampler;
  }
}

type Outcome = { kind: "full" } | { kind: "503"; retryAfter: string | null } | { kind: "other"; what: string };

/** Fetches one page and checks it is exactly the 10,000 expected contiguous candles. */
async function fetchPage(base: string, i: number, start: number, csv: boolean): Promise<Outcome> {
  const end = start + (PAGE + 1 + ((i * 37) % 4000)) * MIN;
  const url = `${base}/v1/candles?exchange=binance&symbol=S${i % SERIES}/USDT&timeframe=1m&end=${end}&limit=${PAGE}` +
    (csv ? "&format=csv" : "");
  let res: Response;
  try {
    res = await fetch(url);
  } catch (error) {
    return { kind: "other", what: `fetch failed: ${(error as Error).message}` };
  }
  let text: string;
  try {
    text = await res.text();
  } catch (error) {
    return { kind: "other", what: `${res.status} body aborted: ${(error as Error).message}` };
  }
  if (res.status === 503) return { kind: "503", retryAfter: res.headers.get("retry-after") };
  if (res.status !== 200) return { kind: "other", what: String(res.status) };
  const first = new Date(end - PAGE * MIN).toISOString();
  const last = new Date(end - MIN).toISOString();
  if (csv) {
    const lines = text.split("\n");
    const ok = lines.length === PAGE + 2 && lines[0] === "time,open,high,low,close,volume" &&
      lines[1].startsWith(`${first},`) && lines[PAGE].startsWith(`${last},`) && lines[PAGE + 1] === "";
    return ok ? { kind: "full" } : { kind: "other", what: "200 with a wrong CSV page" };
  }
  try {
    const body = JSON.parse(text);
    const candles = body.candles as { time: string }[];
    const ok = candles.length === PAGE && candles[0].time === first && candles[PAGE - 1].time === last &&
      typeof body.next === "string";
    return ok ? { kind: "full" } : { kind: "other", what: "200 with a wrong JSON page" };
  } catch {
    return { kind: "other", what: "200 with invalid JSON" };
  }
}

function tally(name: string, outcomes: Outcome[], seconds: number, peak: number, exact: boolean): MemoryPhase {
  const phase: MemoryPhase = {
    name,
    peakRssMb: peak / 2 ** 20,
    exactPeak: exact,
    full: 0,
    unavailable: 0,
    unavailableWithoutRetryAfter: 0,
    other: {},
    seconds,
    pagesPerSecond: 0,
  };
  for (const o of outcomes) {
    if (o.kind === "full") phase.full++;
    else if (o.kind === "503") {
      phase.unavailable++;
      if (!o.retryAfter) phase.unavailableWithoutRetryAfter++;
    } else phase.other[o.what] = (phase.other[o.what] ?? 0) + 1;
  }
  phase.pagesPerSecond = phase.full / seconds;
  return phase;
}

/** Seeds, starts the service, runs the phases and returns the figures. */
export async function runMemoryBench(
  options: { log?: (line: string) => void } = {},
): Promise<MemoryBenchResult> {
  const log = options.log ?? ((line: string) => console.error(line));
  const t = await createTestDatabase();
  const fake = await startFakeExchange({ dialect: "binance" });
  let child: ReturnType<typeof spawnCandlekeep> | undefined;
  try {
    await migrate(t.sql, { timescaledb: "auto", compressAfterMs: 7 * DAY });
    const start = Date.UTC(2024, 0, 1);
    for (let s = 0; s < SERIES; s++) {
      const [{ id }] = await t.sql<{ id: number }[]>`
        insert into series (exchange, symbol, timeframe) values ('binance', ${`S${s}/USDT`}, '1m') returning id`;
      await t.sql`
        insert into candles (series_id, ts, open, high, low, close, volume)
        select ${id}, to_timestamp(${start}::float8 / 1000) + g * interval '1 minute',
               100 + sin(g / 500.0) * 10, 101 + sin(g / 500.0) * 10 + (g % 7) * 0.01,
               99 + sin(g / 500.0) * 10, 100 + sin((g + 1) / 500.0) * 10, 1 + (g::bigint * 7919 % 1000) / 37.0
        from generate_series(0, ${DAYS * 1440 - 1}) as g`;
    }
    await t.sql`vacuum analyze candles`;
    const [{ n: rows }] = await t.sql<{ n: number }[]>`select count(*)::int as n from candles`;
    log(`seeded ${rows} rows (${SERIES} series × ${DAYS} days of 1m)`);

    const port = freePort();
    child = spawnCandlekeep(["start"], {
      DATABASE_URL: t.url,
      EXCHANGES: fake.exchangeId,
      CCXT_CONFIG: JSON.stringify({ [fake.exchangeId]: fake.ccxtConfig() }),
      SYMBOLS: "none",
      API_HOST: "127.0.0.1",
      API_PORT: String(port),
      LOG_LEVEL: "warning",
    });
    const pid = child.process.pid;
    const base = `http://127.0.0.1:${port}`;
    await waitFor("the service to answer", async () => {
      try {
        const res = await fetch(`${base}/ready`);
        await res.body?.cancel();
        return res.status === 200;
      } catch {
        return false;
      }
    }, 60_000);
    // Warm up (JIT, prepared statements, pool connections).
    for (let i = 0; i < 10; i++) {
      const o = await fetchPage(base, i, start, i % 2 === 1);
      if (o.kind !== "full") throw new Error(`Cannot benchmark: warm-up request ${i} gave ${JSON.stringify(o)}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
    const idleRssMb = kb(await procStatus(pid), "VmRSS") / 2 ** 20;
    const phases: MemoryPhase[] = [];

    const run = async (name: string, work: () => Promise<Outcome[]>) => {
      log(`${name} …`);
      const started = performance.now();
      const { value, peak, exact } = await withPeak(pid, work);
      phases.push(tally(name, value, (performance.now() - started) / 1000, peak, exact));
      await new Promise((r) => setTimeout(r, 500));
    };
    const ids = Array.from({ length: REQUESTS }, (_, i) => i);
    await run("baseline: 200 JSON requests one at a time", async () => {
      const out: Outcome[] = [];
      for (const i of ids) out.push(await fetchPage(base, i, start, false));
      return out;
    });
    await run("200 concurrent JSON requests", () => Promise.all(ids.map((i) => fetchPage(base, i, start, false))));
    await run("200 concurrent CSV requests", () => Promise.all(ids.map((i) => fetchPage(base, i, start, true))));
    await run("200 concurrent JSON clients retrying 503s", () =>
      Promise.all(ids.map(async (i) => {
        for (let attempt = 0; attempt < 200; attempt++) {
          const o = await fetchPage(base, i, start, false);
          if (o.kind !== "503") return o;
          const wait = Number(o.retryAfter ?? "1") * 1000;
          await new Promise((r) => setTimeout(r, wait * (0.5 + Math.random())));
        }
        return { kind: "other", what: "still 503 after 200 attempts" } as Outcome;
      })));
    if (child.output().includes('"level":"ERROR"') || child.output().includes('"level":"FATAL"')) {
      log(
        `service errors:\n${
          child.output().split("\n").filter((l) => /"level":"(ERROR|FATAL)"/.test(l)).slice(0, 5).join("\n")
        }`,
      );
    }
    return { rows, idleRssMb, phases };
  } finally {
    if (child) {
      try {
        child.process.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
    }
    await fake.close();
    await t.drop();
  }
}

/** Prints the figures of {@linkcode runMemoryBench}. */
export function printMemoryBench(r: MemoryBenchResult): void {
  console.log(
    `Memory: ${r.rows.toLocaleString("en-US")} rows stored; ${REQUESTS} × GET /v1/candles?…&limit=${PAGE} ` +
      `against \`main.ts start\` (cli task flags); idle RSS ${r.idleRssMb.toFixed(0)} MB`,
  );
  console.log(
    `${"phase".padEnd(44)} ${"peak RSS MB".padStart(11)} ${"full".padStart(5)} ${"503".padStart(4)} ${
      "other".padStart(6)
    } ${"seconds".padStart(8)} ${"pages/s".padStart(8)}`,
  );
  for (const p of r.phases) {
    const other = Object.values(p.other).reduce((s, n) => s + n, 0);
    console.log(
      `${p.name.padEnd(44)} ${(p.peakRssMb.toFixed(0) + (p.exactPeak ? "" : "~")).padStart(11)} ${
        String(p.full).padStart(5)
      } ${String(p.unavailable).padStart(4)} ${String(other).padStart(6)} ${p.seconds.toFixed(2).padStart(8)} ${
        p.pagesPerSecond.toFixed(1).padStart(8)
      }`,
    );
    if (other > 0) console.log(`  other outcomes: ${JSON.stringify(p.other)}`);
    if (p.unavailableWithoutRetryAfter > 0) console.log(`  503 without Retry-After: ${p.unavailableWithoutRetryAfter}`);
  }
  const baseline = r.phases[0];
  const concurrent = r.phases[1];
  const retrying = r.phases[3];
  if (baseline && concurrent) {
    console.log(
      `peak RSS, 200 concurrent JSON / sequential baseline: ${concurrent.peakRssMb.toFixed(0)} / ${
        baseline.peakRssMb.toFixed(0)
      } MB = ${(concurrent.peakRssMb / baseline.peakRssMb).toFixed(2)}× (target: under 250 MB, no 5xx but 503)`,
    );
  }
  if (baseline && retrying) {
    console.log(
      `throughput, 200 retrying clients / sequential baseline: ${retrying.pagesPerSecond.toFixed(1)} / ${
        baseline.pagesPerSecond.toFixed(1)
      } pages/s = ${(retrying.pagesPerSecond / baseline.pagesPerSecond).toFixed(2)}×`,
    );
  }
}

if (import.meta.main) {
  printMemoryBench(await runMemoryBench());
  Deno.exit(0);
}
