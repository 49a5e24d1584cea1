/**
 * One-shot runs (the `backfill` and `gaps --repair` commands): claim the series they may work
 * on, skipping those kept by a running instance, do the work once and release the leases.
 *
 * @module
 */
import type { BackfillSince } from "../config_types.ts";
import type { BackfillProgress } from "./backfill.ts";
import type { SeriesTarget } from "./walk.ts";
import type { Leases } from "./coordination.ts";
import { failuresOf, type Jobs, type SeriesFailure } from "./jobs.ts";
import { registerSeries, type SeriesKey } from "./series.ts";
import type { Catalog } from "./series_sync.ts";
import type { Derivatives } from "./derivatives.ts";

/** Options of {@linkcode backfillOnce}. */
export interface BackfillOnceOptions {
  /** Only series whose key matches every given field. */
  filter?: Partial<SeriesKey>;
  /** Overrides every series' start (`BACKFILL_SINCE` and the starts of series added through the API). */
  since?: BackfillSince;
  onProgress?: (progress: BackfillProgress) => void;
}

/** The parts of an engine a one-shot run uses. */
export interface OneShotParts {
  jobs: Jobs;
  leases: Leases;
  catalog: Catalog;
  derivatives: Derivatives;
}

/** Claims `series`, runs `work` on the ones claimed, and releases every lease afterwards. */
async function claimAndRun(
  parts: OneShotParts,
  series: readonly SeriesTarget[],
  work: (series: SeriesTarget) => Promise<SeriesFailure | null>,
): Promise<SeriesFailure[]> {
  const { jobs, leases } = parts;
  const renew = leases.renewOneShot();
  try {
    const failures = await leases.claimOrWait(series);
    const claimed = series.filter((s) => jobs.owned.has(s.id));
    return [...failures, ...failuresOf(await Promise.all(claimed.map(work)))];
  } finally {
    clearInterval(renew);
    await leases.release();
  }
}

/**
 * One-shot backfill: registers and validates the configured series, narrows them by
 * `filter`, claims their leases, backfills them and repairs gaps. Returns the series that
 * could not be done, with reasons.
 */
export async function backfillOnce(
  parts: OneShotParts,
  options: BackfillOnceOptions = {},
): Promise<SeriesFailure[]> {
  const { jobs, catalog } = parts;
  const failures: SeriesFailure[] = [];
  const f = options.filter ?? {};
  const keys = (await catalog.configuredKeys()).filter((k) =>
    (!f.exchange || k.exchange === f.exchange) &&
    (!f.symbol || k.symbol === f.symbol) &&
    (!f.timeframe || k.timeframe === f.timeframe)
  );
  const rows = [];
  for (const key of keys) rows.push(await jobs.db.retry("register", (sql) => registerSeries(sql, key)));
  const valid: SeriesTarget[] = [];
  for (const row of rows) {
    const reason = await catalog.validate(row);
    if (reason) failures.push({ series: row, reason });
    else valid.push(row);
  }
  let runStartedAt: number | undefined; // once the leases are claimed
  // Funding and open interest of the perpetuals among these series, unless a running instance
  // collects them. Open interest has a request budget of its own (Binance /futures/data): it
  // runs beside the candles.
  const derivatives = { claimFree: true, among: valid, since: options.since };
  const openInterest = parts.derivatives.openInterest(derivatives);
  failures.push(
    ...await claimAndRun(parts, valid, async (s) => {
      runStartedAt ??= jobs.now();
      const failure = await jobs.backfill(s, runStartedAt, { since: options.since, onProgress: options.onProgress });
      return failure ?? await jobs.repair(s);
    }),
  );
  await openInterest;
  // from the candles' start (a duration counts back from the same moment)
  await parts.derivatives.funding({ ...derivatives, check: true, startedAt: runStartedAt });
  return failures;
}

/**
 * One-shot gap repair over every active series this instance can hold; series kept by a
 * running instance are skipped with a notice. Returns the series whose repair failed, with
 * reasons.
 */
export async function repairOnce(parts: OneShotParts): Promise<SeriesFailure[]> {
  const { jobs } = parts;
  const rows = await jobs.db.retry("list series", (sql) =>
    sql<SeriesTarget[]>`
      select id, exchange, symbol, timeframe, price from series where active and state <> 'invalid' order by id`);
  const usable = rows.filter((r) => jobs.sources.has(r.exchange));
  const failures = await claimAndRun(parts, usable, (series) => jobs.repair(series));
  const derivatives = { claimFree: true, among: usable };
  await Promise.all([
    parts.derivatives.openInterest({ ...derivatives, check: true }),
    parts.derivatives.funding({ ...derivatives, check: true }),
  ]);
  return failures;
}
