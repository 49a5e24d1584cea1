/**
 * Connecting to the embedded PostgreSQL: its superuser and database, its URL, its loopback port.
 *
 * @module
 */
import postgres from "postgres";

/** The superuser initdb creates. */
export const SUPERUSER = "candlekeep";
/** The database Candlekeep uses, created on the first start. */
export const DATABASE = "candlekeep";

/** The connection URL of the server on `port`. */
export function serverUrl(port: number, password: string): string {
  return `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${DATABASE}`;
}

/** A one-connection pool on the server on `port`, with short timeouts, for checks. */
export function connect(port: number, options: { password: string; database: string }): postgres.Sql {
  return postgres({
    host: "127.0.0.1",
    port,
    user: SUPERUSER,
    pass: options.password,
    database: options.database,
    max: 1,
    ssl: false,
    connect_timeout: 2,
    idle_timeout: 1,
    onnotice: () => {},
    connection: { application_name: "candlekeep-embedded" },
  });
}

/** True when the server on `port` accepts `password` and serves `clusterDir`. */
export async function answers(port: number, options: { password: string; clusterDir: string }): Promise<boolean> {
  const sql = connect(port, { password: options.password, database: DATABASE });
  try {
    const [row] = await sql<{ dir: string }[]>`select current_setting('data_directory') as dir`;
    return row?.dir === options.clusterDir;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

/** A loopback port nothing listens on now. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** True when nothing listens on the loopback `port`. */
export function portFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

/** True when something accepts TCP connections on the loopback `port`. */
export async function tcpOpen(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}
