/**
 * Candlekeep's command line and only composition root:
 * config → db → exchange → ingest → api.
 *
 * @module
 */
import { ConfigError, loadConfig, parseBackfillSince, redactConfig } from "./src/config.ts";
import type { BackfillSince, Config } from "./src/config_types.ts";
import { counted, getLogger, resolveFormat, routeStderrLines, setupLogging } from "./src/log.ts";
import { connectDatabase, type DatabaseHandle } from "./src/db/connect.ts";
import { migrate } from "./src/db/migrate.ts";
import { seriesOverview } from "./src/db/overview.ts";
import { createExchangeClients, ExchangeClient } from "./src/exchange/client.ts";
import { archiveFor } from "./src/exchange/archive_source.ts";
import { Ingestor, type SeriesFailure } from "./src/ingest/engine.ts";
import { describeSeries } from "./src/ingest/backfill.ts";
import { findGaps, listHoles } from "./src/ingest/gaps.ts";
import { Registry } from "./src/metrics.ts";
import { type CommandArgs, commandHelp, parseCommandArgs, usage, UsageError } from "./src/cli/args.ts";
import { ProgressDisplay } from "./src/cli/progress.ts";
import { renderStatusTable, statusJson } from "./src/cli/status.ts";
import { fundingOverview, renderFundingTable } from "./src/derivatives/funding_status.ts";
import { openInterestOverview, renderOpenInterestTable } from "./src/derivatives/open_interest_overview.ts";
import { progressLine, seriesFrontier, startSummary } from "./src/cli/summary.ts";
import {
  derivativeGapsJson,
  fundingGapReport,
  openInterestGapReport,
  renderDerivativeGaps,
} from "./src/derivatives/gap_report.ts";
import { normalizeSymbol } from "./src/config.ts";
import { isTimeframe, timeframeMs } from "./src/timeframe.ts";
import { exportFiles, exportTargets } from "./src/export/files.ts";
import { exportOptions, outIsFile, resultLine } from "./src/cli/export_options.ts";
import { registerExchangeMetrics } from "./src/exchange/metrics.ts";
import { instanceIdentity } from "./src/ingest/leases.ts";
import { RollupUpkeep } from "./src/ingest/rollup_upkeep.ts";
import { configRedactor, redactor } from "./src/secrets.ts";

const EXIT_FAILED = 1;
const EXIT_USAGE = 2;

/** Command output on stdout, with every secret masked. */
function print(text: string): void {
  console.log(redactor().scrub(text));
}

/** A message on stderr, with every secret masked. */
function printError(text: string): void {
  console.error(redactor().scrub(text));
}

