/**
 * The runtime copy of the binaries package's `native/` folder. Deno does not run the package's
 * postinstall script, so the library symlinks it would create are missing: the folder is copied
 * once into a versioned runtime folder, where the symlinks are re-created.
 *
 * @module
 */
import { BINARIES_VERSION, loadBinaries } from "../platform.ts";
import { failure, type Log } from "./command.ts";
import { dirname, exists, join, randomToken, symlink } from "./paths.ts";

const RUNTIME_MARKER = ".candlekeep-runtime-complete";

interface PackageInfo {
  nativeDir: string;
  version: string;
}

async function packageInfo(): Promise<PackageInfo> {
  const postgresPath = (await loadBinaries()).postgres;
  const nativeDir = dirname(dirname(postgresPath));
  let version = BINARIES_VERSION; // when the package.json cannot be read
  try {
    const pkg = JSON.parse(await Deno.readTextFile(join(dirname(nativeDir), "package.json")));
    if (typeof pkg.version === "string" && /^[\w.+-]+$/.test(pkg.version)) version = pkg.version;
  } catch {
    // keep the fallback version
  }
  return { nativeDir, version };
}

async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true, mode: 0o755 });
  for await (const entry of Deno.readDir(from)) {
    const src = join(from, entry.name);
    const dst = join(to, entry.name);
    if (entry.isSymlink) {
      await symlink(await Deno.readLink(src), dst);
    } else if (entry.isDirectory) {
      await copyTree(src, dst);
    } else {
      await Deno.copyFile(src, dst);
      const { mode } = await Deno.stat(src);
      // Readable (and, for executables, runnable) by the unprivileged user; never writable.
      await Deno.chmod(dst, ((mode ?? 0o644) & 0o755) | 0o444);
    }
  }
  await Deno.chmod(to, 0o755);
}

/** Re-creates the symlinks of `pg-symlinks.json`, relative to their own folder. */
async function hydrateSymlinks(runtime: string): Promise<void> {
  let list: { source: string; target: string }[] = [];
  try {
    list = JSON.parse(await Deno.readTextFile(join(runtime, "pg-symlinks.json")));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  for (const { source, target } of list) {
    const strip = (p: string) => p.replace(/^native\//, "");
    const linkPath = join(runtime, strip(target));
    const sourcePath = join(runtime, strip(source));
    if (dirname(linkPath) !== dirname(sourcePath)) {
      throw failure(
        `pg-symlinks.json links across folders, which is not supported: current value is ${target} -> ${source}`,
      );
    }
    if (await exists(linkPath)) continue;
    await symlink(sourcePath.slice(dirname(sourcePath).length + 1), linkPath);
  }
}

/** Returns `<base>/pg-runtime-<version>`, copying and hydrating it first when needed. */
export async function prepareRuntime(base: string, log: Log): Promise<string> {
  const { nativeDir, version } = await packageInfo();
  const runtime = join(base, `pg-runtime-${version}`);
  if (await exists(join(runtime, RUNTIME_MARKER))) return runtime;
  if (await exists(runtime)) {
    log("Removing the incomplete PostgreSQL runtime in {dir}", { dir: runtime });
    await Deno.remove(runtime, { recursive: true });
  }
  log("Preparing the PostgreSQL {version} runtime in {dir}", { version, dir: runtime });
  const partial = `${runtime}.partial-${randomToken(6)}`;
  try {
    await copyTree(nativeDir, partial);
    await hydrateSymlinks(partial);
    await Deno.writeTextFile(join(partial, RUNTIME_MARKER), `${version}\n`);
    try {
      await Deno.rename(partial, runtime);
    } catch (error) {
      // Another process finished first: use its copy.
      if (!(await exists(join(runtime, RUNTIME_MARKER)))) throw error;
      await Deno.remove(partial, { recursive: true });
    }
  } catch (error) {
    await Deno.remove(partial, { recursive: true }).catch(() => {});
    throw failure(`could not prepare the runtime in ${runtime}: ${(error as Error).message}`);
  }
  return runtime;
}
