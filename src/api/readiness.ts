/**
 * The exchanges' part of `/ready`: which configured exchanges have been unreachable for
 * {@linkcode UNREACHABLE_AFTER_MS} or more, and whether that leaves this instance degraded
 * (some) or unable to update anything (every one).
 *
 * @module
 */
import type { ExchangeStatus } from "../exchange/reachability.ts";

/** How long an exchange must have been unreachable before `/ready` reports it. */
export const UNREACHABLE_AFTER_MS = 60_000;

/** Supplies the reachability of every configured exchange (see `ExchangeClient.status`). */
export type ExchangeStatusProvider = () => ExchangeStatus[];

/** One exchange as `/ready` shows it; times are ISO-8601 UTC. */
export interface ExchangeStatusBody {
  id: string;
  reachable: boolean;
  /** When the current state began. */
  since: string;
  /** Why it is unreachable, null while reachable. */
  reason: string | null;
  /** When it last answered, null when it never did. */
  last_response: string | null;
}

/** The exchanges' verdict. */
export interface ExchangeVerdict {
  /** `ok`: none unreachable for the threshold; `degraded`: some; `down`: every one. */
  state: "ok" | "degraded" | "down";
  /** Ids of the exchanges unreachable for the threshold or more. */
  unreachable: string[];
  /** One line per such exchange: for how long, since when, why. */
  reasons: string[];
  /** Every exchange's status. */
  exchanges: ExchangeStatusBody[];
}

/** The status as JSON-ready fields. */
export function exchangeStatusBody(status: ExchangeStatus): ExchangeStatusBody {
  return {
    id: status.id,
    reachable: status.reachable,
    since: new Date(status.since).toISOString(),
    reason: status.reason,
    last_response: status.lastResponseAt === null ? null : new Date(status.lastResponseAt).toISOString(),
  };
}

/**
 * Judges `statuses` at `nowMs`: an exchange counts against readiness once it has been
 * unreachable for {@linkcode UNREACHABLE_AFTER_MS} or more (a shorter failure is retried
 * anyway). No exchange at all is `ok`.
 */
export function exchangeVerdict(statuses: ExchangeStatus[], nowMs: number): ExchangeVerdict {
  const down = statuses.filter((s) => !s.reachable && nowMs - s.since >= UNREACHABLE_AFTER_MS);
  const reasons = down.map((s) =>
    `exchange ${s.id} unreachable for ${Math.floor((nowMs - s.since) / 1000)} s (since ${
      new Date(s.since).toISOString()
    }): ${s.reason ?? "no reason recorded"}`
  );
  const state = down.length === 0 ? "ok" : down.length === statuses.length ? "down" : "degraded";
  return { state, unreachable: down.map((s) => s.id), reasons, exchanges: statuses.map(exchangeStatusBody) };
}
