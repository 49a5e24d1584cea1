import client from "prom-client";
import process from "node:process";
import { assert, assertEquals, assertThrows } from "./support/assert.ts";
import { CONTENT_TYPE, Registry } from "../src/metrics.ts";
import { metrics } from "../src/api/system.ts";
import { createRedactor, installRedactor } from "../src/secrets.ts";

/** One sample: its name, labels and value. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A metric family: help, type and samples. */
interface Family {
  help: string;
  type: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const VALUE = /^(?:[+-]?(?:[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?|Inf)|NaN)$/;

function unescape(text: string): string {
  return text.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
}

/** Parses one sample line character by character, unescaping label values. */
function parseSample(line: string, where: string): Sample {
  const brace = line.indexOf("{");
  const space = line.indexOf(" ");
  const labels: Record<string, string> = {};
  let rest: string;
  let name: string;
  if (brace >= 0 && brace < space) {
    name = line.slice(0, brace);
    let i = brace + 1;
    while (line[i] !== "}") {
      const eq = line.indexOf("=", i);
      const label = line.slice(i, eq);
      assert(LABEL_NAME.test(label), `${where}: bad label name ${JSON.stringify(label)}`);
      assertEquals(line[eq + 1], '"', `${where}: label value not quoted`);
      let j = eq + 2;
      let raw = "";
      while (line[j] !== '"') {
        assert(j < line.length, `${where}: unterminated label value`);
        if (line[j] === "\\") {
          assert(["\\", '"', "n"].includes(line[j + 1]), `${where}: bad escape \\${line[j + 1]}`);
          raw += line.slice(j, j + 2);
          j += 2;
        } else {
          assert(line[j] !== "\n", `${where}: raw newline`);
          raw += line[j++];
        }
      }
      assert(!(label in labels), `${where}: label ${label} twice`);
      labels[label] = unescape(raw);
      i = j + 1;
      if (line[i] === ",") i++;
    }
    rest = line.slice(i + 1);
  } else {
    name = line.slice(0, space);
    rest = line.slice(space);
  }
  assert(NAME.test(name), `${where}: bad metric name ${JSON.stringify(name)}`);
  assert(rest.startsWith(" "), `${where}: no space before the value`);
  const [value, timestamp, extra] = rest.slice(1).split(" ");
  assert(VALUE.test(value), `${where}: bad value ${JSON.stringify(value)}`);
  assert(timestamp === undefined || /^-?[0-9]+$/.test(timestamp), `${where}: bad timestamp`);
  assertEquals(extra, undefined, `${where}: trailing text`);
  return { name, labels, value: value === "+Inf" || value === "Inf" ? Infinity : Number(value) };
}

/**
 * Parses the text exposition format 0.0.4 strictly: HELP then TYPE once per family, samples
 * only after their family's TYPE and grouped under it, no empty lines, a final newline, and
 * histograms with cumulative buckets ending at +Inf equal to `_count`.
 */
function parseExposition(text: string): Map<string, Family> {
  assert(text.endsWith("\n"), "ends with a newline");
  const families = new Map<string, Family>();
  let current: Family | undefined;
  let currentName = "";
  text.slice(0, -1).split("\n").forEach((line, n) => {
    const where = `line ${n + 1}`;
    const help = /^# HELP ([^ ]+) (.*)$/.exec(line);
    if (help) {
      assert(!families.has(help[1]), `${where}: family ${help[1]} described twice`);
      currentName = help[1];
      current = { help: unescape(help[2]), type: "", samples: [] };
      families.set(currentName, current);
      return;
    }
    const type = /^# TYPE ([^ ]+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      assertEquals(type[1], currentName, `${where}: TYPE for ${type[1]} is not under its HELP`);
      assertEquals(current!.type, "", `${where}: TYPE given twice for ${type[1]}`);
      current!.type = type[2];
      return;
    }
    assert(!line.startsWith("#"), `${where}: unexpected comment ${JSON.stringify(line)}`);
    assert(line !== "", `${where}: empty line`);
    const sample = parseSample(line, where);
    assert(current && current.type !== "", `${where}: sample ${sample.name} before any TYPE`);
    const suffix = current.type === "histogram" ? /_(bucket|sum|count)$/ : /$^/;
    assertEquals(sample.name.replace(suffix, ""), currentName, `${where}: sample outside its family`);
    current.samples.push(sample);
  });
  for (const [name, family] of families) {
    if (family.type !== "histogram") continue;
    const series = new Map<string, Sample[]>();
    for (const s of family.samples.filter((s) => s.name === `${name}_bucket`)) {
      const { le: _, ...rest } = s.labels;
      const k = JSON.stringify(Object.entries(rest).sort());
      series.set(k, [...(series.get(k) ?? []), s]);
    }
    for (const [k, buckets] of series) {
      const counts = buckets.map((b) => b.value);
      assert(counts.every((c, i) => i === 0 || c >= counts[i - 1]), `${name}${k}: buckets are cumulative`);
      assertEquals(buckets.at(-1)!.labels.le, "+Inf", `${name}${k}: last bucket is +Inf`);
      const count = family.samples.find((s) =>
        s.name === `${name}_count` && JSON.stringify(Object.entries(s.labels).sort()) === k
      );
      assertEquals(count?.value, counts.at(-1), `${name}${k}: +Inf bucket equals _count`);
    }
  }
  return families;
}

function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const family = families.get(name.replace(/_(bucket|sum|count)$/, "")) ?? families.get(name);
  const match = family?.samples.find((s) =>
    s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(Object.entries(labels).sort())
  );
  return match?.value;
}

