/**
 * Migration 006 and R_4_funding_timescaledb.sql on PGlite with TimescaleDB: funding_rates is a
 * hypertable when candles is one, a plain table otherwise, and keeps exact decimals.
 */
import { PGlite } from "pglite";
import { timescaledb } from "pglite/timescaledb";
import { assertEquals } from "../support/assert.ts";
import { applyAll, rows } from "../support/pglite.ts";

const DAY = 86_400_000;

async function hypertables(db: PGlite): Promise<string[]> {
  const found = await rows<{ hypertable_name: string }>(
    db,
    `select hypertable_name from timescaledb_information.hypertables
     where hypertable_name in ('candles', 'funding_rates') order by 1`,
  );
  return found.map((r) => r.hypertable_name);
}

Deno.test("funding_rates (PGlite): a hypertable with candles, idempotent, exact decimals", async () => {
  const db = await PGlite.create({ extensions: { timescaledb } });
  try {
    await applyAll(db, { timescaledb: "auto", compressAfterMs: 7 * DAY });
    assertEquals(await hypertables(db), ["candles", "funding_rates"]);
    const [dims] = await rows<{ column_name: string }>(
      db,
      "select column_name from timescaledb_information.dimensions where hypertable_name = 'funding_rates'",
    );
    assertEquals(dims.column_name, "ts");
    await db.query(
      `insert into funding_rates (exchange, symbol, ts, rate, mark_price)
       values ('binance', 'BTC/USDT:USDT', '2024-01-01T00:00:00Z', $1::float8::text::numeric, '60010.12345678')`,
      [0.00012345],
    );
    await applyAll(db, { timescaledb: "auto", compressAfterMs: 7 * DAY }, true);
    const stored = await rows<{ rate: string; mark: string }>(
      db,
      "select rate::text as rate, mark_price::text as mark from funding_rates",
    );
    assertEquals(stored, [{ rate: "0.00012345", mark: "60010.12345678" }]);
  } finally {
    await db.close();
  }
});

Deno.test("funding_rates (PGlite): TIMESCALEDB=off leaves a plain table", async () => {
  const db = await PGlite.create({ extensions: { timescaledb } });
  try {
    await applyAll(db, { timescaledb: "off", compressAfterMs: 7 * DAY });
    const [t] = await rows<{ n: number }>(db, "select count(*)::int as n from funding_rates");
    assertEquals(t.n, 0);
    const [ext] = await rows<{ n: number }>(
      db,
      "select count(*)::int as n from pg_extension where extname = 'timescaledb'",
    );
    if (ext.n > 0) assertEquals(await hypertables(db), []);
  } finally {
    await db.close();
  }
});
