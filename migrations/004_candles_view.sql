-- Candlekeep schema, version 4: candles by name, for SQL users (psql, Grafana, notebooks).
--
-- One row per stored candle: exchange, symbol and timeframe instead of series_id, and the open
-- time as time (timestamptz, UTC). Filtering on exchange, symbol and timeframe picks the series
-- first and reads its candles through the (series_id, ts) primary key.
create or replace view candles_v as
select s.exchange, s.symbol, s.timeframe, c.ts as time, c.open, c.high, c.low, c.close, c.volume
from candles c
join series s on s.id = c.series_id;

comment on view candles_v is
  'Stored candles by exchange, symbol and timeframe; time is the UTC open time of the period.';
