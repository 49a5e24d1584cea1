/**
 * migrations/007_open_interest.sql and R_5_open_interest_timescaledb.sql on PGlite built with
 * TimescaleDB: open_interest is a hypertable when candles is one, a plain table otherwise.
 */
import { PGlite } from "pglite";
import { timescaledb } from "pglite/timescaledb";
import { assertEquals } from "../support/assert.ts";
import { applyAll, rows } from "../support/pglite.ts";

const DAY = 86_400_000;

async function hypertables(db: PGlite): Promise<string[]> {
  const [ext] = await rows<{ n: number }>(
    db,
    "select count(*)::int as n from pg_extension where extname = 'timescaledb'",
  );
  if (ext.n === 0) return [];
  return (await rows<{ name: string }>(
    db,
    "select hypertable_name as name from timescaledb_information.hypertables order by 1",
  )).map((r) => r.name);
}

Deno.test("open interest (PGlite): a hypertable beside candles, idempotent, exact decimals", async () => {
  const db = await PGlite.create({ extensions: { timescaledb } });
  try {
    await applyAll(db, { timescaledb: "auto", compressAfterMs: 7 * DAY });
    assertEquals((await hypertables(db)).filter((n) => n === "candles" || n === "open_interest"), [
      "candles",
      "open_interest",
    ]);
    const dims = await rows<{ time_interval: string }>(
      db,
      "select time_interval::text from timescaledb_information.dimensions where hypertable_name = 'open_interest'",
    );
    assertEquals(dims, [{ time_interval: "30 days" }]);
    await applyAll(db, { timescaledb: "auto", compressAfterMs: 7 * DAY }, true);
    await db.query(
      `insert into open_interest (exchange, symbol, period, ts, amount, value)
       values ('binance', 'BTC/USDT:USDT', '5m', to_timestamp(1700000000), '75375.61700000', '3248828883.71251440')`,
    );
    const got = await rows<{ amount: string; value: string }>(
      db,
      "select amount::text, value::text from open_interest",
    );
    assertEquals(got, [{ amount: "75375.61700000", value: "3248828883.71251440" }]);
  } finally {
    await db.close();
  }
});

Deno.test("open interest (PGlite): a plain table with TIMESCALEDB=off", async () => {
  const db = await PGlite.create({ extensions: { timescaledb } });
  try {
    await applyAll(db, { timescaledb: "off", compressAfterMs: 7 * DAY });
    assertEquals((await hypertables(db)).includes("open_interest"), false);
    const [t] = await rows<{ n: number }>(
      db,
      "select count(*)::int as n from information_schema.tables where table_name = 'open_interest'",
    );
    assertEquals(t.n, 1);
  } finally {
    await db.close();
  }
});
