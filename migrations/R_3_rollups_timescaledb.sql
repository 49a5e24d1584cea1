-- Repeatable: the TimescaleDB kind of rollups. Runs after R_1_timescaledb.sql (which makes candles
-- a hypertable when the extension is there) and R_2_rollups.sql (which removes the plain kind
-- from a hypertable). When candles is not a hypertable this file does nothing.
--
-- candles_1h is a continuous aggregate of candles and candles_1d a continuous aggregate of
-- candles_1h (hierarchical), with the same columns and types as the plain tables:
--   series_id, ts (UTC bucket open), open (first), high (max), low (min), close (last),
--   volume (numeric: exact sum of volume::text::numeric), n (stored candles, integer).
-- Both use real-time aggregation (materialized_only = false): buckets above a cagg's watermark
-- are aggregated from its source at query time, so rows newer than the last refresh are always
-- included. Rows written below the watermark (a repair, a late backfill, SQL typed into psql) are
-- recorded by TimescaleDB as invalidations and reach the cagg at its next refresh: by the
-- service's own maintenance right after its writes (src/db/rollup_maintenance.ts) or by the
-- refresh policies below. Until then candles_rollup_fresh() says "not fresh" for the range they
-- touch and the API aggregates the stored candles instead.
--
-- Created WITH NO DATA: a refresh cannot run inside the migration's transaction; the service
-- refreshes at start, and real-time aggregation answers exactly meanwhile.

