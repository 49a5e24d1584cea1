/**
 * Runs the ccxt calls of one exchange: every request waits in the exchange's shared weight
 * limiter (ccxt's throttle is replaced by it), each response's status and headers are recorded
 * per call (usage headers pace the limiter), failures are classified and retried with backoff,
 * 429s pause the limiter and bans the whole exchange, and every outcome feeds the exchange's
 * {@linkcode Reachability}.
 *
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { getLogger } from "@logtape/logtape";
import type { CcxtExchange } from "./ccxt_instance.ts";
import {
  type Classification,
  classifyFailure,
  ExchangeRequestError,
  headerValue,
  unreachableReason,
} from "./errors.ts";
import { type Clock, systemClock, WeightLimiter } from "./limiter.ts";
import { retry } from "../retry.ts";
import { Reachability } from "./reachability.ts";
import { DEFAULT_FAMILY, type PublishedLimit, refineFailure, type UsageProfile, usageProfile } from "./usage.ts";

const logger = getLogger(["candlekeep", "exchange"]);

/** At most one rate-limit warning per exchange in this many ms; the others are debug lines. */
export const RATE_LIMIT_WARNING_INTERVAL_MS = 60_000;

/** Options of {@linkcode RequestRunner}. */
export interface RequestRunnerOptions {
  /** Clock and sleep (default: the real ones). */
  clock?: Clock;
  /** Random source for backoff jitter (default Math.random). */
  random?: () => number;
  /** Attempts per request before giving up (default 8). */
  maxAttempts?: number;
  /** First backoff delay in ms (default 500), doubled per attempt. */
  baseDelayMs?: number;
  /** Largest backoff delay in ms (default 30 s). */
  maxDelayMs?: number;
  /** Pause after a ban without Retry-After, in ms (default: the exchange's, see `usage.ts`, else 2 min). */
  defaultBanMs?: number;
  /** Share of the published rate limit to use (default: the exchange's, see `usage.ts`, else 0.97). */
  limiterSafety?: number;
}

/** Request counters of one exchange. */
export interface RequestStats {
  /** HTTP requests sent (every attempt). */
  requests: number;
  /** Rate-limit responses (HTTP 429 / RateLimitExceeded). */
  rateLimited: number;
  /** Ban responses (HTTP 418, or 403 with Retry-After). */
  banned: number;
  /** Retries after a failed attempt. */
  retries: number;
  /** Failed attempts by ccxt error class. */
  errorsByClass: Record<string, number>;
  /** Total ms requests waited in the rate limiter. */
  limiterWaitMs: number;
}

/** A call's result and when its (last) request was sent. */
export interface TimedValue<T> {
  value: T;
  /** When the successful request left the limiter (ms). */
  sentAt: number;
}

interface RequestContext {
  /** The request family whose limiter the request waited in (see `usage.ts`). */
  family?: string;
  sentAt?: number;
  /** Number of the (last) request of the call, counting every request this runner sent. */
  seq?: number;
  status?: number;
  headers?: Record<string, unknown>;
}

/** Runs the ccxt calls of one exchange with its limiter, retries and reachability tracking. */
export class RequestRunner {
  /** ccxt exchange id. */
  readonly id: string;
  /** The limiter shared by every request to this exchange. */
  readonly limiter: WeightLimiter;
  /** How ccxt's costs map to the exchange's weights, and its published limits. */
  readonly profile: UsageProfile;
  /** Reachability of the exchange, updated by every request. */
  readonly reachability: Reachability;
  #exchange: CcxtExchange;
  #clock: Clock;
  #random: () => number;
  #maxAttempts: number;
  #baseDelay: number;
  #maxDelay: number;
  #defaultBan: number;
  #context = new AsyncLocalStorage<RequestContext>();
  #limiters = new Map<string, WeightLimiter>();
  #limiterSafety: number | undefined;
  /** The family of the request ccxt is about to throttle (set by its cost calculation). */
  #pendingFamily: string | undefined;
  #stats: RequestStats = { requests: 0, rateLimited: 0, banned: 0, retries: 0, errorsByClass: {}, limiterWaitMs: 0 };
  #lastRateWarning = -Infinity;
  #quietRateLimits = 0;

