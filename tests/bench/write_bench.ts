/**
 * Write path benchmark: 1,000,000 one-minute candles (100 series × 10,000) through the same
 * `writeCandles` the ingestor uses, fresh and re-ingested, against `COPY` of the same rows into
 * an identical empty table in the same run.
 *
 * Run: `deno task bench write` (or `deno run ... tests/bench/write_bench.ts`).
 *
 * @module
 */
import type { Candle } from "../../src/candle.ts";
import { migrate } from "../../src/db/migrate.ts";
import { writeCandles } from "../../src/ingest/store.ts";
import { createTestDatabase } from "../support/pg.ts";

const MIN = 60_000;

/** Options of {@linkcode runWriteBench}. */
export interface WriteBenchOptions {
  series?: number;
  perSeries?: number;
  /** Candles per writeCandles call: the exchange page size (default 1000). */
  pageSize?: number;
  log?: (line: string) => void;
}

/** One measured method. */
export interface WriteFigure {
  method: string;
  rows: number;
  seconds: number;
  perSecond: number;
  ratioToCopy: number;
}

function makeSeries(seriesIndex: number, count: number): Candle[] {
  const start = Date.UTC(2024, 0, 1);
  const out = new Array<Candle>(count);
  let price = 100 + seriesIndex;
  for (let i = 0; i < count; i++) {
    const k = seriesIndex * 1_000_003 + i;
    const move = ((k * 2654435761) % 1000) / 1000 - 0.5;
    const open = price;
    const close = Math.max(0.01, open * (1 + move / 500));
    const high = Math.max(open, close) * 1.0007;
    const low = Math.min(open, close) * 0.9993;
    out[i] = { ts: start + i * MIN, open, high, low, close, volume: 1 + ((k * 7919) % 10_000) / 7 };
    price = close;
  }
  return out;
}

function copyText(seriesId: number, candles: readonly Candle[]): string {
  let text = "";
  for (const c of candles) {
    text += `${seriesId}\t${new Date(c.ts).toISOString()}\t${c.open}\t${c.high}\t${c.low}\t${c.close}\t${c.volume}\n`;
  }
  return text;
}

/** Runs the benchmark and prints a table; returns the figures. */
export async function runWriteBench(options: WriteBenchOptions = {}): Promise<WriteFigure[]> {
  const log = options.log ?? ((line: string) => console.log(line));
  const seriesCount = options.series ?? 100;
  const perSeries = options.perSeries ?? 10_000;
  const pageSize = options.pageSize ?? 1000;
  const total = seriesCount * perSeries;
  const t = await createTestDatabase();
  try {
    await migrate(t.sql, { timescaledb: "auto", compressAfterMs: 7 * 86_400_000 });
    const data = Array.from({ length: seriesCount }, (_, i) => makeSeries(i, perSeries));
    const timed = async (fn: () => Promise<void>) => {
      const started = performance.now();
      await fn();
      return (performance.now() - started) / 1000;
    };
    const pages = (candles: Candle[]) => {
      const out: Candle[][] = [];
      for (let i = 0; i < candles.length; i += pageSize) out.push(candles.slice(i, i + pageSize));
      return out;
    };

    // COPY baseline into an identical empty table (same columns, primary key and defaults).
    await t.sql`create table candles_copy (like candles including all)`;
    // The baseline gets its best case: the COPY text is built before the clock starts.
    const texts = data.map((candles, s) => copyText(s + 1, candles));
    const copySeconds = await timed(async () => {
      for (let s = 0; s < seriesCount; s++) {
        const stream = await t.sql`copy candles_copy (series_id, ts, open, high, low, close, volume) from stdin`
          .writable();
        await new Promise<void>((resolve, reject) => {
          stream.on("error", reject);
          stream.on("finish", () => resolve());
          stream.end(texts[s]);
        });
      }
    });
    log(`COPY: ${total} rows in ${copySeconds.toFixed(2)} s`);

    let inserted = 0;
    const freshSeconds = await timed(async () => {
      for (let s = 0; s < seriesCount; s++) {
        for (const page of pages(data[s])) inserted += (await writeCandles(t.sql, s + 1, page)).inserted;
      }
    });
    if (inserted !== total) throw new Error(`Cannot trust the run: inserted ${inserted} of ${total}`);
    log(`writeCandles fresh: ${freshSeconds.toFixed(2)} s`);

    let changed = 0;
    const againSeconds = await timed(async () => {
      for (let s = 0; s < seriesCount; s++) {
        for (const page of pages(data[s])) {
          const r = await writeCandles(t.sql, s + 1, page);
          changed += r.inserted + r.updated;
        }
      }
    });
    if (changed !== 0) throw new Error(`Cannot trust the run: re-ingest changed ${changed} rows`);
    log(`writeCandles re-ingest: ${againSeconds.toFixed(2)} s`);

    // Four concurrent writers on fresh series ids, as the engine writes.
    await t.sql`truncate candles`;
    const concurrentSeconds = await timed(async () => {
      let next = 0;
      const worker = async () => {
        while (next < seriesCount) {
          const s = next++;
          for (const page of pages(data[s])) await writeCandles(t.sql, s + 1, page);
        }
      };
      await Promise.all([worker(), worker(), worker(), worker()]);
    });
    const [{ n }] = await t.sql<{ n: number }[]>`select count(*)::int as n from candles`;
    if (n !== total) throw new Error(`Cannot trust the run: ${n} rows after the concurrent run`);

    const copyRate = total / copySeconds;
    const figure = (method: string, seconds: number): WriteFigure => ({
      method,
      rows: total,
      seconds,
      perSecond: total / seconds,
      ratioToCopy: total / seconds / copyRate,
    });
    const figures = [
      figure("COPY into an empty identical table (baseline)", copySeconds),
      figure(`writeCandles, fresh rows (pages of ${pageSize})`, freshSeconds),
      figure(`writeCandles, re-ingest unchanged rows`, againSeconds),
      figure(`writeCandles, fresh, 4 concurrent writers`, concurrentSeconds),
    ];
    log("");
    log(`Write path: ${seriesCount} series × ${perSeries} one-minute candles`);
    log(`${"method".padEnd(48)} ${"rows".padStart(9)} ${"seconds".padStart(8)} ${"rows/s".padStart(9)}  vs COPY`);
    for (const f of figures) {
      log(
        `${f.method.padEnd(48)} ${String(f.rows).padStart(9)} ${f.seconds.toFixed(2).padStart(8)} ${
          Math.round(f.perSecond).toString().padStart(9)
        }  ${f.ratioToCopy.toFixed(2)}×`,
      );
    }
    log("target: writeCandles at least 0.5× COPY for fresh rows and for re-ingest");
    return figures;
  } finally {
    await t.drop();
  }
}

if (import.meta.main) {
  await runWriteBench();
  Deno.exit(0);
}