function burnCpu(ms: number): void {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
}

Deno.test("metrics: counters, gauges and histograms keep their names, types, help, labels and values", async () => {
  const registry = new Registry();
  const written = registry.counter("candlekeep_candles_written_total", "Candles inserted or changed in storage");
  written.inc({ exchange: "binance", symbol: "BTC/USDT", timeframe: "1m" }, 3);
  written.inc({ exchange: "binance", symbol: "BTC/USDT", timeframe: "1m" });
  assertEquals(
    written.get({ timeframe: "1m", symbol: "BTC/USDT", exchange: "binance" }),
    4,
    "label order is irrelevant",
  );
  const requests = registry.counter("candlekeep_exchange_requests_total", "HTTP requests sent to the exchange");
  requests.setTotal({ exchange: "binance" }, 10);
  requests.setTotal({ exchange: "binance" }, 25);
  requests.setTotal({ exchange: "kraken" }, 0);
  const lag = registry.gauge("candlekeep_series_lag_seconds", "Seconds between now and the close, per series");
  const weird = { series_id: "1", symbol: 'W"EIRD\\SYM\nX' };
  lag.set(weird, 12.5);
  lag.set({ series_id: "2", symbol: "ETH/USDT" }, 3);
  lag.set({ series_id: "3", symbol: "SOL/USDT" }, 4);
  lag.delete({ series_id: "3", symbol: "SOL/USDT" });
  assertEquals(lag.get({ series_id: "3", symbol: "SOL/USDT" }), undefined);
  const latency = registry.histogram("candlekeep_http_request_duration_seconds", "HTTP request latency by route");
  for (const seconds of [0.0005, 0.003, 0.003, 0.2, 30]) latency.observe({ method: "GET", route: "/health" }, seconds);
  registry.counter("candlekeep_ingest_failures_total", "Series jobs that failed, by job").inc({ job: "live" });
  assertEquals(
    registry.counter("candlekeep_ingest_failures_total", "ignored").get({ job: "live" }),
    1,
    "reused by name",
  );

  const families = parseExposition(await registry.render());
  assertEquals(families.get("candlekeep_candles_written_total")?.type, "counter");
  assertEquals(families.get("candlekeep_candles_written_total")?.help, "Candles inserted or changed in storage");
  assertEquals(
    value(families, "candlekeep_candles_written_total", { exchange: "binance", symbol: "BTC/USDT", timeframe: "1m" }),
    4,
  );
  assertEquals(value(families, "candlekeep_exchange_requests_total", { exchange: "binance" }), 25);
  assertEquals(value(families, "candlekeep_exchange_requests_total", { exchange: "kraken" }), 0);
  assertEquals(families.get("candlekeep_series_lag_seconds")?.type, "gauge");
  assertEquals(value(families, "candlekeep_series_lag_seconds", weird), 12.5, "label values escaped and read back");
  assertEquals(families.get("candlekeep_series_lag_seconds")?.samples.length, 2, "a deleted series is gone");
  assertEquals(families.get("candlekeep_http_request_duration_seconds")?.type, "histogram");
  const route = { method: "GET", route: "/health" };
  assertEquals(value(families, "candlekeep_http_request_duration_seconds_bucket", { ...route, le: "0.001" }), 1);
  assertEquals(value(families, "candlekeep_http_request_duration_seconds_bucket", { ...route, le: "0.005" }), 3);
  assertEquals(value(families, "candlekeep_http_request_duration_seconds_bucket", { ...route, le: "10" }), 4);
  assertEquals(value(families, "candlekeep_http_request_duration_seconds_count", route), 5);
  assertEquals(
    value(families, "candlekeep_http_request_duration_seconds_sum", route),
    0.0005 + 0.003 + 0.003 + 0.2 + 30,
  );
  const les = families.get("candlekeep_http_request_duration_seconds")!.samples
    .filter((s) => s.name.endsWith("_bucket")).map((s) => s.labels.le);
  assertEquals(les, [
    "0.001",
    "0.0025",
    "0.005",
    "0.01",
    "0.025",
    "0.05",
    "0.1",
    "0.25",
    "0.5",
    "1",
    "2.5",
    "5",
    "10",
    "+Inf",
  ]);

  // A total that goes down (a client recreated) restarts the series there.
  requests.setTotal({ exchange: "binance" }, 5);
  assertEquals(
    value(parseExposition(await registry.render()), "candlekeep_exchange_requests_total", { exchange: "binance" }),
    5,
  );
});

