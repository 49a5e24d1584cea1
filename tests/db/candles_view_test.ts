/**
 * `candles_v` (migration 004): candles by exchange, symbol and timeframe for SQL users, with
 * the queries the README gives for psql and Grafana.
 */
import { assertEquals } from "../support/assert.ts";
import { migrate } from "../../src/db/migrate.ts";
import { writeCandles } from "../../src/ingest/store.ts";
import { createTestDatabase } from "../support/pg.ts";

const MIN = 60_000;
const T0 = Date.UTC(2024, 0, 1);

Deno.test("candles_v: every candle by name, time as timestamptz, as the README queries it", async () => {
  const t = await createTestDatabase();
  try {
    await migrate(t.sql, { timescaledb: "auto", compressAfterMs: 7 * 86_400_000 });
    const [btc, eth] = await t.sql<{ id: number }[]>`
      insert into series (exchange, symbol, timeframe) values ('binance', 'BTC/USDT', '1m'), ('binance', 'ETH/USDT', '1m')
      returning id`;
    const page = (price: number) =>
      Array.from({ length: 120 }, (_, i) => ({
        ts: T0 + i * MIN,
        open: price + i,
        high: price + i + 0.5,
        low: price + i - 0.25,
        close: price + i + 0.125,
        volume: 1.1 + i,
      }));
    await writeCandles(t.sql, btc.id, page(42_000));
    await writeCandles(t.sql, eth.id, page(2_200));

    // The psql example of the README.
    const latest = await t.sql<
      { time: Date; open: number; high: number; low: number; close: number; volume: number }[]
    >`
      select time, open, high, low, close, volume from candles_v
      where exchange = 'binance' and symbol = 'BTC/USDT' and timeframe = '1m'
      order by time desc limit 3`;
    assertEquals(latest.map((r) => [r.time.getTime(), r.open, r.high, r.low, r.close, r.volume]), [
      [T0 + 119 * MIN, 42_119, 42_119.5, 42_118.75, 42_119.125, 120.1],
      [T0 + 118 * MIN, 42_118, 42_118.5, 42_117.75, 42_118.125, 119.1],
      [T0 + 117 * MIN, 42_117, 42_117.5, 42_116.75, 42_117.125, 118.1],
    ]);

    // The Grafana example, with $__timeFilter(time) expanded as Grafana does.
    const grafana = await t.sql<{ time: Date; close: number }[]>`
      select time as "time", close from candles_v
      where exchange = 'binance' and symbol = 'ETH/USDT' and timeframe = '1m'
        and time between '2024-01-01T01:00:00Z' and '2024-01-01T01:59:59Z'
      order by 1`;
    assertEquals(grafana.length, 60);
    assertEquals([grafana[0].time.toISOString(), grafana[0].close], ["2024-01-01T01:00:00.000Z", 2_260.125]);

    const columns = await t.sql<{ name: string; type: string }[]>`
      select attname as name, format_type(atttypid, atttypmod) as type from pg_attribute
      where attrelid = 'candles_v'::regclass and attnum > 0 order by attnum`;
    assertEquals(columns.map((c) => `${c.name} ${c.type}`), [
      "exchange text",
      "symbol text",
      "timeframe text",
      "time timestamp with time zone",
      "open double precision",
      "high double precision",
      "low double precision",
      "close double precision",
      "volume double precision",
      "price text",
    ]);
    const [all] = await t.sql<{ n: number }[]>`select count(*)::int as n from candles_v`;
    assertEquals(all.n, 240);
  } finally {
    await t.drop();
  }
});
