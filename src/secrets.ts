/**
 * What is secret in Candlekeep's configuration, and the one redactor every output path uses
 * (log lines, error messages, CLI output, HTTP error bodies).
 *
 * Secret are: the password of `DATABASE_URL` (its user name is shown), the whole userinfo (user
 * name and password) of every other URL in the configuration (proxy URLs such as `httpsProxy`
 * or `socksProxy` in `CCXT_CONFIG`), `API_TOKEN`, `PGPASSWORD`, and every value under a
 * secret-like key anywhere in `CCXT_CONFIG` ({@linkcode isSecretKey}). A {@linkcode Redactor}
 * built from them masks structured values by key and scrubs any text by replacing each known
 * secret, in its plain, URL-encoded and JSON-escaped forms, with `***`, wherever it appears
 * (a database password reused in a ccxt header is masked in both).
 *
 * @module
 */
import type { Config } from "./config_types.ts";

/** What replaces a secret. */
export const MASK = "***";

/**
 * Secrets shorter than this are masked by key and inside URLs, but not replaced in free text:
 * replacing every `p` of a message would make it unreadable and hide nothing.
 */
export const MIN_SCRUB_LENGTH = 4;

const SECRET_KEY =
  /^(api_?key|secret|secret_?key|password|passwd|passphrase|uid|private_?key|token|twofa|login|wallet_?address)$/i;
const SECRET_HEADER = /^(authorization|proxy-authorization|cookie|set-cookie)$|key|token|secret/i;

/**
 * Whether values under `key` are secret: apiKey, secret, password, passphrase, uid, privateKey,
 * token, twofa, login, walletAddress (any case); inside a `headers` object also Authorization,
 * Cookie and any name containing key, token or secret (`X-API-KEY`, `X-Auth-Token`).
 */
export function isSecretKey(key: string, inHeaders = false): boolean {
  return SECRET_KEY.test(key) || (inHeaders && SECRET_HEADER.test(key));
}

// scheme://user:password@ in free text; the password may hold unencoded / # ? (but no space or @).
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s/?#@:]*):[^\s@]*@/gi;
const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;

