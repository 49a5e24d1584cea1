/**
 * Bounds how many archive files download at once. Archive downloads are static files, not API
 * requests: they have a limiter of their own and never spend the REST weight budget.
 *
 * @module
 */

/** Files in flight by default. */
export const DEFAULT_ARCHIVE_FILES_IN_FLIGHT = 4;

/** A first-come, first-served bound on concurrent archive downloads. */
export class ArchiveLimiter {
  readonly #max: number;
  #active = 0;
  #peak = 0;
  #waiting: (() => void)[] = [];

  /** Creates a limiter that lets `max` (≥ 1) tasks run at once. */
  constructor(max: number = DEFAULT_ARCHIVE_FILES_IN_FLIGHT) {
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`Cannot create the archive limiter: current value is ${max}, expected an integer ≥ 1`);
    }
    this.#max = max;
  }

  /** Tasks allowed at once. */
  get max(): number {
    return this.#max;
  }

  /** Tasks running now. */
  get active(): number {
    return this.#active;
  }

  /** Most tasks that ever ran at once. */
  get peak(): number {
    return this.#peak;
  }

  /** Runs `task` once a slot is free (waiting if aborted rejects with the signal's reason). */
  async run<T>(task: () => Promise<T>, options: { signal?: AbortSignal } = {}): Promise<T> {
    await this.#acquire(options.signal);
    try {
      return await task();
    } finally {
      this.#release();
    }
  }

  #acquire(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    if (this.#active < this.#max) {
      this.#take();
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const wake = () => {
        signal?.removeEventListener("abort", abort);
        this.#take();
        resolve();
      };
      const abort = () => {
        this.#waiting = this.#waiting.filter((w) => w !== wake);
        reject(signal?.reason);
      };
      signal?.addEventListener("abort", abort, { once: true });
      this.#waiting.push(wake);
    });
  }

  #take(): void {
    this.#active++;
    this.#peak = Math.max(this.#peak, this.#active);
  }

  #release(): void {
    this.#active--;
    this.#waiting.shift()?.();
  }
}
