import postgres from "postgres";
import { ConfigError, databaseUrlProblem, maskUrl } from "../config.ts";
import { getLogger } from "../log.ts";
import { redactor } from "../secrets.ts";
import { backoffDelay, type BackoffOptions, retry } from "../retry.ts";

/** A postgres.js pool. */
export type Sql = postgres.Sql;

/** Error codes of a database that is unreachable or restarting; worth retrying. */
export const TRANSIENT_CODES: ReadonlySet<string> = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now (starting up)
  "08000",
  "08001",
  "08003",
  "08004",
  "08006",
  "53300", // too_many_connections
  "40001", // serialization_failure
  "40P01", // deadlock_detected
]);

/** Whether an error from postgres.js means "try again later" rather than a bug or bad data. */
export function isTransientDbError(error: unknown): boolean {
  if (error === null || typeof error !== "object") return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && TRANSIENT_CODES.has(code)) return true;
  // Deno reports a refused connection as a ConnectionRefused error without a node code.
  const name = (error as { name?: unknown }).name;
  return name === "ConnectionRefused" || name === "ConnectionReset" ||
    (error instanceof Error &&
      /ECONNREFUSED|Connection refused|connection reset/i.test(error.message));
}

/** Where a postgres URL points, without the password. */
export function describeTarget(url: string): string {
  try {
    const u = new URL(url);
    const db = decodeURIComponent(u.pathname.replace(/^\//, "")) || "(default)";
    return `host ${u.hostname || "localhost"}, port ${u.port || "5432"}, database ${db}`;
  } catch {
    return maskUrl(url);
  }
}

/** Thrown when the database stays unreachable through every retry at start-up. */
export class DatabaseUnavailableError extends Error {
  /** The last error postgres.js reported. */
  override readonly cause: unknown;
  /** How many connection attempts were made. */
  readonly attempts: number;
  /** Creates the error. */
  constructor(target: string, attempts: number, cause: unknown) {
    super(`Cannot connect to PostgreSQL at ${target} after ${attempts} attempts: ${redactor().message(cause)}`);
    this.name = "DatabaseUnavailableError";
    this.cause = cause;
    this.attempts = attempts;
  }
}

/** Options of {@linkcode openDatabase}. */
export interface DatabaseOptions extends BackoffOptions {
  /** Pool size (default 10). */
  max?: number;
  /** Seconds to wait for one connection (default 10). */
  connectTimeout?: number;
  /** Called for each failed start-up attempt (the default logs a warning). */
  onAttemptFailed?: (attempt: number, error: unknown, delayMs: number) => void;
}

/**
 * A pool plus the run-time retry policy and a readiness flag that reflects outages.
 * Created by {@linkcode openDatabase}.
 */
export class Database {
  /** The postgres.js pool. */
  readonly sql: Sql;
  /** Where it points, without the password. */
  readonly target: string;
  #ready = false;
  #everReady = false;
  #backoff: BackoffOptions;
  #log = getLogger("db");

  /** Wraps an existing pool. */
  constructor(sql: Sql, target: string, backoff: BackoffOptions = {}) {
    this.sql = sql;
    this.target = target;
    this.#backoff = backoff;
  }

  /** True while the last database round trip succeeded. */
  get ready(): boolean {
    return this.#ready;
  }

  /** Records the outcome of a round trip made outside {@linkcode Database.retry}. */
  markReady(ready: boolean): void {
    if (ready !== this.#ready && (this.#everReady || !ready)) {
      if (ready) {
        this.#log.info("Database reachable again at {target}", {
          target: this.target,
        });
      } else {
        this.#log.warn("Database unreachable at {target}", { target: this.target });
      }
    }
    this.#ready = ready;
    if (ready) this.#everReady = true;
  }

  /**
   * Runs `fn`, retrying transient connection errors (outages, restarts) with exponential
   * backoff and jitter. `fn` must be idempotent. Other errors are thrown at once.
   */
  retry<T>(what: string, fn: (sql: Sql) => Promise<T>): Promise<T> {
    const retries = this.#backoff.retries ?? 5;
    return retry(async () => {
      try {
        const result = await fn(this.sql);
        this.markReady(true);
        return result;
      } catch (error) {
        if (isTransientDbError(error)) this.markReady(false);
        throw error;
      }
    }, {
      retries,
      delayMs: (n) => backoffDelay(n, this.#backoff),
      shouldRetry: isTransientDbError,
      sleep: this.#backoff.sleep,
      onRetry: (error, n, delayMs) =>
        this.#log.debug("Database call {what} failed ({code}); retry {retry}/{retries} in {delayMs} ms", {
          what,
          code: (error as { code?: string }).code ?? (error as Error).name,
          retry: n,
          retries,
          delayMs,
        }),
    });
  }

  /** Checks the connection now and updates the readiness flag. */
  async ping(): Promise<boolean> {
    try {
      await this.sql`select 1`;
      this.markReady(true);
    } catch {
      this.markReady(false);
    }
    return this.#ready;
  }

  /** Ends the pool, waiting up to `timeoutSeconds` for running queries. */
  async close(timeoutSeconds = 5): Promise<void> {
    this.#ready = false;
    await this.sql.end({ timeout: timeoutSeconds });
  }
}

