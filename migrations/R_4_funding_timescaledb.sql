-- Repeatable: funding_rates becomes a hypertable when candles is one (R_1_timescaledb.sql made
-- it so: TimescaleDB is active). Funding rows are few (3 a day per perpetual on 8-hour
-- funding), so chunks are 30 days long. When candles is not a hypertable this does nothing.
do $funding_timescaledb$
begin
  if not candlekeep_is_hypertable('candles') then
    return;
  end if;
  if not candlekeep_is_hypertable('funding_rates') then
    perform create_hypertable('funding_rates', 'ts', chunk_time_interval => interval '30 days', migrate_data => true);
  end if;
end
$funding_timescaledb$;
