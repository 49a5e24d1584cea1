/**
 * The shared-server registry of a DATA_DIR: `postgres.json` publishes the running server to
 * the other processes, `postgres.lock` lets one process at a time check for it and start it.
 *
 * @module
 */
import { isCandlekeep, type Log } from "./command.ts";
import { PASSWORD_FILE } from "./cluster.ts";
import { answers, serverUrl } from "./connection.ts";
import { absolute, join, writePrivateFile } from "./paths.ts";

/** In DATA_DIR: how other processes reach the running server (see {@link PublishedPostgres}). */
const PUBLISHED_FILE = "postgres.json";
/** In DATA_DIR: held (flock) while a process checks for a running server and starts one. */
const LOCK_FILE = "postgres.lock";

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

/** Publishes this process's server in `home` (DATA_DIR): writes `postgres.json` atomically. */
export async function publish(home: string, info: PublishedPostgres): Promise<void> {
  const file = join(home, PUBLISHED_FILE);
  await writePrivateFile(file, `${JSON.stringify(info, null, 2)}\n`);
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

/** True when `text` publishes a server of this process (on `port`, when given). */
function ours(text: string, port?: number): boolean {
  const info = parsePublished(text);
  return info?.ownerPid === Deno.pid && (port === undefined || info.port === port);
}

/** Removes `home`'s `postgres.json` when it still describes this process's server on `port`. */
export async function unpublish(home: string, port: number): Promise<void> {
  const file = join(home, PUBLISHED_FILE);
  publishedByUs.delete(file);
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch {
    return;
  }
  if (ours(text, port)) await Deno.remove(file).catch(() => {});
}

/** Removes, synchronously (at unload), every `postgres.json` that still describes this process's server. */
export function unpublishAllSync(): void {
  for (const file of publishedByUs) {
    try {
      if (ours(Deno.readTextFileSync(file))) Deno.removeSync(file);
    } catch {
      // gone already
    }
  }
}

/** A published server with its connection URL. */
export interface Running extends PublishedPostgres {
  /** The connection URL, password included. */
  url: string;
}

/** The published server when its owner is alive and it answers; else undefined (logged why). */
export async function findRunning(dir: string, log: Log): Promise<Running | undefined> {
  const info = await readPublished(dir);
  if (!info) return undefined;
  let password: string;
  try {
    password = (await Deno.readTextFile(join(dir, PASSWORD_FILE))).trim();
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
  if (!(await answers(info.port, { password, clusterDir: info.clusterDir }))) {
    log("The embedded PostgreSQL of process {pid} does not answer on 127.0.0.1:{port}", {
      pid: info.ownerPid,
      port: info.port,
    });
    return undefined;
  }
  return { ...info, url: serverUrl(info.port, password) };
}

/** Runs `fn` holding the exclusive lock `DATA_DIR/postgres.lock` (released if the process dies). */
export async function withStartLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const file = await Deno.open(join(dir, LOCK_FILE), { read: true, write: true, create: true, mode: 0o600 });
  try {
    await file.lock(true);
    return await fn();
  } finally {
    file.close();
  }
}
