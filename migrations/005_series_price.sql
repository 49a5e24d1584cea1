-- Candlekeep schema, version 5: the price a series' candles are of. Contract markets have
-- several klines per symbol and timeframe: trade (the default, and the only one of spot
-- markets), mark, index and premium (premium index). Each is its own series, gap-checked,
-- resumable and repaired like any other, so the series key gains the price.
alter table series add column if not exists price text not null default 'trade';
alter table series drop constraint if exists series_key;
alter table series add constraint series_key unique (exchange, symbol, timeframe, price);
alter table series add constraint series_price check (price in ('trade', 'mark', 'index', 'premium'));

-- candles_v names the price too (a new column goes last in a replaced view).
create or replace view candles_v as
select s.exchange, s.symbol, s.timeframe, c.ts as time, c.open, c.high, c.low, c.close, c.volume, s.price
from candles c
join series s on s.id = c.series_id;
