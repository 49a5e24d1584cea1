/**
 * One embedded PostgreSQL for every Candlekeep process of a DATA_DIR: the first runs it, the
 * others connect as clients, and one of them takes it over when its owner goes away.
 *
 * @module
 */
import { retry, sleep } from "../../retry.ts";
import { isCandlekeep, type Log } from "./command.ts";
import { connect, portFree } from "./connection.ts";
import { isBusy } from "./orphans.ts";
import { findRunning, readPublished, type Running, withStartLock } from "./registry.ts";
import { absolute } from "./paths.ts";
import type { EmbeddedOptions, EmbeddedPostgres } from "./server.ts";
import { startEmbeddedPostgres } from "./start.ts";

/** How long a process keeps trying to start the server while another process still runs it. */
const TAKEOVER_TIMEOUT_MS = 30_000;
/** How long the process that runs the server waits, when it stops, for other processes to leave. */
const LINGER_MS = 10_000;
/** How often a client checks that the process running the server is still there. */
const WATCH_INTERVAL_MS = 1_000;
/** Every this many checks, the owner's pid is checked too (one `cat` child). */
const WATCH_PID_EVERY = 5;

type Acquired = { server: EmbeddedPostgres; running?: undefined } | { running: Running; server?: undefined };

/**
 * Finds the published server, else starts one under the lock (on `port`, else on the stale
 * file's port when free, else a free one). While another process still runs PostgreSQL on the
 * cluster (it is stopping, or starting without the lock), it retries for a while.
 */
function acquire(
  dir: string,
  options: SharedEmbeddedOptions,
  takeover: { port?: number; cancelled?: () => boolean } = {},
): Promise<Acquired> {
  const log: Log = options.log ?? (() => {});
  return retry(async () => {
    if (takeover.cancelled?.()) throw new Error("Cannot start embedded PostgreSQL: cancelled");
    const found = await findRunning(dir, options.notice ?? log);
    if (found) return { running: found };
    return await withStartLock(dir, async (): Promise<Acquired> => {
      // Another process may have started it while this one waited for the lock.
      const again = await findRunning(dir, log);
      if (again) return { running: again };
      const stale = (await readPublished(dir))?.port;
      const use = takeover.port ?? (stale !== undefined && portFree(stale) ? stale : undefined);
      return { server: await startEmbeddedPostgres(dir, { ...options, port: use }) };
    });
  }, {
    timeoutMs: TAKEOVER_TIMEOUT_MS,
    delayMs: 250,
    shouldRetry: isBusy,
    onRetry: () => log("Another process still runs the embedded PostgreSQL of {dir}: retrying", { dir }),
  });
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
    const acquired = await acquire(this.dir, this.options, {
      port: this.port,
      cancelled: () => this.#closing !== undefined,
    });
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
    const sql = connect(this.port, { password, database: "postgres" });
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
