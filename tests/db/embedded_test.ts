import postgres from "postgres";
import { assert, assertEquals } from "../support/assert.ts";
import { type EmbeddedPostgres, startEmbeddedPostgres } from "../../src/db/embedded/mod.ts";

const isRoot = Deno.uid() === 0;
const lines: string[] = [];
const log = (message: string) => {
  lines.push(message);
  if (Deno.env.get("TEST_PG_LOG")) console.error(`[pg] ${message}`);
};

function connect(url: string): postgres.Sql {
  return postgres(url, { max: 2, onnotice: () => {}, connect_timeout: 5 });
}

async function run(cmd: string, args: string[]): Promise<Deno.CommandOutput> {
  return await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
}

/** A temporary DATA_DIR the unprivileged user can reach (makeTempDir makes it 0700). */
async function tempDataDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "candlekeep-embedded-test-" });
  await Deno.chmod(dir, 0o755);
  return dir;
}

Deno.test("embedded: data and password survive a stop and a new start on the same DATA_DIR", async () => {
  const dir = await tempDataDir();
  const servers: { stop(): Promise<void> }[] = [];
  try {
    const first = await startEmbeddedPostgres(dir, { log });
    servers.push(first);
    assertEquals(first.dataDir, `${dir}/postgres`);
    const url = new URL(first.url);
    assertEquals(url.hostname, "127.0.0.1");
    assertEquals(url.username, "candlekeep");
    assertEquals(url.pathname, "/candlekeep");
    assertEquals(Number(url.port), first.port);
    const password = await Deno.readTextFile(`${dir}/postgres.password`);
    assertEquals(decodeURIComponent(url.password), password.trim());
    assertEquals((await Deno.stat(`${dir}/postgres.password`)).mode! & 0o777, 0o600);

    const a = connect(first.url);
    try {
      await a`create table t (id int primary key, at timestamptz default now())`;
      await a`insert into t (id) values (42)`;
      const [settings] = await a<{ tz: string; enc: string; listen: string }[]>`
        select current_setting('TimeZone') as tz, current_setting('server_encoding') as enc,
               current_setting('listen_addresses') as listen`;
      assertEquals(settings, { tz: "UTC", enc: "UTF8", listen: "127.0.0.1" });
    } finally {
      await a.end();
    }
    await first.stop();
    await first.stop(); // idempotent

    const second = await startEmbeddedPostgres(dir, { log });
    servers.push(second);
    assertEquals(new URL(second.url).password, url.password, "the password file was reused");
    assertEquals(await Deno.readTextFile(`${dir}/postgres.password`), password);
    const b = connect(second.url);
    try {
      const rows = await b<{ id: number }[]>`select id from t`;
      assertEquals(rows.map((r) => r.id), [42]);
    } finally {
      await b.end();
    }
    await second.stop();
  } finally {
    for (const s of servers) await s.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("embedded: a pool made before stop()/start() works for new queries afterwards", async () => {
  const dir = await tempDataDir();
  let server: EmbeddedPostgres | undefined;
  let sql: postgres.Sql | undefined;
  try {
    server = await startEmbeddedPostgres(dir, { log });
    sql = connect(server.url);
    const port = server.port;
    await sql`create table t (id int)`;
    await sql`insert into t values (1)`;

    await server.stop();
    let failed = false;
    await sql`select 1`.catch(() => (failed = true));
    assert(failed, "a query fails while the server is down");

    await server.start();
    assertEquals(server.port, port, "same port after the restart");
    await sql`insert into t values (2)`;
    const [row] = await sql<{ n: number }[]>`select count(*)::int as n from t`;
    assertEquals(row.n, 2);
    await server.start(); // no-op while running
  } finally {
    await sql?.end({ timeout: 1 }).catch(() => {});
    await server?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("embedded: a stale postmaster.pid (killed server, reused pid) does not block a start", async () => {
  const dir = await tempDataDir();
  const servers: { stop(): Promise<void> }[] = [];
  try {
    const first = await startEmbeddedPostgres(dir, { log });
    servers.push(first);
    const pidFile = `${dir}/postgres/postmaster.pid`;
    const pid = Number((await Deno.readTextFile(pidFile)).split("\n")[0]);
    Deno.kill(pid, "SIGKILL");
    await first.stop(); // returns once the killed process is reaped
    assert((await Deno.stat(pidFile)).isFile, "the stale postmaster.pid is still there");

    const second = await startEmbeddedPostgres(dir, { log });
    servers.push(second);
    const sql = connect(second.url);
    try {
      const [row] = await sql<{ one: number }[]>`select 1 as one`;
      assertEquals(row.one, 1);
    } finally {
      await sql.end();
    }

    // A postmaster.pid whose pid now belongs to another live program does not block either.
    const lock = await Deno.readTextFile(pidFile);
    await second.stop();
    const sleeper = new Deno.Command("sleep", { args: ["30"] }).spawn();
    try {
      await Deno.writeTextFile(pidFile, lock.replace(/^\d+/, String(sleeper.pid)));
      await second.start();
      const again = connect(second.url);
      try {
        const [row] = await again<{ one: number }[]>`select 1 as one`;
        assertEquals(row.one, 1);
      } finally {
        await again.end();
      }
    } finally {
      sleeper.kill("SIGKILL");
      await sleeper.status;
    }
  } finally {
    for (const s of servers) await s.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "embedded: as root, the server runs as an unprivileged user",
  ignore: !isRoot,
  fn: async () => {
    const dir = await tempDataDir();
    let server: EmbeddedPostgres | undefined;
    let sql: postgres.Sql | undefined;
    try {
      server = await startEmbeddedPostgres(dir, { log });
      sql = connect(server.url);
      const [row] = await sql<{ dir: string }[]>`
        select current_setting('data_directory') as dir`;
      assertEquals(row.dir, server.dataDir);
      const owner = (await Deno.stat(row.dir)).uid;
      assert(owner !== null && owner !== 0, `cluster owned by uid ${owner}`);
      // The postmaster itself runs as that user.
      const pid = Number((await Deno.readTextFile(`${row.dir}/postmaster.pid`)).split("\n")[0]);
      const ps = await run("ps", ["-o", "uid=", "-p", String(pid)]);
      assertEquals(Number(new TextDecoder().decode(ps.stdout).trim()), owner);
    } finally {
      await sql?.end();
      await server?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "embedded: as root, a DATA_DIR under a private folder uses /var/lib/candlekeep",
  ignore: !isRoot,
  fn: async () => {
    const privateDir = await Deno.makeTempDir({ prefix: "candlekeep-private-" });
    await Deno.chmod(privateDir, 0o700);
    const dataDir = `${privateDir}/data`;
    let realBase: string | undefined;
    const servers: { stop(): Promise<void> }[] = [];
    try {
      lines.length = 0;
      const first = await startEmbeddedPostgres(dataDir, { log });
      servers.push(first);
      const link = await Deno.lstat(`${dataDir}/postgres`);
      assert(link.isSymlink, "DATA_DIR/postgres is a symlink");
      const real = await Deno.realPath(`${dataDir}/postgres`);
      realBase = real.slice(0, real.lastIndexOf("/"));
      assert(real.startsWith("/var/lib/candlekeep/"), real);
      assertEquals(first.dataDir, real);
      assert(
        lines.some((l) => l.includes("cannot reach")),
        "the fallback was logged",
      );
      const a = connect(first.url);
      try {
        await a`create table t (v text)`;
        await a`insert into t values ('kept')`;
      } finally {
        await a.end();
      }
      await first.stop();
      // Readable through the symlink.
      assert((await Deno.stat(`${dataDir}/postgres/PG_VERSION`)).isFile);

      const second = await startEmbeddedPostgres(dataDir, { log });
      servers.push(second);
      assertEquals(second.dataDir, real);
      const b = connect(second.url);
      try {
        const rows = await b<{ v: string }[]>`select v from t`;
        assertEquals(rows.map((r) => r.v), ["kept"]);
      } finally {
        await b.end();
      }
    } finally {
      for (const s of servers) await s.stop();
      await Deno.remove(privateDir, { recursive: true });
      if (realBase) await Deno.remove(realBase, { recursive: true });
    }
  },
});

/** True when `nobody` can run this Deno binary and read the project's node_modules. */
async function nobodyCanRunDeno(): Promise<boolean> {
  if (!isRoot) return false;
  const projectDir = new URL("../../", import.meta.url).pathname;
  const probe = await run("setpriv", [
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--",
    "sh",
    "-c",
    'test -x "$1" && test -r "$2/node_modules/postgres/package.json"',
    "sh",
    Deno.execPath(),
    projectDir,
  ]).catch(() => undefined);
  return probe?.code === 0;
}

Deno.test({
  name: "embedded: as a normal user the binaries run directly",
  ignore: !(await nobodyCanRunDeno()),
  fn: async () => {
    const home = await tempDataDir();
    await Deno.chmod(home, 0o755);
    try {
      await Deno.chown(home, 65534, 65534);
      const script = `${home}/start.ts`;
      const moduleUrl = new URL("../../src/db/embedded/mod.ts", import.meta.url).href;
      await Deno.writeTextFile(
        script,
        `import { startEmbeddedPostgres } from ${JSON.stringify(moduleUrl)};
import postgres from "postgres";
const server = await startEmbeddedPostgres(Deno.args[0]);
const sql = postgres(server.url, { max: 1, onnotice: () => {} });
const [row] = await sql\`select current_setting('data_directory') as dir\`;
await sql.end();
await server.stop();
console.log(JSON.stringify({ uid: Deno.uid(), dir: row.dir, dataDir: server.dataDir }));
`,
      );
      const config = new URL("../../deno.json", import.meta.url).pathname;
      const out = await new Deno.Command("setpriv", {
        args: [
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          "--",
          Deno.execPath(),
          "run",
          "--quiet",
          "--frozen",
          "--node-modules-dir=manual",
          `--config=${config}`,
          "--allow-all",
          script,
          `${home}/data`,
        ],
        clearEnv: true,
        env: {
          PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          HOME: home,
          DENO_DIR: `${home}/.deno`,
          NO_COLOR: "1",
        },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(out.stdout);
      const stderr = new TextDecoder().decode(out.stderr);
      assertEquals(out.code, 0, `deno as nobody failed: ${stderr}`);
      const result = JSON.parse(stdout.trim().split("\n").pop()!);
      assertEquals(result.uid, 65534);
      assertEquals(result.dir, `${home}/data/postgres`);
      assertEquals((await Deno.stat(`${home}/data/postgres`)).uid, 65534);
    } finally {
      await Deno.remove(home, { recursive: true });
    }
  },
});
