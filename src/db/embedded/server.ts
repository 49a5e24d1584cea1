/**
 * One embedded PostgreSQL server process: spawn, wait until ready, publish, forward its stderr,
 * stop (escalating signals), and stop it when Deno unloads.
 *
 * @module
 */
import { retry } from "../../retry.ts";
import { childEnv, failure, type Launcher, type Log, STOP_GRACE_MS, stopWithSignals, wrap } from "./command.ts";
import { writeSettings } from "./cluster.ts";
import { connect, DATABASE, serverUrl, tcpOpen } from "./connection.ts";
import { clearStalePostmaster, postmasterPid } from "./orphans.ts";
import { join } from "./paths.ts";
import { publish, unpublish, unpublishAllSync } from "./registry.ts";

const READY_TIMEOUT_MS = 30_000;
const STDERR_TAIL_LINES = 40;

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

/** Options for `startEmbeddedPostgres`. */
export interface EmbeddedOptions {
  /** TCP port on 127.0.0.1; by default a free one is picked. */
  port?: number;
  /**
   * Receives progress messages and the server's stderr, line by line. Messages are templates
   * in the style of @logtape/logtape: `{name}` refers to a field, `{{` and `}}` are literal.
   */
  log?: (message: string, fields?: Record<string, unknown>) => void;
}

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
    unpublishAllSync();
  });
}

/** What a {@linkcode Server} runs. */
export interface ServerOptions {
  /** The loopback port. */
  port: number;
  /** The real cluster folder. */
  dataDir: string;
  /** The superuser's password. */
  password: string;
  /** How to run the binaries. */
  launcher: Launcher;
  /** Progress messages and the server's stderr. */
  log: Log;
  /** DATA_DIR, where the server is published for other processes. */
  home: string;
}

/** The postmaster of one cluster, started and stopped as often as asked. */
export class Server implements EmbeddedPostgres {
  readonly url: string;
  #child: Deno.ChildProcess | undefined;
  #exited: Promise<Deno.CommandStatus> | undefined;
  #stopping: Promise<void> | undefined;
  #starting: Promise<void> | undefined;
  #stderrTail: string[] = [];

  readonly port: number;
  readonly dataDir: string;
  readonly #password: string;
  readonly #launcher: Launcher;
  readonly #log: Log;
  readonly #home: string;

  /** Prepares the server; {@linkcode Server.start} starts it. */
  constructor(options: ServerOptions) {
    this.port = options.port;
    this.dataDir = options.dataDir;
    this.#password = options.password;
    this.#launcher = options.launcher;
    this.#log = options.log;
    this.#home = options.home;
    this.url = serverUrl(options.port, options.password);
  }

  start(): Promise<void> {
    if (this.#child) return this.#starting ?? Promise.resolve();
    this.#starting = this.#start().finally(() => (this.#starting = undefined));
    return this.#starting;
  }

  async #start(): Promise<void> {
    if (this.#stopping) await this.#stopping;
    await clearStalePostmaster(this.dataDir, this.#log);
    await writeSettings(this.dataDir, this.#launcher.runAs);
    // Processes of a killed server may hold its shared memory for a moment: postgres then
    // refuses to start, so wait for them a little.
    await retry(() => this.#launch(), {
      timeoutMs: STOP_GRACE_MS,
      delayMs: 500,
      shouldRetry: () => this.#stderrTail.some((l) => l.includes("pre-existing shared memory block")),
      onRetry: () => this.#log("Old PostgreSQL processes still hold the shared memory: retrying"),
    });
  }

  async #launch(): Promise<void> {
    this.#stderrTail = [];
    const [cmd, args] = wrap(
      this.#launcher,
      [join(this.#launcher.binDir, "postgres"), "-D", this.dataDir, "-p", String(this.port)],
      { pdeathsig: true },
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
          this.#log("The embedded PostgreSQL exited unexpectedly with code {code}", {
            code: status.code,
            signal: status.signal,
          });
        }
      }
      return status;
    });
    try {
      await this.#waitReady(child);
      await publish(this.#home, {
        port: this.port,
        ownerPid: Deno.pid,
        postmasterPid: await postmasterPid(this.dataDir).catch(() => undefined) ?? child.pid,
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
      this.#log(line.replace(/[{}]/g, (b) => b + b), { source: "postgres" });
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
    let lastError = "";
    let exited: Deno.CommandStatus | undefined;
    this.#exited!.then((s) => (exited = s));
    const gone = () => exited !== undefined || this.#child !== child;
    try {
      await retry(async () => {
        if (gone()) throw new Error("exited");
        if (!(await tcpOpen(this.port))) throw new Error("not listening");
        const sql = connect(this.port, { password: this.#password, database: "postgres" });
        try {
          await sql`select 1`;
          const found = await sql`select 1 from pg_database where datname = ${DATABASE}`;
          if (found.length === 0) {
            this.#log("Creating the database {database}", { database: DATABASE });
            await sql.unsafe(`create database ${DATABASE}`);
          }
        } catch (error) {
          lastError = (error as Error).message;
          throw error;
        } finally {
          await sql.end({ timeout: 1 }).catch(() => {});
        }
      }, { timeoutMs: READY_TIMEOUT_MS, delayMs: 100, shouldRetry: () => !gone() });
    } catch {
      if (gone()) {
        await this.#exited;
        throw failure(`postgres exited with code ${exited?.code ?? "?"} while starting: ${this.#serverTail()}`);
      }
      throw failure(
        `the server did not accept connections on 127.0.0.1:${this.port} within ${
          READY_TIMEOUT_MS / 1000
        } s (last error: ${lastError || "connection refused"}): ${this.#serverTail()}`,
      );
    }
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
    await unpublish(this.#home, this.port);
    const exited = this.#exited!;
    let done = false;
    exited.then(() => (done = true));
    await stopWithSignals((signal) => {
      if (!done) child.kill(signal);
    }, async (waitMs) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))]);
      clearTimeout(timer);
      return done;
    }, {
      onEscalate: (signal) => this.#log("The embedded PostgreSQL did not stop in time: sending {signal}", { signal }),
    });
    await exited;
    if (this.#child === child) this.#child = undefined;
  }
}
