import type { Config } from "../config_types.ts";
import { getLogger } from "../log.ts";
import { type Database, openDatabase } from "./client.ts";
import { maskUrl } from "../config_redact.ts";

/** An open database plus, when embedded, the server process behind it. */
export interface DatabaseHandle {
  /** The pool with retry policy and readiness flag. */
  db: Database;
  /**
   * True when this process started the embedded PostgreSQL (it stops it on close); false with
   * `DATABASE_URL` or as a client of the server another process runs on the same DATA_DIR.
   */
  embedded: boolean;
  /** Where the data lives, for people: the embedded server's folder and port, or the masked URL. */
  where: string;
  /** Ends the pool and, when this process runs the embedded server, stops it. */
  close(): Promise<void>;
}

/**
 * Connects to `DATABASE_URL`, or, when it is unset, to the embedded PostgreSQL in
 * `DATA_DIR/postgres`: to the server another Candlekeep process already runs there (published
 * in `DATA_DIR/postgres.json`), else to one it starts itself. The embedded module is imported
 * only in that case, so with a URL nothing spawns processes or writes files.
 */
export async function connectDatabase(config: Config): Promise<DatabaseHandle> {
  const log = getLogger("db");
  if (config.databaseUrl) {
    const db = await openDatabase(config.databaseUrl, {
      max: config.dbPoolMax,
    });
    return { db, embedded: false, where: maskUrl(config.databaseUrl), close: () => db.close() };
  }
  const { openSharedEmbeddedPostgres } = await import("./embedded/mod.ts");
  const pgLog = getLogger("postgres");
  const dir = `${config.dataDir}/postgres`;
  log.info("DATABASE_URL is not set: using the embedded PostgreSQL in {dir}", { dir });
  const server = await openSharedEmbeddedPostgres(config.dataDir, {
    log: (message: string, fields?: Record<string, unknown>) => pgLog.debug(message, fields ?? {}),
    notice: (message: string, fields?: Record<string, unknown>) => log.info(message, fields ?? {}),
  });
  if (server.owner) {
    log.info("Embedded PostgreSQL is running on 127.0.0.1:{port}; this process stops it on exit", {
      port: server.port,
    });
  } else {
    log.info(
      "Embedded PostgreSQL is already run by process {pid} on 127.0.0.1:{port}: connecting as a client (this process neither starts nor stops it)",
      { pid: server.ownerPid, port: server.port },
    );
  }
  try {
    const db = await openDatabase(server.url, { max: config.dbPoolMax });
    return {
      db,
      embedded: server.owner,
      where: `embedded PostgreSQL in ${dir} (127.0.0.1:${server.port})`,
      close: async () => {
        await db.close().catch(() => {});
        const owner = server.owner;
        await server.close();
        if (owner) log.info("Embedded PostgreSQL stopped");
      },
    };
  } catch (error) {
    await server.close();
    throw error;
  }
}
