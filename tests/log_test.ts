import { assert, assertEquals } from "./support/assert.ts";
import { formatPretty, getLogger, repeatFilter, resolveFormat, setupLogging } from "../src/log.ts";
import { createRedactor } from "../src/secrets.ts";
import type { LogRecord } from "@logtape/logtape";

function record(at: number, level: LogRecord["level"], rawMessage: string, properties: Record<string, unknown> = {}) {
  return {
    category: ["candlekeep", "exchange"],
    level,
    message: [rawMessage],
    rawMessage,
    timestamp: at,
    properties,
  } as LogRecord;
}

Deno.test("log: auto is pretty on a terminal and JSON otherwise; json and pretty force one", () => {
  assertEquals(resolveFormat("auto", true), "pretty");
  assertEquals(resolveFormat("auto", false), "json");
  assertEquals(resolveFormat("json", true), "json");
  assertEquals(resolveFormat("pretty", false), "pretty");
});

Deno.test("log: pretty lines are readable, coloured on request, with ISO-8601 UTC times", () => {
  const r = record(Date.UTC(2026, 11, 3, 7, 0, 0), "warning", "binance: rate limited", { waitMs: 500 });
  const plainLine = formatPretty(r);
  assertEquals(plainLine, "2026-12-03T07:00:00.000Z WRN exchange binance: rate limited  waitMs=500");
  const coloured = formatPretty(r, { color: true });
  assert(coloured.includes("\x1b[33mWRN\x1b[0m"), JSON.stringify(coloured));
  // deno-lint-ignore no-control-regex
  assertEquals(coloured.replace(/\x1b\[[0-9;]*m/g, ""), plainLine);
});

Deno.test("log: like warnings pass 5 times a window, the rest are counted and reported once", () => {
  const filter = repeatFilter({ lines: 5, windowMs: 60_000 });
  const t0 = 1_000_000;
  const passed: (LogRecord | null)[] = [];
  for (let i = 0; i < 12; i++) {
    passed.push(filter(record(t0 + i * 1000, "warning", "{series}: retrying", { series: "A" })));
  }
  assertEquals(passed.filter((r) => r !== null).length, 5);
  // Another series, another kind: not limited by A's lines.
  assert(filter(record(t0 + 13_000, "warning", "{series}: retrying", { series: "B" })) !== null);
  // Info and debug are never limited.
  for (let i = 0; i < 20; i++) assert(filter(record(t0 + i, "info", "progress")) !== null);
  // After the window, the next one passes with the count of the dropped ones.
  const next = filter(record(t0 + 61_000, "warning", "{series}: retrying", { series: "A" }));
  assertEquals(next?.properties.suppressed, 7);
  const after = filter(record(t0 + 62_000, "warning", "{series}: retrying", { series: "A" }));
  assertEquals(after?.properties.suppressed, undefined);
});

Deno.test("log: setupLogging applies the repeat limit to what it writes", () => {
  const lines: string[] = [];
  setupLogging({ level: "info", format: "json", write: (l) => lines.push(l), redactor: createRedactor([]) });
  try {
    const log = getLogger("test");
    for (let i = 0; i < 9; i++) log.warn("Cannot reach {exchange}", { exchange: "binance" });
    log.warn("Cannot reach {exchange}", { exchange: "bybit" });
    assertEquals(lines.length, 6);
    assertEquals(lines.filter((l) => l.includes('"exchange":"bybit"')).length, 1);
  } finally {
    setupLogging({ level: "fatal", format: "json", write: () => {}, redactor: createRedactor([]) });
  }
});
