import type { Sql } from "./client.ts";
import { getLogger } from "../log.ts";

/** One SQL file of the `migrations/` folder. */
export interface Migration {
  /** Numeric version for `NNN_name.sql`; null for repeatable `R_name.sql` files. */
  version: number | null;
  /** The name part of the file name. */
  name: string;
  /** File name. */
  file: string;
  /** SQL text. */
  sql: string;
  /** Hex SHA-256 of the SQL text. */
  checksum: string;
}

/** Thrown when an applied migration file was changed afterwards. */
export class MigrationChecksumError extends Error {
  /** The file whose checksum no longer matches. */
  readonly file: string;
  /** Creates the error. */
  constructor(file: string, recorded: string, current: string) {
    super(
      `Cannot migrate: ${file} was changed after it was applied (recorded checksum ${recorded.slice(0, 12)}, current ${
        current.slice(0, 12)
      }); restore the file and add a new migration instead`,
    );
    this.name = "MigrationChecksumError";
    this.file = file;
  }
}

/** Settings passed to the SQL files as `candlekeep.*` session settings. */
export interface MigrationSettings {
  timescaledb: "auto" | "require" | "off";
  compressAfterMs: number;
  retentionMs?: number;
}

/** What {@linkcode migrate} did. */
export interface MigrationResult {
  /** Files applied by this run. */
  applied: string[];
  /** The TimescaleDB status recorded by the repeatable migration. */
  timescaledb: string;
}

/** The default migrations folder, next to `src/`. */
export const MIGRATIONS_DIR: URL = new URL(
  "../../migrations/",
  import.meta.url,
);

const LOCK_KEY = 0x63616e646c; // "candl": serialises concurrent runners.

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(text),
  );
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** Reads `NNN_name.sql` (in numeric order) and then `R_name.sql` files from a folder. */
export async function loadMigrations(
  dir: URL | string = MIGRATIONS_DIR,
): Promise<Migration[]> {
  const out: Migration[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile || !entry.name.endsWith(".sql")) continue;
    const versioned = /^(\d+)_([a-z0-9_]+)\.sql$/.exec(entry.name);
    const repeatable = /^R_([a-z0-9_]+)\.sql$/.exec(entry.name);
    if (!versioned && !repeatable) {
      throw new Error(
        `Cannot load migrations: current file name is ${entry.name}, expected NNN_name.sql or R_name.sql`,
      );
    }
    const path = typeof dir === "string" ? `${dir.replace(/\/$/, "")}/${entry.name}` : new URL(entry.name, dir);
    const sql = await Deno.readTextFile(path);
    out.push({
      version: versioned ? Number(versioned[1]) : null,
      name: versioned ? versioned[2] : repeatable![1],
      file: entry.name,
      sql,
      checksum: await sha256(sql),
    });
  }
  const versions = out.filter((m) => m.version !== null).map((m) => m.version);
  const dup = versions.find((v, i) => versions.indexOf(v) !== i);
  if (dup !== undefined) {
    throw new Error(
      `Cannot load migrations: version ${dup} is used by more than one file`,
    );
  }
  return out.sort((a, b) =>
    a.version === null
      ? (b.version === null ? a.name.localeCompare(b.name) : 1)
      : (b.version === null ? -1 : a.version - b.version)
  );
}

/** Converts milliseconds to a PostgreSQL interval literal such as `604800 seconds`. */
export function msToInterval(ms: number): string {
  return `${Math.round(ms / 1000)} seconds`;
}

/** The `set_config` pairs the SQL files read. */
export function migrationSettings(
  settings: MigrationSettings,
): Record<string, string> {
  return {
    "candlekeep.timescaledb": settings.timescaledb,
    "candlekeep.compress_after": msToInterval(settings.compressAfterMs),
    "candlekeep.retention": settings.retentionMs === undefined ? "" : msToInterval(settings.retentionMs),
  };
}

/**
 * Applies pending numbered migrations in order, each in its own transaction and recorded in
 * `schema_migrations`, then every repeatable file. An advisory lock held on one connection
 * makes concurrent runners safe; applying twice is a no-op; a changed applied file throws
 * {@linkcode MigrationChecksumError}.
 */
export async function migrate(
  sql: Sql,
  settings: MigrationSettings,
  options: { dir?: URL | string } = {},
): Promise<MigrationResult> {
  const log = getLogger("migrate");
  const migrations = await loadMigrations(options.dir);
  const conn = await sql.reserve();
  const applied: string[] = [];
  try {
    await conn`select pg_advisory_lock(${LOCK_KEY})`;
    try {
      await conn`
        create table if not exists schema_migrations (
          version integer primary key,
          name text not null,
          checksum text not null,
          applied_at timestamptz not null default now()
        )`;
      const rows = await conn<{ version: number; checksum: string }[]>`
        select version, checksum from schema_migrations`;
      const done = new Map(rows.map((r) => [r.version, r.checksum]));
      for (const m of migrations) {
        if (m.version !== null) {
          const recorded = done.get(m.version);
          if (recorded !== undefined) {
            if (recorded !== m.checksum) {
              throw new MigrationChecksumError(m.file, recorded, m.checksum);
            }
            continue;
          }
        }
        const began = performance.now();
        await conn`begin`;
        try {
          for (
            const [key, value] of Object.entries(migrationSettings(settings))
          ) {
            await conn`select set_config(${key}, ${value}, true)`;
          }
          await conn.unsafe(m.sql);
          if (m.version !== null) {
            await conn`
              insert into schema_migrations (version, name, checksum)
              values (${m.version}, ${m.name}, ${m.checksum})`;
          }
          await conn`commit`;
        } catch (error) {
          await conn`rollback`.catch(() => {});
          throw new Error(
            `Cannot apply migration ${m.file}: ${(error as Error).message}`,
            { cause: error },
          );
        }
        if (m.version !== null) {
          applied.push(m.file);
          log.info("Applied migration {file}", { file: m.file });
        } else if (performance.now() - began > 1000) {
          // A repeatable file is quick unless it builds something once (rollups of stored candles).
          log.info("Ran {file} in {seconds} s", {
            file: m.file,
            seconds: ((performance.now() - began) / 1000).toFixed(1),
          });
        }
      }
    } finally {
      await conn`select pg_advisory_unlock(${LOCK_KEY})`;
    }
    const [meta] = await conn<{ value: string }[]>`
      select value from candlekeep_meta where key = 'timescaledb'`;
    const timescaledb = meta?.value ?? "unknown";
    if (
      timescaledb.startsWith("inactive:") && settings.timescaledb === "auto"
    ) {
      log.info("TimescaleDB mode auto: {status}; candles is a plain table", {
        status: timescaledb,
      });
    } else {
      log.info("TimescaleDB mode {mode}: {status}", {
        mode: settings.timescaledb,
        status: timescaledb,
      });
    }
    log.info("Schema up to date ({count} applied now)", {
      count: applied.length,
    });
    return { applied, timescaledb };
  } finally {
    conn.release();
  }
}

/** Whether every numbered migration file is recorded as applied (used by `/ready`). */
export async function migrationsApplied(
  sql: Sql,
  dir?: URL | string,
): Promise<boolean> {
  const expected = (await loadMigrations(dir)).filter((m) => m.version !== null).length;
  try {
    const [row] = await sql<
      { n: number }[]
    >`select count(*)::int as n from schema_migrations`;
    return row.n >= expected;
  } catch {
    return false;
  }
}
