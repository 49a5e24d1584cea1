/**
 * What an earlier run left behind in the cluster: a stale `postmaster.pid`, or an orphaned
 * postmaster whose Candlekeep parent was killed.
 *
 * @module
 */
import { alive, failure, type Log, procInfo, stopWithSignals } from "./command.ts";
import { join } from "./paths.ts";
import { sleep } from "../../retry.ts";

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

/** True when `error` says another live server holds the cluster. */
export function isBusy(error: unknown): boolean {
  return error instanceof ClusterBusyError ||
    /lock file "postmaster\.pid" already exists/.test((error as Error)?.message ?? "");
}

/**
 * Handles `postmaster.pid` from an earlier run. A dead pid is left to postgres, which checks
 * the old shared memory before it removes the file; a pid now used by a program that is not
 * PostgreSQL is removed (postgres refuses a pid reused by a process of its own user). An
 * orphaned postmaster of this cluster, whose Deno parent was killed, is shut down; one with a
 * live parent is reported. Other postgres processes are left to postgres' own lock check.
 */
export async function clearStalePostmaster(clusterDir: string, log: Log): Promise<void> {
  const pid = await postmasterPid(clusterDir);
  if (pid === undefined) return;
  const info = await procInfo(pid);
  // A dead pid: postgres removes the file itself, after checking that no process of the old
  // server still holds its shared memory, so the file stays.
  if (!info || info.state === "Z") return;
  if (!/postgres/.test(info.cmdline)) {
    log("Removing the stale postmaster.pid (pid {pid} now belongs to another program)", { pid });
    await Deno.remove(join(clusterDir, "postmaster.pid")).catch(() => {});
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
  await stopWithSignals((signal) => Deno.kill(pid, signal), async (waitMs) => {
    const deadline = Date.now() + waitMs;
    while (await alive(pid) && Date.now() < deadline) await sleep(100);
    return !(await alive(pid));
  });
  if (await alive(pid)) {
    throw failure(`the orphaned PostgreSQL would not stop: current value is pid ${pid}`);
  }
}

/** The pid in the cluster's `postmaster.pid`; undefined when there is none or it is not a pid. */
export async function postmasterPid(clusterDir: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(clusterDir, "postmaster.pid"));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const pid = Number(text.split("\n")[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}
