/**
 * `deno task bench [name ...]`: runs every benchmark, or the named ones (exchange, write,
 * ingest, restart, api, memory, metrics, series, export, rollups, derivatives, live, archive). Each prints its figures and its ratio
 * against a baseline measured in the same run; none asserts on timings.
 *
 * @module
 */
const BENCHES: Record<string, () => Promise<unknown>> = {
  exchange: async () => (await import("./exchange_bench.ts")).runExchangeBench(),
  write: async () => (await import("./write_bench.ts")).runWriteBench(),
  ingest: async () => (await import("./ingest_bench.ts")).runIngestBench(),
  restart: async () => (await import("./restart_bench.ts")).runRestartBench(),
  api: async () => {
    const bench = await import("./api_bench.ts");
    bench.printApiBench(await bench.runApiBench());
  },
  series: async () => (await import("./series_bench.ts")).runSeriesBench(),
  metrics: async () => (await import("./metrics_bench.ts")).runMetricsBench(),
  memory: async () => {
    const bench = await import("./memory_bench.ts");
    bench.printMemoryBench(await bench.runMemoryBench());
  },
  rollups: async () => {
    await (await import("./rollup_bench.ts")).runRollupBench();
    console.log("\n--- TimescaleDB (PGlite with TimescaleDB, WASM; no TimescaleDB server exists here)");
    await (await import("./rollup_timescale_bench.ts")).runTimescaleRollupBench();
  },
  derivatives: async () => (await import("./derivatives_bench.ts")).runDerivativesBench(),
  // A year of 1m for 2 symbols through the archive and over REST only (ARCHIVE_BENCH_DAYS to shorten).
  archive: async () =>
    (await import("./archive_bench.ts")).runArchiveBench({ days: Number(Deno.env.get("ARCHIVE_BENCH_DAYS") ?? 365) }),
  export: async () => {
    const bench = await import("./export_bench.ts");
    bench.printExportBench(await bench.runExportBench());
  },
  // 5 minutes of wall clock at least (LIVE_BENCH_MINUTES=1 for a quick sanity run).
  live: async () => {
    const bench = await import("./live_bench.ts");
    bench.printLiveBench(
      await bench.runLiveBench({
        minutes: Number(Deno.env.get("LIVE_BENCH_MINUTES") ?? 5),
        series: Number(Deno.env.get("LIVE_BENCH_SERIES") ?? 50),
        restCheck: Deno.env.get("LIVE_BENCH_REST_CHECK"),
      }),
    );
  },
};

const wanted = Deno.args.length > 0 ? Deno.args : Object.keys(BENCHES);
const unknown = wanted.filter((name) => !(name in BENCHES));
if (unknown.length > 0) {
  console.error(`Unknown benchmark: ${unknown.join(", ")}; known: ${Object.keys(BENCHES).join(", ")}`);
  Deno.exit(2);
}
for (const name of wanted) {
  console.log(`\n=== ${name} (${new Date().toISOString()})`);
  await BENCHES[name]();
}
Deno.exit(0);
