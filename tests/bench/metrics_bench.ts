/**
 * Metrics benchmark: the time to render `/metrics` with 400 series, each with the two per-series
 * gauges the API refreshes (`candlekeep_series_lag_seconds`, `candlekeep_series_candles_stored`),
 * plus the ingest, exchange and HTTP-latency metrics of a running service, and the time to refresh
 * the 800 gauge values. Ours (prom-client, with the process and runtime metrics and the redactor)
 * against the hand-written registry it replaced, read from git (commit {@linkcode BASELINE_COMMIT})
 * and imported from a temporary file in the same run.
 *
 * Run: deno run --no-prompt -P=dev tests/bench/metrics_bench.ts
 *
 * @module
 */
import { Registry } from "../../src/metrics.ts";

/** The last commit with the hand-written `src/metrics.ts`. */
export const BASELINE_COMMIT = "f58d01606d8f055b7b51b02d5dd85df5ca4556a1";

/** What the benchmark needs of a registry (both implementations have it). */
interface BenchRegistry {
  counter(name: string, help: string): { inc(labels: Record<string, string>, by?: number): void };
  gauge(name: string, help: string): { set(labels: Record<string, string>, value: number): void };
  histogram(name: string, help: string): { observe(labels: Record<string, string>, value: number): void };
  render(): Promise<string>;
}

/** Figures of one implementation. */
export interface MetricsBenchRun {
  name: string;
  /** Lines of the rendered text. */
  lines: number;
  bytes: number;
  /** Median and mean render time, ms. */
  renderMedianMs: number;
  renderMeanMs: number;
  /** Time to set the 800 per-series gauge values once, ms (median). */
  refreshMedianMs: number;
}

const EXCHANGES = ["binance", "kraken", "okx", "bybit"];
const TIMEFRAMES = ["1m", "5m", "1h", "1d"];

function seriesLabels(series: number): Record<string, string>[] {
  return Array.from({ length: series }, (_, i) => ({
    series_id: String(i + 1),
    exchange: EXCHANGES[i % EXCHANGES.length],
    symbol: `C${String(Math.floor(i / 16)).padStart(3, "0")}/USDT`,
    timeframe: TIMEFRAMES[Math.floor(i / 4) % TIMEFRAMES.length],
  }));
}

function fill(registry: BenchRegistry, all: Record<string, string>[]): () => void {
  const lag = registry.gauge(
    "candlekeep_series_lag_seconds",
    "Seconds between now and the close of the last stored candle, per series",
  );
  const stored = registry.gauge("candlekeep_series_candles_stored", "Candles stored per series");
  let tick = 0;
  const refresh = () => {
    tick++;
    for (const [i, labels] of all.entries()) {
      lag.set(labels, (i * 7 + tick) % 120);
      stored.set(labels, 525_600 + i * 13 + tick);
    }
  };
  refresh();
  const written = registry.counter("candlekeep_candles_written_total", "Candles inserted or changed in storage");
  for (const { exchange, symbol, timeframe } of all) written.inc({ exchange, symbol, timeframe }, 1000);
  const requests = registry.counter("candlekeep_exchange_requests_total", "HTTP requests sent to the exchange");
  for (const exchange of EXCHANGES) requests.inc({ exchange }, 12_345);
  const latency = registry.histogram(
    "candlekeep_http_request_duration_seconds",
    "HTTP request latency by method, route and status",
  );
  for (const route of ["/v1/candles", "/v1/series", "/metrics", "/health", "unmatched"]) {
    for (const status of ["200", "400", "404", "503"]) {
      for (let k = 0; k < 20; k++) latency.observe({ method: "GET", route, status }, 0.0007 * (k + 1));
    }
  }
  return refresh;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function measure(name: string, registry: BenchRegistry, rounds: number): Promise<MetricsBenchRun> {
  const refresh = fill(registry, seriesLabels(400));
  let text = "";
  for (let i = 0; i < 20; i++) text = await registry.render(); // warm-up
  const renders: number[] = [];
  const refreshes: number[] = [];
  for (let i = 0; i < rounds; i++) {
    let t = performance.now();
    refresh();
    refreshes.push(performance.now() - t);
    t = performance.now();
    text = await registry.render();
    renders.push(performance.now() - t);
  }
  return {
    name,
    lines: text.split("\n").length - 1,
    bytes: new TextEncoder().encode(text).length,
    renderMedianMs: median(renders),
    renderMeanMs: renders.reduce((a, b) => a + b, 0) / renders.length,
    refreshMedianMs: median(refreshes),
  };
}

/** Imports the hand-written registry from git, or returns undefined when git cannot give it. */
async function baselineRegistry(): Promise<(new () => BenchRegistry) | undefined> {
  const root = new URL("../../", import.meta.url);
  const output = await new Deno.Command("git", {
    args: ["show", `${BASELINE_COMMIT}:src/metrics.ts`],
    cwd: root,
    stdout: "piped",
    stderr: "null",
  }).output().catch(() => undefined);
  if (!output?.success) return undefined;
  const file = await Deno.makeTempFile({ prefix: "candlekeep-metrics-baseline-", suffix: ".ts" });
  try {
    await Deno.writeFile(file, output.stdout);
    return (await import(`file://${file}`)).Registry;
  } finally {
    await Deno.remove(file);
  }
}

/** Runs the benchmark (ours, then the baseline when git has it) and prints the figures. */
export async function runMetricsBench(rounds = 200): Promise<MetricsBenchRun[]> {
  const runs = [await measure("prom-client (ours)", new Registry(), rounds)];
  const runtimeOnly = new Registry();
  const runtimeTimes: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t = performance.now();
    await runtimeOnly.render();
    runtimeTimes.push(performance.now() - t);
  }
  const Baseline = await baselineRegistry();
  if (Baseline) runs.push(await measure("hand-written (before)", new Baseline(), rounds));
  else console.log(`baseline unavailable: git cannot show ${BASELINE_COMMIT}:src/metrics.ts`);
  console.log(`400 series × 2 gauges + ingest, exchange and latency metrics; ${rounds} renders each`);
  console.table(runs.map((r) => ({
    registry: r.name,
    lines: r.lines,
    "KiB": Math.round(r.bytes / 1024),
    "render median ms": Number(r.renderMedianMs.toFixed(3)),
    "render mean ms": Number(r.renderMeanMs.toFixed(3)),
    "refresh 800 gauges ms": Number(r.refreshMedianMs.toFixed(3)),
  })));
  console.log(`runtime metrics alone (an empty registry): ${median(runtimeTimes).toFixed(3)} ms median per render`);
  if (runs.length === 2) {
    const [ours, before] = runs;
    console.log(
      `ratio ours / before: render ${(ours.renderMedianMs / before.renderMedianMs).toFixed(2)}×, ` +
        `refresh ${(ours.refreshMedianMs / before.refreshMedianMs).toFixed(2)}×`,
    );
  }
  return runs;
}

if (import.meta.main) await runMetricsBench(Number(Deno.args[0] ?? 200));
