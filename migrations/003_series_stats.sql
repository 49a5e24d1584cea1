-- Candlekeep schema, version 3: per-series statistics kept up to date on write, so that
-- GET /v1/series, status and /metrics never count candles per request.
--
-- series_stats holds, per series with candles, the first and last open time and the exact
-- number of stored candles, plus a cache of the gap totals (missing candles and ranges) for
-- the candles before gaps_to (null: not computed yet). Every change is exact:
--   * writeCandles (src/ingest/store.ts) adds the rows it inserted (never the ones it
--     re-wrote) in the same statement, and drops the gap cache when it inserted at or before
--     gaps_to (a candle appended after it leaves the cache valid);
--   * a purge deletes the candles and the row in one transaction;
--   * a change of confirmed_holes drops the gap cache of its series when it reaches before
--     gaps_to (trigger below);
--   * any other write to candles (SQL behind the service's back, TRUNCATE) is caught by a
--     statement trigger that marks the statistics dirty; the next reader recounts them all
--     once (series_stats_refresh), as it does after TimescaleDB's retention job has dropped
--     chunks (no trigger sees drop_chunks).
-- gaps_epoch changes (from a sequence, never reused) whenever the gap cache is dropped, so
-- that a reader writing back a summary computed before a concurrent change is ignored.
create sequence if not exists series_stats_epoch;

create table if not exists series_stats (
  series_id integer primary key,
  first_ts timestamptz not null,
  last_ts timestamptz not null,
  count bigint not null,
  gaps_missing bigint not null default 0,
  gaps_ranges integer not null default 0,
  gaps_to timestamptz,
  gaps_epoch bigint not null default nextval('series_stats_epoch'),
  updated_at timestamptz not null default now()
);

-- Marks the statistics dirty after a statement on candles that the service did not account
-- for. The service's own statements put the operations they account for (i insert, u update,
-- d delete) in the transaction-local setting candlekeep.stats_token; each trigger consumes
-- its letter, so a later statement of the same transaction is seen again.
create or replace function candles_stats_watch() returns trigger
language plpgsql as $watch$
declare
  token text := coalesce(current_setting('candlekeep.stats_token', true), '');
  op text := case tg_op when 'INSERT' then 'i' when 'UPDATE' then 'u' when 'DELETE' then 'd' else 't' end;
begin
  if position(op in token) > 0 then
    perform set_config('candlekeep.stats_token', replace(token, op, ''), true);
  else
    insert into candlekeep_meta (key, value) values ('series_stats_dirty', tg_op || ' on candles not counted')
      on conflict (key) do update set value = excluded.value, updated_at = now();
  end if;
  return null;
end
$watch$;

drop trigger if exists candles_stats_watch on candles;
create trigger candles_stats_watch after insert or update or delete on candles
  for each statement execute function candles_stats_watch();
drop trigger if exists candles_stats_watch_truncate on candles;
create trigger candles_stats_watch_truncate after truncate on candles
  for each statement execute function candles_stats_watch();

-- A confirmed hole changes the gap totals of the part it overlaps (a re-check that only moves
-- checked_at or the reason changes nothing).
create or replace function confirmed_holes_stats_watch() returns trigger
language plpgsql as $holes$
begin
  if tg_op = 'UPDATE' and (old.series_id, old.from_ts, old.to_ts) = (new.series_id, new.from_ts, new.to_ts) then
    return null;
  end if;
  if tg_op in ('UPDATE', 'DELETE') then
    update series_stats set gaps_to = null, gaps_epoch = nextval('series_stats_epoch')
    where series_id = old.series_id and gaps_to is not null and old.from_ts < gaps_to;
  end if;
  if tg_op in ('INSERT', 'UPDATE') then
    update series_stats set gaps_to = null, gaps_epoch = nextval('series_stats_epoch')
    where series_id = new.series_id and gaps_to is not null and new.from_ts < gaps_to;
  end if;
  return null;
end
$holes$;

drop trigger if exists confirmed_holes_stats_watch on confirmed_holes;
create trigger confirmed_holes_stats_watch after insert or update or delete on confirmed_holes
  for each row execute function confirmed_holes_stats_watch();

-- Recounts every series exactly when the statistics are dirty, when TimescaleDB's retention
-- job finished after the last recount, or when forced; returns whether it recounted. Cheap
-- when nothing is to be done (one key lookup, plus one job_stats lookup with TimescaleDB).
-- Writers wait for the recount (a share row exclusive lock on series_stats), so no write is
-- counted twice or lost.
create or replace function series_stats_refresh(force boolean default false) returns boolean
language plpgsql as $refresh$
declare
  recounted timestamptz;
  dropped timestamptz;
  stale boolean;
  attempt integer;
begin
  for attempt in 1 .. 2 loop
    stale := force or exists (select 1 from candlekeep_meta where key = 'series_stats_dirty');
    if not stale and to_regclass('timescaledb_information.job_stats') is not null then
      select updated_at into recounted from candlekeep_meta where key = 'series_stats_recounted';
      execute $q$
        select max(js.last_successful_finish) from timescaledb_information.job_stats js
        where js.hypertable_name = 'candles' and js.job_id in (
          select j.job_id from timescaledb_information.jobs j where j.proc_name = 'policy_retention')
      $q$ into dropped;
      stale := dropped is not null and (recounted is null or dropped > recounted);
    end if;
    if not stale then
      return false;
    end if;
    if attempt = 1 then
      -- Wait for writers in flight, then decide again: another reader may have recounted.
      lock table series_stats in share row exclusive mode;
    end if;
  end loop;
  delete from series_stats;
  insert into series_stats (series_id, first_ts, last_ts, count)
    select series_id, min(ts), max(ts), count(*) from candles group by series_id;
  delete from candlekeep_meta where key = 'series_stats_dirty';
  insert into candlekeep_meta (key, value) values ('series_stats_recounted', 'exact recount of candles')
    on conflict (key) do update set value = excluded.value, updated_at = clock_timestamp();
  return true;
end
$refresh$;

select series_stats_refresh(true);
