/**
 * A test double for Deno Deploy's cron control plane.
 *
 * When `DENO_UNSTABLE_CRON_SOCK=unix:PATH` is set, the Deno runtime does not schedule crons
 * itself: every worker (the main worker, and each web worker) connects to PATH once at startup
 * and speaks newline-delimited JSON with the host (deno `ext/cron/socket.rs`, 2.9.x):
 *
 * - runtime → host: `{"kind":"register","crons":[{"name","schedule","backoff_schedule"?}]}`,
 *   one message per `Deno.cron` call (always a one-element array; `backoff_schedule` is left
 *   out when the call gave no `backoffSchedule`). The host answers nothing.
 * - host → runtime: `{"kind":"reject-new-crons","reason":string}`; the runtime answers
 *   `{"kind":"reject-ack"}` (only to the first one) and from then on `Deno.cron` throws
 *   `Error: Error registering cron: <reason>`.
 * - host → runtime: `{"kind":"invoke","name":string,"traceparent":string|null}`; when the
 *   handler has settled the runtime answers `{"kind":"result","name":string,"success":bool}`.
 *
 * This module plays the host side over a Unix socket in a fresh temp dir.
 *
 * @module
 */

/** The environment variable through which the runtime finds the cron host. */
export const CRON_SOCK_ENV = "DENO_UNSTABLE_CRON_SOCK";

/** One cron as the runtime registered it. */
export interface RegisteredCron {
  /** The `Deno.cron` name. */
  name: string;
  /** The schedule as a five-field cron string (object schedules arrive already formatted). */
  schedule: string;
  /** The `backoffSchedule` option in ms, or `null` when the call gave none. */
  backoffSchedule: number[] | null;
  /**
   * Index, in accept order, of the connection that registered it. The main worker and every web
   * worker each open their own connection, in no guaranteed order.
   */
  connection: number;
}

/** One line on the socket, in either direction. */
export interface CronHostLogEntry {
  /** `in`: runtime → host; `out`: host → runtime. */
  direction: "in" | "out";
  /** Index of the connection the line travelled on. */
  connection: number;
  /** `performance.now()` when the line was fully received or written. */
  at: number;
  /** The line without its trailing newline. */
  raw: string;
  /** The parsed JSON, or `undefined` when the line was not valid JSON. */
  message: unknown;
}

/** Outcome of one cron invocation. */
export interface InvokeResult {
  /** The runtime's verdict: `false` when the handler threw or rejected. */
  success: boolean;
  /** Wall time in ms from writing the invoke message to receiving the result. */
  ms: number;
}

/** Options of {@linkcode startCronHost}. */
export interface CronHostOptions {
  /** Prefix of the temp dir holding the socket (default `cron-host-`). */
  prefix?: string;
  /** Default timeout in ms of the waiting methods (default 10 000). */
  timeoutMs?: number;
}

/** A running cron host; see {@linkcode startCronHost}. */
export interface CronHost extends AsyncDisposable {
  /** Path of the Unix socket. */
  readonly socketPath: string;
  /** Value to give the child as `DENO_UNSTABLE_CRON_SOCK` (`unix:PATH`). */
  readonly envValue: string;
  /** Number of runtime connections accepted so far. */
  connections(): number;
  /** Crons registered so far, in arrival order. */
  registered(): RegisteredCron[];
  /** Resolves with the registrations once at least `n` have arrived; rejects after `timeoutMs`. */
  waitForRegistrations(n: number, timeoutMs?: number): Promise<RegisteredCron[]>;
  /**
   * Sends `reject-new-crons` on every open connection and resolves when each has answered
   * `reject-ack`. Throws if crons were already rejected (the runtime acks only once).
   */
  rejectNewCrons(reason: string, timeoutMs?: number): Promise<void>;
  /**
   * Sends `invoke` for a registered cron and resolves when its `result` arrives. Throws if the
   * name is not registered or an invocation of it is still running.
   */
  invoke(name: string, timeoutMs?: number, traceparent?: string | null): Promise<InvokeResult>;
  /** Every line sent or received so far, in order. */
  log(): CronHostLogEntry[];
  /** Closes the listener and all connections and removes the temp dir. Idempotent. */
  close(): Promise<void>;
}

interface Connection {
  index: number;
  conn: Deno.UnixConn;
  /** Tail of the write chain, so lines never interleave. */
  writing: Promise<void>;
  open: boolean;
  rejectAcked: boolean;
  reading: Promise<void>;
}

interface Pending {
  connection: number;
  started: number;
  result?: InvokeResult;
}

type Waiter = () => void;

const encoder = new TextEncoder();

