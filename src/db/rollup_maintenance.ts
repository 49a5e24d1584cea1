/**
 * Upkeep of the TimescaleDB kind of rollups (migrations/R_3_rollups_timescaledb.sql): refreshes
 * the continuous aggregates candles_1h and then candles_1d where TimescaleDB has invalidations
 * pending or their watermark is behind, and recompresses the chunks of candles that writes left
 * partially compressed (a repair or a late backfill into old, compressed days), instead of
 * waiting for the policies. On plain PostgreSQL the rollups are kept by triggers and this returns
 * at once.
 *
 * The statements are constants with positional parameters, run as they are by postgres.js
 * (`unsafe(text, params)`) and by the PGlite tests.
 *
 * @module
 */
import type { Sql } from "./client.ts";

/** Whether the rollups are continuous aggregates (their user views), i.e. TimescaleDB. */
export const ROLLUP_KIND_SQL = `
select exists (select 1 from pg_class where oid = to_regclass('candles_1h') and relkind = 'v') as caggs`;

/** Takes the maintenance lock without waiting ($1: key); true when this session holds it. */
export const ROLLUP_LOCK_SQL = `select pg_try_advisory_lock($1::bigint) as locked`;

/** Releases the maintenance lock ($1: key). */
export const ROLLUP_UNLOCK_SQL = `select pg_advisory_unlock($1::bigint) as unlocked`;

/**
 * Whether one continuous aggregate needs a refresh, and up to where. $1: view name, $2: bucket
 * width, $3: end offset (the refresh policy's). The window ends at the last whole bucket before
 * now() − offset and, for a cagg on a cagg, at the parent's watermark (so a day is never
 * materialized from hours that are still real-time). Due when the source's invalidation
 * threshold (how far refreshes have reached; never refreshed: none) is behind that end, or an
 * invalidation (source changes not processed yet, processed ones not materialized yet) reaches
 * below it. Internal times are microseconds since the Unix epoch.
 */
export const ROLLUP_PLAN_SQL = `
with c as (
  select c.mat_hypertable_id, c.raw_hypertable_id,
         coalesce((select th.watermark from _timescaledb_catalog.continuous_aggs_invalidation_threshold th
                   where th.hypertable_id = c.raw_hypertable_id),
                  _timescaledb_functions.get_internal_time_min('timestamptz'::regtype)) as threshold,
         least(time_bucket($2::interval, now() - $3::interval),
               case when c.parent_mat_hypertable_id is null then 'infinity'::timestamptz
                    else coalesce(time_bucket($2::interval, _timescaledb_functions.to_timestamp(
                           _timescaledb_functions.cagg_watermark(c.parent_mat_hypertable_id))), '-infinity'::timestamptz)
               end) as target
  from _timescaledb_catalog.continuous_agg c
  where c.user_view_schema = current_schema() and c.user_view_name = $1::text
), t as (
  select c.*, case when isfinite(c.target) then _timescaledb_functions.time_to_internal(c.target) end as target_us
  from c
)
select t.target::text as target_end, (extract(epoch from t.target) * 1000)::float8 as target_ms,
       t.target_us is not null and (
         t.threshold < t.target_us
         or exists (select 1 from _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log i
                    where i.hypertable_id = t.raw_hypertable_id and i.lowest_modified_value < t.target_us)
         or exists (select 1 from _timescaledb_catalog.continuous_aggs_materialization_invalidation_log i
                    where i.materialization_id = t.mat_hypertable_id and i.lowest_modified_value < t.target_us
                      and i.greatest_modified_value >= _timescaledb_functions.get_internal_time_min('timestamptz'::regtype))
       ) as due
from t`;

/** Refreshes a continuous aggregate from the start of history ($1: view, $2: window end). */
export const ROLLUP_REFRESH_SQL = `call refresh_continuous_aggregate($1::regclass, null, $2::timestamptz)`;