/** Resolves when SIGINT or SIGTERM arrives; a second signal exits at once. */
function shutdownSignal(): Promise<string> {
  return new Promise((resolve) => {
    let seenAt = 0;
    const handler = (name: string) => () => {
      // `deno task` forwards the terminal's signal, so one Ctrl+C can arrive twice at once:
      // only a signal more than a second after the first means "exit now".
      if (seenAt > 0 && Date.now() - seenAt < 1000) return;
      if (seenAt > 0) {
        getLogger("main").warn("Second {signal}: exiting now", { signal: name });
        Deno.exit(130);
      }
      seenAt = Date.now();
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

async function openExchanges(config: Config, registry?: Registry): Promise<Map<string, ExchangeClient>> {
  const clients = await createExchangeClients(config);
  if (registry) registerExchangeMetrics(registry, clients);
  return clients;
}

function closeExchanges(clients: Iterable<ExchangeClient>): void {
  for (const c of clients) c.close();
}

function reportFailures(failures: SeriesFailure[]): void {
  for (const f of failures) printError(`FAILED ${describeSeries(f.series)}: ${f.reason}`);
}

async function commandMigrate(config: Config): Promise<number> {
  const handle = await openAndMigrate(config);
  await handle.close();
  return 0;
}

/**
 * Creates one client per configured exchange (an unknown id fails here, at start-up) and
 * loads their markets in the background: an exchange that cannot be reached yet is retried
 * every minute while the rest of the service runs; `onReady` is called as each one comes up.
 */
function startExchanges(
  config: Config,
  registry: Registry,
  signal: AbortSignal,
  onReady: (client: ExchangeClient) => Promise<void>,
): { sources: Map<string, ExchangeClient>; all: ExchangeClient[]; firstRound: Promise<void> } {
  const log = getLogger("main");
  const sources = new Map<string, ExchangeClient>();
  const all = config.exchanges.map((id) => new ExchangeClient(id, config));
  registerExchangeMetrics(registry, sources);
  const bringUp = async (client: ExchangeClient, first: { resolve: () => void }) => {
    for (;;) {
      try {
        await client.start();
        sources.set(client.id, client);
        client.startRefreshTimer();
        first.resolve();
        await onReady(client);
        return;
      } catch (error) {
        log.error("Cannot load the markets of {exchange}: {reason}; retrying in 60 s", {
          exchange: client.id,
          reason: (error as Error).message,
        });
        first.resolve();
        if (signal.aborted) return;
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, 60_000);
          signal.addEventListener("abort", () => {
            clearTimeout(timer);
            resolve(undefined);
          }, { once: true });
        });
        if (signal.aborted) return;
      }
    }
  };
  const firstRound = Promise.all(all.map((client) => {
    let resolve!: () => void;
    const first = new Promise<void>((r) => resolve = r);
    bringUp(client, { resolve }).catch(() => {});
    return first;
  })).then(() => {});
  return { sources, all, firstRound };
}

/**
 * Logs the backfill's progress every 10 s (one line) until every series is live, failed or
 * invalid, then one closing line. Read from the database (two index look-ups a series), so it
 * counts the work of every instance sharing it.
 */
async function reportProgress(sql: DatabaseHandle["db"]["sql"], signal: AbortSignal): Promise<void> {
  const log = getLogger("main");
  let last = "";
  while (!signal.aborted) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 10_000);
      signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
    if (signal.aborted) return;
    try {
      const report = progressLine(await seriesFrontier(sql), Date.now());
      if (report && report.line !== last) log.info("{progress}", { progress: report.line });
      last = report?.line ?? last;
      if (report?.done) return;
    } catch {
      // The database is briefly unreachable: the next round reports.
    }
  }
}

async function commandStart(config: Config): Promise<number> {
  const log = getLogger("main");
  const stopping = shutdownSignal();
  const registry = new Registry();
  const handle = await openAndMigrate(config);
  // Rollups on TimescaleDB: materialize what never was, recompress what writes left partial.
  const rollups = new RollupUpkeep(handle.db, { registry });
  rollups.request(0);
  const abort = new AbortController();
  let exchanges: ExchangeClient[] = [];
  let ingestor: Ingestor | undefined;
  let api: { port: number; shutdown(): Promise<void> } | undefined;
  let progress: Promise<void> | undefined;
  try {
    let started = false;
    const { sources, all, firstRound } = startExchanges(config, registry, abort.signal, async () => {
      // An exchange that came up late: register and claim its series now.
      if (started && ingestor) await ingestor.syncSeries().then(() => ingestor!.coordinate());
    });
    exchanges = all;
    // A fixed identity (INSTANCE_ID, else host name and API port): restarted after a crash,
    // this instance takes back its own leases at once instead of waiting LEASE_TTL for them.
    const owner = config.instanceId ?? instanceIdentity({ port: config.apiPort });
    ingestor = new Ingestor({ db: handle.db, config, sources, registry, owner, rollups, archive: archiveFor(config) });
    const { serveApi } = await import("./src/api/server.ts");
    const exchangeStatus = () => all.map((client) => client.status());
    api = serveApi({ db: handle.db, config, registry, ingest: ingestor, exchanges: exchangeStatus }, {
      hostname: config.apiHost,
      port: config.apiPort,
      limits: config.http,
    });
    await Promise.race([firstRound, stopping]);
    await ingestor.start();
    started = true;
    const [first, ...rest] = startSummary(config, { port: api.port, database: handle.where });
    log.info("Candlekeep is running. {summary}", { summary: first });
    for (const line of rest) log.info("{summary}", { summary: line });
    progress = reportProgress(handle.db.sql, abort.signal);
    const signal = await stopping;
    log.info("Received {signal}: shutting down", { signal });
    return 0;
  } finally {
    abort.abort();
    await progress;
    await api?.shutdown().catch(() => {});
    await ingestor?.stop().catch(() => {});
    await rollups.stop();
    closeExchanges(exchanges);
    await handle.close();
    log.info("Stopped");
  }
}

