/**
 * Admission of heavy API work (candle pages, resampling): at most `limit` run at once, a few
 * more wait in a short queue, and the rest are turned away at once with
 * {@linkcode OverloadedError} (503 with `Retry-After: 1`, mapped in `errors.ts`). This bounds
 * the memory and the database connections that a burst of requests can take: a streamed page
 * holds its permit (and its cursor's connection) until its last byte is written or the client
 * goes away.
 *
 * @module
 */
import type { Sql } from "../db/client.ts";
import { ServiceUnavailableError } from "./errors.ts";

/**
 * Heavy requests running at once per database pool, at most: sized for a 2-core machine,
 * where more parallel pages only add memory, and kept below the pool size (each running page
 * holds one connection; see {@linkcode limitForPool}).
 */
export const HEAVY_QUERY_LIMIT = 8;

/** Connections of the pool left to everything else (ingestion, `/v1/series`, `/ready`). */
export const POOL_RESERVE = 2;

/** Requests that may wait for a permit, as a multiple of the limit. */
export const QUEUE_FACTOR = 2;

/** How long a queued request waits for a permit before it is answered 503. */
export const QUEUE_WAIT_MS = 5_000;

/** Seconds a client is told to wait (`Retry-After`) when the gate is full. */
export const RETRY_AFTER_SECONDS = 1;

/**
 * The running limit for a pool of `max` connections: `wanted` (default `HEAVY_QUERY_LIMIT`),
 * at most `max − POOL_RESERVE`, at least 1.
 */
export function limitForPool(max: number, wanted: number = HEAVY_QUERY_LIMIT): number {
  return Math.max(1, Math.min(wanted, max - POOL_RESERVE));
}

/** The gate is full: the request is turned away with 503 and `Retry-After`. */
export class OverloadedError extends ServiceUnavailableError {
  /** Creates the error. */
  constructor(message: string) {
    super(message, RETRY_AFTER_SECONDS);
    this.name = "OverloadedError";
  }
}

/** A held permit; `release()` is idempotent. */
export interface Permit {
  /** Gives the permit back (the next queued request starts). */
  release(): void;
}

/** Counters of one gate, for tests and benchmarks. */
export interface GateStats {
  /** Requests holding a permit now. */
  running: number;
  /** Requests waiting for one now. */
  queued: number;
  /** Permits given so far. */
  admitted: number;
  /** Requests turned away so far (queue full or waited too long). */
  rejected: number;
}

interface Waiter {
  grant: (permit: Permit) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** A counting semaphore with a bounded, time-limited wait queue. */
export class AdmissionGate {
  /** Permits available at once. */
  readonly limit: number;
  /** Requests that may wait. */
  readonly queueLimit: number;
  /** How long one may wait (ms). */
  readonly waitMs: number;
  #running = 0;
  #admitted = 0;
  #rejected = 0;
  readonly #queue: Waiter[] = [];

  /** Creates a gate of `limit` permits, `queueLimit` waiting places and `waitMs` of waiting. */
  constructor(limit: number, queueLimit = limit * QUEUE_FACTOR, waitMs = QUEUE_WAIT_MS) {
    this.limit = limit;
    this.queueLimit = queueLimit;
    this.waitMs = waitMs;
  }

  /** Current counters. */
  stats(): GateStats {
    return { running: this.#running, queued: this.#queue.length, admitted: this.#admitted, rejected: this.#rejected };
  }

  /** A permit now, after a short wait, or an {@linkcode OverloadedError}. */
  acquire(): Promise<Permit> {
    if (this.#running < this.limit) return Promise.resolve(this.#grant());
    if (this.#queue.length >= this.queueLimit) {
      this.#rejected++;
      return Promise.reject(
        new OverloadedError(
          `Cannot serve the page now: current value is ${this.#running} pages running and ${this.#queue.length} ` +
            `waiting, the most the service admits (${this.limit} + ${this.queueLimit}); retry in ${RETRY_AFTER_SECONDS} s`,
        ),
      );
    }
    return new Promise<Permit>((resolve, reject) => {
      const waiter: Waiter = {
        grant: resolve,
        timer: setTimeout(() => {
          const i = this.#queue.indexOf(waiter);
          if (i >= 0) this.#queue.splice(i, 1);
          this.#rejected++;
          reject(
            new OverloadedError(
              `Cannot serve the page now: current value is ${this.#running} pages running after ${this.waitMs} ms ` +
                `of waiting for one of ${this.limit} places; retry in ${RETRY_AFTER_SECONDS} s`,
            ),
          );
        }, this.waitMs),
      };
      this.#queue.push(waiter);
    });
  }

  #grant(): Permit {
    this.#running++;
    this.#admitted++;
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.#running--;
        const next = this.#queue.shift();
        if (next) {
          clearTimeout(next.timer);
          next.grant(this.#grant());
        }
      },
    };
  }
}

const gates = new WeakMap<Sql, AdmissionGate>();

/**
 * The gate of a pool (one per pool, sized by {@linkcode limitForPool} from its `max` and
 * `options.limit`, `HTTP_MAX_PAGES`, when the gate is first asked for).
 */
export function admissionGate(sql: Sql, options: { limit?: number } = {}): AdmissionGate {
  let gate = gates.get(sql);
  if (!gate) {
    const max = Number((sql.options as { max?: number }).max ?? 10);
    gate = new AdmissionGate(limitForPool(max, options.limit));
    gates.set(sql, gate);
  }
  return gate;
}