do $rollups_timescaledb$
begin
  if not candlekeep_is_hypertable('candles') then
    return;
  end if;

  if to_regclass('candles_1h') is null then
    execute $q$
      create materialized view candles_1h
      with (timescaledb.continuous, timescaledb.materialized_only = false) as
      select series_id,
             time_bucket(interval '1 hour', ts) as ts,
             first(open, ts) as open,
             max(high) as high,
             min(low) as low,
             last(close, ts) as close,
             sum(volume::text::numeric) as volume,
             count(*)::int as n
      from candles
      group by series_id, time_bucket(interval '1 hour', ts)
      with no data$q$;
  end if;
  if to_regclass('candles_1d') is null then
    execute $q$
      create materialized view candles_1d
      with (timescaledb.continuous, timescaledb.materialized_only = false) as
      select series_id,
             time_bucket(interval '1 day', ts) as ts,
             first(open, ts) as open,
             max(high) as high,
             min(low) as low,
             last(close, ts) as close,
             sum(volume) as volume,
             sum(n)::int as n
      from candles_1h
      group by series_id, time_bucket(interval '1 day', ts)
      with no data$q$;
  end if;

  -- Real-time aggregation is what makes a lagging refresh harmless: keep it on.
  if exists (select 1 from _timescaledb_catalog.continuous_agg
             where user_view_schema = current_schema() and user_view_name = 'candles_1h' and materialized_only) then
    execute 'alter materialized view candles_1h set (timescaledb.materialized_only = false)';
  end if;
  if exists (select 1 from _timescaledb_catalog.continuous_agg
             where user_view_schema = current_schema() and user_view_name = 'candles_1d' and materialized_only) then
    execute 'alter materialized view candles_1d set (timescaledb.materialized_only = false)';
  end if;

  -- Refresh policies, the safety net for writes the service did not make (it refreshes after
  -- its own repairs and backfills). From the start of history (start_offset NULL: a refresh
  -- only recomputes invalidated buckets, so an old change is caught too) up to:
  --   candles_1h: 1 hour ago, every minute. The live tick writes the candle that just closed,
  --     above that end, so it never invalidates anything; a run with nothing invalidated is
  --     cheap, and a run every minute keeps the fallback to base rows after an SQL write short.
  --   candles_1d: 1 day ago, every 5 minutes. It reads candles_1h (24 rows a day a series), and
  --     ending a day back keeps it behind candles_1h's watermark, so a day is never
  --     materialized from hours that are themselves still real-time.
  if not exists (
    select 1 from timescaledb_information.jobs j
    join _timescaledb_catalog.continuous_agg c on (j.config ->> 'mat_hypertable_id')::int = c.mat_hypertable_id
    where c.user_view_schema = current_schema() and c.user_view_name = 'candles_1h'
      and j.proc_name = 'policy_refresh_continuous_aggregate'
      and j.config ->> 'start_offset' is null and (j.config ->> 'end_offset')::interval = interval '1 hour'
      and j.schedule_interval = interval '1 minute'
  ) then
    perform remove_continuous_aggregate_policy('candles_1h', if_exists => true);
    perform add_continuous_aggregate_policy('candles_1h', start_offset => null, end_offset => interval '1 hour',
      schedule_interval => interval '1 minute');
  end if;
  if not exists (
    select 1 from timescaledb_information.jobs j
    join _timescaledb_catalog.continuous_agg c on (j.config ->> 'mat_hypertable_id')::int = c.mat_hypertable_id
    where c.user_view_schema = current_schema() and c.user_view_name = 'candles_1d'
      and j.proc_name = 'policy_refresh_continuous_aggregate'
      and j.config ->> 'start_offset' is null and (j.config ->> 'end_offset')::interval = interval '1 day'
      and j.schedule_interval = interval '5 minutes'
  ) then
    perform remove_continuous_aggregate_policy('candles_1d', if_exists => true);
    perform add_continuous_aggregate_policy('candles_1d', start_offset => null, end_offset => interval '1 day',
      schedule_interval => interval '5 minutes');
  end if;

  -- Whether an invalidation that TimescaleDB has not applied to the cagg materialized in
  -- mat_id meets the internal times [l, h): changes to its source hypertable (raw_id) not
  -- processed yet, processed ones not materialized yet, ranges of a refresh under way. Unknown
  -- (the source has no invalidation trigger: invalidations collected from the WAL) counts as
  -- pending. Parts that only some TimescaleDB versions have are looked up when present.
  execute $fn$
    create or replace function candles_rollup_pending(raw_id integer, mat_id integer, l bigint, h bigint)
    returns boolean
    language plpgsql stable as $pending$
    declare
      found boolean;
    begin
      if l >= h then
        return false;
      end if;
      if to_regprocedure('_timescaledb_functions.has_invalidation_trigger(regclass)') is not null then
        execute $q$select not _timescaledb_functions.has_invalidation_trigger(
                     format('%I.%I', t.schema_name, t.table_name)::regclass)
                   from _timescaledb_catalog.hypertable t where t.id = $1$q$
          into found using raw_id;
        if found is distinct from false then
          return true;
        end if;
      end if;
      if exists (select 1 from _timescaledb_catalog.continuous_aggs_hypertable_invalidation_log i
                 where i.hypertable_id = raw_id and i.lowest_modified_value < h and i.greatest_modified_value >= l)
         or exists (select 1 from _timescaledb_catalog.continuous_aggs_materialization_invalidation_log i
                    where i.materialization_id = mat_id and i.lowest_modified_value < h
                      and i.greatest_modified_value >= l) then
        return true;
      end if;
      if to_regclass('_timescaledb_catalog.continuous_aggs_materialization_ranges') is not null then
        execute $q$select exists (select 1 from _timescaledb_catalog.continuous_aggs_materialization_ranges i
                   where i.materialization_id = $1 and i.lowest_modified_value < $3 and i.greatest_modified_value >= $2)$q$
          into found using mat_id, l, h;
        return found;
      end if;
      return false;
    end
    $pending$
  $fn$;

  -- Whether the rollup of the given width holds exactly what the stored candles give for the
  -- buckets that meet [lo, hi): false when an invalidation is pending for them below the cagg's
  -- watermark (above it, real-time aggregation reads the source). For candles_1d the hours it is
  -- built from must be fresh as well, and days materialized beyond candles_1h's watermark (a
  -- refresh of candles_1d that ran ahead of candles_1h's) are not trusted. Internal times are
  -- microseconds since the Unix epoch. Anything unexpected (a catalog table or function missing
  -- in another TimescaleDB version) answers false: the API then aggregates the stored candles,
  -- which is always exact.
  execute $fn$
    create or replace function candles_rollup_fresh(width text, lo timestamptz, hi timestamptz) returns boolean
    language plpgsql stable as $fresh$
    declare
      step interval;
      lo_b timestamptz;
      hi_b timestamptz;
      l bigint;
      h bigint;
      raw_id integer;
      h_mat integer;
      d_mat integer;
      w_h bigint;
      w_d bigint;
    begin
      if width = '1h' then
        step := interval '1 hour';
      elsif width = '1d' then
        step := interval '1 day';
      else
        return false;
      end if;
      if lo is null or hi is null then
        return false;
      end if;
      if lo >= hi then
        return true;
      end if;
      -- From the first bucket that meets the range to the end of the last one; an open end
      -- ('-infinity', 'infinity') covers every valid time on its side (TimescaleDB keeps the
      -- range below the valid ones as an invalidation that never matters).
      l := _timescaledb_functions.get_internal_time_min('timestamptz'::regtype);
      h := 9223372036854775807;
      if isfinite(lo) then
        lo_b := time_bucket(step, lo);
        l := _timescaledb_functions.time_to_internal(lo_b);
      end if;
      if isfinite(hi) then
        hi_b := time_bucket(step, hi);
        if hi_b < hi then
          hi_b := hi_b + step;
        end if;
        h := _timescaledb_functions.time_to_internal(hi_b);
      end if;

      select c.raw_hypertable_id, c.mat_hypertable_id into raw_id, h_mat
      from _timescaledb_catalog.continuous_agg c
      where c.user_view_schema = current_schema() and c.user_view_name = 'candles_1h';
      if h_mat is null then
        return false;
      end if;
      w_h := _timescaledb_functions.cagg_watermark(h_mat);
      if candles_rollup_pending(raw_id, h_mat, l, least(h, w_h)) then
        return false;
      end if;
      if width = '1h' then
        return true;
      end if;

      select c.mat_hypertable_id into d_mat
      from _timescaledb_catalog.continuous_agg c
      where c.user_view_schema = current_schema() and c.user_view_name = 'candles_1d'
        and c.parent_mat_hypertable_id = h_mat;
      if d_mat is null then
        return false;
      end if;
      w_d := _timescaledb_functions.cagg_watermark(d_mat);
      if w_d > w_h and l < w_d and h > w_h then
        return false;
      end if;
      return not candles_rollup_pending(h_mat, d_mat, l, least(h, w_d));
    exception when others then
      return false;
    end
    $fresh$
  $fn$;

  insert into candlekeep_meta (key, value)
  values ('rollups', 'continuous aggregates: candles_1h (from candles, refreshed every minute up to 1 hour ago) and '
    || 'candles_1d (from candles_1h, every 5 minutes up to 1 day ago), real-time aggregation above the refreshed range')
  on conflict (key) do update set value = excluded.value, updated_at = now();
end
$rollups_timescaledb$;
