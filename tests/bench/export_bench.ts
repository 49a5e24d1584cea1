/**
 * Export benchmark: 1,000,000 stored 1-minute candles (one series, inserted with one
 * `insert … select generate_series`) exported by `cli export` to each format, each run as its
 * own process with the `cli` task's flags (`-P=service`, V8 capped at 160 MB), against a plain
 * `COPY (select …) TO STDOUT (format csv)` streamed to a file through postgres.js in a process
 * of its own (this file with `--copy`). Figures: rows/s and peak RSS (VmHWM polled from /proc
 * until the process exits), and the ratio of each to the COPY baseline.
 *
 * @module
 */
import { migrate } from "../../src/db/migrate.ts";
import { createTestDatabase } from "../support/pg.ts";

const ROWS = 1_000_000;
const START = Date.UTC(2023, 0, 1);

/** One measured export. */
export interface ExportFigure {
  name: string;
  seconds: number;
  rowsPerSecond: number;
  peakRssMb: number;
  bytes: number;
  rows: number;
}

async function peakOf(pid: number): Promise<number> {
  // Through `cat`: Deno's file reads trust the size /proc reports (0), and /proc/<pid> needs --allow-all.
  const out = await new Deno.Command("cat", { args: [`/proc/${pid}/status`], stdout: "piped", stderr: "null" })
    .output();
  const m = /VmHWM:\s+(\d+) kB/.exec(new TextDecoder().decode(out.stdout));
  return m ? Number(m[1]) / 1024 : 0;
}

async function measure(
  name: string,
  args: string[],
  env: Record<string, string>,
  out: string,
  rows = ROWS,
): Promise<ExportFigure> {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), { args, env, stdout: "null", stderr: "piped" }).spawn();
  let peak = 0;
  let done = false;
  const status = child.status.then((s) => {
    done = true;
    return s;
  });
  while (!done) {
    peak = Math.max(peak, await peakOf(child.pid));
    await new Promise((r) => setTimeout(r, 50));
  }
  const s = await status;
  const seconds = (performance.now() - started) / 1000;
  if (!s.success) throw new Error(`Cannot measure ${name}: exit ${s.code}`);
  const bytes = (await Deno.stat(out)).size;
  return { name, seconds, rowsPerSecond: rows / seconds, peakRssMb: peak, bytes, rows };
}

/** The `--copy` child: COPY … TO STDOUT as CSV through postgres.js into `out`. */
async function copyChild(url: string, out: string): Promise<void> {
  const { default: postgres } = await import("postgres");
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const file = await Deno.open(out, { write: true, create: true, truncate: true });
  const readable = await sql`
    copy (select to_char(ts at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as time, open, high, low, close, volume
          from candles order by series_id, ts) to stdout with (format csv, header)`.readable();
  const writer = file.writable.getWriter();
  for await (const chunk of readable) await writer.write(chunk as Uint8Array);
  await writer.close();
  await sql.end();
}

/** Seeds 1M candles and measures every format and the COPY baseline. */
export async function runExportBench(): Promise<ExportFigure[]> {
  const t = await createTestDatabase();
  const dir = await Deno.makeTempDir({ prefix: "candlekeep-export-bench-" });
  try {
    await migrate(t.sql, { timescaledb: "auto", compressAfterMs: 7 * 86_400_000 });
    const [{ id }] = await t.sql<{ id: number }[]>`
      insert into series (exchange, symbol, timeframe) values ('binance', 'BTC/USDT', '1m') returning id`;
    await t.sql`
      insert into candles (series_id, ts, open, high, low, close, volume)
      select ${id}, to_timestamp(${START}::float8 / 1000) + g * interval '1 minute',
             100 + sin(g / 500.0) * 10, 101 + sin(g / 500.0) * 10 + (g % 7) * 0.01,
             99 + sin(g / 500.0) * 10, 100 + sin((g + 1) / 500.0) * 10, 1 + (g::bigint * 7919 % 1000) / 37.0
      from generate_series(0, ${ROWS - 1}) as g`;
    await t.sql`vacuum analyze candles`;
    const env = { ...Deno.env.toObject(), DATABASE_URL: t.url, SYMBOLS: "none", LOG_LEVEL: "warning" };
    const figures: ExportFigure[] = [];
    const copyOut = `${dir}/copy.csv`;
    figures.push(
      await measure(
        "COPY … TO STDOUT (csv, postgres.js)",
        [
          "run",
          "--quiet",
          "--no-prompt",
          "-P=dev",
          "--v8-flags=--max-old-space-size=160,--max-semi-space-size=4",
          new URL(import.meta.url).pathname,
          "--copy",
          t.url,
          copyOut,
        ],
        env,
        copyOut,
      ),
    );
    const exportArgs = (format: string, out: string, extra: string[] = [], heapMb = 160) => [
      "run",
      "--quiet",
      "--no-prompt",
      "-P=service",
      `--v8-flags=--max-old-space-size=${heapMb},--max-semi-space-size=4`,
      "main.ts",
      "export",
      "--symbol",
      "BTC/USDT",
      "--timeframe",
      "1m",
      "--format",
      format,
      "--out",
      out,
      ...extra,
    ];
    for (const format of ["csv", "json", "feather", "parquet"]) {
      const out = `${dir}/BTC_USDT-1m.${format}`;
      figures.push(await measure(`cli export --format ${format}`, exportArgs(format, out), env, out));
    }
    // Bounded: the whole million again with V8's heap capped at 70 MB (the files are 38 to 116 MB; the
    // process needs about 60 MB with one 65,536-row Parquet row group in the making).
    for (const format of ["csv", "json", "feather", "parquet"]) {
      const out = `${dir}/capped.${format}`;
      figures.push(await measure(`cli export ${format}, 70 MB V8 heap`, exportArgs(format, out, [], 70), env, out));
    }
    // The same process with 1% of the rows: what the process costs whatever the export's size.
    const small = `${dir}/small.parquet`;
    const end = new Date(START + (ROWS / 100) * 60_000).toISOString();
    figures.push(
      await measure(
        "cli export parquet, 10,000 rows",
        exportArgs("parquet", small, ["--end", end]),
        env,
        small,
        ROWS / 100,
      ),
    );
    return figures;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await t.drop();
  }
}

/** Prints the figures and the ratios to the COPY baseline. */
export function printExportBench(figures: ExportFigure[]): void {
  const base = figures[0];
  console.log(`export of ${ROWS.toLocaleString("en-US")} stored 1m candles, each run in its own process:`);
  for (const f of figures) {
    console.log(
      `${f.name.padEnd(38)} ${f.seconds.toFixed(2).padStart(6)} s  ${
        Math.round(f.rowsPerSecond).toLocaleString("en-US").padStart(10)
      } rows/s (${(f.rowsPerSecond / base.rowsPerSecond).toFixed(2)}×)  peak RSS ${f.peakRssMb.toFixed(1)} MB (${
        (f.peakRssMb / base.peakRssMb).toFixed(2)
      }×)  ${(f.bytes / 1e6).toFixed(1)} MB file`,
    );
  }
}

if (import.meta.main && Deno.args[0] === "--copy") {
  await copyChild(Deno.args[1], Deno.args[2]);
}
