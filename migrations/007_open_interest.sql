-- Candlekeep schema, version 7: open-interest history of perpetual contracts (OPEN_INTEREST).
-- One row per exchange, unified symbol, period (5m .. 1d) and period start. amount is the open
-- interest in contracts (base units) and value its worth in quote, both exactly the decimals
-- the exchange sent; value is null where the exchange does not give it (Bybit).
create table if not exists open_interest (
  exchange text not null,
  symbol text not null,
  period text not null,
  ts timestamptz not null,
  amount numeric not null,
  value numeric,
  primary key (exchange, symbol, period, ts),
  constraint open_interest_period check (period in ('5m', '15m', '30m', '1h', '2h', '4h', '6h', '12h', '1d'))
);

-- Progress per series: where the stored history starts (the exchange's window when it was
-- first backfilled), whether that backfill finished, and up to where the period grid has been
-- gap-checked (rows still missing there after one refetch are holes of the exchange).
create table if not exists open_interest_progress (
  exchange text not null,
  symbol text not null,
  period text not null,
  history_from timestamptz,
  backfilled_at timestamptz,
  checked_through timestamptz,
  updated_at timestamptz not null default now(),
  primary key (exchange, symbol, period)
);
