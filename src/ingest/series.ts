import { parseBackfillSince, resolveSince } from "../config.ts";
import type { BackfillSince } from "../config_types.ts";
import type { SeriesTarget } from "./walk.ts";
import type { Queryable } from "./store.ts";
import type { PriceKind } from "../market_type.ts";

/** A row of the `series` table. */
export interface SeriesRow {
  id: number;
  exchange: string;
  symbol: string;
  timeframe: string;
  price: PriceKind;
  active: boolean;
  state: string;
  stateReason: string | null;
}

/** The key of a series. */
export interface SeriesKey {
  exchange: string;
  symbol: string;
  timeframe: string;
  /** The price its candles are of (default trade). */
  price?: PriceKind;
}

/** Options of {@linkcode registerSeries}. */
export interface RegisterOptions {
  /** Where the series comes from: the configuration (default) or the API. */
  origin?: "config" | "api";
  /**
   * The series' own start, from {@linkcode storedSince}; recorded for a new or re-activated
   * series (an active one keeps its start). Unset: the configured `BACKFILL_SINCE` applies.
   */
  since?: string;
}

/**
 * Registers a series (or re-activates a known one) and returns its row. `origin` says whether
 * it comes from the configuration (default) or was added through the API.
 */
export async function registerSeries(
  sql: Queryable,
  key: SeriesKey,
  options: RegisterOptions = {},
): Promise<SeriesRow> {
  const origin = options.origin ?? "config";
  const since = options.since ?? null;
  const [row] = await sql<SeriesRow[]>`
    insert into series (exchange, symbol, timeframe, price, origin, backfill_since)
    values (${key.exchange}, ${key.symbol}, ${key.timeframe}, ${key.price ?? "trade"}, ${origin}, ${since})
    on conflict (exchange, symbol, timeframe, price) do update
      set active = true,
          origin = case when excluded.origin = 'config' then 'config'
                        when not series.active then excluded.origin else series.origin end,
          state = case when series.state = 'stopped' then 'new' else series.state end,
          backfill_since = case when excluded.backfill_since is not null and not series.active
                                then excluded.backfill_since else series.backfill_since end,
          updated_at = now()
    returning id, exchange, symbol, timeframe, price, active, state, state_reason as "stateReason"`;
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
    select id, exchange, symbol, timeframe, price, active, state, state_reason as "stateReason"
    from series order by id`;
}

/** The series `ids` as the engine works on them (any order). */
export async function loadSeries(sql: Queryable, ids: readonly number[]): Promise<SeriesTarget[]> {
  return await sql<SeriesTarget[]>`
    select id, exchange, symbol, timeframe, price from series where id = any(${ids}::int[])`;
}

/**
 * A start as a series records it: `earliest`, or the instant `since` means at `nowMs` (a
 * duration counts back from the moment the series is added) in ISO-8601 UTC.
 */
export function storedSince(since: BackfillSince, nowMs: number): string {
  const at = resolveSince(since, nowMs);
  return at === "earliest" ? "earliest" : new Date(at).toISOString();
}

/** What decides a series' start: its origin and its own recorded start, if any. */
export interface SeriesStartFacts {
  origin: string;
  backfillSince: string | null;
}

/**
 * Where a series' backfill starts: its own recorded start (series added through the API);
 * `configured` (`BACKFILL_SINCE`) when it has none; for a configured series that also has its
 * own start (added through the API, then listed in the configuration), the earlier of the
 * two, resolved at `nowMs`.
 */
export function effectiveSince(
  facts: SeriesStartFacts,
  configured: BackfillSince,
  nowMs: number,
): BackfillSince {
  const own = facts.backfillSince === null ? null : parseBackfillSince(facts.backfillSince);
  if (own === null) return configured;
  if (facts.origin !== "config") return own;
  const a = resolveSince(own, nowMs);
  const b = resolveSince(configured, nowMs);
  if (a === "earliest" || b === "earliest") return { kind: "earliest" };
  return a <= b ? own : configured;
}

/** The origin and own start of series `id`, or null when it does not exist. */
export async function seriesStartFacts(sql: Queryable, id: number): Promise<SeriesStartFacts | null> {
  const [row] = await sql<SeriesStartFacts[]>`
    select origin, backfill_since as "backfillSince" from series where id = ${id}`;
  return row ?? null;
}