function parseSince(text: string | undefined): BackfillSince | undefined {
  if (text === undefined) return undefined;
  const since = parseBackfillSince(text);
  if (!since) {
    throw new UsageError(`Cannot parse --since: current value is "${text}", expected a date, 30d or earliest`);
  }
  return since;
}

/** The symbols of `--symbol`, normalised; a UsageError names the ones that are not symbols. */
function symbolsOf(opts: CommandArgs): string[] | undefined {
  const given = opts.lists.symbol;
  if (!given) return undefined;
  const bad = given.filter((s) => normalizeSymbol(s) === null);
  if (bad.length > 0) {
    throw new UsageError(`Cannot parse --symbol: current value is "${bad.join(",")}", expected e.g. BTC/USDT`);
  }
  return [...new Set(given.map((s) => normalizeSymbol(s)!))];
}

/** The timeframes of `--timeframe`; a UsageError names the invalid ones. */
function timeframesOf(opts: CommandArgs): string[] | undefined {
  const given = opts.lists.timeframe;
  const bad = given?.filter((t) => !isTimeframe(t)) ?? [];
  if (bad.length > 0) {
    throw new UsageError(`Cannot parse --timeframe: current value is "${bad.join(",")}", expected e.g. 1m, 1h, 1d`);
  }
  return given;
}

/** Rows narrowed to the `--exchange`, `--symbol` and `--timeframe` of the command line. */
function narrowRows<T extends { exchange: string; symbol: string; timeframe: string }>(
  rows: T[],
  opts: CommandArgs,
): T[] {
  const symbols = symbolsOf(opts);
  const timeframes = timeframesOf(opts);
  const exchanges = opts.lists.exchange;
  return rows.filter((r) =>
    (!exchanges || exchanges.includes(r.exchange)) && (!symbols || symbols.includes(r.symbol)) &&
    (!timeframes || timeframes.includes(r.timeframe))
  );
}

async function commandBackfill(config: Config, opts: CommandArgs): Promise<number> {
  const symbols = symbolsOf(opts);
  const timeframes = timeframesOf(opts);
  const exchanges = opts.lists.exchange;
  const unknown = exchanges?.filter((e) => !config.exchanges.includes(e)) ?? [];
  if (unknown.length > 0) {
    throw new UsageError(
      `Cannot use --exchange ${unknown.join(",")}: configured exchanges are ${config.exchanges.join(", ")} (EXCHANGES)`,
    );
  }
  const since = parseSince(opts.values.since);
  // Options narrow the configuration; symbols or timeframes not configured are added for this run.
  const narrowed: Config = {
    ...config,
    exchanges: exchanges ?? config.exchanges,
    symbols: symbols ?? config.symbols,
    topSymbols: symbols ? 0 : config.topSymbols,
    timeframes: timeframes ?? config.timeframes,
  };
  const handle = await openAndMigrate(narrowed);
  const clients = await openExchanges(narrowed).catch(async (error) => {
    await handle.close();
    throw error;
  });
  const log = getLogger("backfill");
  const rollups = new RollupUpkeep(handle.db);
  const ingestor = new Ingestor({
    db: handle.db,
    config: narrowed,
    sources: clients,
    rollups,
    archive: archiveFor(config),
  });
  const progress = new ProgressDisplay({
    tty: Deno.stderr.isTerminal() && resolveFormat(config.logFormat, true) === "pretty",
    log: (fields) => log.info("Backfill progress {series}: {percent}%{archive}", fields),
  });
  const stopping = shutdownSignal();
  // On a terminal, log lines go above the bars instead of under the next redraw.
  if (progress.tty) routeStderrLines((line) => progress.writeAbove(line));
  try {
    const run = ingestor.backfillOnce({ since, onProgress: (p) => progress.update(p) });
    const outcome = await Promise.race([run, stopping.then(() => null)]);
    if (outcome === null) {
      log.warn("Interrupted: stopping after the current pages; the next run resumes from the checkpoints");
      await ingestor.stop();
      await run.catch(() => {});
      return EXIT_FAILED;
    }
    const rows = await seriesOverview(handle.db.sql, { nowMs: Date.now() });
    const done = narrowRows(rows, opts).filter((r) =>
      r.active && narrowed.exchanges.includes(r.exchange) && narrowed.timeframes.includes(r.timeframe) &&
      (!symbols || symbols.includes(r.symbol))
    );
    print(renderStatusTable(done, Date.now()));
    reportFailures(outcome);
    await ingestor.stop();
    await rollups.flush();
    return outcome.length > 0 ? EXIT_FAILED : 0;
  } finally {
    routeStderrLines(null);
    await rollups.stop();
    closeExchanges(clients.values());
    await handle.close();
  }
}