/**
 * The chunks of candles that are compressed with rows outside their compressed part (status bit
 * 8, partial; bit 2, unordered, in older versions), with their size: the chunk's own relation
 * (the uncompressed rows) plus its compressed chunk.
 */
export const PARTIAL_CHUNKS_SQL = `
select format('%I.%I', c.schema_name, c.table_name) as chunk,
       (pg_total_relation_size(format('%I.%I', c.schema_name, c.table_name)::regclass)
        + coalesce((select pg_total_relation_size(format('%I.%I', z.schema_name, z.table_name)::regclass)
                    from _timescaledb_catalog.chunk z where z.id = c.compressed_chunk_id), 0))::float8 as bytes
from _timescaledb_catalog.chunk c
join _timescaledb_catalog.hypertable h on h.id = c.hypertable_id
where h.schema_name = current_schema() and h.table_name = 'candles' and not c.dropped
  and c.status & 1 = 1 and c.status & 10 <> 0
order by c.id`;

/**
 * Makes the next compression in this transaction rewrite a partial chunk whole instead of
 * segment by segment: segment-wise recompression leaves the replaced compressed rows and the
 * deleted uncompressed ones as dead space (the chunk stays as big as the write left it until a
 * vacuum), a whole rewrite truncates the uncompressed part and builds a new compressed chunk.
 */
export const RECOMPRESS_WHOLE_SQL = `select set_config('timescaledb.enable_segmentwise_recompression', 'off', true)`;

/** Compresses one chunk again ($1: chunk); on a partial chunk TimescaleDB recompresses it. */
export const RECOMPRESS_CHUNK_SQL = `select compress_chunk($1::text::regclass)::text as chunk`;

/** The size of one chunk with its compressed chunk ($1: chunk, as `schema.table`). */
export const CHUNK_BYTES_SQL = `
select (pg_total_relation_size($1::text::regclass)
        + coalesce((select pg_total_relation_size(format('%I.%I', z.schema_name, z.table_name)::regclass)
                    from _timescaledb_catalog.chunk k join _timescaledb_catalog.chunk z on z.id = k.compressed_chunk_id
                    where format('%I.%I', k.schema_name, k.table_name) = $1::text), 0))::float8 as bytes`;

/** Runs one statement with positional parameters and returns its rows. */
export type RunStatement = <T>(text: string, params?: unknown[]) => Promise<T[]>;

/** The continuous aggregates in refresh order, with their bucket and the policies' end offset. */
export const ROLLUP_CAGGS: readonly { view: string; width: string; endOffset: string }[] = [
  { view: "candles_1h", width: "1 hour", endOffset: "1 hour" },
  { view: "candles_1d", width: "1 day", endOffset: "1 day" },
];

/** Advisory lock key of the maintenance ("rollu"): one instance at a time. */
export const ROLLUP_LOCK_KEY = 0x726f6c6c75;

/** What {@linkcode maintainRollups} did. */
export interface RollupMaintenanceResult {
  /** `plain`: nothing to do (tables kept by triggers); `timescaledb`: continuous aggregates. */
  kind: "plain" | "timescaledb";
  /** True when another session held the maintenance lock, so nothing was done. */
  busy: boolean;
  /** The continuous aggregates refreshed, in order, with the end of the refreshed window (ISO-8601). */
  refreshed: { view: string; until: string }[];
  /** Chunks recompressed. */
  recompressed: number;
  /** Their size before (uncompressed rows plus compressed part) and after, in bytes. */
  bytesBefore: number;
  bytesAfter: number;
  /** Wall time in ms. */
  ms: number;
}

/** Options of {@linkcode maintainRollups}. */
export interface RollupMaintenanceOptions {
  /** Recompress partially compressed chunks (default true). */
  recompress?: boolean;
}

/**
 * The maintenance on one session (a reserved postgres.js connection, or PGlite in tests): the
 * kind check, the lock, the refreshes (each statement on its own, outside a transaction, as
 * `refresh_continuous_aggregate` requires) and the recompression.
 */
