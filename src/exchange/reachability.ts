/**
 * Whether an exchange answers: the time of its last response and, while its requests fail
 * without an answer (network errors, timeouts, 5xx, maintenance), since when and why. Any
 * answer counts as reachable, a 429 or a ban included: the exchange is there, it only asks us
 * to wait. An exchange that never answered since start counts as unreachable from the start.
 *
 * @module
 */

/** What `/ready` and `/metrics` know of one exchange. */
export interface ExchangeStatus {
  /** ccxt exchange id. */
  id: string;
  /** False from the first failed request without an answer until the next answer (and before the first). */
  reachable: boolean;
  /** When the current state began (epoch ms): the first answer after failures, or the first failure (start time when it never answered). */
  since: number;
  /** Why it is unreachable (the latest failure), null while reachable. */
  reason: string | null;
  /** When it last answered (epoch ms), null when it never did. */
  lastResponseAt: number | null;
}

/** The reason recorded for an exchange that has not answered yet. */
export const NO_ANSWER_YET = "no answer yet since start";

/** Longest reason kept (ccxt quotes whole response bodies). */
const MAX_REASON = 300;

/** `reason` on one line, URLs without their query string (request parameters, signatures), at most {@linkcode MAX_REASON} characters. */
function condense(reason: string): string {
  const text = reason.replace(/(https?:\/\/[^\s?#)"']+)[?#][^\s)"']*/g, "$1").replace(/\s+/g, " ").trim();
  return text.length > MAX_REASON ? `${text.slice(0, MAX_REASON - 1)}…` : text;
}

/** Tracks the reachability of one exchange; fed by the request runner. */
export class Reachability {
  readonly #id: string;
  #reachable = false;
  #since: number;
  #reason: string | null = NO_ANSWER_YET;
  #lastResponseAt: number | null = null;

  /** Starts unreachable since `startedAt` (epoch ms), until the first answer. */
  constructor(id: string, startedAt: number) {
    this.#id = id;
    this.#since = startedAt;
  }

  /** The exchange answered at `at` (epoch ms): a success, a 429, a ban or a rejected request. */
  answered(at: number): void {
    this.#lastResponseAt = this.#lastResponseAt === null ? at : Math.max(this.#lastResponseAt, at);
    if (!this.#reachable) {
      this.#reachable = true;
      this.#since = at;
      this.#reason = null;
    }
  }

  /** A request failed at `at` (epoch ms) without an answer, for `reason` (URLs lose their query, long text is cut). */
  failed(at: number, reason: string): void {
    const text = condense(reason);
    if (this.#reachable) {
      this.#reachable = false;
      this.#since = at;
    }
    this.#reason = text;
  }

  /** A snapshot of the state. */
  status(): ExchangeStatus {
    return {
      id: this.#id,
      reachable: this.#reachable,
      since: this.#since,
      reason: this.#reason,
      lastResponseAt: this.#lastResponseAt,
    };
  }
}
