/**
 * Configuration values made safe to show: URLs with their password masked, `CCXT_CONFIG` with its
 * secrets masked, and what is wrong with a `DATABASE_URL` told without quoting it.
 *
 * @module
 */
import type { Config } from "./config_types.ts";
import { configSecrets, createRedactor, MASK, structureSecrets } from "./secrets.ts";

/**
 * Masks the password in a postgres URL (the user name stays). A text that does not parse as a
 * URL keeps only its scheme, the user name and what follows the last `@`.
 */
export function maskUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = MASK;
    return parsed.toString();
  } catch {
    const m = /^([a-z][a-z0-9+.-]*:\/\/)(.*)@([^@]*)$/is.exec(url.trim());
    if (!m) return url;
    return `${m[1]}${m[2].split(":")[0]}:${MASK}@${m[3]}`;
  }
}

/**
 * Returns a deep copy of `value` with every secret-looking key (apiKey, secret, password, uid,
 * privateKey, token, twofa, login, walletAddress, secret headers, see `isSecretKey` in
 * secrets.ts) masked, and the userinfo of every URL in it (proxy URLs) replaced by `***`.
 */
export function maskSecrets(value: unknown): unknown {
  return createRedactor(structureSecrets(value)).mask(value);
}

/** The configuration with every secret masked, safe to log. */
export function redactConfig(config: Config): Record<string, unknown> {
  return createRedactor(configSecrets(config)).mask({
    ...config,
    databaseUrl: config.databaseUrl === undefined ? undefined : maskUrl(config.databaseUrl),
    apiToken: config.apiToken === undefined ? undefined : MASK,
  }) as Record<string, unknown>;
}

/**
 * What is wrong with a `DATABASE_URL`, or null when postgres.js can use it. The answer never
 * quotes the value (it holds the password): an unencoded character in the user name or
 * password, a malformed IPv6 host, a port outside 1 to 65535, or a text that is no URL.
 */
export function databaseUrlProblem(text: string): string | null {
  const value = text.trim();
  if (!/^postgres(ql)?:\/\/./i.test(value)) {
    return "a postgres:// or postgresql:// connection URL, or unset for the embedded database";
  }
  try {
    // A URL that parses with no '@' after its host (a sign of an unencoded '/' in a password).
    const url = new URL(value);
    if (!`${url.pathname}${url.hash}`.includes("@") && url.port !== "0") return null;
  } catch { /* find out why below */ }
  const cannot = (what: string) => `cannot be parsed: ${what}`;
  const scheme = /^[a-z]+:\/\//i.exec(value)![0];
  const rest = value.slice(scheme.length);
  const at = rest.lastIndexOf("@");
  const userinfo = at >= 0 ? rest.slice(0, at) : "";
  const afterUser = at >= 0 ? rest.slice(at + 1) : rest;
  if (/[/?#\s]/.test(userinfo)) {
    return cannot(
      "the user name or password holds an unencoded '/', '?', '#' or space (percent-encode it, e.g. with encodeURIComponent)",
    );
  }
  const hostList = afterUser.split(/[/?#]/)[0];
  const hosts = hostList.split(",");
  for (const host of hosts) {
    let name = host;
    let port = "";
    if (host.startsWith("[")) {
      const end = host.indexOf("]");
      if (end < 0) return cannot("malformed IPv6 host (no closing ']')");
      name = host.slice(0, end + 1);
      const after = host.slice(end + 1);
      if (after !== "" && !after.startsWith(":")) return cannot("malformed IPv6 host (text after ']')");
      port = after.slice(1);
      try {
        new URL(`http://${name}/`);
      } catch {
        return cannot("malformed IPv6 host (not an IPv6 address between '[' and ']')");
      }
    } else {
      const colon = host.lastIndexOf(":");
      if (colon >= 0) [name, port] = [host.slice(0, colon), host.slice(colon + 1)];
      if (name.includes(":")) return cannot("malformed IPv6 host (an IPv6 address must be written in brackets: [::1])");
    }
    if (port !== "" && (!/^[0-9]+$/.test(port) || Number(port) < 1 || Number(port) > 65535)) {
      return cannot("invalid port (expected a number from 1 to 65535)");
    }
  }
  // The check postgres.js makes: the URL with its first host must parse.
  const single = `${scheme}${at >= 0 ? `${userinfo}@` : ""}${hosts[0]}${afterUser.slice(hostList.length)}`;
  try {
    new URL(single);
  } catch {
    return cannot("it is not a valid URL");
  }
  return null;
}
