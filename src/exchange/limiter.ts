/**
 * A weight-based token bucket shared by every request to one exchange, so running more series
 * at once never multiplies the request rate.
 *
 * @module
 */

/** A clock and a sleep, injectable for tests. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

/** The real clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms))),
};

/** Options of {@linkcode WeightLimiter}. */
export interface LimiterOptions {
  /** Weight the exchange allows per window (e.g. Binance 6000 REQUEST_WEIGHT per minute). */
  capacity: number;
  /** Window length in ms (default one minute). */
  windowMs?: number;
  /** Share of the published limit we aim for (default 0.97), leaving headroom for clock skew. */
  safety?: number;
  /** Weight that may be spent at once after an idle spell (default 1% of capacity, at least 1). */
  burst?: number;
  clock?: Clock;
}

/** Why the limiter is paused. */
export type PauseReason = "rate_limited" | "banned" | "usage";

/**
 * Token bucket: refills `capacity * safety` weight per window, holds at most `burst`, and can
 * be paused until an instant (Retry-After of a 429, a 418 ban, or a usage header showing the
 * window is spent). Waiters are served first come, first served.
 */
export class WeightLimiter {
  #capacity: number;
  #windowMs: number;
  #safety: number;
  #burst: number;
  #burstFixed: boolean;
  #clock: Clock;
  #tokens: number;
  #last: number;
  #pausedUntil = 0;
  #pauseReason: PauseReason | null = null;
  #chain: Promise<void> = Promise.resolve();
  #waited = 0;
  #spent = 0;
  /** Requests the exchange's last usage report leaves in its window, less those sent since (see syncRemaining). */
  #allowance = Infinity;
  #allowanceSeq = -Infinity;
  #allowanceUntil = 0;

  /** Creates a limiter with a full (burst-sized) bucket. */
  constructor(options: LimiterOptions) {
    if (!(options.capacity > 0)) {
      throw new RangeError(`Cannot create a rate limiter: current capacity is ${options.capacity}, expected > 0`);
    }
    this.#capacity = options.capacity;
    this.#windowMs = options.windowMs ?? 60_000;
    this.#safety = options.safety ?? 0.97;
    this.#burstFixed = options.burst !== undefined;
    this.#burst = options.burst ?? Math.max(1, options.capacity * 0.01);
    this.#clock = options.clock ?? systemClock;
    this.#tokens = this.#burst;
    this.#last = this.#clock.now();
  }

  /** Total weight spent through this limiter. */
  get spent(): number {
    return this.#spent;
  }

  /** Weight allowed per window. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Window length in ms. */
  get windowMs(): number {
    return this.#windowMs;
  }

  /** Total ms callers spent waiting in {@linkcode acquire}. */
  get waitedMs(): number {
    return this.#waited;
  }

  /** Instant until which all requests are held (0 when not paused), and why. */
  pause(): { until: number; reason: PauseReason | null } {
    return { until: this.#pausedUntil, reason: this.#pausedUntil > this.#clock.now() ? this.#pauseReason : null };
  }

  /** Changes the published limit (e.g. once read from Binance's exchangeInfo). */
  setLimit(capacity: number, windowMs: number): void {
    if (!(capacity > 0) || !(windowMs > 0)) return;
    this.#refill();
    this.#capacity = capacity;
    this.#windowMs = windowMs;
    if (!this.#burstFixed) this.#burst = Math.max(1, capacity * 0.01);
    this.#tokens = Math.min(this.#tokens, this.#burst);
  }

  /** Holds every request until `until` (a later pause wins over an earlier one). */
  pauseUntil(until: number, reason: PauseReason): void {
    if (until > this.#pausedUntil) {
      this.#pausedUntil = until;
      this.#pauseReason = reason;
    }
    this.#tokens = Math.min(this.#tokens, 0);
  }

  /**
   * Syncs with the exchange's own count of weight used in its current fixed window (e.g. the
   * `x-mbx-used-weight-1m` header): never spend more than is left in that window, and when it
   * is spent, hold until the next window opens.
   */
  syncUsage(used: number, at: number = this.#clock.now()): void {
    if (!Number.isFinite(used)) return;
    this.#refill();
    const left = this.#capacity - used;
    if (left <= 0) {
      const windowEnd = Math.floor(at / this.#windowMs) * this.#windowMs + this.#windowMs;
      this.pauseUntil(windowEnd + 50, "usage");
    } else {
      this.#tokens = Math.min(this.#tokens, left);
    }
  }

  /**
   * Syncs with the exchange's own count of requests left in its current window and the instant
   * that window resets (e.g. Bybit's `X-Bapi-Limit-Status` and `X-Bapi-Limit-Reset-Timestamp`).
   * `remaining` must already leave out the requests sent after the reporting one (`seq`, their
   * running number): at most that many more are sent until a newer report (a later `seq`), the
   * reset, or one window has passed; when none are left, everything holds until the reset (a
   * short hold when the reset is not in the future, e.g. skewed clocks; at most a minute).
   */
  syncRemaining(remaining: number, resetAt: number, options: { seq?: number; at?: number } = {}): void {
    if (!Number.isFinite(remaining)) return;
    const at = options.at ?? this.#clock.now();
    const seq = options.seq ?? this.#allowanceSeq;
    if (seq >= this.#allowanceSeq) {
      this.#allowance = remaining;
      this.#allowanceSeq = seq;
      this.#allowanceUntil = at + this.#windowMs;
    } else {
      // An older report (answers can arrive out of order): it can only lower the estimate.
      this.#allowance = Math.min(this.#allowance, remaining);
    }
    if (remaining > 0) return;
    const until = Number.isFinite(resetAt) && resetAt > at ? Math.min(resetAt + 20, at + 60_000) : at + 100;
    this.pauseUntil(until, "usage");
  }

  /** Waits until `weight` may be spent, then spends it. */
  acquire(weight: number): Promise<void> {
    const w = Math.max(0, Math.min(weight, this.#capacity));
    const turn = this.#chain.then(() => this.#take(w));
    this.#chain = turn.catch(() => {});
    return turn;
  }

  #refill(): void {
    const now = this.#clock.now();
    const rate = (this.#capacity * this.#safety) / this.#windowMs;
    if (now > this.#last) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#last) * rate);
      this.#last = now;
    }
  }

  async #take(weight: number): Promise<void> {
    const started = this.#clock.now();
    for (;;) {
      const now = this.#clock.now();
      if (this.#pausedUntil > now) {
        await this.#clock.sleep(this.#pausedUntil - now);
        this.#last = Math.max(this.#last, this.#clock.now());
        // The window the exchange reported on has reset.
        this.#allowance = Infinity;
        continue;
      }
      if (this.#allowance <= 0) {
        if (now < this.#allowanceUntil) {
          await this.#clock.sleep(Math.min(10, this.#allowanceUntil - now));
          continue;
        }
        this.#allowance = Infinity;
      }
      this.#refill();
      const need = Math.min(weight, this.#burst);
      if (this.#tokens >= need) {
        this.#tokens -= weight;
        this.#allowance -= weight;
        this.#spent += weight;
        this.#waited += this.#clock.now() - started;
        return;
      }
      const rate = (this.#capacity * this.#safety) / this.#windowMs;
      await this.#clock.sleep(Math.max(1, Math.ceil((need - this.#tokens) / rate)));
    }
  }
}
