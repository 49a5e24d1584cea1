/**
 * One retry loop for the whole service: a try, then retries after a delay while the error is
 * worth retrying and the budget (a count of retries, a time limit, or both) is not spent.
 * Sleep and clock are injectable, so tests run on fake time.
 *
 * @module
 */

/** Exponential backoff with jitter, as used for the database. */
export interface BackoffOptions {
  /** Retries after the first try (default 5). */
  retries?: number;
  /** First delay in milliseconds (default 1000); doubles each retry. */
  baseMs?: number;
  /** Relative jitter, 0.2 means ±20% (default 0.2). */
  jitter?: number;
  /** Injected sleep, for tests. */
  sleep?: (ms: number) => Promise<void>;
  /** Injected random source in [0, 1), for tests. */
  random?: () => number;
}

/** Delay before retry number `retry` (1-based): base × 2^(retry-1), spread by the jitter. */
export function backoffDelay(retry: number, options: BackoffOptions = {}): number {
  const base = options.baseMs ?? 1000;
  const jitter = options.jitter ?? 0.2;
  const random = options.random ?? Math.random;
  return Math.round(base * 2 ** (retry - 1) * (1 - jitter + 2 * jitter * random()));
}

/** Waits `ms` milliseconds on the real clock. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Options of {@linkcode retry}. */
export interface RetryOptions {
  /** Delay in ms before retry number `retry` (1-based), or a fixed delay. */
  delayMs: number | ((retry: number) => number);
  /** Retries after the first try at most (default: no limit but `timeoutMs`). */
  retries?: number;
  /** No retry once this many ms have passed since the first try (default: no limit but `retries`). */
  timeoutMs?: number;
  /** Whether `error` is worth another try (default: every error is). */
  shouldRetry?: (error: unknown) => boolean;
  /** Called before the wait for retry number `retry` (1-based). */
  onRetry?: (error: unknown, retry: number, delayMs: number) => void;
  /** Injected sleep, for tests (default: {@linkcode sleep}). */
  sleep?: (ms: number) => Promise<void>;
  /** Injected clock in ms, for tests (default: `Date.now`). */
  now?: () => number;
}

/**
 * Runs `fn` (given the 1-based attempt number) and retries it on errors `shouldRetry` accepts,
 * until it succeeds or the budget is spent; then the last error is thrown as is.
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  if (options.retries === undefined && options.timeoutMs === undefined) {
    throw new RangeError("Cannot retry without a budget: current value is neither retries nor timeoutMs");
  }
  const now = options.now ?? Date.now;
  const wait = options.sleep ?? sleep;
  const started = now();
  for (let attempt = 1;; attempt++) {
    try {
      return await fn(attempt);
    } catch (error) {
      if (options.shouldRetry && !options.shouldRetry(error)) throw error;
      if (options.retries !== undefined && attempt > options.retries) throw error;
      if (options.timeoutMs !== undefined && now() - started > options.timeoutMs) throw error;
      const delay = typeof options.delayMs === "number" ? options.delayMs : options.delayMs(attempt);
      options.onRetry?.(error, attempt, delay);
      await wait(delay);
    }
  }
}
