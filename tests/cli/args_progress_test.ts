import { assert, assertEquals, assertThrows } from "../support/assert.ts";
import { commandHelp, COMMANDS, parseCommandArgs, usage, UsageError } from "../../src/cli/args.ts";
import { formatEta, ProgressDisplay, renderBar } from "../../src/cli/progress.ts";
import { CONFIG_VARIABLES, loadConfig } from "../../src/config.ts";

Deno.test("cli args: repeatable and comma lists, single values, flags, --help, one-line errors", () => {
  const parsed = parseCommandArgs("backfill", [
    "--symbol",
    "BTC/USDT,eth/usdt",
    "--symbol=SOL/USDT",
    "--symbol",
    "BTC/USDT",
    "--timeframe",
    "1m,1h",
    "--since=30d",
  ]);
  assertEquals(parsed.lists, { symbol: ["BTC/USDT", "eth/usdt", "SOL/USDT"], timeframe: ["1m", "1h"] });
  assertEquals(parsed.values, { since: "30d" });
  assertEquals(parsed.help, false);
  assert(parseCommandArgs("gaps", ["--json", "--repair"]).flags.has("repair"));
  assert(parseCommandArgs("status", ["-h"]).help);
  const oneLine = (fn: () => unknown, expected: string) => {
    const error = assertThrows(fn, UsageError);
    assert(error.message.includes(expected), error.message);
    assert(!error.message.includes("\n"), `one line: ${error.message}`);
  };
  oneLine(() => parseCommandArgs("backfill", ["--bogus"]), "unknown option --bogus; see deno task cli backfill --help");
  oneLine(() => parseCommandArgs("backfill", ["--since"]), "--since needs a value");
  oneLine(() => parseCommandArgs("backfill", ["positional"]), 'unexpected argument "positional"');
  oneLine(() => parseCommandArgs("status", ["--json=yes"]), "--json takes no value");
  oneLine(() => parseCommandArgs("backfill", ["--since", "1d", "--since", "2d"]), "given 2 times");
  oneLine(() => parseCommandArgs("backfill", ["--symbol", ", ,"]), "--symbol: it needs a value");
  oneLine(() => parseCommandArgs("frobnicate", []), 'Cannot run "frobnicate": unknown command');
  for (const command of Object.keys(COMMANDS)) {
    const help = commandHelp(command);
    assert(help.startsWith(`Usage: deno task cli ${command}`), help);
    assert(help.includes("--help, -h"), help);
  }
  assert(commandHelp("backfill").includes("--symbol SYMBOL"));
  assert(usage().includes("backfill") && usage().includes("--help"));
});

Deno.test("progress: bars on a terminal, throttled log lines otherwise", () => {
  assertEquals(formatEta(5), "5s");
  assertEquals(formatEta(125), "2m05s");
  assertEquals(formatEta(3720), "1h02m");
  const bar = renderBar("binance BTC/USDT 1m", 500, 1000, 100, 10);
  assert(bar.includes("[#####.....]"), bar);
  assert(bar.includes(" 50% 500/1,000 100/s ETA 5s"), bar);

  let now = 0;
  const drawn: string[] = [];
  const tty = new ProgressDisplay({ tty: true, write: (t) => drawn.push(t), now: () => now });
  const series = { id: 1, exchange: "binance", symbol: "BTC/USDT", timeframe: "1m" };
  tty.update({ series, done: 10, expected: 100, cursor: 0 });
  now = 1000;
  tty.update({ series, done: 100, expected: 100, cursor: 0 });
  assert(drawn.length >= 2);
  assert(drawn.at(-1)!.includes("100%"), drawn.at(-1));
  assert(drawn.at(-1)!.startsWith("\x1b[1A"), "redraws in place");

  const lines: Record<string, unknown>[] = [];
  now = 0;
  const plain = new ProgressDisplay({ tty: false, log: (f) => lines.push(f), now: () => now });
  plain.update({ series, done: 10, expected: 100, cursor: 0 });
  now = 5_000;
  plain.update({ series, done: 50, expected: 100, cursor: 0 });
  now = 11_000;
  plain.update({ series, done: 60, expected: 100, cursor: 0 });
  now = 12_000;
  plain.update({ series, done: 100, expected: 100, cursor: 0 });
  assertEquals(lines.map((l) => l.percent), [10, 60, 100]);
  // The 100% line is logged once, however many reports say 100%.
  plain.update({ series, done: 100, expected: 100, cursor: 0 });
  assertEquals(lines.length, 3);
});

Deno.test("progress: a log line written on a terminal goes above the bars, which are redrawn below it", () => {
  const out: string[] = [];
  const tty = new ProgressDisplay({ tty: true, write: (t) => out.push(t), now: () => 0 });
  const a = { id: 1, exchange: "binance", symbol: "BTC/USDT", timeframe: "1m" };
  const b = { id: 2, exchange: "binance", symbol: "ETH/USDT", timeframe: "1m" };
  tty.update({ series: a, done: 10, expected: 100, cursor: 0, files: { done: 1, total: 4 } });
  tty.update({ series: b, done: 100, expected: 100, cursor: 0 });
  assert(out.at(-1)!.includes("files 1/4"), out.at(-1));
  out.length = 0;
  tty.writeAbove("INF ingest Backfill of binance ETH/USDT 1m complete");
  const text = out.join("");
  // Back to the line start (the terminal may have echoed ^C), up over the two bars, clear to the end of the screen, the line, then both bars again below it.
  assert(text.startsWith("\r\x1b[2A\x1b[JINF ingest Backfill of binance ETH/USDT 1m complete\n"), JSON.stringify(text));
  const after = text.slice(text.indexOf("complete\n") + 9);
  assert(!after.includes("\x1b[2A") && !after.includes("\x1b[1A"), "the redraw does not move up over the line");
  assert(after.includes("BTC/USDT") && after.includes("ETH/USDT"), after);
  // Without bars drawn (or off a terminal) the line is written as is.
  const plain: string[] = [];
  new ProgressDisplay({ tty: false, write: (t) => plain.push(t) }).writeAbove("a line");
  assertEquals(plain, ["a line\n"]);
});

Deno.test(".env.example documents every variable with its default", async () => {
  const text = await Deno.readTextFile(new URL("../../.env.example", import.meta.url));
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line);
    if (m) env[m[1]] = m[2].replace(/^"(.*)"$/, "$1");
  }
  assertEquals(Object.keys(env).sort(), [...CONFIG_VARIABLES].sort());
  // The documented values are the defaults.
  assertEquals(loadConfig(env), loadConfig({}));
});
