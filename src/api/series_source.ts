/**
 * Which stored series serves a request for (exchange, symbol, timeframe), and the admission of
 * a request for a range of it (`GET /v1/candles`, `GET /v1/export`).
 *
 * @module
 */
import type { Sql } from "../db/client.ts";
import { type AdmissionGate, admissionGate, type Permit } from "./admission.ts";
import { NotFoundError } from "./errors.ts";
import { checkRange, stepOf } from "./params.ts";
import { bucketOrigin, isMonthTimeframe } from "../timeframe.ts";
import type { RollupTable } from "./candle_query.ts";

/** The series chosen to serve a request. */
export interface ResolvedSource {
  seriesId: number;
  /** The stored timeframe read. */
  sourceTimeframe: string;
  stepMs: number;
  sourceStepMs: number;
  /** Calendar months (`1M`). */
  month?: boolean;
  /**
   * The largest rollup of the stored candles that can serve the request: its timeframe is
   * coarser than the stored one and a multiple of it, and divides the requested one.
   */
  rollup?: RollupTable;
}

/** The rollups of the stored candles (`migrations/R_2_rollups.sql`), coarsest first. */
export const ROLLUPS: readonly RollupTable[] = [
  { table: "candles_1d", timeframe: "1d", stepMs: 86_400_000 },
  { table: "candles_1h", timeframe: "1h", stepMs: 3_600_000 },
];

/** The coarsest rollup that serves `stepMs` (or months) resampled from `sourceStepMs`, if any. */
export function rollupFor(source: { stepMs: number; sourceStepMs: number; month?: boolean }): RollupTable | undefined {
  const { stepMs, sourceStepMs, month } = source;
  if (bucketOrigin(sourceStepMs) !== 0) return undefined;
  return ROLLUPS.find((r) =>
    r.stepMs > sourceStepMs && r.stepMs % sourceStepMs === 0 &&
    (month ? 86_400_000 % r.stepMs === 0 : stepMs % r.stepMs === 0 && bucketOrigin(stepMs) % r.stepMs === 0)
  );
}

const LIST_CAP = 30;

function listText(items: string[]): string {
  if (items.length === 0) return "none";
  const shown = items.slice(0, LIST_CAP).join(", ");
  return items.length > LIST_CAP ? `${shown} and ${items.length - LIST_CAP} more` : shown;
}

/**
 * Picks the stored series for (exchange, symbol, timeframe): the timeframe itself, else the
 * largest stored timeframe that divides it (on the same UTC grid). Throws NotFoundError
 * naming what exists.
 */
export async function resolveSource(
  sql: Sql,
  exchange: string,
  symbol: string,
  timeframe: string,
  options: { price?: string } = {},
): Promise<ResolvedSource> {
  const price = options.price ?? "trade";
  const all = await sql<{ id: number; timeframe: string; price: string }[]>`
    select id, timeframe, price from series where exchange = ${exchange} and symbol = ${symbol}`;
  const rows = all.filter((r) => r.price === price);
  if (rows.length === 0 && all.length > 0) {
    throw new NotFoundError(
      `Cannot find ${price} candles of ${exchange} ${symbol}: stored prices are ${
        listText([...new Set(all.map((r) => r.price))])
      } (CANDLE_PRICES)`,
    );
  }
  if (rows.length === 0) {
    const symbols = await sql<{ symbol: string }[]>`
      select distinct symbol from series where exchange = ${exchange} order by symbol limit ${LIST_CAP + 1}`;
    if (symbols.length === 0) {
      const exchanges = await sql<{ exchange: string }[]>`
        select distinct exchange from series order by exchange limit ${LIST_CAP + 1}`;
      throw new NotFoundError(
        `Cannot find series ${exchange} ${symbol}: no series on exchange ${exchange}; stored exchanges: ${
          listText(exchanges.map((r) => r.exchange))
        }`,
      );
    }
    throw new NotFoundError(
      `Cannot find series ${exchange} ${symbol}: stored symbols on ${exchange}: ${
        listText(symbols.map((r) => r.symbol))
      }`,
    );
  }
  const stepMs = stepOf(timeframe);
  const stored = rows
    .map((r) => {
      let ms = 0;
      try {
        ms = stepOf(r.timeframe);
      } catch { /* a timeframe without fixed length cannot be a source */ }
      return { ...r, ms };
    })
    .filter((r) => r.ms > 0)
    .sort((a, b) => b.ms - a.ms);
  const month = isMonthTimeframe(timeframe);
  const exact = month ? undefined : stored.find((r) => r.ms === stepMs);
  if (exact) return { seriesId: exact.id, sourceTimeframe: exact.timeframe, stepMs, sourceStepMs: stepMs };
  const source = month
    ? stored.find((r) => 86_400_000 % r.ms === 0)
    : stored.find((r) => stepMs % r.ms === 0 && (bucketOrigin(stepMs) - bucketOrigin(r.ms)) % r.ms === 0);
  if (!source) {
    throw new NotFoundError(
      `Cannot serve timeframe ${timeframe} for ${exchange} ${symbol}: stored timeframes are ${
        listText(rows.map((r) => r.timeframe))
      }; a timeframe must be stored or a whole multiple of a stored one`,
    );
  }
  const chosen = { seriesId: source.id, sourceTimeframe: source.timeframe, stepMs, sourceStepMs: source.ms, month };
  return { ...chosen, rollup: rollupFor(chosen) };
}

/**
 * Checks a series range (`end` after `start`), waits for an admission permit and resolves the
 * series. The caller owns the permit and releases it when its response ends.
 */
export async function admitRange(
  sql: Sql,
  q: { exchange: string; symbol: string; timeframe: string; start?: number; end?: number; price?: string },
  gate: AdmissionGate = admissionGate(sql),
): Promise<{ permit: Permit; source: ResolvedSource }> {
  checkRange(q);
  const permit = await gate.acquire();
  try {
    return { permit, source: await resolveSource(sql, q.exchange, q.symbol, q.timeframe, { price: q.price }) };
  } catch (error) {
    permit.release();
    throw error;
  }
}
