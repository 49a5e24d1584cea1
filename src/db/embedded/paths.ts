/**
 * Path and file helpers of the embedded PostgreSQL (no `@std/path`: JSR is unreachable).
 *
 * @module
 */
import { run, type RunAs, tail } from "./command.ts";

/** Joins path parts with single slashes. */
export function join(...parts: string[]): string {
  return parts.join("/").replace(/\/+/g, "/");
}

/** The parent folder of `path` (`/` for a top-level one). */
export function dirname(path: string): string {
  const i = path.replace(/\/+$/, "").lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

/** `path` made absolute against the working folder, with `.` and `..` resolved. */
export function absolute(path: string): string {
  const raw = path.startsWith("/") ? path : join(Deno.cwd(), path);
  const out: string[] = [];
  for (const part of raw.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
}

/** True when something (a link included) is at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

/** `bytes` random bytes as URL-safe base64 without padding. */
export function randomToken(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...buf)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

/** The first 12 hex digits of the SHA-256 of `text`. */
export async function shortHash(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].slice(0, 6).map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** Writes `text` to `file` atomically (a temporary file renamed over it), mode 0600. */
export async function writePrivateFile(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${randomToken(6)}`;
  try {
    await Deno.writeTextFile(tmp, text, { mode: 0o600 });
    await Deno.chmod(tmp, 0o600);
    await Deno.rename(tmp, file);
  } catch (error) {
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
}

/**
 * Creates the symlink `path` -> `target`. Deno.symlink needs unscoped read/write permission,
 * which the service does not have, so `ln -s` is the fallback.
 */
export async function symlink(target: string, path: string): Promise<void> {
  try {
    await Deno.symlink(target, path);
    return;
  } catch (error) {
    if (!(error instanceof Deno.errors.NotCapable)) throw error;
  }
  const result = await run("ln", ["-s", "--", target, path]);
  if (result.code !== 0) {
    throw new Error(`ln -s ${target} ${path} exited with code ${result.code}: ${tail(result.stderr)}`);
  }
}

/** Gives `path` to `user`; nothing when undefined. */
export async function chown(path: string, user: RunAs | undefined): Promise<void> {
  if (user) await Deno.chown(path, user.uid, user.gid);
}