/** Fails with the house error format. */
function cannot(what: string, current: string): Error {
  return new Error(`Cannot ${what}: current value is ${current}`);
}

/**
 * Starts a cron host listening on `unix:<tempdir>/cron.sock`. Give the child
 * `{ DENO_UNSTABLE_CRON_SOCK: host.envValue }` (plus `--unstable-cron` or `"unstable": ["cron"]`).
 * The socket must exist before the child starts: the runtime connects once, at worker start,
 * and never retries.
 */
export async function startCronHost(options: CronHostOptions = {}): Promise<CronHost> {
  const defaultTimeout = options.timeoutMs ?? 10_000;
  const dir = await Deno.makeTempDir({ prefix: options.prefix ?? "cron-host-" });
  const socketPath = `${dir}/cron.sock`;
  // sockaddr_un.sun_path is 108 bytes on Linux (104 on macOS), including the NUL.
  if (encoder.encode(socketPath).length > 103) {
    await Deno.remove(dir, { recursive: true });
    throw cannot("listen on the cron socket", `a ${socketPath.length}-byte path (${socketPath})`);
  }
  const listener = Deno.listen({ transport: "unix", path: socketPath });

  const connections: Connection[] = [];
  const crons: RegisteredCron[] = [];
  const entries: CronHostLogEntry[] = [];
  const pending = new Map<string, Pending>();
  const waiters = new Set<Waiter>();
  let rejectedReason: string | null = null;
  let closed = false;

  const notify = () => {
    for (const waiter of [...waiters]) waiter();
  };

  /** Resolves once `ready()` returns a value; rejects when it throws, after `timeoutMs`, or on close. */
  const waitUntil = <T>(
    what: string,
    ready: () => T | undefined,
    current: () => string,
    timeoutMs: number,
  ): Promise<T> => {
    return new Promise<T>((resolve, reject) => {
      const finish = (error: Error | null, value?: T) => {
        clearTimeout(timer);
        waiters.delete(check);
        if (error) reject(error);
        else resolve(value as T);
      };
      const check: Waiter = () => {
        if (closed) return finish(cannot(what, `closed (${current()})`));
        let value: T | undefined;
        try {
          value = ready();
        } catch (error) {
          return finish(error as Error);
        }
        if (value !== undefined) finish(null, value);
      };
      const timer = setTimeout(
        () => finish(cannot(what, `${current()} after ${timeoutMs} ms`)),
        timeoutMs,
      );
      waiters.add(check);
      check();
    });
  };

  const send = (connection: Connection, message: Record<string, unknown>): Promise<void> => {
    const raw = JSON.stringify(message);
    const bytes = encoder.encode(raw + "\n");
    const write = connection.writing.then(async () => {
      if (!connection.open) throw cannot(`send ${raw}`, `connection ${connection.index} closed`);
      for (let offset = 0; offset < bytes.length;) {
        offset += await connection.conn.write(bytes.subarray(offset));
      }
      entries.push({ direction: "out", connection: connection.index, at: performance.now(), raw, message });
    });
    connection.writing = write.catch(() => {});
    return write;
  };

  const handleLine = (connection: Connection, raw: string) => {
    const at = performance.now();
    let message: unknown;
    try {
      message = JSON.parse(raw);
    } catch {
      message = undefined;
    }
    entries.push({ direction: "in", connection: connection.index, at, raw, message });
    const msg = (message ?? {}) as Record<string, unknown>;
    switch (msg.kind) {
      case "register":
        for (const cron of (msg.crons ?? []) as Record<string, unknown>[]) {
          crons.push({
            name: String(cron.name),
            schedule: String(cron.schedule),
            backoffSchedule: Array.isArray(cron.backoff_schedule) ? cron.backoff_schedule as number[] : null,
            connection: connection.index,
          });
        }
        break;
      case "reject-ack":
        connection.rejectAcked = true;
        break;
      case "result": {
        const name = String(msg.name);
        const run = pending.get(name);
        // A result for a cron we did not invoke (or whose invoke timed out) stays in the log only.
        if (run && run.connection === connection.index) {
          pending.delete(name);
          run.result = { success: msg.success === true, ms: at - run.started };
        }
        break;
      }
    }
    notify();
  };

  const readLoop = async (connection: Connection) => {
    const decoder = new TextDecoder();
    const buffer = new Uint8Array(64 * 1024);
    let partial = "";
    try {
      while (true) {
        const n = await connection.conn.read(buffer);
        if (n === null) break;
        partial += decoder.decode(buffer.subarray(0, n), { stream: true });
        let newline: number;
        while ((newline = partial.indexOf("\n")) !== -1) {
          const line = partial.slice(0, newline).replace(/\r$/, "");
          partial = partial.slice(newline + 1);
          if (line.trim() !== "") handleLine(connection, line);
        }
      }
      partial += decoder.decode();
      if (partial.trim() !== "") handleLine(connection, partial);
    } catch (error) {
      // close() closes the conn under a pending read; anything else is worth seeing in the log.
      if (!closed) {
        entries.push({
          direction: "in",
          connection: connection.index,
          at: performance.now(),
          raw: `<read error: ${error}>`,
          message: undefined,
        });
      }
    } finally {
      connection.open = false;
      if (!closed) {
        try {
          connection.conn.close();
        } catch {
          // already closed
        }
      }
      notify();
    }
  };

  const acceptLoop = (async () => {
    while (true) {
      let conn: Deno.UnixConn;
      try {
        conn = await listener.accept();
      } catch {
        return; // listener closed
      }
      if (closed) {
        conn.close();
        return;
      }
      const connection: Connection = {
        index: connections.length,
        conn,
        writing: Promise.resolve(),
        open: true,
        rejectAcked: false,
        reading: Promise.resolve(),
      };
      connections.push(connection);
      connection.reading = readLoop(connection);
      // A runtime that connects after the reject still has to be told.
      if (rejectedReason !== null) {
        send(connection, { kind: "reject-new-crons", reason: rejectedReason }).catch(() => {});
      }
      notify();
    }
  })();

  const describeCrons = () =>
    `${crons.length} registered${crons.length ? ` (${crons.map((c) => c.name).join(", ")})` : ""}`;

  const host: CronHost = {
    socketPath,
    envValue: `unix:${socketPath}`,
    connections: () => connections.length,
    registered: () => crons.map((cron) => ({ ...cron, backoffSchedule: cron.backoffSchedule?.slice() ?? null })),
    waitForRegistrations(n, timeoutMs = defaultTimeout) {
      return waitUntil(
        `wait for ${n} cron registrations`,
        () => crons.length >= n ? host.registered() : undefined,
        describeCrons,
        timeoutMs,
      );
    },
    async rejectNewCrons(reason, timeoutMs = defaultTimeout) {
      const what = "reject new crons";
      if (closed) throw cannot(what, "closed");
      if (rejectedReason !== null) throw cannot(what, `already rejected (${JSON.stringify(rejectedReason)})`);
      const open = connections.filter((c) => c.open);
      if (open.length === 0) throw cannot(what, `${connections.length} connections, none open`);
      rejectedReason = reason;
      await Promise.all(open.map((c) => send(c, { kind: "reject-new-crons", reason })));
      await waitUntil(
        what,
        () => {
          if (open.every((c) => c.rejectAcked)) return true;
          const gone = open.find((c) => !c.open && !c.rejectAcked);
          if (gone) throw cannot(what, `connection ${gone.index} closed without a reject-ack`);
          return undefined;
        },
        () => `${open.filter((c) => c.rejectAcked).length} of ${open.length} reject-acks`,
        timeoutMs,
      );
    },
    async invoke(name, timeoutMs = defaultTimeout, traceparent = null) {
      const what = `invoke cron ${JSON.stringify(name)}`;
      if (closed) throw cannot(what, "closed");
      // The latest registration wins, like a redeploy would.
      const cron = crons.findLast((c) => c.name === name);
      if (!cron) throw cannot(what, `unregistered (${describeCrons()})`);
      const connection = connections[cron.connection];
      if (!connection.open) throw cannot(what, `connection ${connection.index} closed`);
      // The runtime buffers one invoke per cron while the handler runs and drops any further one,
      // and results carry only the name: overlapping runs could not be told apart.
      if (pending.has(name)) throw cannot(what, "still running from an earlier invoke");
      const run: Pending = { connection: connection.index, started: performance.now() };
      pending.set(name, run);
      try {
        await send(connection, { kind: "invoke", name, traceparent });
        return await waitUntil(
          what,
          () => {
            if (run.result) return run.result;
            if (!connection.open) throw cannot(what, `connection ${connection.index} closed without a result`);
            return undefined;
          },
          () => "no result",
          timeoutMs,
        );
      } finally {
        if (pending.get(name) === run) pending.delete(name);
      }
    },
    log: () => entries.map((entry) => ({ ...entry })),
    async close() {
      if (closed) return;
      closed = true;
      try {
        listener.close();
      } catch {
        // already closed
      }
      await acceptLoop;
      for (const connection of connections) {
        await connection.writing;
        connection.open = false;
        try {
          connection.conn.close();
        } catch {
          // closed by the read loop at EOF
        }
      }
      await Promise.all(connections.map((c) => c.reading));
      notify();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
    [Symbol.asyncDispose]: () => host.close(),
  };
  return host;
}
