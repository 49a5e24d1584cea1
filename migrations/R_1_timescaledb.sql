-- Repeatable: runs on every start, after the numbered migrations, so that the TimescaleDB
-- mode and policy intervals follow the configuration. Settings come from the session:
--   candlekeep.timescaledb      auto | require | off
--   candlekeep.compress_after   interval, e.g. '7 days'
--   candlekeep.retention        interval or '' for none

-- Whether a table of this schema is a TimescaleDB hypertable (false without the extension), for
-- this file and the repeatable files after it (R_2 to R_5), which depend on what candles is.
create or replace function candlekeep_is_hypertable(table_name text) returns boolean
language plpgsql stable as $is_hypertable$
declare
  found boolean;
begin
  if to_regclass('timescaledb_information.hypertables') is null then
    return false;
  end if;
  -- Dynamic: the view does not exist without the extension, so it cannot be planned then.
  execute $q$select exists (select 1 from timescaledb_information.hypertables
    where hypertable_schema = current_schema() and hypertable_name = $1)$q$ into found using table_name;
  return found;
end
$is_hypertable$;

do $timescale$
declare
  mode text := coalesce(nullif(current_setting('candlekeep.timescaledb', true), ''), 'auto');
  compress_after interval := coalesce(nullif(current_setting('candlekeep.compress_after', true), ''), '7 days')::interval;
  retention text := nullif(current_setting('candlekeep.retention', true), '');
  available boolean;
  installed boolean;
  reason text;
  status text;
begin
  if mode not in ('auto', 'require', 'off') then
    raise exception 'Cannot apply TimescaleDB settings: current value of TIMESCALEDB is %, expected auto, require or off', mode;
  end if;

  if mode = 'off' then
    insert into candlekeep_meta (key, value) values ('timescaledb', 'off: disabled by TIMESCALEDB=off')
      on conflict (key) do update set value = excluded.value, updated_at = now();
    return;
  end if;

  select exists (select 1 from pg_available_extensions where name = 'timescaledb') into available;
  if not available then
    if mode = 'require' then
      raise exception 'Cannot start with TIMESCALEDB=require: the timescaledb extension is not available on this server (pg_available_extensions has no timescaledb)';
    end if;
    insert into candlekeep_meta (key, value) values ('timescaledb', 'inactive: extension not available on this server')
      on conflict (key) do update set value = excluded.value, updated_at = now();
    return;
  end if;

  select exists (select 1 from pg_extension where extname = 'timescaledb') into installed;
  if not installed then
    begin
      create extension if not exists timescaledb;
    exception when others then
      get stacked diagnostics reason = message_text;
      if mode = 'require' then
        raise exception 'Cannot start with TIMESCALEDB=require: create extension timescaledb failed: %', reason;
      end if;
      raise warning 'TimescaleDB is available but could not be created: %', reason;
      insert into candlekeep_meta (key, value) values ('timescaledb', 'inactive: ' || reason)
        on conflict (key) do update set value = excluded.value, updated_at = now();
      return;
    end;
  end if;

  -- A hypertable partitioned by ts in 1-day chunks: a day of 1-minute candles for a few
  -- hundred series is a chunk whose indexes stay in memory, and recent days (where all
  -- writes land) stay uncompressed while older ones compress.
  if not candlekeep_is_hypertable('candles') then
    -- The plain rollups' triggers use transition tables, which hypertables do not allow:
    -- R_2_rollups.sql removes the rest of the plain kind afterwards.
    drop trigger if exists candles_rollup_insert on candles;
    drop trigger if exists candles_rollup_update on candles;
    drop trigger if exists candles_rollup_delete on candles;
    drop trigger if exists candles_rollup_truncate on candles;
    perform create_hypertable('candles', 'ts', chunk_time_interval => interval '1 day', migrate_data => true);
  end if;

  -- Compression: one segment per series, newest first, which is how the API reads.
  if not exists (
    select 1 from timescaledb_information.compression_settings
    where hypertable_schema = current_schema() and hypertable_name = 'candles' and attname = 'series_id' and segmentby_column_index = 1
  ) then
    alter table candles set (
      timescaledb.compress,
      timescaledb.compress_segmentby = 'series_id',
      timescaledb.compress_orderby = 'ts DESC'
    );
  end if;

  -- Reconcile the compression policy with the configured interval.
  if not exists (
    select 1 from timescaledb_information.jobs
    where proc_name = 'policy_compression' and hypertable_name = 'candles'
      and (config ->> 'compress_after')::interval = compress_after
  ) then
    perform remove_compression_policy('candles', if_exists => true);
    perform add_compression_policy('candles', compress_after => compress_after);
  end if;

  -- Reconcile the retention policy: present with the configured interval, or absent.
  if retention is null then
    perform remove_retention_policy('candles', if_exists => true);
  elsif not exists (
    select 1 from timescaledb_information.jobs
    where proc_name = 'policy_retention' and hypertable_name = 'candles'
      and (config ->> 'drop_after')::interval = retention::interval
  ) then
    perform remove_retention_policy('candles', if_exists => true);
    perform add_retention_policy('candles', drop_after => retention::interval);
  end if;

  status := 'active: hypertable with 1-day chunks, compression after ' || compress_after::text ||
    coalesce(', retention ' || retention::interval::text, ', no retention');
  insert into candlekeep_meta (key, value) values ('timescaledb', status)
    on conflict (key) do update set value = excluded.value, updated_at = now();
end
$timescale$;
