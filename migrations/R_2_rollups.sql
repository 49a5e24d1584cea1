-- Repeatable: rollups of the candles into hourly and daily buckets, so that long ranges at
-- coarse timeframes read a row per hour or day instead of a row per stored candle.
--
-- Both kinds have the same shape: candles_1h and candles_1d with
--   series_id, ts (UTC bucket open time), open (first open), high (max), low (min),
--   close (last close), volume (numeric: the exact sum of each stored volume read as its
--   shortest round-trip decimal), n (stored candles in the bucket).
-- Every stored timeframe is rolled up the same way (a candle belongs to the bucket of its open
-- time); the API reads a rollup only for series whose timeframe divides the rollup's.
--
-- On a plain table (the embedded default, TIMESCALEDB=off or no extension) they are tables kept
-- exact by statement triggers in the same transaction as every write to candles, whoever makes
-- it (the service, a repair, SQL typed into psql): the touched hours are recomputed from the
-- stored candles, then the touched days from the hours. When candles is a TimescaleDB
-- hypertable, R_3_rollups_timescaledb.sql makes them continuous aggregates instead; this file
-- then only removes what the plain kind left.

do $rollups$
declare
  created boolean := false;
begin
  if candlekeep_is_hypertable('candles') then
    drop trigger if exists candles_rollup_insert on candles;
    drop trigger if exists candles_rollup_update on candles;
    drop trigger if exists candles_rollup_delete on candles;
    drop trigger if exists candles_rollup_truncate on candles;
    if exists (select 1 from pg_class where oid = to_regclass('candles_1d') and relkind = 'r') then
      drop table candles_1d;
    end if;
    if exists (select 1 from pg_class where oid = to_regclass('candles_1h') and relkind = 'r') then
      drop table candles_1h;
    end if;
    return;
  end if;

  if to_regclass('candles_1h') is null then
    created := true;
    create table candles_1h (
      series_id integer not null,
      ts timestamptz not null,
      open double precision not null,
      high double precision not null,
      low double precision not null,
      close double precision not null,
      volume numeric not null,
      n integer not null,
      constraint candles_1h_pkey primary key (series_id, ts)
    );
  end if;
  if to_regclass('candles_1d') is null then
    created := true;
    create table candles_1d (like candles_1h);
    alter table candles_1d add constraint candles_1d_pkey primary key (series_id, ts);
  end if;

  if created then
    -- First run (or after a change of kind): build both from what is stored.
    delete from candles_1h;
    delete from candles_1d;
    insert into candles_1h (series_id, ts, open, high, low, close, volume, n)
    select g.series_id, g.ts,
           (select o.open from candles o where o.series_id = g.series_id and o.ts = g.first_ts),
           g.high, g.low,
           (select l.close from candles l where l.series_id = g.series_id and l.ts = g.last_ts),
           g.volume, g.n
    from (
      select c.series_id, date_bin(interval '1 hour', c.ts, timestamptz 'epoch') as ts, min(c.ts) as first_ts,
             max(c.ts) as last_ts, max(c.high) as high, min(c.low) as low,
             sum(c.volume::text::numeric) as volume, count(*)::int as n
      from candles c group by 1, 2
    ) g;
    insert into candles_1d (series_id, ts, open, high, low, close, volume, n)
    select g.series_id, g.ts,
           (select o.open from candles_1h o where o.series_id = g.series_id and o.ts = g.first_ts),
           g.high, g.low,
           (select l.close from candles_1h l where l.series_id = g.series_id and l.ts = g.last_ts),
           g.volume, g.n
    from (
      select r.series_id, date_bin(interval '24 hours', r.ts, timestamptz 'epoch') as ts, min(r.ts) as first_ts,
             max(r.ts) as last_ts, max(r.high) as high, min(r.low) as low, sum(r.volume) as volume,
             sum(r.n)::int as n
      from candles_1h r group by 1, 2
    ) g;
  end if;
end
$rollups$;

-- The four triggers share one function: the transition tables name the rows a statement wrote
-- (new_rows) or removed or replaced (old_rows). The hours the statement touched are recomputed
-- from the stored candles through the primary key, and their days from the hours (the stored
-- hours of the day, with the touched ones replaced by their new values), in one statement: exact
-- whatever the change was (a rewritten high that was the maximum, a deleted first candle). A
-- per-series advisory lock held to the end of the transaction orders concurrent writers of one
-- series, so the later one recomputes with the earlier one's rows visible.
drop function if exists candles_rollup_apply(integer[], timestamptz[]);

-- The touched (series, hour) pairs as a relation the planner always estimates at one row: the
-- statement below then gets one cached plan (every bucket read through a primary key) instead
-- of being planned again on every write, which cost twice its execution for a live candle.
create or replace function candles_rollup_keys(ids integer[], hours timestamptz[])
returns table (series_id integer, ts timestamptz)
language plpgsql immutable rows 1 as $keys$
begin
  return query select distinct u.series_id, u.ts from unnest(ids, hours) as u(series_id, ts);
end
$keys$;

create or replace function candles_rollup_watch() returns trigger
language plpgsql as $watch$
declare
  ids integer[];
  hours timestamptz[];