  /** Takes over `exchange`'s throttle and response hook; every request of it goes through this runner. */
  constructor(id: string, exchange: CcxtExchange, options: RequestRunnerOptions = {}) {
    this.id = id;
    this.#exchange = exchange;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#maxAttempts = options.maxAttempts ?? 8;
    this.#baseDelay = options.baseDelayMs ?? 500;
    this.#maxDelay = options.maxDelayMs ?? 30_000;
    this.profile = usageProfile(id, Number(exchange.rateLimit) || 100);
    this.#defaultBan = options.defaultBanMs ?? this.profile.ban?.pauseMs ?? 120_000;
    this.#limiterSafety = options.limiterSafety ?? this.profile.safety;
    this.limiter = new WeightLimiter({
      capacity: this.profile.limit.capacity,
      windowMs: this.profile.limit.windowMs,
      safety: this.#limiterSafety,
      clock: this.#clock,
    });
    this.#limiters.set(DEFAULT_FAMILY, this.limiter);
    this.reachability = new Reachability(id, this.#clock.now());
    this.#hookCcxt();
  }

  /**
   * The limiter of a request family: the exchange's own for exchanges with one family, else
   * one per family (created with its default limit on first use).
   */
  limiterOf(family: string = DEFAULT_FAMILY): WeightLimiter {
    let limiter = this.#limiters.get(family);
    if (!limiter) {
      const settings = this.profile.families?.settings[family];
      if (!settings) return this.limiter;
      limiter = new WeightLimiter({
        capacity: settings.limit.capacity,
        windowMs: settings.limit.windowMs,
        safety: this.#limiterSafety,
        burst: settings.burst,
        clock: this.#clock,
      });
      this.#limiters.set(family, limiter);
    }
    return limiter;
  }

  /** Every limiter in use, by family. */
  limiters(): Map<string, WeightLimiter> {
    return new Map(this.#limiters);
  }

  /** Snapshot of the counters. */
  stats(): RequestStats {
    return { ...this.#stats, errorsByClass: { ...this.#stats.errorsByClass } };
  }

  /** Replaces ccxt's throttle with the shared limiter and records each response's status and headers. */
  #hookCcxt(): void {
    const ex = this.#exchange as unknown as Record<string, unknown>;
    const families = this.profile.families;
    if (families) {
      // ccxt computes a request's cost from its API name right before it calls throttle (in the
      // same synchronous step), so the family can be handed over in a field.
      const cost = (ex.calculateRateLimiterCost as (...args: unknown[]) => number).bind(this.#exchange);
      ex.calculateRateLimiterCost = (api: unknown, ...rest: unknown[]) => {
        this.#pendingFamily = families.of(Array.isArray(api) ? String(api[0]) : String(api));
        return cost(api, ...rest);
      };
    }
    ex.throttle = async (cost?: number) => {
      const family = this.#pendingFamily ?? DEFAULT_FAMILY;
      this.#pendingFamily = undefined;
      const perCost = families?.settings[family]?.weightPerCost ?? this.profile.weightPerCost;
      const weight = this.profile.weightPerRequest ?? (cost ?? 1) * perCost;
      const limiter = this.limiterOf(family);
      const before = this.#clock.now();
      await limiter.acquire(weight);
      this.#stats.limiterWaitMs += this.#clock.now() - before;
      this.#stats.requests++;
      const ctx = this.#context.getStore();
      if (ctx) {
        ctx.sentAt = this.#clock.now();
        ctx.family = family;
        ctx.seq = this.#stats.requests;
      }
    };
    const original = (ex.onRestResponse as (...args: unknown[]) => string).bind(this.#exchange);
    ex.onRestResponse = (
      status: number,
      statusText: string,
      url: string,
      method: string,
      headers: Record<string, unknown>,
      body: string,
      ...rest: unknown[]
    ) => {
      const ctx = this.#context.getStore();
      if (ctx) {
        ctx.status = status;
        ctx.headers = headers;
      }
      this.#observeResponse(url, headers, body, ctx?.seq);
      return original(status, statusText, url, method, headers, body, ...rest);
    };
  }

  #observeResponse(url: string, headers: Record<string, unknown>, body: string, seq?: number): void {
    const profile = this.profile;
    const family = profile.families?.ofUrl(url) ?? DEFAULT_FAMILY;
    const limiter = this.limiterOf(family);
    if (profile.parseLimit) {
      const limit: PublishedLimit | null = profile.parseLimit(url, body);
      if (limit && (limit.capacity !== limiter.capacity || limit.windowMs !== limiter.windowMs)) {
        limiter.setLimit(limit.capacity, limit.windowMs);
        logger.info("{exchange}: published request limit {capacity} weight per {windowMs} ms{family}", {
          exchange: this.id,
          capacity: limit.capacity,
          windowMs: limit.windowMs,
          family: profile.families ? ` (${family})` : "",
        });
      }
    }
    if (profile.usedWeightHeader && profile.families?.settings[family]?.ownUsageHeader !== false) {
      const used = headerValue(headers, profile.usedWeightHeader);
      if (used !== undefined) limiter.syncUsage(Number(used));
    }
    const names = profile.remainingHeaders;
    const remaining = names ? headerValue(headers, names.remaining) : undefined;
    if (names && remaining !== undefined && remaining.trim() !== "") {
      // The count was taken when this request arrived: the requests sent after it were not in it.
      const uncounted = seq === undefined ? 0 : this.#stats.requests - seq;
      const left = Number(remaining) - uncounted;
      const resetAt = Number(headerValue(headers, names.resetAt));
      if (left <= 0 && limiter.pause().reason === null) {
        logger.debug(
          "{exchange}: {remaining} requests left in the window ({uncounted} more sent), holding until {resetAt}",
          {
            exchange: this.id,
            remaining: Number(remaining),
            uncounted,
            resetAt: Number.isFinite(resetAt) ? new Date(resetAt).toISOString() : null,
          },
        );
      }
      limiter.syncRemaining(left, resetAt, { seq });
    }
  }

  /**
   * Runs one ccxt call with retries: transient failures back off exponentially with jitter (or
   * wait Retry-After); a 429 pauses the shared limiter and a ban the whole exchange until
   * Retry-After; fatal errors are thrown at once with the exchange's message (and logged as
   * errors). Retries are debug lines; the error thrown after the last attempt is reported by
   * the caller.
   */
  async run<T>(operation: string, call: () => Promise<T>, options: { series?: string } = {}): Promise<TimedValue<T>> {
    const series = options.series;
    let last: { c: Classification; at: number; attempt: number; family?: string } | undefined;
    const where = () => ({
      exchange: this.id,
      operation,
      series,
      code: last?.c.code,
      status: last?.c.status,
      attempt: last?.attempt,
    });
    try {
      return await retry(async (attempt) => {
        const ctx: RequestContext = {};
        try {
          const value = await this.#context.run(ctx, call);
          if (ctx.status !== undefined) this.reachability.answered(this.#clock.now());
          return { value, sentAt: ctx.sentAt ?? this.#clock.now() };
        } catch (error) {
          const now = this.#clock.now();
          const c = refineFailure(this.profile, classifyFailure(error, ctx.status, ctx.headers, now), {
            headers: ctx.headers,
            nowMs: now,
          });
          last = { c, at: now, attempt, family: ctx.family };
          this.#record(error, c, now);
          if (c.kind !== "fatal") throw error;
          logger.error("{exchange} {operation} failed ({code}): {reason}", { ...where(), reason: c.message });
          throw new ExchangeRequestError(
            `Cannot ${operation} on ${this.id}${series ? ` for ${series}` : ""}: ${c.code}${
              c.status ? ` (HTTP ${c.status})` : ""
            }: ${c.message}`,
            { kind: "fatal", code: c.code, exchange: this.id, status: c.status, attempts: attempt },
            { cause: error },
          );
        }
      }, {
        retries: this.#maxAttempts - 1,
        shouldRetry: (error) => !(error instanceof ExchangeRequestError),
        // A 429 or a ban pauses the shared limiter (every request waits there), not this call.
        delayMs: (retry) => {
          const c = last!.c;
          if (c.kind === "rate_limited" || c.kind === "banned") return 0;
          return c.retryAfterMs ?? this.#backoff(retry);
        },
        onRetry: (_error, retry, waitMs) => {
          const { c, at, family } = last!;
          this.#stats.retries++;
          if (c.kind === "rate_limited") {
            this.#stats.rateLimited++;
            this.#pauseForRateLimit(at, c.retryAfterMs ?? this.#backoff(retry), where(), family);
          } else if (c.kind === "banned") {
            this.#stats.banned++;
            this.#pauseForBan(at, c.retryAfterMs ?? this.#defaultBan, where());
          } else {
            logger.debug("{exchange} {operation}: {code}, retrying in {waitMs} ms: {reason}", {
              ...where(),
              waitMs: Math.round(waitMs),
              reason: c.message,
            });
          }
        },
        sleep: (ms) => ms > 0 ? this.#clock.sleep(ms) : Promise.resolve(),
      });
    } catch (error) {
      if (error instanceof ExchangeRequestError) throw error;
      const c = last!.c;
      if (c.kind === "rate_limited") this.#stats.rateLimited++;
      if (c.kind === "banned") this.#stats.banned++;
      const message = `Cannot ${operation} on ${this.id}${
        series ? ` for ${series}` : ""
      }: gave up after ${this.#maxAttempts} attempts, last ${c.code}${
        c.status ? ` (HTTP ${c.status})` : ""
      }: ${c.message}`;
      // The caller reports the thrown error (the ingest engine, market loading): one line per failure, not two.
      logger.debug("{exchange} {operation} failed after {attempts} attempts ({code}): {reason}", {
        ...where(),
        attempts: this.#maxAttempts,
        reason: c.message,
      });
      throw new ExchangeRequestError(message, {
        kind: "exhausted",
        code: c.code,
        exchange: this.id,
        status: c.status,
        attempts: this.#maxAttempts,
      });
    }
  }

  /** Exponential backoff with jitter (50% to 100% of the step) before retry number `retry`, capped. */
  #backoff(retry: number): number {
    return Math.min(this.#maxDelay, this.#baseDelay * 2 ** (retry - 1)) * (0.5 + this.#random() * 0.5);
  }

  /** Counts a failed attempt and tells the reachability tracker whether the exchange answered. */
  #record(error: unknown, failure: Classification, now: number): void {
    this.#stats.errorsByClass[failure.code] = (this.#stats.errorsByClass[failure.code] ?? 0) + 1;
    const unreachable = unreachableReason(error, failure);
    if (unreachable !== null) this.reachability.failed(now, unreachable);
    else if (failure.status !== undefined) this.reachability.answered(now);
  }

  /**
   * Pauses the limiter after a 429. One warning when a pause starts (at most one per
   * {@linkcode RATE_LIMIT_WARNING_INTERVAL_MS}, counting the quieter ones since); the 429s of
   * requests that were already in flight, and further pauses within the interval, are debug.
   */
  #pauseForRateLimit(now: number, waitMs: number, where: Record<string, unknown>, family?: string): void {
    // A 429 pauses the requests of its family (Binance limits spot and futures separately).
    const limiter = this.limiterOf(family);
    const alreadyPaused = limiter.pause().reason !== null;
    limiter.pauseUntil(now + waitMs, "rate_limited");
    const fields = { ...where, waitMs: Math.round(waitMs) };
    if (alreadyPaused || now - this.#lastRateWarning < RATE_LIMIT_WARNING_INTERVAL_MS) {
      this.#quietRateLimits++;
      logger.debug("{exchange}: rate limited, pausing all requests for {waitMs} ms", fields);
      return;
    }
    logger.warn("{exchange}: rate limited, pausing all requests for {waitMs} ms", {
      ...fields,
      sinceLastWarning: this.#quietRateLimits,
    });
    this.#lastRateWarning = now;
    this.#quietRateLimits = 0;
  }

  /** Pauses the whole exchange after a ban: an error line when the ban starts, debug while it holds. */
  #pauseForBan(now: number, waitMs: number, where: Record<string, unknown>): void {
    const alreadyBanned = this.limiter.pause().reason === "banned";
    // A ban is of the IP: every family waits.
    for (const limiter of this.#limiters.values()) limiter.pauseUntil(now + waitMs, "banned");
    const log = alreadyBanned ? logger.debug.bind(logger) : logger.error.bind(logger);
    log("{exchange}: banned (HTTP {status}), pausing the whole exchange for {waitMs} ms", {
      ...where,
      waitMs: Math.round(waitMs),
    });
  }
}
