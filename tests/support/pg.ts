/**
 * A real PostgreSQL for the tests. All test files run in one `deno test` process and share
 * one server: `TEST_DATABASE_URL` when set, else one embedded PostgreSQL started lazily in a
 * temporary folder and stopped (and the folder deleted) when the process unloads. Each test
 * gets its own fresh database from {@link createTestDatabase}.
 *
 * @module
 */
import postgres from "postgres";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "../../src/db/embedded/mod.ts";

/** A fresh, empty database on the shared server. */
export interface TestDatabase {
  /** Connection URL of this database. */
  url: string;
  /** A small pool (max 4) on this database. */
  sql: postgres.Sql;
  /** The database name. */
  name: string;
  /** Ends the pool and drops the database (WITH (FORCE)); safe to call twice. */
  drop(): Promise<void>;
}

/** A server of its own for tests that stop and restart it. */
export interface PrivateServer extends EmbeddedPostgres {
  /** Stops the server and deletes its data folder. */
  cleanup(): Promise<void>;
}

let shared: Promise<EmbeddedPostgres | { url: string }> | undefined;

function quiet(message: string): void {
  if (Deno.env.get("TEST_PG_LOG")) console.error(`[pg] ${message}`);
}

/** Removes `dir` when the process unloads (after the server's own unload hook stopped it). */
function removeOnUnload(dir: string): void {
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // best effort
    }
  });
}

/**
 * The server shared by every test in this process: `TEST_DATABASE_URL` if set, else an
 * embedded PostgreSQL started on first use in a temporary folder.
 */
export function sharedServer(): Promise<EmbeddedPostgres | { url: string }> {
  shared ??= (async () => {
    const external = Deno.env.get("TEST_DATABASE_URL");
    if (external) return { url: external };
    const dir = await Deno.makeTempDir({ prefix: "candlekeep-test-pg-" });
    try {
      // makeTempDir makes 0700; the server's unprivileged user must reach the folder.
      await Deno.chmod(dir, 0o755);
      const server = await startEmbeddedPostgres(dir, { log: quiet });
      removeOnUnload(dir);
      return server;
    } catch (error) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw error;
    }
  })();
  // A failed start is retried by the next caller instead of failing every later test.
  shared.catch(() => (shared = undefined));
  return shared;
}

function admin(url: string): postgres.Sql {
  return postgres(url, {
    max: 1,
    onnotice: () => {},
    connect_timeout: 10,
    connection: { application_name: "candlekeep-tests-admin" },
  });
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Creates a fresh, empty database on the shared server; call `drop()` in `finally`. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const server = await sharedServer();
  const name = `test_${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
  const a = admin(server.url);
  try {
    await a.unsafe(`create database "${name}"`);
  } finally {
    await a.end({ timeout: 5 });
  }
  const url = withDatabase(server.url, name);
  const sql = postgres(url, { max: 4, onnotice: () => {} });
  let dropped: Promise<void> | undefined;
  return {
    url,
    sql,
    name,
    drop() {
      dropped ??= (async () => {
        await sql.end({ timeout: 5 }).catch(() => {});
        const b = admin(server.url);
        try {
          await b.unsafe(`drop database if exists "${name}" with (force)`);
        } finally {
          await b.end({ timeout: 5 });
        }
      })();
      return dropped;
    },
  };
}

/**
 * Starts an embedded PostgreSQL of its own in a new temporary folder, for tests that stop and
 * restart the server. Call `cleanup()` in `finally`.
 */
export async function startPrivateServer(): Promise<PrivateServer> {
  const dir = await Deno.makeTempDir({ prefix: "candlekeep-test-pg-private-" });
  let server: EmbeddedPostgres;
  try {
    await Deno.chmod(dir, 0o755);
    server = await startEmbeddedPostgres(dir, { log: quiet });
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
  let cleaned: Promise<void> | undefined;
  return {
    get url() {
      return server.url;
    },
    get port() {
      return server.port;
    },
    get dataDir() {
      return server.dataDir;
    },
    stop: () => server.stop(),
    start: () => server.start(),
    cleanup() {
      cleaned ??= (async () => {
        try {
          await server.stop();
        } finally {
          await Deno.remove(dir, { recursive: true }).catch(() => {});
        }
      })();
      return cleaned;
    },
  };
}
