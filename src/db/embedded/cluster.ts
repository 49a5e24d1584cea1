/**
 * Where the cluster lives (`DATA_DIR/postgres`, or a system folder it links to), its password
 * file, `initdb` and the settings file rewritten on every start.
 *
 * @module
 */
import { failure, type Launcher, type Log, type RunAs, runAsUser, tail, userCanReach } from "./command.ts";
import { SUPERUSER } from "./connection.ts";
import { absolute, chown, dirname, join, randomToken, shortHash, symlink, writePrivateFile } from "./paths.ts";

const SYSTEM_BASE = "/var/lib/candlekeep";
/** Unix socket paths are limited to 107 bytes; longer cluster paths get no socket. */
const MAX_SOCKET_DIR_LENGTH = 80;
const CONF_FILE = "candlekeep.conf";
/** In DATA_DIR: the superuser's password. */
export const PASSWORD_FILE = "postgres.password";

/** Where the cluster and the runtime copy live. */
export interface Layout {
  /** The real cluster folder. */
  clusterDir: string;
  /** Folder holding the runtime copy (DATA_DIR, or the /var/lib/candlekeep fallback). */
  base: string;
}

/**
 * Finds or creates the cluster folder of `dataDir`: `DATA_DIR/postgres`, the folder it links to,
 * or (when the launcher's user cannot reach DATA_DIR) a new folder under /var/lib/candlekeep.
 */
export async function layout(dataDir: string, launcher: Launcher, options: { log: Log }): Promise<Layout> {
  const { log } = options;
  const link = join(dataDir, "postgres");
  let info: Deno.FileInfo | undefined;
  try {
    info = await Deno.lstat(link);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (info?.isSymlink) {
    let target = await Deno.readLink(link);
    if (!target.startsWith("/")) target = absolute(join(dataDir, target));
    await Deno.mkdir(target, { recursive: true, mode: 0o700 });
    log("The embedded PostgreSQL cluster lives in {dir} ({link} links to it)", {
      dir: target,
      link,
    });
    return { clusterDir: target, base: dirname(target) };
  }
  if (info && !info.isDirectory) {
    throw failure(`${link} must be a folder: current value is a file`);
  }
  const reachable = !launcher.runAs || await userCanReach(launcher, dataDir);
  if (reachable) {
    await Deno.mkdir(link, { recursive: true, mode: 0o700 });
    return { clusterDir: link, base: dataDir };
  }
  if (info) {
    throw failure(
      `the user ${
        launcher.runAs!.name
      } cannot reach ${link}: current value is a folder under a private path; move it to ${SYSTEM_BASE} and symlink it, or set DATA_DIR elsewhere`,
    );
  }
  // Fall back to a system folder the unprivileged user can reach.
  const base = join(SYSTEM_BASE, await shortHash(dataDir));
  await Deno.mkdir(base, { recursive: true, mode: 0o755 });
  await Deno.chmod(SYSTEM_BASE, 0o755);
  await Deno.chmod(base, 0o755);
  const clusterDir = join(base, "postgres");
  await Deno.mkdir(clusterDir, { recursive: true, mode: 0o700 });
  await symlink(clusterDir, link);
  log(
    "The user {user} cannot reach {dataDir}: the embedded PostgreSQL cluster lives in {dir} and {link} links to it",
    { user: launcher.runAs!.name, dataDir, dir: clusterDir, link },
  );
  return { clusterDir, base };
}

/** The superuser password from `file`, created there for a new cluster. */
export async function readOrCreatePassword(file: string, clusterExists: boolean): Promise<string> {
  try {
    const text = (await Deno.readTextFile(file)).trim();
    if (text) return text;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (clusterExists) {
    throw failure(
      `the cluster exists but its password file ${file} is missing or empty: current value is absent; restore it or remove the cluster folder`,
    );
  }
  const password = randomToken(24);
  await writePrivateFile(file, `${password}\n`);
  return password;
}

/** Runs initdb into an empty `clusterDir` (a half-done cluster is cleared first). */
export async function initCluster(
  launcher: Launcher,
  where: Layout,
  options: { password: string; log: Log },
): Promise<void> {
  const { clusterDir, base } = where;
  const { password, log } = options;
  const entries: string[] = [];
  for await (const entry of Deno.readDir(clusterDir)) entries.push(entry.name);
  if (entries.length > 0) {
    const looksLikeCluster = entries.some((n) => ["global", "base", "pg_wal", "postgresql.conf"].includes(n));
    if (!looksLikeCluster) {
      throw failure(
        `${clusterDir} is not empty and holds no cluster: current value is ${entries.slice(0, 5).join(", ")}`,
      );
    }
    log("Removing the half-initialised cluster in {dir}", { dir: clusterDir });
    for (const name of entries) await Deno.remove(join(clusterDir, name), { recursive: true });
  }
  await Deno.chmod(clusterDir, 0o700);
  await chown(clusterDir, launcher.runAs);

  const pwfile = join(base, `.initdb-pw-${randomToken(6)}`);
  await Deno.writeTextFile(pwfile, `${password}\n`, { mode: 0o600 });
  try {
    await chown(pwfile, launcher.runAs);
    log("Initialising the PostgreSQL cluster in {dir}", { dir: clusterDir });
    const result = await runAsUser(launcher, [
      join(launcher.binDir, "initdb"),
      `--pgdata=${clusterDir}`,
      `--username=${SUPERUSER}`,
      `--pwfile=${pwfile}`,
      "--auth=scram-sha-256",
      "--encoding=UTF8",
      "--locale=C",
      "--no-instructions",
    ]);
    if (result.code !== 0) {
      throw failure(
        `initdb exited with code ${result.code}: ${tail(result.stderr || result.stdout)}`,
      );
    }
  } finally {
    await Deno.remove(pwfile).catch(() => {});
  }
  // Our settings live in their own file, rewritten on every start; include it once.
  const conf = join(clusterDir, "postgresql.conf");
  const text = await Deno.readTextFile(conf);
  await Deno.writeTextFile(
    conf,
    `${text}\n# Added by Candlekeep\ninclude_if_exists = '${CONF_FILE}'\n`,
  );
}

/** Writes Candlekeep's settings file into the cluster (on every start). */
export async function writeSettings(clusterDir: string, runAs: RunAs | undefined): Promise<void> {
  const socketDir = clusterDir.length <= MAX_SOCKET_DIR_LENGTH ? clusterDir : "";
  const quote = (v: string) => `'${v.replace(/'/g, "''")}'`;
  const lines = [
    "# Written by Candlekeep on every start; edit postgresql.conf or ALTER SYSTEM instead.",
    `listen_addresses = '127.0.0.1'`,
    `unix_socket_directories = ${quote(socketDir)}`,
    `timezone = 'UTC'`,
    `log_timezone = 'UTC'`,
    `log_destination = 'stderr'`,
    `logging_collector = off`,
    "",
  ];
  const file = join(clusterDir, CONF_FILE);
  await Deno.writeTextFile(file, lines.join("\n"), { mode: 0o600 });
  await chown(file, runAs);
}