/**
 * Creates a postgres.js pool for `url` with Candlekeep's settings; does not connect yet. A URL
 * postgres.js cannot parse is a {@linkcode ConfigError} on DATABASE_URL that never quotes it
 * (postgres.js's own error does, password included).
 */
export function createPool(
  url: string,
  options: { max?: number; connectTimeout?: number } = {},
): Sql {
  try {
    return newPool(url, options);
  } catch (error) {
    throw new ConfigError([{
      variable: "DATABASE_URL",
      value: undefined,
      hidden: true,
      expected: databaseUrlProblem(url) ??
        `cannot be parsed: postgres.js rejects it (${error instanceof Error ? error.name : typeof error})`,
    }]);
  }
}

function newPool(url: string, options: { max?: number; connectTimeout?: number }): Sql {
  return postgres(url, {
    max: options.max ?? 10,
    connect_timeout: options.connectTimeout ?? 10,
    idle_timeout: 60,
    max_lifetime: 60 * 30,
    onnotice: () => {},
    // extra_float_digits ≥ 1 (the default since PostgreSQL 12) prints doubles as their shortest
    // exact decimal, which the exact resampling sums (`float8::text::numeric`) rely on: pinned.
    connection: { application_name: "candlekeep", TimeZone: "UTC", extra_float_digits: 1 },
  });
}

/**
 * Opens a pool and proves it with `select 1`: the first try and then up to `retries` (5)
 * more after 1, 2, 4, 8 and 16 s (±20% jitter), each failure logged with its attempt number.
 * Throws {@linkcode DatabaseUnavailableError} naming host, port and database (never the password).
 */
export async function openDatabase(
  url: string,
  options: DatabaseOptions = {},
): Promise<Database> {
  const log = getLogger("db");
  const target = describeTarget(url);
  const retries = options.retries ?? 5;
  const sql = createPool(url, {
    max: options.max,
    connectTimeout: options.connectTimeout,
  });
  const db = new Database(sql, target, options);
  try {
    const attempt = await retry(async (n) => {
      await sql`select 1`;
      return n;
    }, {
      retries,
      delayMs: (n) => backoffDelay(n, options),
      shouldRetry: isTransientDbError,
      sleep: options.sleep,
      onRetry: (error, attempt, delayMs) => {
        if (options.onAttemptFailed) return options.onAttemptFailed(attempt, error, delayMs);
        log.info("Connection attempt {attempt} of {total} to {target} failed: {reason}; retrying in {delayMs} ms", {
          attempt,
          total: retries + 1,
          target,
          reason: (error as { code?: string }).code ?? (error as Error).message,
          delayMs,
        });
      },
    });
    db.markReady(true);
    log.info("Connected to PostgreSQL at {target}", { target, attempt });
    return db;
  } catch (error) {
    await sql.end({ timeout: 1 }).catch(() => {});
    if (!isTransientDbError(error)) {
      throw new Error(`Cannot connect to PostgreSQL at ${target}: ${redactor().message(error)}`, { cause: error });
    }
    throw new DatabaseUnavailableError(target, retries + 1, error);
  }
}
