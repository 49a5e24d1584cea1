-- Candlekeep schema, version 8: where a series' live candles come from now. 'ws': a WebSocket
-- stream of the instance holding it (LIVE_MODE=ws or auto); 'rest' or null: the REST live tick.
-- Set by the holding instance when its stream goes up or down; shown by `status` and
-- GET /v1/series.
alter table series add column if not exists live_source text;
alter table series drop constraint if exists series_live_source;
alter table series add constraint series_live_source check (live_source in ('ws', 'rest'));
