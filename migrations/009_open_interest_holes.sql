-- Candlekeep schema, version 9: confirmed holes of the open-interest history. A point of the
-- period grid is recorded here only after the exchange was asked for it (a backfill, live or
-- repair page covering it) and its answer did not have it; such points are not asked for again.
-- Points missing otherwise (never fetched, deleted locally) are gaps: the repair run refetches
-- those the exchange still serves.
create table if not exists open_interest_holes (
  exchange text not null,
  symbol text not null,
  period text not null,
  ts timestamptz not null,
  checked_at timestamptz not null default now(),
  primary key (exchange, symbol, period, ts)
);