async function commandStatus(config: Config, opts: CommandArgs): Promise<number> {
  narrowRows([], opts); // a bad --symbol or --timeframe fails before the database is opened
  const handle = await openAndMigrate(config);
  try {
    const now = Date.now();
    const rows = narrowRows(await seriesOverview(handle.db.sql, { nowMs: now }), opts);
    // Funding histories have no timeframe: --exchange and --symbol narrow them.
    const symbols = symbolsOf(opts);
    const funding = (await fundingOverview(handle.db.sql)).filter((r) =>
      (!opts.lists.exchange || opts.lists.exchange.includes(r.exchange)) && (!symbols || symbols.includes(r.symbol))
    );
    const oi = narrowRows(
      (await openInterestOverview(handle.db.sql, now)).map((r) => ({ ...r, timeframe: r.period })),
      opts,
    );
    if (opts.flags.has("json")) {
      print(JSON.stringify(statusJson({ series: rows, funding, openInterest: oi }, now), null, 2));
    } else {
      const tables = [renderStatusTable(rows, now), renderFundingTable(funding)].filter((t) => t !== "").join("\n\n");
      print(tables + renderOpenInterestTable(oi));
    }
    return 0;
  } finally {
    await handle.close();
  }
}

async function commandGaps(config: Config, opts: CommandArgs): Promise<number> {
  narrowRows([], opts);
  const handle = await openAndMigrate(config);
  let clients: Map<string, ExchangeClient> | undefined;
  try {
    const sql = handle.db.sql;
    let failures: SeriesFailure[] = [];
    if (opts.flags.has("repair")) {
      clients = await openExchanges(config);
      const rollups = new RollupUpkeep(handle.db);
      const ingestor = new Ingestor({ db: handle.db, config, sources: clients, rollups, archive: archiveFor(config) });
      try {
        failures = await ingestor.repairOnce();
        await ingestor.stop();
        rollups.request(0);
        await rollups.flush();
      } finally {
        await rollups.stop();
      }
    }
    const series = narrowRows(
      await sql<{ id: number; exchange: string; symbol: string; timeframe: string; price: string }[]>`
        select id, exchange, symbol, timeframe, price from series order by id`,
      opts,
    );
    const report = [];
    for (const s of series) {
      const gaps = await findGaps(sql, s.id, timeframeMs(s.timeframe));
      const holes = await listHoles(sql, s.id);
      report.push({
        kind: "candles",
        series: s,
        gaps: gaps.map((g) => ({
          from: new Date(g.from).toISOString(),
          to: new Date(g.to).toISOString(),
          count: g.count,
        })),
        holes: holes.map((h) => ({
          from: new Date(h.from).toISOString(),
          to: new Date(h.to).toISOString(),
          reason: h.reason,
          checked_at: new Date(h.checkedAt).toISOString(),
        })),
      });
    }
    const filter = { exchanges: opts.lists.exchange, symbols: symbolsOf(opts), periods: timeframesOf(opts) };
    const derivatives = [...await fundingGapReport(sql, filter), ...await openInterestGapReport(sql, filter)];
    if (opts.flags.has("json")) {
      print(JSON.stringify([...report, ...derivatives.map(derivativeGapsJson)], null, 2));
    } else {
      for (const r of report) {
        print(
          `${describeSeries(r.series)} (id ${r.series.id}): ${counted(r.gaps.length, "gap")}, ${
            counted(r.holes.length, "hole")
          }`,
        );
        for (const g of r.gaps) print(`  gap  ${g.from} .. ${g.to}  ${g.count} candles missing`);
        for (const h of r.holes) print(`  hole ${h.from} .. ${h.to}  ${h.reason} (checked ${h.checked_at})`);
      }
      for (const r of derivatives) print(renderDerivativeGaps(r).join("\n"));
    }
    reportFailures(failures);
    return failures.length > 0 ? EXIT_FAILED : 0;
  } finally {
    if (clients) closeExchanges(clients.values());
    await handle.close();
  }
}