function decoded(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

/**
 * The secret parts of a URL: its password, and also its user name unless `keepUser`, in the
 * forms they take in the text and decoded. Works on text that does not parse as a URL too
 * (the userinfo is then what stands between `://` and the last `@`).
 */
export function urlSecrets(text: string, keepUser = false): string[] {
  const out: string[] = [];
  const add = (part: string) => {
    if (part === "") return;
    out.push(part);
    const plain = decoded(part);
    if (plain !== undefined && plain !== part) out.push(plain);
  };
  const trimmed = text.trim();
  if (!SCHEME.test(trimmed)) return out;
  try {
    const url = new URL(trimmed);
    add(url.password);
    if (!keepUser) add(url.username);
  } catch { /* not a URL: the heuristic below still finds the userinfo */ }
  const rest = trimmed.replace(SCHEME, "");
  const at = rest.lastIndexOf("@");
  if (at > 0) {
    const userinfo = rest.slice(0, at);
    const colon = userinfo.indexOf(":");
    if (colon >= 0) add(userinfo.slice(colon + 1));
    if (!keepUser) add(colon >= 0 ? userinfo.slice(0, colon) : userinfo);
  }
  return out;
}

/**
 * A secret value and its credential parts: `Bearer X` → also `X`, `a=X; b=Y` (cookies) → also
 * `X` and `Y`, `Basic <base64>` → also the decoded password.
 */
export function credentialParts(value: string): string[] {
  const out = [value];
  for (const part of value.split(/[;,\s]+/)) {
    if (/^(bearer|basic|digest|token|bot|apikey)$/i.test(part)) continue;
    const eq = part.indexOf("=");
    out.push(eq > 0 ? part.slice(eq + 1) : part);
  }
  const basic = /^basic\s+([A-Za-z0-9+/=]+)$/i.exec(value.trim());
  if (basic) {
    try {
      const plain = atob(basic[1]);
      out.push(plain, plain.slice(plain.indexOf(":") + 1));
    } catch { /* not base64 */ }
  }
  return out;
}

/** Every secret value inside a parsed `CCXT_CONFIG` (or any structure of that shape). */
export function structureSecrets(value: unknown, inHeaders = false): string[] {
  const out: string[] = [];
  const leaves = (v: unknown): void => {
    if (typeof v === "string") out.push(...credentialParts(v));
    else if (typeof v === "number" || typeof v === "bigint") out.push(String(v));
    else if (Array.isArray(v)) v.forEach(leaves);
    else if (v !== null && typeof v === "object") Object.values(v).forEach(leaves);
  };
  const walk = (v: unknown, headers: boolean): void => {
    if (typeof v === "string") out.push(...urlSecrets(v));
    else if (Array.isArray(v)) v.forEach((item) => walk(item, false));
    else if (v !== null && typeof v === "object") {
      for (const [k, child] of Object.entries(v)) {
        if (isSecretKey(k, headers)) leaves(child);
        else walk(child, /^headers$/i.test(k));
      }
    }
  };
  walk(value, inHeaders);
  return out;
}

/**
 * Secrets in a `CCXT_CONFIG` text that may not parse: from the structure when it is JSON, else
 * every string value that follows a secret-like key and every URL userinfo in it.
 */
export function ccxtConfigSecrets(text: string): string[] {
  try {
    return structureSecrets(JSON.parse(text));
  } catch { /* not JSON: pick the values out of the text */ }
  const out: string[] = [];
  const pair = /"((?:[^"\\]|\\.)*)"\s*:\s*(?:"((?:[^"\\]|\\.)*)"?|([^\s,{}[\]"]+))?/g;
  let headers = false;
  for (const m of text.matchAll(pair)) {
    const key = m[1];
    const raw = m[2] ?? m[3];
    if (/^headers$/i.test(key)) headers = true;
    if (raw !== undefined && isSecretKey(key, headers)) {
      out.push(...credentialParts(raw));
      try {
        out.push(...credentialParts(JSON.parse(`"${raw}"`)));
      } catch { /* an unterminated string: the raw text is enough */ }
    }
  }
  for (const m of text.matchAll(/[a-z][a-z0-9+.-]*:\/\/[^\s"]*/gi)) out.push(...urlSecrets(m[0]));
  return out;
}

/** The raw variables a redactor is built from (strings as in the environment). */
export interface SecretEnv {
  DATABASE_URL?: string;
  CCXT_CONFIG?: string;
  API_TOKEN?: string;
  PGPASSWORD?: string;
}

/** Every secret in the raw environment, parsed or not. */
export function envSecrets(env: SecretEnv): string[] {
  const out: string[] = [];
  if (env.DATABASE_URL) out.push(...urlSecrets(env.DATABASE_URL, true));
  if (env.CCXT_CONFIG) out.push(...ccxtConfigSecrets(env.CCXT_CONFIG));
  for (const token of [env.API_TOKEN, env.PGPASSWORD]) {
    if (token && token.trim() !== "") out.push(token, token.trim());
  }
  return out;
}

/** Every secret in a loaded configuration. */
export function configSecrets(config: Pick<Config, "databaseUrl" | "apiToken" | "ccxtConfig">): string[] {
  const out: string[] = [];
  if (config.databaseUrl) out.push(...urlSecrets(config.databaseUrl, true));
  if (config.apiToken) out.push(config.apiToken);
  out.push(...structureSecrets(config.ccxtConfig ?? {}));
  return out;
}

/** Masks secrets in text and in structured values. */
export interface Redactor {
  /** Replaces every known secret (plain, URL-encoded or JSON-escaped) and every URL password with `***`. */
  scrub(text: string): string;
  /**
   * A deep copy of `value` with values under secret-like keys ({@linkcode isSecretKey}) set to
   * `***` and every string scrubbed. Errors become `{ name, message, code, cause }`.
   */
  mask(value: unknown): unknown;
  /** The message of an error (or the text of any thrown value), scrubbed. */
  message(error: unknown): string;
}

function forms(secret: string): string[] {
  const out = new Set([secret]);
  for (const encode of [encodeURIComponent, encodeURI]) {
    try {
      out.add(encode(secret));
    } catch { /* a lone surrogate */ }
  }
  out.add(JSON.stringify(secret).slice(1, -1));
  out.add(JSON.stringify(JSON.stringify(secret).slice(1, -1)).slice(1, -1));
  return [...out];
}

/** Builds a redactor that knows `secrets` (blank and very short values are ignored for free text). */
export function createRedactor(secrets: Iterable<string>): Redactor {
  const all = new Set<string>();
  for (const secret of secrets) {
    if (typeof secret !== "string" || secret.trim().length < MIN_SCRUB_LENGTH) continue;
    for (const form of forms(secret)) all.add(form);
  }
  const known = [...all].sort((a, b) => b.length - a.length);
  const scrub = (text: string): string => {
    let out = text;
    for (const secret of known) if (out.includes(secret)) out = out.split(secret).join(MASK);
    return out.replace(URL_PASSWORD, `$1:${MASK}@`);
  };
  const mask = (value: unknown, inHeaders: boolean, depth: number): unknown => {
    if (typeof value === "string") return scrub(value);
    if (depth > 20 || value === null || typeof value !== "object") return value;
    if (value instanceof Error) {
      const out: Record<string, unknown> = { name: value.name, message: scrub(value.message) };
      const code = (value as { code?: unknown }).code;
      if (code !== undefined) out.code = mask(code, false, depth + 1);
      if (value.cause !== undefined) out.cause = mask(value.cause, false, depth + 1);
      return out;
    }
    if (value instanceof Date) return value;
    if (Array.isArray(value)) return value.map((v) => mask(v, false, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = isSecretKey(k, inHeaders) && v !== undefined && v !== null && v !== ""
        ? MASK
        : mask(v, /^headers$/i.test(k), depth + 1);
    }
    return out;
  };
  return {
    scrub,
    mask: (value) => mask(value, false, 0),
    message: (error) => scrub(error instanceof Error ? error.message : String(error)),
  };
}

/** Reads the secret-bearing variables this process may read (a denied one counts as unset). */
export function readSecretEnv(): SecretEnv {
  const env: SecretEnv = {};
  for (const name of ["DATABASE_URL", "CCXT_CONFIG", "API_TOKEN", "PGPASSWORD"] as const) {
    try {
      const value = Deno.env.get(name);
      if (value !== undefined) env[name] = value;
    } catch { /* not permitted: it cannot be printed by this process either */ }
  }
  return env;
}

/** A redactor for a loaded configuration, also knowing the raw environment's secrets. */
export function configRedactor(config: Config, env: SecretEnv = readSecretEnv()): Redactor {
  return createRedactor([...configSecrets(config), ...envSecrets(env)]);
}

let active: Redactor | undefined;

/** Makes `redactor` the one every output path uses (logging installs it once config is loaded). */
export function installRedactor(redactor: Redactor): void {
  active = redactor;
}

/**
 * The redactor in use: the installed one, else one built from the raw environment (so output
 * before the configuration is loaded, or when it does not parse, is masked too).
 */
export function redactor(): Redactor {
  return active ??= createRedactor(envSecrets(readSecretEnv()));
}
