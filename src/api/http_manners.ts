/**
 * HTTP manners of the API: weak ETags, the base of `next`/`Link` URLs (relative, or absolute from a
 * trusted proxy's `X-Forwarded-*` headers), CORS for configured origins (preflight
 * included), and streamed gzip when the client accepts it.
 *
 * @module
 */

/** Bodies smaller than this are sent as they are: gzip would not pay for its header. */
export const GZIP_MIN_BYTES = 1024;

const COMPRESSIBLE = /^(text\/|application\/(json|javascript|xml)\b|[^;]*\+json\b)/i;
const HOST_RE = /^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$/;

/**
 * The prefix of URLs the API hands out (`next`, `Link`): empty (relative URLs) unless the
 * proxy is trusted, then `proto://host` from `X-Forwarded-Proto` and `X-Forwarded-Host` (or
 * `Host`), each checked; a malformed header falls back to relative URLs.
 */
export function linkBase(req: Request, options: { trustedProxy?: boolean }): string {
  if (!options.trustedProxy) return "";
  const first = (name: string) => req.headers.get(name)?.split(",")[0].trim() ?? "";
  const proto = first("x-forwarded-proto").toLowerCase() || new URL(req.url).protocol.slice(0, -1);
  const host = first("x-forwarded-host") || first("host");
  if (!/^https?$/.test(proto) || !HOST_RE.test(host)) return "";
  return `${proto}://${host}`;
}

function allowedOrigin(req: Request, origins: readonly string[]): string | null {
  const origin = req.headers.get("origin");
  if (origin === null || origins.length === 0) return null;
  if (origins.includes("*")) return "*";
  return origins.includes(origin.toLowerCase()) ? origin : null;
}

/**
 * The answer to a CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
 * from an allowed origin: 204 with the allowed methods and headers. Null when the request is
 * not such a preflight (it is then routed as usual: `OPTIONS` answers 405).
 */
export function corsPreflight(req: Request, origins: readonly string[]): Response | null {
  if (req.method.toUpperCase() !== "OPTIONS" || !req.headers.has("access-control-request-method")) return null;
  const allow = allowedOrigin(req, origins);
  if (allow === null) return null;
  return new Response(null, {
    status: 204,
    headers: {
      "access-control-allow-origin": allow,
      "access-control-allow-methods": "GET, HEAD, POST, DELETE",
      "access-control-allow-headers": "authorization, content-type, if-none-match",
      "access-control-max-age": "600",
      "vary": "Origin",
    },
  });
}

/** `response` with CORS headers when the request's `Origin` is allowed (unchanged otherwise). */
export function withCors(req: Request, response: Response, origins: readonly string[]): Response {
  const allow = allowedOrigin(req, origins);
  if (allow === null) return response;
  const headers = new Headers(response.headers);
  headers.set("access-control-allow-origin", allow);
  headers.set("access-control-expose-headers", "Link, ETag, X-Source-Timeframe");
  headers.append("vary", "Origin");
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}

function acceptsGzip(req: Request): boolean {
  const header = req.headers.get("accept-encoding") ?? "";
  return header.split(",").some((part) => {
    const [name, ...params] = part.trim().toLowerCase().split(";");
    if (name !== "gzip" && name !== "*") return false;
    const q = params.map((p) => /^\s*q=([0-9.]+)\s*$/.exec(p)).find((m) => m !== null);
    return q ? Number(q[1]) > 0 : true;
  });
}

/**
 * `response` gzip-compressed (streamed, `CompressionStream`) when the client accepts gzip and
 * the body is text of at least {@linkcode GZIP_MIN_BYTES}: the first chunks are read until
 * that size (a streamed page's head and first batch are ready at once), then the rest flows
 * through the compressor as the client reads. Cancelling the response cancels the source.
 */
export async function withGzip(req: Request, response: Response): Promise<Response> {
  const type = response.headers.get("content-type") ?? "";
  // An event stream is sent as it is produced: a compressor would hold events back.
  const live = /^text\/event-stream\b/i.test(type);
  if (response.body === null || !COMPRESSIBLE.test(type) || live || response.headers.has("content-encoding")) {
    return response;
  }
  const headers = new Headers(response.headers);
  headers.append("vary", "Accept-Encoding");
  const init = { status: response.status, statusText: response.statusText, headers };
  if (!acceptsGzip(req)) return new Response(response.body, init);
  const reader = response.body.getReader();
  const head: Uint8Array[] = [];
  let size = 0;
  let done = false;
  while (size < GZIP_MIN_BYTES) {
    const step = await reader.read();
    if (step.done) {
      done = true;
      break;
    }
    head.push(step.value);
    size += step.value.byteLength;
  }
  const rest = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of head) controller.enqueue(chunk);
      if (done) controller.close();
    },
    async pull(controller) {
      const step = await reader.read();
      if (step.done) controller.close();
      else controller.enqueue(step.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  if (done && size < GZIP_MIN_BYTES) return new Response(rest, init);
  headers.set("content-encoding", "gzip");
  headers.delete("content-length");
  const gzip = new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>;
  return new Response(rest.pipeThrough(gzip), init);
}

/** A weak ETag (`W/"…"`, 128 bits of SHA-256) of what a response is built from. */
export async function weakEtag(parts: string[]): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(parts.join("\n")));
  const hex = Array.from(new Uint8Array(digest).slice(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
  return `W/"${hex}"`;
}

/** Whether an `If-None-Match` header matches `etag` (weak comparison). */
export function etagMatches(header: string | null | undefined, etag: string): boolean {
  if (!header) return false;
  const bare = (t: string) => t.trim().replace(/^W\//, "");
  return header.split(",").some((t) => t.trim() === "*" || bare(t) === bare(etag));
}
