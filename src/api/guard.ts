/**
 * A small TCP front for the API that enforces what `Deno.serve` cannot: a deadline for each
 * request head (slowloris), a deadline for each request body, an idle timeout for keep-alive
 * connections and a cap on open connections.
 *
 * `Deno.serve` (Deno 2.9) has no option for any of these and does not accept a listener, so
 * {@linkcode serveGuarded} listens itself, watches the bytes a client sends (HTTP/1 request
 * framing only: heads, `Content-Length` and chunked bodies) and pipes them unchanged to an
 * internal `Deno.serve` on a loopback port; responses are piped back unchanged. Handlers stay
 * plain `Request → Response` functions.
 *
 * @module
 */

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
const latin1 = new TextDecoder("latin1");
const LF = 10;
const CR = 13;
const MAX_LINE = 4096;

/** A raw HTTP/1.1 response with a JSON error body; the connection is closed after it. */
function rawResponse(status: number, reason: string, message: string, extra = ""): Uint8Array {
  const body = JSON.stringify({ error: message });
  return encoder.encode(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\n` +
      `content-length: ${encoder.encode(body).byteLength}\r\nconnection: close\r\n${extra}\r\n${body}`,
  );
}

/** Index just past the blank line ending a head in `buf` (searching from `from`), or -1. */
function headEnd(buf: Uint8Array, length: number, from: number): number {
  for (let i = Math.max(from, 1); i < length; i++) {
    if (buf[i] !== LF) continue;
    if (buf[i - 1] === LF) return i + 1;
    if (buf[i - 1] === CR && i >= 2 && buf[i - 2] === LF) return i + 1;
  }
  return -1;
}

type Body =
  | { kind: "none" }
  | { kind: "length"; left: number }
  | { kind: "chunked"; state: "size" | "data" | "data-end" | "trailer"; left: number; line: number; lineText: string }
  | { kind: "raw" };

/** How the body of a request with this head is framed. */
function bodyOf(head: Uint8Array): Body {
  const lines = latin1.decode(head).split(/\r?\n/);
  const [method = "", , version = ""] = lines[0].split(" ");
  if (!/^HTTP\/1\.[01]$/.test(version) || method === "CONNECT") return { kind: "raw" };
  let length: string | undefined;
  let coding: string | undefined;
  let upgrade = false;
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim().toLowerCase();
    if (name === "content-length") {
      if (length !== undefined && length !== value) return { kind: "raw" };
      length = value;
    } else if (name === "transfer-encoding") coding = coding === undefined ? value : `${coding},${value}`;
    else if (name === "upgrade") upgrade = true;
  }
  if (upgrade) return { kind: "raw" };
  if (coding !== undefined) {
    const codings = coding.split(",").map((c) => c.trim());
    if (codings[codings.length - 1] !== "chunked") return { kind: "raw" };
    return { kind: "chunked", state: "size", left: 0, line: 0, lineText: "" };
  }
  if (length === undefined) return { kind: "none" };
  if (!/^\d{1,15}$/.test(length)) return { kind: "raw" };
  const left = Number(length);
  return left === 0 ? { kind: "none" } : { kind: "length", left };
}

/** One client connection and its pipe to the internal server. */
class Front {
  /** Handlers running for this connection's requests. */
  busy = 0;
  lastActivity: number;
  /** When the current head started (its first byte, or the accept for the first one); null between requests. */
  headStartedAt: number | null;
  bodyStartedAt: number | null = null;
  /** Any byte of a response was sent: the front must not write its own responses any more. */
  responded = false;
  closed = false;
  head = new Uint8Array(1024);
  headLength = 0;
  scanned = 0;
  body: Body = { kind: "none" };
  raw = false;
  inner?: Deno.TcpConn;
  done: Promise<void> = Promise.resolve();

  constructor(readonly client: Deno.TcpConn, now: number) {
    this.lastActivity = now;
    this.headStartedAt = now;
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

  /**
   * Follows the request framing over bytes the client sent. Returns a response to send and
   * close with when the head is too large, else null.
   */
  observe(bytes: Uint8Array, now: number, limits: ConnectionLimits): Uint8Array | null {
    let i = 0;
    while (i < bytes.length && !this.raw) {
      if (this.bodyStartedAt === null) {
        this.headStartedAt ??= now;
        // Skip the empty lines a client may send between requests.
        if (this.headLength === 0) {
          while (i < bytes.length && (bytes[i] === CR || bytes[i] === LF)) i++;
          if (i === bytes.length) break;
        }
        const take = Math.min(bytes.length - i, limits.maxHeadBytes + 4 - this.headLength);
        if (this.headLength + take > this.head.length) {
          const grown = new Uint8Array(Math.max(this.head.length * 2, this.headLength + take));
          grown.set(this.head.subarray(0, this.headLength));
          this.head = grown;
        }
        this.head.set(bytes.subarray(i, i + take), this.headLength);
        const before = this.headLength;
        this.headLength += take;
        const end = headEnd(this.head, this.headLength, this.scanned);
        this.scanned = Math.max(0, this.headLength - 3);
        if (end < 0) {
          if (this.headLength > limits.maxHeadBytes) {
            return rawResponse(
              431,
              "Request Header Fields Too Large",
              `Cannot read the request head: current size is over ${limits.maxHeadBytes} bytes, the limit`,
            );
          }
          i += take;
          continue;
        }
        i += end - before;
        this.body = bodyOf(this.head.subarray(0, end));
        this.headLength = 0;
        this.scanned = 0;
        this.headStartedAt = null;
        if (this.body.kind === "raw") this.raw = true;
        else if (this.body.kind !== "none") this.bodyStartedAt = now;
        continue;
      }
      i = this.observeBody(bytes, i);
    }
    return null;
  }

  /** Consumes body bytes from `i`; returns the index after them. */
  observeBody(bytes: Uint8Array, i: number): number {
    const body = this.body;
    if (body.kind === "length") {
      const take = Math.min(body.left, bytes.length - i);
      body.left -= take;
      if (body.left === 0) this.bodyStartedAt = null;
      return i + take;
    }
    if (body.kind !== "chunked") {
      this.bodyStartedAt = null;
      return i;
    }
    if (body.state === "data") {
      const take = Math.min(body.left, bytes.length - i);
      body.left -= take;
      if (body.left === 0) body.state = "data-end";
      return i + take;
    }
    // A line: the chunk size, the CRLF after a chunk's data, or a trailer.
    const start = i;
    while (i < bytes.length && bytes[i] !== LF) i++;
    body.line += i - start;
    if (body.state !== "data-end") body.lineText += latin1.decode(bytes.subarray(start, i));
    if (body.line > MAX_LINE) {
      this.raw = true; // malformed: let the server reject it
      return bytes.length;
    }
    if (i === bytes.length) return i;
    const text = body.lineText.replace(/\r$/, "").trim();
    body.line = 0;
    body.lineText = "";
    if (body.state === "size") {
      const size = parseInt(text.split(";")[0].trim(), 16);
      if (!Number.isFinite(size) || size < 0) {
        this.raw = true;
        return bytes.length;
      }
      if (size === 0) body.state = "trailer";
      else {
        body.state = "data";
        body.left = size;
      }
    } else if (body.state === "data-end") {
      body.state = "size";
    } else if (text === "") {
      this.bodyStartedAt = null;
    }
    return i + 1;
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
      if (f.headStartedAt !== null && f.busy === 0 && !f.raw && f.bodyStartedAt === null) {
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
          const reject = front.observe(chunk, now, limits);
          if (reject) {
            end(front, "head-too-large", reject);
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
