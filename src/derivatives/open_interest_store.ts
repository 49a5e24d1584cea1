/**
 * SQL of the open-interest history (migrations/007_open_interest.sql, 009_open_interest_holes.sql):
 * writing rows with the exchange's exact decimals, the progress of each series, the last stored
 * row, the missing points of the period grid and the confirmed holes.
 *
 * @module
 */
import type { Sql } from "../db/client.ts";

/** One open-interest series: exchange, unified symbol, period. */
export interface OpenInterestKey {
  exchange: string;
  symbol: string;
  period: string;
}

/** A row to store: decimals as text, exactly as the exchange sent them. */
export interface OpenInterestWrite {
  ts: number;
  amount: string;
  value: string | null;
}

/** Progress of one series (see the migration). */
export interface OpenInterestProgress {
  historyFrom: number | null;
  backfilledAt: number | null;
  checkedThrough: number | null;
}

const ms = (d: Date | null) => d === null ? null : d.getTime();

/** Inserts `rows` (changed decimals are replaced); returns how many rows were inserted or changed. */
export async function writeOpenInterest(
  sql: Sql,
  key: OpenInterestKey,
  rows: readonly OpenInterestWrite[],
): Promise<number> {
  if (rows.length === 0) return 0;
  const values = rows.map((r) => ({
    exchange: key.exchange,
    symbol: key.symbol,
    period: key.period,
    ts: new Date(r.ts),
    amount: r.amount,
    value: r.value,
  }));
  const result = await sql`
    insert into open_interest ${sql(values, "exchange", "symbol", "period", "ts", "amount", "value")}
    on conflict (exchange, symbol, period, ts) do update
      set amount = excluded.amount, value = excluded.value
      where open_interest.amount::text is distinct from excluded.amount::text
         or open_interest.value::text is distinct from excluded.value::text`;
  return result.count;
}

/** The progress of `key`, or null before its first backfill. */
export async function readProgress(sql: Sql, key: OpenInterestKey): Promise<OpenInterestProgress | null> {
  const [row] = await sql<{ history_from: Date | null; backfilled_at: Date | null; checked_through: Date | null }[]>`
    select history_from, backfilled_at, checked_through from open_interest_progress
    where exchange = ${key.exchange} and symbol = ${key.symbol} and period = ${key.period}`;
  return row
    ? {
      historyFrom: ms(row.history_from),
      backfilledAt: ms(row.backfilled_at),
      checkedThrough: ms(row.checked_through),
    }
    : null;
}

/** Records `progress` of `key` (fields left undefined keep their value). */
export async function saveProgress(
  sql: Sql,
  key: OpenInterestKey,
  progress: Partial<OpenInterestProgress>,
): Promise<void> {
  const at = (v: number | null | undefined) => v === undefined || v === null ? null : new Date(v);
  await sql`
    insert into open_interest_progress (exchange, symbol, period, history_from, backfilled_at, checked_through)
    values (${key.exchange}, ${key.symbol}, ${key.period}, ${at(progress.historyFrom)},
      ${at(progress.backfilledAt)}, ${at(progress.checkedThrough)})
    on conflict (exchange, symbol, period) do update set
      history_from = coalesce(${at(progress.historyFrom)}, open_interest_progress.history_from),
      backfilled_at = coalesce(${at(progress.backfilledAt)}, open_interest_progress.backfilled_at),
      checked_through = coalesce(${at(progress.checkedThrough)}, open_interest_progress.checked_through),
      updated_at = now()`;
}

/** Time of the newest stored row of `key`, or null. */
export async function lastStored(sql: Sql, key: OpenInterestKey): Promise<number | null> {
  const [row] = await sql<{ ts: Date | null }[]>`
    select max(ts) as ts from open_interest
    where exchange = ${key.exchange} and symbol = ${key.symbol} and period = ${key.period}`;
  return ms(row?.ts ?? null);
}

/**
 * Points of the `stepMs` grid with `from <= ts <= to` that have neither a stored row nor a
 * confirmed hole, oldest first (at most `limit`, default 10,000).
 */
export async function missingTimes(
  sql: Sql,
  key: OpenInterestKey,
  range: { from: number; to: number; stepMs: number; limit?: number },
): Promise<number[]> {
  if (range.to < range.from) return [];
  const rows = await sql<{ ts: Date }[]>`
    select g.ts from generate_series(
      ${new Date(range.from)}::timestamptz, ${new Date(range.to)}::timestamptz,
      make_interval(secs => ${range.stepMs / 1000})
    ) as g(ts)
    where not exists (
      select 1 from open_interest o
      where o.exchange = ${key.exchange} and o.symbol = ${key.symbol} and o.period = ${key.period} and o.ts = g.ts
    ) and not exists (
      select 1 from open_interest_holes h
      where h.exchange = ${key.exchange} and h.symbol = ${key.symbol} and h.period = ${key.period} and h.ts = g.ts
    )
    order by g.ts
    limit ${range.limit ?? 10_000}`;
  return rows.map((r) => r.ts.getTime());
}

/** Records points of `key` the exchange was asked for and did not have (checked now). */
export async function insertOpenInterestHoles(sql: Sql, key: OpenInterestKey, times: readonly number[]): Promise<void> {
  if (times.length === 0) return;
  const values = times.map((t) => ({
    exchange: key.exchange,
    symbol: key.symbol,
    period: key.period,
    ts: new Date(t),
  }));
  await sql`
    insert into open_interest_holes ${sql(values, "exchange", "symbol", "period", "ts")}
    on conflict (exchange, symbol, period, ts) do update set checked_at = now()`;
}

/** Confirmed holes of `key` (ms), oldest first. */
export async function openInterestHoles(sql: Sql, key: OpenInterestKey): Promise<number[]> {
  const rows = await sql<{ ts: Date }[]>`
    select ts from open_interest_holes
    where exchange = ${key.exchange} and symbol = ${key.symbol} and period = ${key.period}
    order by ts`;
  return rows.map((r) => r.ts.getTime());
}