async function commandExport(config: Config, opts: CommandArgs): Promise<number> {
  const filter = { exchanges: opts.lists.exchange, symbols: symbolsOf(opts), timeframes: timeframesOf(opts) };
  const options = exportOptions(opts);
  const handle = await openAndMigrate(config);
  try {
    const sql = handle.db.sql;
    const targets = await exportTargets(sql, filter);
    if (targets.length === 0) {
      printError("Cannot export: no stored series match the options (deno task cli status lists them)");
      return EXIT_FAILED;
    }
    const request = { ...options, targets, outIsFile: await outIsFile(options.out, targets.length) };
    const results = await exportFiles(sql, request, (r) => r.ok ? print(resultLine(r)) : printError(resultLine(r)));
    return results.some((r) => !r.ok) ? EXIT_FAILED : 0;
  } finally {
    await handle.close();
  }
}

const COMMANDS: Record<string, (config: Config, opts: CommandArgs) => Promise<number>> = {
  start: (config) => commandStart(config),
  migrate: (config) => commandMigrate(config),
  backfill: commandBackfill,
  status: commandStatus,
  gaps: commandGaps,
  export: commandExport,
};

/**
 * Why the embedded database cannot live in `DATA_DIR` under this process's permissions, or
 * null when it can (or `DATABASE_URL` is set). Checked before anything starts, so a folder
 * outside the permission set is a one-line configuration error rather than a failure later.
 */
function dataDirDenied(config: Config): string | null {
  if (config.databaseUrl) return null;
  const { state } = Deno.permissions.querySync({ name: "write", path: config.dataDir });
  if (state === "granted") return null;
  return `Cannot start: invalid configuration: DATA_DIR=${
    JSON.stringify(config.dataDir)
  }: a folder this process may write to; the "service" permission set in deno.json allows ./data, /var/lib/candlekeep and /tmp (add yours to its "write" list, or set DATABASE_URL)`;
}

/** The configuration from the environment, or null after printing why it is invalid. */
function loadConfigOrReport(): Config | null {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      printError(error.message);
      return null;
    }
    throw error;
  }
}

async function main(args: string[]): Promise<number> {
  const [command = "start", ...rest] = args;
  let opts: CommandArgs;
  try {
    if (command === "help" || command === "--help" || command === "-h") {
      const [topic, ...extra] = rest;
      if (extra.length > 0) {
        throw new UsageError(`Cannot show help: current value is "${rest.join(" ")}", expected one command`);
      }
      console.log(topic ? commandHelp(topic) : usage());
      return 0;
    }
    opts = parseCommandArgs(command, rest);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(error.message);
    return EXIT_USAGE;
  }
  if (opts.help) {
    console.log(commandHelp(command));
    return 0;
  }
  const run = COMMANDS[command];
  const config = loadConfigOrReport();
  if (!config) return EXIT_USAGE;
  const denied = dataDirDenied(config);
  if (denied) {
    console.error(denied);
    return EXIT_USAGE;
  }
  setupLogging({ level: config.logLevel, format: config.logFormat, redactor: configRedactor(config) });
  const log = getLogger("main");
  log.debug("Configuration loaded", { config: redactConfig(config) });
  try {
    return await run(config, opts);
  } catch (error) {
    if (error instanceof UsageError) {
      printError(error.message);
      return EXIT_USAGE;
    }
    if (error instanceof ConfigError) {
      // A DATABASE_URL that postgres.js cannot parse: reported like any configuration error.
      printError(error.message);
      return EXIT_USAGE;
    }
    log.fatal("{reason}", { reason: redactor().message(error), error });
    return EXIT_FAILED;
  }
}

