/**
 * Starting the embedded PostgreSQL of a DATA_DIR: checks the platform, drops root, lays out and
 * initialises the cluster, then starts the server.
 *
 * @module
 */
import { binariesPackage } from "../platform.ts";
import { initCluster, layout, PASSWORD_FILE, readOrCreatePassword } from "./cluster.ts";
import { failure, hasSetpriv, type Launcher, type Log, run, tail, unprivilegedUser, userCanReach } from "./command.ts";
import { freePort } from "./connection.ts";
import { absolute, exists, join } from "./paths.ts";
import { prepareRuntime } from "./runtime.ts";
import { type EmbeddedOptions, type EmbeddedPostgres, Server } from "./server.ts";

/**
 * Starts the embedded PostgreSQL for `dataDir` (Candlekeep's DATA_DIR): the cluster lives in
 * `DATA_DIR/postgres` and its superuser password in `DATA_DIR/postgres.password`. The first
 * call initialises the cluster and creates the `candlekeep` database; later calls reuse both.
 */
export async function startEmbeddedPostgres(
  dataDir: string,
  options: EmbeddedOptions = {},
): Promise<EmbeddedPostgres> {
  const log: Log = options.log ?? (() => {});
  binariesPackage(Deno.build); // throws, naming the platform, when it has no binaries
  if (options.port !== undefined && !(Number.isInteger(options.port) && options.port > 0)) {
    throw failure(`port must be a positive integer: current value is ${options.port}`);
  }
  const dir = absolute(dataDir);
  await Deno.mkdir(dir, { recursive: true });

  const root = Deno.uid() === 0;
  const setpriv = await hasSetpriv();
  if (root && !setpriv) {
    throw failure(
      "running as root needs setpriv (Debian package util-linux) to drop privileges: current value is not installed",
    );
  }
  const runAs = root ? await unprivilegedUser(log) : undefined;
  const probe: Launcher = { runAs, setpriv, binDir: "" };
  const where = await layout(dir, probe, { log });
  const runtime = await prepareRuntime(where.base, log);
  const launcher: Launcher = { runAs, setpriv, binDir: join(runtime, "bin") };
  if (runAs && !(await userCanReach(launcher, launcher.binDir))) {
    throw failure(`the user ${runAs.name} cannot reach the runtime: current value is ${runtime}`);
  }

  const clusterExists = await exists(join(where.clusterDir, "PG_VERSION"));
  const password = await readOrCreatePassword(join(dir, PASSWORD_FILE), clusterExists);
  if (!clusterExists) await initCluster(launcher, where, { password, log });
  // The cluster belongs to the unprivileged user, also when it was created by an older run.
  if (runAs) {
    const owner = (await Deno.stat(where.clusterDir)).uid;
    if (owner !== runAs.uid) {
      const result = await run("chown", ["-R", `${runAs.uid}:${runAs.gid}`, where.clusterDir]);
      if (result.code !== 0) {
        throw failure(`chown of ${where.clusterDir} failed: ${tail(result.stderr)}`);
      }
    }
  }

  const port = options.port ?? freePort();
  const server = new Server({ port, dataDir: where.clusterDir, password, launcher, log, home: dir });
  await server.start();
  log("Embedded PostgreSQL is ready on 127.0.0.1:{port} (cluster {dir})", {
    port,
    dir: where.clusterDir,
  });
  return server;
}
