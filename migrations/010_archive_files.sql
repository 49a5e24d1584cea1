-- Candlekeep schema, version 10: the per-file record of archive imports (Binance Data Vision).
-- A backfill writes a file's candles, its row here and the backfill checkpoint's cursor (the
-- end of the file) in one transaction, so an interrupted import resumes after the last finished
-- file. `imported` files were verified against their .CHECKSUM; `missing` (404) and `failed`
-- (checksum mismatch, corrupt zip or download failure after one retry) files had their range
-- fetched over REST instead, and `detail` says why.
create table if not exists archive_files (
  series_id integer not null references series (id) on delete cascade,
  file text not null,
  range_from timestamptz not null,
  range_to timestamptz not null,
  status text not null check (status in ('imported', 'missing', 'failed')),
  candles integer not null default 0,
  bytes bigint not null default 0,
  sha256 text,
  detail text,
  updated_at timestamptz not null default now(),
  primary key (series_id, file)
);
