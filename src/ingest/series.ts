import type { SeriesTarget } from "./backfill.ts";
import type { Queryable } from "./store.ts";

/** A row of the `series` table. */
export interface SeriesRow {
  id: number;
  exchange: string;
  symbol: string;
  timeframe: string;
  active: boolean;
  state: string;
  stateReason: string | null;
}

/** The key of a series. */
export interface SeriesKey {
  exchange: string;
  symbol: string;
  timeframe: string;
}

/**
 * Registers a series (or re-activates a known one) and returns its row. `origin` says whether
 * it comes from the configuration (default) or was added through the API.
 */
export async function registerSeries(
  sql: Queryable,
  key: SeriesKey,
  options: { origin?: "config" | "api" } = {},
): Promise<SeriesRow> {
  const origin = options.origin ?? "config";
  const [row] = await sql<SeriesRow[]>`
    insert into series (exchange, symbol, timeframe, origin)
    values (${key.exchange}, ${key.symbol}, ${key.timeframe}, ${origin})
    on conflict (exchange, symbol, timeframe) do update
      set active = true,
          origin = case when excluded.origin = 'config' then 'config' else series.origin end,
          state = case when series.state = 'stopped' then 'new' else series.state end,
          updated_at = now()
    returning id, exchange, symbol, timeframe, active, state, state_reason as "stateReason"`;
  return row;
}

/**
 * Registers every configured series and deactivates configured ones that are no longer in the
 * configuration (their data stays; series added through the API are left alone). Returns the
 * configured rows.
 */
export async function syncConfiguredSeries(
  sql: Queryable,
  keys: readonly SeriesKey[],
): Promise<SeriesRow[]> {
  const rows: SeriesRow[] = [];
  for (const key of keys) rows.push(await registerSeries(sql, key));
  const ids = rows.map((r) => r.id);
  await sql`
    update series set active = false, state = 'stopped', state_reason = 'no longer configured', updated_at = now()
    where active and origin = 'config' and not (id = any(${ids}::int[]))`;
  return rows;
}

/** Sets the state of a series, e.g. `invalid` with the reason. */
export async function setSeriesState(
  sql: Queryable,
  id: number,
  state: string,
  reason: string | null = null,
): Promise<void> {
  await sql`update series set state = ${state}, state_reason = ${reason}, updated_at = now() where id = ${id}`;
}

/** Every series, active or not, ordered by id. */
export async function listSeries(sql: Queryable): Promise<SeriesRow[]> {
  return await sql<SeriesRow[]>`
    select id, exchange, symbol, timeframe, active, state, state_reason as "stateReason"
    from series order by id`;
}

/** The series `ids` as the engine works on them (any order). */
export async function loadSeries(sql: Queryable, ids: readonly number[]): Promise<SeriesTarget[]> {
  return await sql<SeriesTarget[]>`
    select id, exchange, symbol, timeframe from series where id = any(${ids}::int[])`;
}
