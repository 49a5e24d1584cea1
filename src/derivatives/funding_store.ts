/**
 * Funding rates in the database: rows (exact decimals), the per-symbol backfill checkpoint and
 * the confirmed holes (migration 006).
 *
 * @module
 */
import type postgres from "postgres";
import type { Sql } from "../db/client.ts";

/** One funding row to store: time (ms UTC), rate and mark price as decimal text. */
export interface StoredFundingRow {
  ts: number;
  rate: string;
  markPrice: string | null;
}

/** Which funding history: an exchange and a perpetual's unified symbol. */
export interface FundingKey {
  exchange: string;
  symbol: string;
}

/** Where a funding backfill stands. */
export interface FundingCheckpoint {
  /** Where the history starts (ms). */
  rangeFrom: number;
  /** Where the next walk resumes (ms). */
  cursor: number;
  /** When the walk first reached the present (ms), or null while backfilling. */
  completedAt: number | null;
}

/** A pool or a transaction. */
type Queryable = Sql | postgres.TransactionSql;

const at = (ms: number) => new Date(ms).toISOString();

/** Inserts or corrects funding rows; returns how many were new or changed. */
export async function writeFundingRows(
  sql: Queryable,
  key: FundingKey,
  rows: readonly StoredFundingRow[],
): Promise<number> {
  let changed = 0;
  for (const r of rows) {
    const result = await sql`
      insert into funding_rates (exchange, symbol, ts, rate, mark_price)
      values (${key.exchange}, ${key.symbol}, ${at(r.ts)}::timestamptz, ${r.rate}::numeric, ${r.markPrice}::numeric)
      on conflict (exchange, symbol, ts) do update set rate = excluded.rate, mark_price = excluded.mark_price
      where funding_rates.rate::text is distinct from excluded.rate::text
         or funding_rates.mark_price::text is distinct from excluded.mark_price::text`;
    changed += result.count;
  }
  return changed;
}

/** The checkpoint of `key`, or null before its first backfill. */
export async function readFundingCheckpoint(sql: Queryable, key: FundingKey): Promise<FundingCheckpoint | null> {
  const [row] = await sql<{ rangeFrom: number; cursor: number; completedAt: number | null }[]>`
    select extract(epoch from range_from)::float8 * 1000 as "rangeFrom",
           extract(epoch from cursor)::float8 * 1000 as cursor,
           extract(epoch from completed_at)::float8 * 1000 as "completedAt"
    from funding_checkpoints where exchange = ${key.exchange} and symbol = ${key.symbol}`;
  if (!row) return null;
  const ms = (v: number | null) => v === null ? null : Math.round(Number(v));
  return { rangeFrom: ms(row.rangeFrom)!, cursor: ms(row.cursor)!, completedAt: ms(row.completedAt) };
}

/** Creates the checkpoint of a new backfill from `rangeFrom` (keeps an existing one). */
export async function startFundingCheckpoint(sql: Queryable, key: FundingKey, rangeFrom: number): Promise<void> {
  await sql`
    insert into funding_checkpoints (exchange, symbol, range_from, cursor)
    values (${key.exchange}, ${key.symbol}, ${at(rangeFrom)}::timestamptz, ${at(rangeFrom)}::timestamptz)
    on conflict (exchange, symbol) do nothing`;
}

/** Moves the checkpoint's cursor forward to `cursor` (never back). */
export async function advanceFundingCheckpoint(sql: Queryable, key: FundingKey, cursor: number): Promise<void> {
  await sql`
    update funding_checkpoints set cursor = greatest(cursor, ${at(cursor)}::timestamptz), updated_at = now()
    where exchange = ${key.exchange} and symbol = ${key.symbol}`;
}

/** Moves where the history of `key` starts back to `rangeFrom` (never forward): an older part was fetched. */
export async function lowerFundingRangeFrom(sql: Queryable, key: FundingKey, rangeFrom: number): Promise<void> {
  await sql`
    update funding_checkpoints set range_from = least(range_from, ${at(rangeFrom)}::timestamptz), updated_at = now()
    where exchange = ${key.exchange} and symbol = ${key.symbol}`;
}

/** Marks the backfill of `key` complete (once). */
export async function completeFundingCheckpoint(sql: Queryable, key: FundingKey, nowMs: number): Promise<void> {
  await sql`
    update funding_checkpoints set completed_at = coalesce(completed_at, ${at(nowMs)}::timestamptz), updated_at = now()
    where exchange = ${key.exchange} and symbol = ${key.symbol}`;
}

/** Stored funding times of `key` with `from <= ts <= to` (ms), oldest first. */
export async function storedFundingTimes(
  sql: Queryable,
  key: FundingKey,
  range: { from: number; to: number },
): Promise<number[]> {
  const rows = await sql<{ ts: number }[]>`
    select extract(epoch from ts)::float8 * 1000 as ts from funding_rates
    where exchange = ${key.exchange} and symbol = ${key.symbol}
      and ts >= ${at(range.from)}::timestamptz and ts <= ${at(range.to)}::timestamptz
    order by ts`;
  return rows.map((r) => Math.round(Number(r.ts)));
}

/** The first and last stored funding times of `key` and the row count, or null when none. */
export async function fundingExtent(
  sql: Queryable,
  key: FundingKey,
): Promise<{ first: number; last: number; count: number } | null> {
  const [row] = await sql<{ first: number | null; last: number | null; count: number }[]>`
    select extract(epoch from min(ts))::float8 * 1000 as first, extract(epoch from max(ts))::float8 * 1000 as last,
           count(*)::int as count
    from funding_rates where exchange = ${key.exchange} and symbol = ${key.symbol}`;
  if (!row || row.first === null || row.last === null) return null;
  return { first: Math.round(Number(row.first)), last: Math.round(Number(row.last)), count: row.count };
}

/** Funding times of `key` confirmed as never published, oldest first. */
export async function fundingHoles(sql: Queryable, key: FundingKey): Promise<number[]> {
  const rows = await sql<{ ts: number }[]>`
    select extract(epoch from ts)::float8 * 1000 as ts from funding_holes
    where exchange = ${key.exchange} and symbol = ${key.symbol} order by ts`;
  return rows.map((r) => Math.round(Number(r.ts)));
}

/** Records funding times of `key` the exchange confirmed it never had. */
export async function insertFundingHoles(sql: Queryable, key: FundingKey, times: readonly number[]): Promise<void> {
  for (const ts of times) {
    await sql`
      insert into funding_holes (exchange, symbol, ts) values (${key.exchange}, ${key.symbol}, ${at(ts)}::timestamptz)
      on conflict (exchange, symbol, ts) do update set confirmed_at = now()`;
  }
}
