import { assert, assertEquals, assertRejects } from "../support/assert.ts";
import { createPool } from "../../src/db/client.ts";
import { migrate, MigrationChecksumError, MIGRATIONS_DIR, migrationsApplied } from "../../src/db/migrate.ts";
import { createTestDatabase } from "../support/pg.ts";

const SETTINGS = { timescaledb: "auto", compressAfterMs: 7 * 86_400_000 } as const;
const NUMBERED = [
  "001_init.sql",
  "002_series_since.sql",
  "003_series_stats.sql",
  "004_candles_view.sql",
  "005_series_price.sql",
  "006_funding_rates.sql",
  "007_open_interest.sql",
  "008_live_source.sql",
  "009_open_interest_holes.sql",
  "010_archive_files.sql",
];

async function copyMigrations(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "ck-migrations-" });
  for await (const e of Deno.readDir(MIGRATIONS_DIR)) {
    await Deno.copyFile(new URL(e.name, MIGRATIONS_DIR), `${dir}/${e.name}`);
  }
  return dir;
}

Deno.test("migrations: applied once, recorded, idempotent", async () => {
  const t = await createTestDatabase();
  try {
    assertEquals(await migrationsApplied(t.sql), false);
    const first = await migrate(t.sql, SETTINGS);
    assertEquals(first.applied, NUMBERED);
    const second = await migrate(t.sql, SETTINGS);
    assertEquals(second.applied, []);
    assert(await migrationsApplied(t.sql));
    const rows = await t.sql<{ version: number; name: string; checksum: string }[]>`
      select version, name, checksum from schema_migrations order by version`;
    assertEquals(rows.map((r) => [r.version, r.name]), [
      [1, "init"],
      [2, "series_since"],
      [3, "series_stats"],
      [4, "candles_view"],
      [5, "series_price"],
      [6, "funding_rates"],
      [7, "open_interest"],
      [8, "live_source"],
      [9, "open_interest_holes"],
      [10, "archive_files"],
    ]);
    assertEquals(rows[0].checksum.length, 64);
    const tables = await t.sql<{ table_name: string }[]>`
      select table_name from information_schema.tables where table_schema = current_schema() order by 1`;
    assertEquals(tables.map((r) => r.table_name), [
      "archive_files",
      "backfill_checkpoints",
      "candlekeep_meta",
      "candles",
      "candles_1d",
      "candles_1h",
      "candles_v",
      "confirmed_holes",
      "funding_checkpoints",
      "funding_holes",
      "funding_rates",
      "instances",
      "open_interest",
      "open_interest_holes",
      "open_interest_progress",
      "schema_migrations",
      "series",
      "series_stats",
    ]);
    // Without the extension on this server, auto mode records why candles stayed plain.
    assert(first.timescaledb.startsWith("inactive:"), first.timescaledb);
  } finally {
    await t.drop();
  }
});

Deno.test("migrations: TIMESCALEDB=require without the extension fails with a clear message", async () => {
  const t = await createTestDatabase();
  try {
    await assertRejects(
      () => migrate(t.sql, { ...SETTINGS, timescaledb: "require" }),
      Error,
      "TIMESCALEDB=require",
    );
    // Nothing half-applied: the failing file rolled back, earlier ones stay recorded.
    const [row] = await t.sql<{ n: number }[]>`select count(*)::int as n from schema_migrations`;
    assertEquals(row.n, NUMBERED.length);
  } finally {
    await t.drop();
  }
});

