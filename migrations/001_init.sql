-- Candlekeep schema, version 1. Every statement is idempotent.

-- One row per (exchange, symbol, timeframe). Candles refer to it by a 4-byte id so the
-- large table does not repeat three strings per row.
create table if not exists series (
  id integer generated always as identity primary key,
  exchange text not null,
  symbol text not null,
  timeframe text not null,
  created_at timestamptz not null default now(),
  -- false once the series is no longer configured (or deleted through the API): its data
  -- stays, it is just not updated any more.
  active boolean not null default true,
  -- config: from EXCHANGES x SYMBOLS x TIMEFRAMES; api: added through POST /v1/series.
  origin text not null default 'config',
  -- new | backfilling | live | invalid | failed | stopped
  state text not null default 'new',
  state_reason text,
  -- leases let several instances share the work: one owner at a time, until expiry.
  lease_owner text,
  lease_expires_at timestamptz,
  updated_at timestamptz not null default now(),
  constraint series_key unique (exchange, symbol, timeframe)
);

-- OHLCV candles. ts is the UTC open time of the period. Prices and volume are double
-- precision because ccxt hands us JavaScript numbers (IEEE-754 doubles): a double column
-- stores exactly what the source gave us, at 8 bytes, and compresses well.
create table if not exists candles (
  series_id integer not null,
  ts timestamptz not null,
  open double precision not null,
  high double precision not null,
  low double precision not null,
  close double precision not null,
  volume double precision not null,
  constraint candles_pkey primary key (series_id, ts)
);

-- Resumable backfills: the running range is [range_from, target) and cursor the open time of
-- the next candle to fetch in it; covered_from is the earliest instant the backfill has ever
-- fully covered (so moving BACKFILL_SINCE earlier fetches only the older part, and a listing
-- later than BACKFILL_SINCE is not searched again).
create table if not exists backfill_checkpoints (
  series_id integer primary key,
  range_from timestamptz not null,
  cursor timestamptz not null,
  target timestamptz not null,
  covered_from timestamptz,
  status text not null default 'running',
  updated_at timestamptz not null default now()
);

-- Running Candlekeep processes, for sharing series fairly; a row whose heartbeat is older
-- than the lease timeout belongs to a dead instance.
create table if not exists instances (
  id text primary key,
  hostname text not null,
  pid integer not null,
  started_at timestamptz not null default now(),
  heartbeat_at timestamptz not null default now()
);

-- Ranges [from_ts, to_ts) the exchange confirmed it has no (valid) data for, so gap repair
-- does not refetch them on every run.
create table if not exists confirmed_holes (
  series_id integer not null,
  from_ts timestamptz not null,
  to_ts timestamptz not null,
  reason text not null,
  checked_at timestamptz not null default now(),
  constraint confirmed_holes_pkey primary key (series_id, from_ts)
);

-- Facts the migration runner records about the database, e.g. whether TimescaleDB is active.
create table if not exists candlekeep_meta (
  key text primary key,
  value text not null,
  updated_at timestamptz not null default now()
);