Deno.test("metrics: misuse is refused with the current value named", () => {
  const registry = new Registry();
  registry.counter("candlekeep_x_total", "x").inc({ exchange: "a" });
  assertThrows(() => registry.gauge("candlekeep_x_total", "x"), Error, "current type is counter");
  assertThrows(
    () => registry.counter("candlekeep_x_total", "x").inc({ exchange: "a", extra: "b" }),
    Error,
    "current label names are exchange",
  );
  registry.counter("candlekeep_x_total", "x").inc({}, 2); // fewer labels than declared is allowed
  assertThrows(() => registry.counter("candlekeep_x_total", "x").inc({ exchange: "a" }, -1), Error, "decrease");
  assertThrows(() => registry.gauge("process_start_time_seconds", "mine"), Error, "runtime metric");
  assertThrows(() => registry.counter("bad name", "x"), Error, 'current name is "bad name"');
});

Deno.test("metrics: the process_* and nodejs_* runtime metrics are present with sane values", async () => {
  const registry = new Registry();
  const first = parseExposition(await registry.render());
  const nowS = Date.now() / 1000;

  for (
    const name of ["process_cpu_user_seconds_total", "process_cpu_system_seconds_total", "process_cpu_seconds_total"]
  ) {
    assertEquals(first.get(name)?.type, "counter", name);
    assert(value(first, name)! >= 0, name);
  }
  const cpu = (f: Map<string, Family>) => value(f, "process_cpu_seconds_total")!;
  const userPlusSystem = value(first, "process_cpu_user_seconds_total")! +
    value(first, "process_cpu_system_seconds_total")!;
  assert(Math.abs(cpu(first) - userPlusSystem) < 1e-6, "total is user + system");

  const start = value(first, "process_start_time_seconds")!;
  assert(
    Math.abs(start - performance.timeOrigin / 1000) <= 1,
    `start ${start} vs process origin ${performance.timeOrigin}`,
  );
  assert(start <= nowS + 1, "started in the past (the value is rounded to the second)");

  const rss = value(first, "process_resident_memory_bytes")!;
  const rssNow = Deno.memoryUsage().rss;
  assert(rss > 10e6 && rss > rssNow / 2 && rss < rssNow * 2, `resident ${rss} vs Deno.memoryUsage ${rssNow}`);

  const heapTotal = value(first, "nodejs_heap_size_total_bytes")!;
  const heapUsed = value(first, "nodejs_heap_size_used_bytes")!;
  assert(heapUsed > 1e6 && heapUsed <= heapTotal && heapTotal < rss, `heap ${heapUsed} / ${heapTotal}, rss ${rss}`);
  assert(value(first, "nodejs_external_memory_bytes")! >= 0);
  const spaces = first.get("nodejs_heap_space_size_used_bytes")!.samples.map((s) => s.labels.space);
  assert(spaces.includes("old") && spaces.includes("new"), spaces.join(","));
  assert(value(first, "nodejs_heap_space_size_used_bytes", { space: "old" })! > 0);
  const lag = value(first, "nodejs_eventloop_lag_seconds")!;
  assert(lag >= 0 && lag < 1, `idle event-loop lag ${lag}`);

  // They move with the process: CPU burnt, a blocked event loop.
  const before = process.cpuUsage();
  burnCpu(150);
  const burnt = process.cpuUsage(before);
  const burntS = (burnt.user + burnt.system) / 1e6;
  const rendering = registry.render(); // the probes run now; the lag probe then waits for its turn
  burnCpu(100);
  const second = parseExposition(await rendering);
  assert(burntS > 0.01, `burnt ${burntS} s of CPU`);
  assert(cpu(second) - cpu(first) >= burntS - 0.001, `cpu ${cpu(first)} → ${cpu(second)} after burning ${burntS} s`);
  assert(
    value(second, "nodejs_eventloop_lag_seconds")! >= 0.09,
    `lag ${value(second, "nodejs_eventloop_lag_seconds")}`,
  );

  // Left out on purpose: under Deno they read /proc/self (needs --allow-all), or report nothing real.
  for (
    const name of [
      "process_virtual_memory_bytes",
      "process_heap_bytes",
      "process_open_fds",
      "process_max_fds",
      "nodejs_gc_duration_seconds",
      "nodejs_active_handles",
      "nodejs_active_requests",
      "nodejs_active_resources",
      "nodejs_eventloop_lag_p99_seconds",
      "nodejs_version_info",
    ]
  ) assert(!second.has(name), `${name} is left out`);
});