/** The service on a Deploy-style host: what the top-level crons and the API share. */
interface DeployService {
  config: Config;
  /** One bounded cron run; throws (the host records a failed run) when the service cannot work. */
  run(kind: "live" | "repair"): Promise<void>;
  /** Connects, migrates (under an advisory lock), starts loading the exchanges and serves the API. */
  serve(): Promise<void>;
}

/**
 * Deploy mode (`DENO_DEPLOY` set): nothing is written to disk, no process is started, the
 * database is `DATABASE_URL`. Configuration errors exit 2 with one line naming the variable.
 */
function prepareDeploy(): DeployService {
  const config = loadConfigOrReport();
  if (!config) Deno.exit(EXIT_USAGE);
  setupLogging({ level: config.logLevel, format: config.logFormat, redactor: configRedactor(config) });
  const log = getLogger("deploy");
  log.info(
    "Deploy mode: crons registered at top level (live: {live}, repair: {repair}, UTC), at most {budget} ms of exchange requests per run",
    {
      live: config.liveSchedule,
      repair: config.repairSchedule,
      budget: config.tickBudgetMs,
      config: redactConfig(config),
    },
  );
  let ready: Promise<{ ingestor: Ingestor; firstRound: Promise<void> }> | undefined;
  const registry = new Registry();
  const boot = () => {
    ready ??= (async () => {
      const handle = await openAndMigrate(config);
      const { sources, all, firstRound } = startExchanges(
        config,
        registry,
        new AbortController().signal,
        async () => {},
      );
      const ingestor = new Ingestor({ db: handle.db, config, sources, registry, archive: archiveFor(config) });
      const { serveApi } = await import("./src/api/server.ts");
      const exchanges = () => all.map((client) => client.status());
      serveApi({ db: handle.db, config, registry, ingest: ingestor, exchanges }, {
        hostname: config.apiHost,
        port: config.apiPort,
        limits: config.http,
      });
      return { ingestor, firstRound };
    })();
    // A failed start (database unreachable) is tried again by the next call.
    ready.catch(() => (ready = undefined));
    return ready;
  };
  return {
    config,
    serve: async () => {
      try {
        await boot();
      } catch (error) {
        log.fatal("Cannot start: {reason}", { reason: redactor().message(error) });
        Deno.exit(EXIT_FAILED);
      }
    },
    run: async (kind) => {
      const { ingestor, firstRound } = await boot();
      await firstRound;
      const report = await ingestor.boundedRun(kind, { budgetMs: config.tickBudgetMs });
      log.info(
        "{kind} run: {series} series in {elapsedMs} ms; budget spent: {budgetSpent}; backfills pending: {pending}; failed: {failed}",
        {
          kind,
          series: report.series,
          elapsedMs: report.elapsedMs,
          budgetSpent: report.budgetSpent,
          pending: report.pending,
          failed: report.failures.length,
        },
      );
      reportFailures(report.failures);
    },
  };
}

/** True when `DENO_DEPLOY` is set and not empty (Deno Deploy sets it); false when it cannot be read. */
function deployRequested(): boolean {
  try {
    return (Deno.env.get("DENO_DEPLOY") ?? "").trim() !== "";
  } catch {
    return false;
  }
}

if (import.meta.main) {
  if (deployRequested()) {
    // Deno Deploy accepts Deno.cron only from the main module's top-level code, before the
    // server starts: register both here, then serve.
    const deploy = prepareDeploy();
    Deno.cron("candlekeep-live", deploy.config.liveSchedule, { backoffSchedule: [] }, () => deploy.run("live"));
    Deno.cron("candlekeep-repair", deploy.config.repairSchedule, { backoffSchedule: [] }, () => deploy.run("repair"));
    await deploy.serve();
  } else {
    Deno.exit(await main(Deno.args));
  }
}
