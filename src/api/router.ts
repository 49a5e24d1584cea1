/**
 * A small router: literal path segments and `:name` parameters, one handler per method.
 * Unknown paths throw {@linkcode NotFoundError}; known paths with another method throw
 * {@linkcode MethodNotAllowedError} listing the allowed ones. `HEAD` is served by `GET`.
 *
 * @module
 */
import { MethodNotAllowedError, NotFoundError } from "./errors.ts";

/** What a handler receives besides the request. */
export interface RouteContext {
  /** The parsed request URL. */
  url: URL;
  /** Values of the `:name` segments. */
  params: Record<string, string>;
}

/** A request handler: a plain function from request to response. */
export type Handler = (req: Request, ctx: RouteContext) => Response | Promise<Response>;

/** The route a request matched. */
export interface Match {
  /** The pattern, e.g. `/v1/series/:id`, used as the metrics label. */
  route: string;
  handler: Handler;
  params: Record<string, string>;
}

interface Route {
  pattern: string;
  segments: string[];
  methods: Map<string, Handler>;
}

function split(path: string): string[] {
  return path.split("/").filter((s) => s.length > 0);
}

/** Routes requests by method and path. */
export class Router {
  readonly #routes: Route[] = [];

  /** Adds `handler` for `method` on `pattern` (e.g. `/v1/series/:id/gaps`). */
  on(method: string, pattern: string, handler: Handler): this {
    let route = this.#routes.find((r) => r.pattern === pattern);
    if (!route) {
      route = { pattern, segments: split(pattern), methods: new Map() };
      this.#routes.push(route);
    }
    route.methods.set(method.toUpperCase(), handler);
    return this;
  }

  /** Every pattern with its methods, in registration order. */
  routes(): { pattern: string; methods: string[] }[] {
    return this.#routes.map((r) => ({ pattern: r.pattern, methods: [...r.methods.keys()] }));
  }

  /** Finds the handler for a request; throws NotFoundError or MethodNotAllowedError. */
  match(method: string, pathname: string): Match {
    const parts = split(pathname);
    for (const route of this.#routes) {
      if (route.segments.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < parts.length && ok; i++) {
        const seg = route.segments[i];
        if (seg.startsWith(":")) {
          let value: string;
          try {
            value = decodeURIComponent(parts[i]);
          } catch {
            value = parts[i];
          }
          params[seg.slice(1)] = value;
        } else if (seg !== parts[i]) {
          ok = false;
        }
      }
      if (!ok) continue;
      const handler = route.methods.get(method) ?? (method === "HEAD" ? route.methods.get("GET") : undefined);
      if (!handler) {
        const allow = [...route.methods.keys()];
        if (allow.includes("GET")) allow.push("HEAD");
        throw new MethodNotAllowedError(method, pathname, allow);
      }
      return { route: route.pattern, handler, params };
    }
    throw new NotFoundError(`Cannot find ${pathname}: no such route; see /openapi.json for the API`);
  }
}
