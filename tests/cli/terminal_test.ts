/**
 * `deno task start` as a person runs it: on a real pseudo-terminal (util-linux `script`),
 * where Deno would *prompt* for a permission it was not given and wait forever. The service
 * must serve, print no prompt, and stop on Ctrl+C typed into the terminal.
 */
import { assert, assertEquals } from "../support/assert.ts";
import { freePort, waitFor } from "../support/child.ts";
import { ingestWorld } from "../ingest/helpers.ts";
import { startFakeExchange } from "../support/fake_exchange.ts";
import { fakeExchangeSource, startFakeArchive } from "../support/fake_archive.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Terminal output without carriage returns and colour codes. */
function plain(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replaceAll("\r", "").replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
}

/** Runs `command` (a shell line) under `script`, with a pseudo-terminal as stdin, stdout and stderr. */
function onTerminal(command: string, env: Record<string, string>) {
  const child = new Deno.Command("script", {
    args: ["-qefc", command, "/dev/null"],
    cwd: ROOT,
    env: { TERM: "xterm", ...env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const decoder = new TextDecoder();
  const drained = Promise.all([child.stdout, child.stderr].map(async (stream) => {
    for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  }));
  const writer = child.stdin.getWriter();
  return {
    output: () => plain(text),
    /** Types `keys` into the terminal. */
    type: (keys: string) => writer.write(new TextEncoder().encode(keys)),
    status: drained.then(() => child.status),
    kill: () => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    },
    close: () => writer.close().catch(() => {}),
  };
}

Deno.test({
  name: "terminal: `deno task start` on a pseudo-terminal serves, never prompts, and stops on Ctrl+C",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    const w = await ingestWorld({ env: { SYMBOLS: "BTC/USDT", TIMEFRAMES: "1m", BACKFILL_SINCE: "2h" } });
    const port = freePort();
    const term = onTerminal("deno task start", { ...w.env, API_PORT: String(port), LOG_FORMAT: "pretty" });
    try {
      await waitFor("the API to answer /ready with 200", async () => {
        if (/Allow\?|requests \w+ access/.test(term.output())) return true;
        try {
          const response = await fetch(`http://127.0.0.1:${port}/ready`);
          await response.body?.cancel();
          return response.status === 200;
        } catch {
          return false;
        }
      }, 60_000).catch((error) => {
        throw new Error(`${error.message}\n${term.output()}`);
      });
      assert(!/Allow\?|requests \w+ access/.test(term.output()), `a permission prompt appeared:\n${term.output()}`);
      await waitFor("candles stored", async () => {
        const [row] = await w.t.sql<{ n: number }[]>`select count(*)::int as n from candles`;
        return row.n >= 100;
      }, 60_000).catch((error) => {
        throw new Error(`${error.message}\n${term.output()}`);
      });
      // Ctrl+C typed on the terminal: the foreground process group gets SIGINT.
      await term.type("\x03");
      const status = await Promise.race([
        term.status,
        new Promise<null>((resolve) => setTimeout(() => resolve(null), 30_000)),
      ]);
      assert(status !== null, `still running 30 s after Ctrl+C:\n${term.output()}`);
      assert(term.output().includes("Stopped"), `no clean stop on Ctrl+C:\n${term.output()}`);
      assert(!/Allow\?/.test(term.output()), term.output());
      const [leases] = await w.t.sql<{ n: number }[]>`
        select count(*)::int as n from series where lease_owner is not null`;
      assertEquals(leases.n, 0, "leases released on Ctrl+C");
    } finally {
      term.kill();
      await term.close();
      await term.status;
      await w.close();
    }
  },
});

Deno.test({
  name:
    "terminal: a newcomer's `deno task start` (no .env, embedded database) collects the defaults, readably, without a warning",
  ignore: Deno.build.os === "windows",
  fn: async () => {
    // Only what a fresh machine cannot do without the internet is set: binance and its archive are our fakes.
    const fake = await startFakeExchange({ dialect: "binance" });
    const archive = await startFakeArchive({ now: fake.now, source: fakeExchangeSource(fake) });
    const dataDir = await Deno.makeTempDir({ prefix: "candlekeep-newcomer-" });
    const port = freePort();
    const term = onTerminal("deno task start", {
      CCXT_CONFIG: JSON.stringify({ binance: fake.ccxtConfig() }),
      ARCHIVE_URL: archive.url,
      DATA_DIR: dataDir,
      API_PORT: String(port),
      // Empty is unset: nothing of the test runner's environment configures the service.
      DATABASE_URL: "",
      SYMBOLS: "",
      TOP_SYMBOLS: "",
      TIMEFRAMES: "",
      BACKFILL_SINCE: "",
      LOG_FORMAT: "",
      LOG_LEVEL: "",
      NO_COLOR: "",
    });
    const started = Date.now();
    try {
      const base = `http://127.0.0.1:${port}`;
      const counts = async () => {
        const out: Record<string, number> = {};
        for (const symbol of ["BTC/USDT", "ETH/USDT"]) {
          const res = await fetch(`${base}/v1/candles?exchange=binance&symbol=${symbol}&timeframe=1m&limit=10000`);
          out[symbol] = res.ok ? (await res.json()).candles.length : 0;
        }
        return out;
      };
      await waitFor("BTC/USDT and ETH/USDT candles in the API", async () => {
        try {
          const c = await counts();
          return c["BTC/USDT"] === 10_000 && c["ETH/USDT"] === 10_000;
        } catch {
          return false;
        }
      }, 120_000).catch((error) => {
        throw new Error(`${error.message}\n${term.output()}`);
      });
      const seconds = (Date.now() - started) / 1000;
      await waitFor(
        "the backfill to finish",
        () => Promise.resolve(term.output().includes("backfilled and live")),
        120_000,
      )
        .catch((error) => {
          throw new Error(`${error.message}\n${term.output()}`);
        });
      const out = term.output();
      console.log(`newcomer: candles for both defaults in the API after ${seconds.toFixed(1)} s\n${out}`);
      // Readable lines, not JSON; no warning of ours or of Deno's; the summary says where things are.
      assert(!out.split("\n").some((l) => l.trimStart().startsWith("{")), `JSON lines on a terminal:\n${out}`);
      assert(!/\bWRN\b|\bERR\b|Warning|warning/.test(out), `a warning on a clean start:\n${out}`);
      for (
        const expected of [
          `Candlekeep is running. Dashboard ${base}/`,
          `Database: embedded PostgreSQL in ${dataDir}/postgres`,
          "Series: binance × BTC/USDT, ETH/USDT × 1m, from 30 days back",
          "All 2 series are backfilled and live",
          // The whole past days came from the archive.
          "files from the archive cover",
        ]
      ) assert(out.includes(expected), `"${expected}" missing:\n${out}`);
      await term.type("\x03");
      await Promise.race([term.status, new Promise((resolve) => setTimeout(resolve, 30_000))]);
    } finally {
      term.kill();
      await term.close();
      await term.status;
      await archive.close();
      await fake.close();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
