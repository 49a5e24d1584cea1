/**
 * HTTP/1 request framing, followed byte by byte over what a client sends: where each request
 * head ends, how its body is framed (`Content-Length` or chunked) and when it ends. Used by the
 * TCP front of guard.ts to time heads and bodies; the bytes themselves are not changed.
 *
 * @module
 */

const latin1 = new TextDecoder("latin1");
const LF = 10;
const CR = 13;
const MAX_LINE = 4096;

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

/** Where a connection's requests stand: the head being read, or the body being read. */
export class RequestFraming {
  /** When the current head started (its first byte, or the accept for the first one); null between requests. */
  headStartedAt: number | null;
  /** When the current body started (the end of its head); null when no body is in progress. */
  bodyStartedAt: number | null = null;
  /** The bytes are not HTTP/1 framing we follow (an upgrade, CONNECT, a malformed body): stop following. */
  raw = false;
  #head = new Uint8Array(1024);
  #headLength = 0;
  #scanned = 0;
  #body: Body = { kind: "none" };

  /** Starts waiting for the first head at `now`. */
  constructor(now: number) {
    this.headStartedAt = now;
  }

  /**
   * Follows the request framing over bytes the client sent at `now`. Returns false when a head
   * grows over `maxHeadBytes` without ending, else true.
   */
  observe(bytes: Uint8Array, now: number, maxHeadBytes: number): boolean {
    let i = 0;
    while (i < bytes.length && !this.raw) {
      if (this.bodyStartedAt === null) {
        this.headStartedAt ??= now;
        // Skip the empty lines a client may send between requests.
        if (this.#headLength === 0) {
          while (i < bytes.length && (bytes[i] === CR || bytes[i] === LF)) i++;
          if (i === bytes.length) break;
        }
        const take = Math.min(bytes.length - i, maxHeadBytes + 4 - this.#headLength);
        if (this.#headLength + take > this.#head.length) {
          const grown = new Uint8Array(Math.max(this.#head.length * 2, this.#headLength + take));
          grown.set(this.#head.subarray(0, this.#headLength));
          this.#head = grown;
        }
        this.#head.set(bytes.subarray(i, i + take), this.#headLength);
        const before = this.#headLength;
        this.#headLength += take;
        const end = headEnd(this.#head, this.#headLength, this.#scanned);
        this.#scanned = Math.max(0, this.#headLength - 3);
        if (end < 0) {
          if (this.#headLength > maxHeadBytes) return false;
          i += take;
          continue;
        }
        i += end - before;
        this.#body = bodyOf(this.#head.subarray(0, end));
        this.#headLength = 0;
        this.#scanned = 0;
        this.headStartedAt = null;
        if (this.#body.kind === "raw") this.raw = true;
        else if (this.#body.kind !== "none") this.bodyStartedAt = now;
        continue;
      }
      i = this.#observeBody(bytes, i);
    }
    return true;
  }

  /** Consumes body bytes from `i`; returns the index after them. */
  #observeBody(bytes: Uint8Array, i: number): number {
    const body = this.#body;
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
