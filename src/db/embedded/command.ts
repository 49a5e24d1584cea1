/**
 * Running the embedded PostgreSQL's helper programs: a minimal environment, `setpriv` to drop
 * root to an unprivileged user, and reading other processes' state from /proc.
 *
 * @module
 */

/** Receives progress messages: templates with `{field}` placeholders, as in @logtape/logtape. */
export type Log = (message: string, fields?: Record<string, unknown>) => void;

/** The unprivileged account the binaries run as when Candlekeep runs as root. */
export interface RunAs {
  /** The user name. */
  name: string;
  /** Its uid. */
  uid: number;
  /** Its primary gid. */
  gid: number;
}

/** How to launch the server binaries. */
export interface Launcher {
  /** The user to run as (as root); undefined runs them as this process's user. */
  runAs?: RunAs;
  /** True when `setpriv` exists (always needed as root; used for --pdeathsig otherwise). */
  setpriv: boolean;
  /** `<runtime>/bin`. */
  binDir: string;
}

/** A finished helper program. */
export interface RunResult {
  /** Exit code (127 when it could not be spawned). */
  code: number;
  /** Its standard output. */
  stdout: string;
  /** Its standard error. */
  stderr: string;
}

/** How long a postmaster gets for a fast shutdown (SIGINT) before SIGQUIT. */
export const STOP_GRACE_MS = 10_000;

/** Errors thrown by the embedded PostgreSQL modules all start with this text. */
export function failure(message: string): Error {
  return new Error(`Cannot start embedded PostgreSQL: ${message}`);
}

/** The last `lines` lines of `text`. */
export function tail(text: string, lines = 15): string {
  const all = text.trim().split("\n");
  return all.slice(-lines).join("\n");
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
export function childEnv(): Record<string, string> {
  return {
    PATH: envPath(),
    LC_ALL: "C",
    LANG: "C",
    TZ: "UTC",
  };
}

/** Runs `command` to its end in {@linkcode childEnv}; a failure to spawn is code 127. */
export async function run(command: string, args: string[]): Promise<RunResult> {
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

/**
 * `argv` (a command and its arguments) as the launcher's user: through setpriv as root, directly
 * otherwise; `pdeathsig` also asks for a SIGINT when this process dies (where setpriv exists).
 */
export function wrap(
  launcher: Launcher,
  argv: readonly [string, ...string[]],
  options: { pdeathsig?: boolean } = {},
): [string, string[]] {
  const [command, ...args] = argv;
  const setprivArgs: string[] = [];
  if (launcher.runAs) {
    setprivArgs.push(
      `--reuid=${launcher.runAs.uid}`,
      `--regid=${launcher.runAs.gid}`,
      "--clear-groups",
    );
  }
  if (options.pdeathsig && launcher.setpriv) setprivArgs.push("--pdeathsig", "SIGINT");
  if (setprivArgs.length === 0) return [command, args];
  return ["setpriv", [...setprivArgs, "--", command, ...args]];
}

/** Runs `argv` (a command and its arguments) as the launcher's user. */
export function runAsUser(launcher: Launcher, argv: readonly [string, ...string[]]): Promise<RunResult> {
  return run(...wrap(launcher, argv));
}

/** True when `setpriv` can be run. */
export async function hasSetpriv(): Promise<boolean> {
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
export async function unprivilegedUser(log: Log): Promise<RunAs> {
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
export async function userCanReach(launcher: Launcher, dir: string): Promise<boolean> {
  return (await runAsUser(launcher, ["test", "-x", dir])).code === 0;
}

/** A process as /proc shows it. */
export interface ProcInfo {
  /** One letter: `R`, `S`, `Z` (zombie), `X` (dead), ... */
  state: string;
  /** The parent's pid. */
  ppid: number;
  /** The command line, arguments separated by spaces. */
  cmdline: string;
}

/**
 * Reads `/proc/<pid>/stat` and `cmdline`, or undefined when the process is gone. Deno only
 * lets `--allow-all` read /proc/<pid>, so a `cat` child reads them.
 */
export async function procInfo(pid: number): Promise<ProcInfo | undefined> {
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

/** True when `pid` is a live process (not a zombie). */
export async function alive(pid: number): Promise<boolean> {
  return live(await procInfo(pid));
}

/** True when `pid` is a live Candlekeep (Deno) process. */
export async function isCandlekeep(pid: number): Promise<boolean> {
  const info = await procInfo(pid);
  return live(info) && /deno|candlekeep/.test(info!.cmdline);
}

function live(info: ProcInfo | undefined): boolean {
  return info !== undefined && info.state !== "Z" && info.state !== "X";
}

/** Fast shutdown, then immediate shutdown, then kill, each with how long to wait for the exit. */
const STOP_STEPS = [["SIGINT", STOP_GRACE_MS], ["SIGQUIT", 5000], ["SIGKILL", 5000]] as const;

/**
 * Stops a postmaster with escalating signals: `kill` sends one (throwing when the process is
 * gone already), `waitExit` waits at most the given ms and tells whether it has exited.
 */
export async function stopWithSignals(
  kill: (signal: Deno.Signal) => void,
  waitExit: (ms: number) => Promise<boolean>,
  options: { onEscalate?: (signal: Deno.Signal) => void } = {},
): Promise<void> {
  for (const [signal, waitMs] of STOP_STEPS) {
    try {
      kill(signal);
    } catch {
      return; // already gone
    }
    if (signal !== "SIGINT") options.onEscalate?.(signal);
    if (await waitExit(waitMs)) return;
  }
}
