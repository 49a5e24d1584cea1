/**
 * Candlekeep's command line and only composition root:
 * config → db → exchange → ingest → api.
 *
 * @module
 */
import { ConfigError, loadConfig, redactConfig } from "./src/config.ts";
import type { Config } from "./src/config_types.ts";
import { getLogger, setupLogging } from "./src/log.ts";
import { connectDatabase, type DatabaseHandle } from "./src/db/connect.ts";
import { migrate } from "./src/db/migrate.ts";

const USAGE = `Candlekeep: gap-free crypto candles in PostgreSQL.

Usage: deno task cli <command> [options]

Commands:
  start     apply migrations, backfill, keep series live, repair gaps, serve the API (default)
  migrate   apply database migrations and exit
  help      show this text

Configuration comes from the environment (and .env); see README.md and .env.example.
`;

/** Exit statuses: 0 done, 1 some work failed, 2 usage or configuration error. */
const EXIT_USAGE = 2;

function fail(message: string, status: number): never {
  console.error(message);
  Deno.exit(status);
}

/** Resolves when SIGINT or SIGTERM arrives; a second signal exits at once. */
function shutdownSignal(onSecond: () => void): Promise<string> {
  return new Promise((resolve) => {
    let seen = false;
    const handler = (name: string) => () => {
      if (seen) {
        onSecond();
        Deno.exit(130);
      }
      seen = true;
      resolve(name);
    };
    Deno.addSignalListener("SIGINT", handler("SIGINT"));
    Deno.addSignalListener("SIGTERM", handler("SIGTERM"));
  });
}

async function openAndMigrate(config: Config): Promise<DatabaseHandle> {
  const handle = await connectDatabase(config);
  try {
    await handle.db.retry("migrate", (sql) =>
      migrate(sql, {
        timescaledb: config.timescaledb,
        compressAfterMs: config.compressAfterMs,
        retentionMs: config.retentionMs,
      }));
    return handle;
  } catch (error) {
    await handle.close();
    throw error;
  }
}

async function commandMigrate(config: Config): Promise<number> {
  const handle = await openAndMigrate(config);
  await handle.close();
  return 0;
}

async function commandStart(config: Config): Promise<number> {
  const log = getLogger("main");
  const stopping = shutdownSignal(() => log.warn("Second signal: exiting now"));
  const handle = await openAndMigrate(config);
  log.info("Candlekeep is running; waiting for work (Ctrl+C to stop)");
  const signal = await stopping;
  log.info("Received {signal}: shutting down", { signal });
  await handle.close();
  log.info("Stopped");
  return 0;
}

async function main(args: string[]): Promise<number> {
  const [command = "start", ...rest] = args;
  if (command === "help" || command === "--help" || command === "-h") {
    console.log(USAGE);
    return 0;
  }
  const commands: Record<
    string,
    (config: Config, args: string[]) => Promise<number>
  > = {
    start: (config) => commandStart(config),
    migrate: (config) => commandMigrate(config),
  };
  const run = commands[command];
  if (!run) fail(`Unknown command: ${command}\n\n${USAGE}`, EXIT_USAGE);

  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, EXIT_USAGE);
    throw error;
  }
  setupLogging({ level: config.logLevel, format: config.logFormat });
  const log = getLogger("main");
  log.info("Configuration loaded", { config: redactConfig(config) });
  try {
    return await run(config, rest);
  } catch (error) {
    log.fatal("{message}", {
      message: (error as Error).message ?? String(error),
      error,
    });
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
