/**
 * Lease coordination of one engine: the service's heartbeat and fair share (renewed every third
 * of the lease timeout), one-shot runs' claims (no heartbeat: they are not instances the
 * service shares with), waiting for a killed holder's leases, and releasing them all.
 *
 * @module
 */
import { describeSeries, type SeriesTarget } from "./walk.ts";
import { errorMessage, type Jobs, type SeriesFailure } from "./jobs.ts";
import { heartbeat, rebalance, releaseAll } from "./leases.ts";
import { loadSeries } from "./series.ts";

/** Claims, renews and releases the leases of the series an engine works on. */
export class Leases {
  readonly #jobs: Jobs;
  #coordinating: Promise<void> | null = null;

  /** Coordinates for `jobs`, whose held series it keeps up to date. */
  constructor(jobs: Jobs) {
    this.#jobs = jobs;
  }

  /** Makes exactly the series `ids` (as the database returned them) the held ones. */
  async #hold(ids: number[]): Promise<void> {
    const rows = ids.length === 0 ? [] : await this.#jobs.db.retry("load series", (sql) => loadSeries(sql, ids));
    this.#jobs.hold(ids, rows);
  }

  /** Renews this instance's heartbeat and leases and takes its share of free series. */
  coordinate(onlyIds?: readonly number[]): Promise<void> {
    if (this.#coordinating) return this.#coordinating;
    const jobs = this.#jobs;
    this.#coordinating = (async () => {
      try {
        await jobs.db.retry(
          "heartbeat",
          (sql) => heartbeat(sql, jobs.owner, { ttlMs: jobs.ttlMs, hostname: Deno.hostname?.(), pid: Deno.pid }),
        );
        const ids = await jobs.db.retry(
          "rebalance",
          (sql) =>
            rebalance(sql, jobs.owner, { ttlMs: jobs.ttlMs, onlyIds, max: onlyIds ? onlyIds.length : undefined }),
        );
        await this.#hold(ids);
      } catch (error) {
        jobs.log.error("Cannot renew leases: {reason}", { reason: errorMessage(error) });
      } finally {
        this.#coordinating = null;
      }
    })();
    return this.#coordinating;
  }

  /** Logs how many series this instance held before it restarted (it takes them back at once). */
  async announceTakeBack(): Promise<void> {
    const jobs = this.#jobs;
    const [{ held }] = await jobs.db.retry(
      "own leases",
      (sql) => sql<{ held: number }[]>`select count(*)::int as held from series where lease_owner = ${jobs.owner}`,
    );
    if (held > 0) {
      jobs.log.info("Taking back {count} series leased by this instance ({owner}) before it restarted", {
        count: held,
        owner: jobs.owner,
      });
    }
  }

  /**
   * Claims free (or expired) leases among `ids` for a one-shot run and renews the ones held,
   * without a heartbeat: a one-shot run is not an instance the running ones share with, so
   * their fair share (and what they hold) does not change because of it.
   */
  async #claimOneShot(ids: readonly number[]): Promise<void> {
    const jobs = this.#jobs;
    const held = await jobs.db.retry(
      "claim leases",
      (sql) => rebalance(sql, jobs.owner, { ttlMs: jobs.ttlMs, onlyIds: ids, max: ids.length }),
    );
    await this.#hold(held);
  }

  /** Renews a one-shot run's leases every third of the lease timeout; clear the interval after. */
  renewOneShot(): ReturnType<typeof setInterval> {
    return setInterval(() => {
      const ids = [...this.#jobs.owned];
      if (ids.length === 0) return;
      this.#claimOneShot(ids).catch((error) =>
        this.#jobs.log.error("Cannot renew leases: {reason}", { reason: errorMessage(error) })
      );
    }, Math.max(1000, this.#jobs.ttlMs / 3));
  }

  /**
   * Claims the leases of `series` for a one-shot run. Leases of an instance that stopped
   * heart-beating (killed) are waited for until they expire. A series kept by a live instance
   * (it heart-beat or renewed the lease since this run began) is skipped with a notice: that
   * instance does the work. Returns, as failures, only series that could be neither claimed
   * nor attributed to a live instance.
   */
  async claimOrWait(series: readonly SeriesTarget[]): Promise<SeriesFailure[]> {
    const jobs = this.#jobs;
    const ids = series.map((s) => s.id);
    const deadline = Date.now() + jobs.ttlMs + 2000;
    const ttl = `${Math.ceil(jobs.ttlMs / 1000)} seconds`;
    const [{ since }] = await jobs.db.retry("now", (sql) => sql<{ since: Date }[]>`select now() as since`);
    let announced = false;
    for (;;) {
      await this.#claimOneShot(ids);
      const missing = ids.filter((id) => !jobs.owned.has(id));
      if (missing.length === 0) return [];
      // A holder that heart-beat, or renewed the lease, since we started waiting is alive:
      // its series are not ours. (A lease renewed at t >= since expires after since + ttl.)
      const holders = await jobs.db.retry(
        "lease holders",
        (sql) =>
          sql<{ id: number; owner: string | null; alive: boolean }[]>`
          select s.id, s.lease_owner as owner,
                 s.lease_owner is not null and s.lease_expires_at > now() and (
                   coalesce(i.heartbeat_at > ${since}, false) or
                   s.lease_expires_at > ${since}::timestamptz + ${ttl}::interval
                 ) as alive
          from series s left join instances i on i.id = s.lease_owner
          where s.id = any(${missing}::int[])`,
      );
      if (holders.every((h) => h.alive) || Date.now() > deadline) {
        const failures: SeriesFailure[] = [];
        for (const s of series) {
          const holder = holders.find((h) => h.id === s.id);
          if (!holder) continue;
          if (holder.alive) {
            jobs.log.info("{series} is kept by the running instance {owner}; skipped", {
              series: describeSeries(s),
              owner: holder.owner,
            });
          } else {
            failures.push({ series: s, reason: "held by another instance (its lease has not expired)" });
          }
        }
        return failures;
      }
      if (!announced) {
        jobs.log.info(
          "{count} series are leased by another instance: waiting up to {seconds} s to see whether it is running",
          { count: missing.length, seconds: Math.ceil((deadline - Date.now()) / 1000) },
        );
        announced = true;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /**
   * Gives up every lease of this instance. `keepBackfilled` keeps what this process knows to
   * be backfilled (a Deploy isolate between runs). One try: at shutdown a database that is
   * down must not hold the exit up; the leases then simply expire after `LEASE_TTL`.
   */
  async release(options: { keepBackfilled?: boolean } = {}): Promise<void> {
    const jobs = this.#jobs;
    jobs.owned.clear();
    if (!options.keepBackfilled) jobs.backfilled.clear();
    await releaseAll(jobs.db.sql, jobs.owner).catch((error) =>
      jobs.log.warn("Cannot release leases: {reason}", { reason: errorMessage(error) })
    );
  }
}
