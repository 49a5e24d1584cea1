/**
 * Helpers for the tests that run our migrations on PGlite built with TimescaleDB (test-only).
 *
 * @module
 */
import type { PGlite } from "pglite";
import { loadMigrations, type MigrationSettings, migrationSettings } from "../../src/db/migrate.ts";

/** Applies every migration file in order, each in a transaction with the settings it reads. */
export async function applyAll(db: PGlite, settings: MigrationSettings, onlyRepeatable = false): Promise<void> {
  for (const m of await loadMigrations()) {
    if (onlyRepeatable && m.version !== null) continue;
    await db.transaction(async (tx) => {
      for (const [key, value] of Object.entries(migrationSettings(settings))) {
        await tx.query("select set_config($1, $2, true)", [key, value]);
      }
      await tx.exec(m.sql);
    });
  }
}

/** The rows of one query. */
export async function rows<T>(db: PGlite, text: string, params: unknown[] = []): Promise<T[]> {
  return (await db.query<T>(text, params)).rows;
}
