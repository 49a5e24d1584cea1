-- Candlekeep schema, version 6: funding rates of perpetual contracts. One row per funding time
-- (UTC, as the exchange gives it) with the rate exactly as the exchange published it and the
-- mark price at that time when the exchange gives one.
create table if not exists funding_rates (
  exchange text not null,
  symbol text not null,
  ts timestamptz not null,
  rate numeric not null,
  mark_price numeric,
  primary key (exchange, symbol, ts)
);

-- Where a funding backfill stands, per exchange and symbol: the walk resumes at `cursor`;
-- `range_from` is where the history starts; `completed_at` is set once the walk reached the
-- present (later walks are live updates from the last stored row).
create table if not exists funding_checkpoints (
  exchange text not null,
  symbol text not null,
  range_from timestamptz not null,
  cursor timestamptz not null,
  completed_at timestamptz,
  updated_at timestamptz not null default now(),
  primary key (exchange, symbol)
);

-- Funding times the gap check expected and the exchange confirmed it never had (a refetch of
-- the range came back without them): not fetched again.
create table if not exists funding_holes (
  exchange text not null,
  symbol text not null,
  ts timestamptz not null,
  confirmed_at timestamptz not null default now(),
  primary key (exchange, symbol, ts)
);