Deno.test("migrations: a changed applied file stops start-up", async () => {
  const t = await createTestDatabase();
  const dir = await copyMigrations();
  try {
    await migrate(t.sql, SETTINGS, { dir });
    const path = `${dir}/001_init.sql`;
    await Deno.writeTextFile(path, (await Deno.readTextFile(path)) + "\n-- edited\n");
    const error = await assertRejects(() => migrate(t.sql, SETTINGS, { dir }), MigrationChecksumError);
    assertEquals(error.file, "001_init.sql");
    assert(error.message.includes("was changed after it was applied"), error.message);
  } finally {
    await t.drop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("migrations: a new file is applied in order after the old ones", async () => {
  const t = await createTestDatabase();
  const dir = await copyMigrations();
  try {
    await migrate(t.sql, SETTINGS, { dir });
    await Deno.writeTextFile(`${dir}/900_extra.sql`, "create table if not exists extra (id int);");
    const result = await migrate(t.sql, SETTINGS, { dir });
    assertEquals(result.applied, ["900_extra.sql"]);
    await Deno.writeTextFile(`${dir}/901_broken.sql`, "create table broken (id int); select 1/0;");
    await assertRejects(() => migrate(t.sql, SETTINGS, { dir }), Error, "901_broken.sql");
    const [exists] = await t.sql<{ n: number }[]>`
      select count(*)::int as n from information_schema.tables where table_name = 'broken'`;
    assertEquals(exists.n, 0, "a failed migration is rolled back whole");
  } finally {
    await t.drop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("migrations: concurrent runners apply each file once", async () => {
  const t = await createTestDatabase();
  const pools = [createPool(t.url, { max: 2 }), createPool(t.url, { max: 2 }), createPool(t.url, { max: 2 })];
  try {
    const results = await Promise.all(pools.map((sql) => migrate(sql, SETTINGS)));
    const applied = results.flatMap((r) => r.applied);
    assertEquals(applied.toSorted(), NUMBERED, "exactly one runner applied each file");
    const [row] = await t.sql<{ n: number }[]>`select count(*)::int as n from schema_migrations`;
    assertEquals(row.n, NUMBERED.length);
  } finally {
    await Promise.all(pools.map((p) => p.end()));
    await t.drop();
  }
});

Deno.test("migrations: 002 records the start series added through the API before it already used", async () => {
  const t = await createTestDatabase();
  const dir = await copyMigrations();
  try {
    await Deno.remove(`${dir}/002_series_since.sql`);
    await migrate(t.sql, SETTINGS, { dir });
    const ids = await t.sql<{ id: number }[]>`
      insert into series (exchange, symbol, timeframe, origin) values
        ('binance', 'ETH/USDT', '1m', 'api'), ('binance', 'SOL/USDT', '1m', 'api'),
        ('binance', 'BTC/USDT', '1m', 'config'), ('binance', 'XRP/USDT', '1m', 'api')
      returning id`;
    const [eth, sol, btc] = ids.map((r) => r.id);
    await t.sql`
      insert into backfill_checkpoints (series_id, range_from, cursor, target, covered_from, status) values
        (${eth}, '2024-03-02T10:00:00Z', '2024-03-03T00:00:00Z', '2024-03-03T00:00:00Z', '2024-03-01T10:00:00Z', 'done'),
        (${sol}, '2024-03-01T12:30:00Z', '2024-03-01T20:00:00Z', '2024-03-03T00:00:00Z', null, 'running'),
        (${btc}, '2024-01-01T00:00:00Z', '2024-03-03T00:00:00Z', '2024-03-03T00:00:00Z', '2024-01-01T00:00:00Z', 'done')`;
    const result = await migrate(t.sql, SETTINGS);
    assertEquals(result.applied, ["002_series_since.sql"]);
    const rows = await t.sql<{ symbol: string; since: string | null }[]>`
      select symbol, backfill_since as since from series order by id`;
    assertEquals(rows, [
      { symbol: "ETH/USDT", since: "2024-03-01T10:00:00.000Z" },
      { symbol: "SOL/USDT", since: "2024-03-01T12:30:00.000Z" },
      { symbol: "BTC/USDT", since: null }, // configured: follows BACKFILL_SINCE
      { symbol: "XRP/USDT", since: null }, // never backfilled: follows BACKFILL_SINCE
    ]);
    await assertRejects(() => t.sql`update series set backfill_since = '1d' where id = ${eth}`, Error, "check");
  } finally {
    await t.drop();
    await Deno.remove(dir, { recursive: true });
  }
});
