/**
 * `GET /v1/export`: one series' complete, closed candles as one downloadable file (Parquet,
 * Feather, CSV or freqtrade JSON), named as freqtrade expects (`BTC_USDT-1h.feather`).
 * The file is streamed from a database cursor in chunks (one Parquet row group or Arrow
 * record batch each), so memory stays bounded whatever the range; the export holds one
 * admission permit (`admission.ts`) until it ends, like a candle page.
 *
 * @module
 */
import type { Sql } from "../db/client.ts";
import type { AdmissionGate } from "./admission.ts";
import { admitRange } from "./series_source.ts";
import { ExportQuery, parseQuery } from "./params.ts";
import { encoderFor, mediaTypeOf } from "../export/formats.ts";
import { exportFileName } from "../export/names.ts";
import { readCandles } from "../export/read.ts";
import { exportStream, primeChunks } from "../export/stream.ts";
import { getLogger } from "../log.ts";

/** Options of {@linkcode getExport}, for tests. */
export interface ExportOptions {
  /** The admission gate (default: the pool's). */
  gate?: AdmissionGate;
  /** Abort an export whose client reads nothing for this long (default 30 s). */
  idleMs?: number;
  /** The clock (epoch ms), for tests. */
  now?: () => number;
}

/** Handles `GET /v1/export` (see the module documentation). */
export async function getExport(sql: Sql, url: URL, options: ExportOptions = {}): Promise<Response> {
  const q = parseQuery(url, ExportQuery);
  const { permit, source } = await admitRange(sql, q, options.gate);
  try {
    const chunks = readCandles(sql, source, { start: q.start, end: q.end, nowMs: options.now?.() });
    const replay = await primeChunks(chunks);
    const what = `the ${q.format} export ${q.exchange} ${q.symbol} ${q.timeframe}`;
    const body = exportStream(replay, encoderFor(q.format), {
      idleMs: options.idleMs ?? 30_000,
      onEnd(error) {
        permit.release();
        if (error !== undefined) getLogger("api").warn("Cannot finish {what}: {error}", { what, error });
      },
    });
    const name = exportFileName(q, q.format);
    return new Response(body, {
      headers: {
        "content-type": mediaTypeOf(q.format),
        "content-disposition": `attachment; filename="${name}"`,
        "x-source-timeframe": source.sourceTimeframe,
      },
    });
  } catch (error) {
    permit.release();
    throw error;
  }
}
