import type { Config } from "../config_types.ts";
import { getLogger } from "../log.ts";
import { type Database, openDatabase } from "./client.ts";

/** An open database plus, when embedded, the server process behind it. */
export interface DatabaseHandle {
  /** The pool with retry policy and readiness flag. */
  db: Database;
  /** True when Candlekeep started its own embedded PostgreSQL. */
  embedded: boolean;
  /** Ends the pool and stops the embedded server, if any. */
  close(): Promise<void>;
}

/**
 * Connects to `DATABASE_URL`, or, when it is unset, starts the embedded PostgreSQL in
 * `DATA_DIR/postgres` first. The embedded module is imported only in that case, so with a
 * URL nothing spawns processes or writes files.
 */
export async function connectDatabase(config: Config): Promise<DatabaseHandle> {
  const log = getLogger("db");
  if (config.databaseUrl) {
    const db = await openDatabase(config.databaseUrl, {
      max: config.dbPoolMax,
    });
    return { db, embedded: false, close: () => db.close() };
  }
  const { startEmbeddedPostgres } = await import("./embedded.ts");
  const pgLog = getLogger("postgres");
  log.info(
    "DATABASE_URL is not set: starting the embedded PostgreSQL in {dir}",
    {
      dir: `${config.dataDir}/postgres`,
    },
  );
  const server = await startEmbeddedPostgres(config.dataDir, {
    log: (message: string, fields?: Record<string, unknown>) => pgLog.debug(message, fields ?? {}),
  });
  log.info("Embedded PostgreSQL is running on 127.0.0.1:{port}", {
    port: server.port,
  });
  try {
    const db = await openDatabase(server.url, { max: config.dbPoolMax });
    return {
      db,
      embedded: true,
      close: async () => {
        await db.close().catch(() => {});
        await server.stop();
        log.info("Embedded PostgreSQL stopped");
      },
    };
  } catch (error) {
    await server.stop();
    throw error;
  }
}