begin
  if tg_op = 'TRUNCATE' then
    delete from candles_1h;
    delete from candles_1d;
    return null;
  elsif tg_op = 'INSERT' then
    select array_agg(d.series_id), array_agg(d.h) into ids, hours from (
      select distinct n.series_id, date_bin(interval '1 hour', n.ts, timestamptz 'epoch') as h from new_rows n
    ) d;
  elsif tg_op = 'UPDATE' then
    select array_agg(d.series_id), array_agg(d.h) into ids, hours from (
      select n.series_id, date_bin(interval '1 hour', n.ts, timestamptz 'epoch') as h from new_rows n
      union
      select o.series_id, date_bin(interval '1 hour', o.ts, timestamptz 'epoch') from old_rows o
    ) d;
  else
    select array_agg(d.series_id), array_agg(d.h) into ids, hours from (
      select distinct o.series_id, date_bin(interval '1 hour', o.ts, timestamptz 'epoch') as h from old_rows o
    ) d;
  end if;
  if ids is null then
    return null;
  end if;

  perform pg_advisory_xact_lock(1919705445, s.id)
  from (select distinct unnest(ids) as id order by 1) s;

  with k as (
    select * from candles_rollup_keys(ids, hours)
  ), g as (
    -- Each touched hour read through the primary key (lateral: whatever the estimates say).
    select k.series_id, k.ts, a.*
    from k cross join lateral (
      select min(c.ts) as first_ts, max(c.ts) as last_ts, max(c.high) as high, min(c.low) as low,
             sum(c.volume::text::numeric) as volume, count(*)::int as n
      from candles c where c.series_id = k.series_id and c.ts >= k.ts and c.ts < k.ts + interval '1 hour'
    ) a
  ), h as (
    select g.series_id, g.ts,
           (select o.open from candles o where o.series_id = g.series_id and o.ts = g.first_ts) as open,
           g.high, g.low,
           (select l.close from candles l where l.series_id = g.series_id and l.ts = g.last_ts) as close,
           g.volume, g.n
    from g where g.n > 0
  ), gone_h as (
    delete from candles_1h r using g
    where g.n = 0 and r.series_id = g.series_id and r.ts = g.ts
  ), put_h as (
    insert into candles_1h as r (series_id, ts, open, high, low, close, volume, n)
    select * from h
    on conflict (series_id, ts) do update
      set open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
          volume = excluded.volume, n = excluded.n
      where (r.open, r.high, r.low, r.close, r.volume, r.n)
        is distinct from (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume, excluded.n)
  ), d as (
    select distinct k.series_id, date_bin(interval '24 hours', k.ts, timestamptz 'epoch') as ts from k
  ), day_hours as (
    -- The day's stored hours as they were, but the touched ones, which come from h.
    select x.series_id, x.ts, x.open, x.high, x.low, x.close, x.volume, x.n
    from d join candles_1h x on x.series_id = d.series_id and x.ts >= d.ts and x.ts < d.ts + interval '24 hours'
    where not exists (select 1 from k where k.series_id = x.series_id and k.ts = x.ts)
    union all
    select * from h
  ), dg as (
    select d.series_id, d.ts, (array_agg(y.open order by y.ts))[1] as open, max(y.high) as high,
           min(y.low) as low, (array_agg(y.close order by y.ts desc))[1] as close, sum(y.volume) as volume,
           coalesce(sum(y.n), 0)::int as n
    from d left join day_hours y
      on y.series_id = d.series_id and y.ts >= d.ts and y.ts < d.ts + interval '24 hours'
    group by d.series_id, d.ts
  ), gone_d as (
    delete from candles_1d r using dg
    where dg.n = 0 and r.series_id = dg.series_id and r.ts = dg.ts
  )
  insert into candles_1d as r (series_id, ts, open, high, low, close, volume, n)
  select dg.series_id, dg.ts, dg.open, dg.high, dg.low, dg.close, dg.volume, dg.n from dg where dg.n > 0
  on conflict (series_id, ts) do update
    set open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
        volume = excluded.volume, n = excluded.n
    where (r.open, r.high, r.low, r.close, r.volume, r.n)
      is distinct from (excluded.open, excluded.high, excluded.low, excluded.close, excluded.volume, excluded.n);
  return null;
end
$watch$;

do $triggers$
begin
  if exists (select 1 from pg_class where oid = to_regclass('candles_1h') and relkind = 'r') then
    drop trigger if exists candles_rollup_insert on candles;
    create trigger candles_rollup_insert after insert on candles
      referencing new table as new_rows for each statement execute function candles_rollup_watch();
    drop trigger if exists candles_rollup_update on candles;
    create trigger candles_rollup_update after update on candles
      referencing old table as old_rows new table as new_rows for each statement execute function candles_rollup_watch();
    drop trigger if exists candles_rollup_delete on candles;
    create trigger candles_rollup_delete after delete on candles
      referencing old table as old_rows for each statement execute function candles_rollup_watch();
    drop trigger if exists candles_rollup_truncate on candles;
    create trigger candles_rollup_truncate after truncate on candles
      for each statement execute function candles_rollup_watch();
    insert into candlekeep_meta (key, value) values ('rollups', 'tables: candles_1h and candles_1d, kept by triggers')
      on conflict (key) do update set value = excluded.value, updated_at = now();
  end if;
end
$triggers$;

-- Whether the rollup of the given width ('1h' or '1d') holds exactly what the stored candles
-- give for buckets in [lo, hi). Tables kept by triggers always do; R_3_rollups_timescaledb.sql
-- replaces this for continuous aggregates (which lag behind writes until refreshed).
create or replace function candles_rollup_fresh(width text, lo timestamptz, hi timestamptz) returns boolean
language sql stable as $fresh$
  select exists (select 1 from pg_class where oid = to_regclass('candles_1h') and relkind = 'r')
$fresh$;
