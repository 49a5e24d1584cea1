-- Candlekeep schema, version 2: each series remembers where its history starts.
--
-- backfill_since is the start a series was given when it was added through POST /v1/series,
-- resolved when it was added: an ISO-8601 UTC instant ("2024-01-01T00:00:00.000Z"; a relative
-- "1d" becomes the instant one day before the request), or 'earliest'. Null: the series
-- follows BACKFILL_SINCE (configured series). A configured series that also has its own start
-- is backfilled from the earlier of the two.
alter table series add column if not exists backfill_since text;

alter table series drop constraint if exists series_backfill_since_check;
alter table series add constraint series_backfill_since_check check (
  backfill_since is null or backfill_since = 'earliest'
  or backfill_since ~ '^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$'
);

-- Series added through the API before this migration did not record their start: keep the
-- start their backfill already used (the earliest instant it covered or began at), so that
-- BACKFILL_SINCE does not extend them. Those never backfilled follow BACKFILL_SINCE.
update series s
set backfill_since = to_char(least(c.covered_from, c.range_from) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
from backfill_checkpoints c
where c.series_id = s.id and s.origin = 'api' and s.backfill_since is null;
