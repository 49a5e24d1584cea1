/**
 * Static files of the dashboard (`GET /`): HTML, CSS and the ES modules from `src/api/dashboard/`, and
 * lightweight-charts' standalone build from the local npm package (no CDN). Files are read
 * on first request and kept in memory.
 *
 * @module
 */
import { NotFoundError } from "./errors.ts";

const DASHBOARD_DIR = new URL("./dashboard/", import.meta.url);
const PROJECT_ROOT = new URL("../../", import.meta.url);
const CHART_LIB = "node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js";

const JS = "text/javascript; charset=utf-8";
/** The dashboard's ES modules, served under `/assets/`. */
const MODULES = [
  "app",
  "api",
  "catalog",
  "chart",
  "coverage",
  "format",
  "funding",
  "live",
  "manage",
  "open_interest",
  "tables",
  "url_state",
];

/** Dashboard files by URL path. */
export const ASSETS: Readonly<Record<string, { file: URL; type: string }>> = {
  "/": { file: new URL("index.html", DASHBOARD_DIR), type: "text/html; charset=utf-8" },
  ...Object.fromEntries(
    MODULES.map((name) => [`/assets/${name}.js`, { file: new URL(`${name}.js`, DASHBOARD_DIR), type: JS }]),
  ),
  "/assets/style.css": { file: new URL("style.css", DASHBOARD_DIR), type: "text/css; charset=utf-8" },
  "/assets/lightweight-charts.js": { file: new URL(CHART_LIB, PROJECT_ROOT), type: JS },
};

const cache = new Map<string, Promise<Uint8Array>>();

/** Serves one dashboard file; throws NotFoundError when it cannot be read. */
export async function asset(path: string): Promise<Response> {
  const entry = ASSETS[path];
  if (!entry) throw new NotFoundError(`Cannot find ${path}: no such asset`);
  let body = cache.get(path);
  if (!body) {
    body = Deno.readFile(entry.file);
    cache.set(path, body);
    body.catch(() => cache.delete(path));
  }
  let bytes: Uint8Array;
  try {
    bytes = await body;
  } catch (error) {
    throw new NotFoundError(
      `Cannot serve ${path}: cannot read ${entry.file.pathname} (${(error as Error).message}); run deno install`,
    );
  }
  return new Response(bytes as Uint8Array<ArrayBuffer>, {
    headers: {
      "content-type": entry.type,
      "cache-control": path === "/" ? "no-cache" : "public, max-age=300",
      "x-content-type-options": "nosniff",
    },
  });
}
