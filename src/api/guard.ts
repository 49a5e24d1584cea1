/**
 * A small TCP front for the API that enforces what `Deno.serve` cannot: a deadline for each
 * request head (slowloris), a deadline for each request body, an idle timeout for keep-alive
 * connections and a cap on open connections.
 *
 * `Deno.serve` (Deno 2.9) has no option for any of these and does not accept a listener, so
 * {@linkcode serveGuarded} listens itself, watches the bytes a client sends (HTTP/1 request
 * framing only, followed by request_framing.ts: heads, `Content-Length` and chunked bodies) and
 * pipes them unchanged to an internal `Deno.serve` on a loopback port; responses are piped back
 * unchanged. Handlers stay plain `Request → Response` functions.
 *
 * @module
 */
import { RequestFraming } from "./request_framing.ts";

/** Limits enforced on every client connection. */
export interface ConnectionLimits {
  /**
   * A request head (request line and headers) must arrive whole within this many ms of its
   * first byte; the first head of a connection, within this many ms of the accept.
   */
  headerTimeoutMs: number;
  /** A request body must arrive whole within this many ms of the end of its head. */
  bodyTimeoutMs: number;
  /** A connection with no request in progress and no traffic for this many ms is closed. */
  idleTimeoutMs: number;
  /**
   * Open client connections at most. One more evicts the connection that has waited longest
   * for a request head (a partial head since its first byte, an idle keep-alive connection
   * since its last traffic); when every connection has a request in progress it gets a 503.
   */
  maxConnections: number;
  /** Largest request head in bytes; a larger one gets a 431 and the connection is closed. */
  maxHeadBytes: number;
}

/** The limits used unless overridden. */
export const DEFAULT_LIMITS: Readonly<ConnectionLimits> = Object.freeze({
  headerTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  idleTimeoutMs: 30_000,
  maxConnections: 256,
  maxHeadBytes: 64 * 1024,
});

/** Why the front closed a connection (for logs and tests). */
export type CloseReason = "header-timeout" | "body-timeout" | "idle" | "evicted" | "over-capacity" | "head-too-large";

/** A server behind the front. */
export interface GuardedServer {
  /** The public port (useful with port 0). */
  port: number;
  /** The loopback port of the internal `Deno.serve`: it refuses every connection not made by the front. */
  internalPort: number;
  /** Resolves when the server and every connection have stopped. */
  finished: Promise<void>;
  /** Stops accepting, lets running requests finish, then closes every connection. */
  shutdown(): Promise<void>;
  /** Open client connections now. */
  connections(): number;
}

/** Options of {@linkcode serveGuarded}. */
export interface GuardOptions {
  hostname: string;
  port: number;
  signal?: AbortSignal;
  limits?: Partial<ConnectionLimits>;
  onListen?: (addr: Deno.NetAddr) => void;
  /** Called when the front closes a connection on its own. */
  onClose?: (reason: CloseReason) => void;
}

const encoder = new TextEncoder();