export async function maintainWith(
  run: RunStatement,
  options: RollupMaintenanceOptions = {},
): Promise<RollupMaintenanceResult> {
  const started = performance.now();
  const result: RollupMaintenanceResult = {
    kind: "plain",
    busy: false,
    refreshed: [],
    recompressed: 0,
    bytesBefore: 0,
    bytesAfter: 0,
    ms: 0,
  };
  const [kind] = await run<{ caggs: boolean }>(ROLLUP_KIND_SQL);
  if (!kind?.caggs) return finish(result, started);
  result.kind = "timescaledb";
  const [lock] = await run<{ locked: boolean }>(ROLLUP_LOCK_SQL, [ROLLUP_LOCK_KEY]);
  if (!lock?.locked) {
    result.busy = true;
    return finish(result, started);
  }
  try {
    for (const cagg of ROLLUP_CAGGS) {
      const [plan] = await run<{ target_end: string; target_ms: number; due: boolean }>(ROLLUP_PLAN_SQL, [
        cagg.view,
        cagg.width,
        cagg.endOffset,
      ]);
      if (!plan?.due) continue;
      await run(ROLLUP_REFRESH_SQL, [cagg.view, plan.target_end]);
      result.refreshed.push({ view: cagg.view, until: new Date(plan.target_ms).toISOString() });
    }
    if (options.recompress !== false) {
      const partial = await run<{ chunk: string; bytes: number }>(PARTIAL_CHUNKS_SQL);
      for (const { chunk, bytes } of partial) {
        await run("begin");
        try {
          await run(RECOMPRESS_WHOLE_SQL);
          await run(RECOMPRESS_CHUNK_SQL, [chunk]);
          await run("commit");
        } catch (error) {
          await run("rollback").catch(() => {});
          throw error;
        }
        const [after] = await run<{ bytes: number }>(CHUNK_BYTES_SQL, [chunk]);
        result.recompressed++;
        result.bytesBefore += Number(bytes);
        result.bytesAfter += Number(after?.bytes ?? 0);
      }
    }
  } finally {
    await run(ROLLUP_UNLOCK_SQL, [ROLLUP_LOCK_KEY]);
  }
  return finish(result, started);
}

function finish(result: RollupMaintenanceResult, started: number): RollupMaintenanceResult {
  result.ms = Math.round(performance.now() - started);
  return result;
}

/**
 * Refreshes the continuous aggregates where something is pending and recompresses partially
 * compressed chunks, on a connection reserved from the pool (the refresh cannot run in a
 * transaction, and the advisory lock belongs to the session). On plain PostgreSQL it returns
 * after one cheap query.
 */
export async function maintainRollups(
  sql: Sql,
  options: RollupMaintenanceOptions = {},
): Promise<RollupMaintenanceResult> {
  const conn = await sql.reserve();
  try {
    const run: RunStatement = async <T>(text: string, params: unknown[] = []) =>
      [...await conn.unsafe(text, params as never[])] as T[];
    return await maintainWith(run, options);
  } finally {
    conn.release();
  }
}

function megabytes(bytes: number): string {
  return `${(bytes / 1_048_576).toFixed(1)} MB`;
}

/** One log line for a maintenance that did something; null when it did nothing. */
export function describeRollupMaintenance(result: RollupMaintenanceResult): string | null {
  const parts: string[] = [];
  if (result.refreshed.length > 0) {
    parts.push(`Rollups refreshed: ${result.refreshed.map((r) => `${r.view} up to ${r.until}`).join(", ")}`);
  }
  if (result.recompressed > 0) {
    parts.push(
      `recompressed ${result.recompressed} chunk${result.recompressed === 1 ? "" : "s"} (${
        megabytes(result.bytesBefore)
      } → ${megabytes(result.bytesAfter)})`,
    );
  }
  if (parts.length === 0) return null;
  if (result.refreshed.length === 0) parts[0] = `Rollups: ${parts[0]}`;
  return `${parts.join("; ")} in ${result.ms} ms`;
}