Deno.test("metrics: two Registry instances are independent, and prom-client's global registry stays empty", async () => {
  const a = new Registry();
  const b = new Registry();
  a.counter("candlekeep_candles_written_total", "written").inc({ series: "x" }, 3);
  b.counter("candlekeep_candles_written_total", "written").inc({ series: "x" }, 5);
  a.gauge("candlekeep_only_in_a", "a").set({}, 1);
  b.histogram("candlekeep_only_in_a", "a histogram in b").observe({}, 0.2); // no collision with a's gauge
  b.counter("candlekeep_other_labels_total", "b").inc({ exchange: "e" });
  a.counter("candlekeep_other_labels_total", "a").inc({ job: "j" }); // label names are per registry
  let collectedA = 0;
  a.collect(() => void collectedA++);

  const fa = parseExposition(await a.render());
  const fb = parseExposition(await b.render());
  assertEquals(value(fa, "candlekeep_candles_written_total", { series: "x" }), 3);
  assertEquals(value(fb, "candlekeep_candles_written_total", { series: "x" }), 5);
  assertEquals(fa.get("candlekeep_only_in_a")?.type, "gauge");
  assertEquals(fb.get("candlekeep_only_in_a")?.type, "histogram");
  assertEquals(value(fa, "candlekeep_other_labels_total", { job: "j" }), 1);
  assertEquals(value(fb, "candlekeep_other_labels_total", { exchange: "e" }), 1);
  assertEquals(collectedA, 1, "a's collector ran for a's render only");
  assert(fa.has("process_cpu_seconds_total") && fb.has("process_cpu_seconds_total"), "each has the runtime metrics");
  assertEquals(await client.register.getMetricsAsJSON(), [], "nothing registered in prom-client's global registry");
});

Deno.test("metrics: the exposition parses strictly and /metrics says text/plain version 0.0.4 in UTF-8", async () => {
  const registry = new Registry();
  registry.counter("candlekeep_exchange_errors_total", "Failed exchange requests\nby error class \\ kind")
    .inc({ exchange: "bïnance", class: "NetworkError" });
  registry.gauge("candlekeep_backfill_progress_ratio", "Share of the running backfill done (0 to 1)")
    .set({ exchange: "binance", symbol: "BTC/USDT", timeframe: "1m" }, 0.25);
  registry.counter("candlekeep_unused_total", "never incremented");
  assertEquals(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
  assertEquals(registry.contentType, CONTENT_TYPE);
  const response = await metrics(registry);
  assertEquals(response.headers.get("content-type"), CONTENT_TYPE);
  const text = new TextDecoder("utf-8", { fatal: true }).decode(await response.arrayBuffer());
  const families = parseExposition(text);
  assertEquals(
    families.get("candlekeep_exchange_errors_total")?.help,
    "Failed exchange requests\nby error class \\ kind",
  );
  assertEquals(value(families, "candlekeep_exchange_errors_total", { exchange: "bïnance", class: "NetworkError" }), 1);
  assertEquals(
    value(families, "candlekeep_backfill_progress_ratio", { exchange: "binance", symbol: "BTC/USDT", timeframe: "1m" }),
    0.25,
  );
  // Created but never used: prom-client gets its label names from the first use, so nothing yet.
  assert(!families.has("candlekeep_unused_total"));
});

Deno.test("metrics: the rendered text goes through the redactor", async () => {
  const secret = "S3cr3t-Passw0rd";
  installRedactor(createRedactor([secret]));
  try {
    const registry = new Registry();
    registry.gauge("candlekeep_series_lag_seconds", "lag").set({ symbol: `BTC/${secret}` }, 1);
    registry.counter("candlekeep_exchange_errors_total", "errors").inc({
      class: `postgres://u:${encodeURIComponent(secret)}@db/x`,
    });
    const text = await registry.render();
    assert(!text.includes(secret) && !text.includes(encodeURIComponent(secret)), text);
    assert(text.includes('symbol="BTC/***"'), "masked, not dropped");
    parseExposition(text);
  } finally {
    installRedactor(createRedactor([]));
  }
});
