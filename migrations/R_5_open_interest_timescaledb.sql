-- Repeatable: open_interest becomes a hypertable (30-day chunks: a few hundred rows a day per
-- series at 5m) when candles is one, i.e. when R_1_timescaledb.sql made TimescaleDB active.
do $open_interest$
begin
  if not candlekeep_is_hypertable('candles') then
    return;
  end if;
  if not candlekeep_is_hypertable('open_interest') then
    perform create_hypertable('open_interest', 'ts', chunk_time_interval => interval '30 days', migrate_data => true);
  end if;
end
$open_interest$;