/** A raw HTTP/1.1 response with a JSON error body; the connection is closed after it. */
function rawResponse(status: number, reason: string, message: string, extra = ""): Uint8Array {
  const body = JSON.stringify({ error: message });
  return encoder.encode(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${encoder.encode(body).byteLength}\r\nconnection: close\r\n${extra}\r\n${body}`,
  );
}

/** One client connection and its pipe to the internal server. */
class Front extends RequestFraming {
  /** Handlers running for this connection's requests. */
  busy = 0;
  lastActivity: number;
  /** Any byte of a response was sent: the front must not write its own responses any more. */
  responded = false;
  closed = false;
  inner?: Deno.TcpConn;

  constructor(readonly client: Deno.TcpConn, now: number) {
    super(now);
    this.lastActivity = now;
  }

  /** Waiting for a head (partial or not yet started), with no request in progress. */
  get waiting(): boolean {
    return this.busy === 0 && !this.raw && this.bodyStartedAt === null;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const conn of [this.client, this.inner]) {
      try {
        conn?.close();
      } catch { /* already closed */ }
    }
  }
}

/**
 * Serves `handler` on `hostname:port` behind the front (see the module documentation).
 * Listening errors (`Deno.errors.AddrInUse`) are thrown synchronously.
 */
export function serveGuarded(
  handler: (req: Request) => Response | Promise<Response>,
  options: GuardOptions,
): GuardedServer {
  const limits: ConnectionLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const listener = Deno.listen({ hostname: options.hostname, port: options.port, transport: "tcp" });
  const fronts = new Set<Front>();
  const byInnerPort = new Map<number, Front>();
  const onClose = options.onClose ?? (() => {});
  let stopping = false;
  let inner: Deno.HttpServer<Deno.NetAddr>;
  try {
    inner = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req, info) => {
      const front = byInnerPort.get(info.remoteAddr.port);
      if (!front) {
        // Not one of the front's own connections: someone found the loopback port. Nothing
        // bypasses the limits, so refuse.
        return new Response(
          JSON.stringify({ error: "Cannot serve this connection: connect through the API port" }),
          { status: 403, headers: { "content-type": "application/json; charset=utf-8", connection: "close" } },
        );
      }
      front.busy++;
      try {
        return await handler(req);
      } finally {
        front.busy--;
        front.lastActivity = Date.now();
      }
    });
  } catch (error) {
    listener.close();
    throw error;
  }
  const innerPort = inner.addr.port;

  const end = (front: Front, reason: CloseReason | null, response?: Uint8Array) => {
    if (front.closed) return;
    if (reason) onClose(reason);
    if (response && !front.responded) {
      front.responded = true;
      front.client.write(response).catch(() => {}).finally(() => front.close());
    } else {
      front.close();
    }
  };

  const sweep = () => {
    const now = Date.now();
    for (const f of fronts) {
      if (f.closed) continue;
      if (f.waiting && f.headStartedAt !== null) {
        if (now - f.headStartedAt > limits.headerTimeoutMs) {
          end(
            f,
            "header-timeout",
            rawResponse(
              408,
              "Request Timeout",
              `Cannot read the request head: current wait is over ${limits.headerTimeoutMs} ms, the limit`,
            ),
          );
        }
      } else if (f.bodyStartedAt !== null) {
        if (now - f.bodyStartedAt > limits.bodyTimeoutMs) end(f, "body-timeout");
      } else if (f.busy === 0 && now - f.lastActivity > limits.idleTimeoutMs) {
        end(f, "idle");
      }
    }
  };
  const tick = Math.max(50, Math.min(1000, Math.floor(Math.min(limits.headerTimeoutMs, limits.idleTimeoutMs) / 4)));
  const timer = setInterval(sweep, tick);

  /** Makes room for one more connection; false when every connection has a request in progress. */
  const makeRoom = (): boolean => {
    if (fronts.size < limits.maxConnections) return true;
    let victim: Front | undefined;
    let victimKey = Infinity;
    for (const f of fronts) {
      if (f.closed || !f.waiting) continue;
      // The one waiting longest: a partial head since its start (bytes dribbled in do not count),
      // an idle keep-alive connection since its last traffic.
      const key = f.headStartedAt ?? f.lastActivity;
      if (key < victimKey) {
        victim = f;
        victimKey = key;
      }
    }
    if (!victim) return false;
    end(victim, "evicted");
    fronts.delete(victim);
    return true;
  };

  const pump = async (from: Deno.TcpConn, to: Deno.TcpConn, front: Front, fromClient: boolean) => {
    const buf = new Uint8Array(64 * 1024);
    try {
      while (!front.closed) {
        const n = await from.read(buf);
        if (n === null) break;
        const now = Date.now();
        front.lastActivity = now;
        let chunk = buf.subarray(0, n);
        if (fromClient) {
          if (!front.observe(chunk, now, limits.maxHeadBytes)) {
            const message =
              `Cannot read the request head: current size is over ${limits.maxHeadBytes} bytes, the limit`;
            end(front, "head-too-large", rawResponse(431, "Request Header Fields Too Large", message));
            return;
          }
        } else {
          front.responded = true;
        }
        while (chunk.length > 0) {
          const written = await to.write(chunk);
          chunk = chunk.subarray(written);
        }
        front.lastActivity = Date.now();
      }
      if (fromClient) await to.closeWrite().catch(() => front.close());
      else front.close();
    } catch {
      front.close();
    }
  };

  const connect = async (client: Deno.TcpConn) => {
    const front = new Front(client, Date.now());
    fronts.add(front);
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: innerPort });
      // Bytes are relayed as they come: Nagle's algorithm would hold the tail of a response
      // until the client's delayed ACK (~40 ms a request).
      client.setNoDelay(true);
      conn.setNoDelay(true);
      front.inner = conn;
      if (front.closed) {
        conn.close();
        return;
      }
      const port = conn.localAddr.port;
      byInnerPort.set(port, front);
      await Promise.all([pump(client, conn, front, true), pump(conn, client, front, false)]);
      byInnerPort.delete(port);
    } catch {
      // The internal server is gone (shutting down).
    } finally {
      front.close();
      fronts.delete(front);
    }
  };

  const accepting = (async () => {
    const running = new Set<Promise<void>>();
    try {
      for await (const client of listener) {
        if (stopping) {
          client.close();
          continue;
        }
        if (!makeRoom()) {
          onClose("over-capacity");
          const message = `Cannot accept the connection: current open connections are ${fronts.size}, the limit`;
          client.write(rawResponse(503, "Service Unavailable", message, "retry-after: 1\r\n"))
            .catch(() => {}).finally(() => client.close());
          continue;
        }
        const task = connect(client);
        running.add(task);
        task.finally(() => running.delete(task));
      }
    } catch {
      // The listener was closed.
    }
    await Promise.all(running);
  })();

  let finished: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    if (finished) return finished;
    stopping = true;
    try {
      listener.close();
    } catch { /* already closed */ }
    // Connections with no request in progress are closed now; running requests finish first.
    for (const f of fronts) if (f.waiting) f.close();
    finished = (async () => {
      await inner.shutdown().catch(() => {});
      for (const f of fronts) f.close();
      clearInterval(timer);
      await accepting;
      await inner.finished;
    })();
    return finished;
  };

  let resolveFinished!: () => void;
  const allFinished = new Promise<void>((resolve) => resolveFinished = resolve);
  inner.finished.then(() => shutdown()).then(resolveFinished);
  if (options.signal) {
    if (options.signal.aborted) shutdown();
    else options.signal.addEventListener("abort", () => shutdown(), { once: true });
  }
  const addr = listener.addr as Deno.NetAddr;
  options.onListen?.(addr);
  return {
    port: addr.port,
    internalPort: innerPort,
    finished: allFinished,
    shutdown,
    connections: () => fronts.size,
  };
}
