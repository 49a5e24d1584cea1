/**
 * The exchange layer: ccxt clients with a shared rate limiter, retries, validated pages and the
 * paginator.
 *
 * @module
 */
export {
  type CcxtExchange,
  createCcxtExchange,
  createExchangeClients,
  deepMerge,
  ExchangeClient,
  type ExchangeClientOptions,
  type ExchangeConfig,
  type ExchangeStats,
  type FetchedPage,
  type FetchedRange,
} from "./client.ts";
export {
  classifyFailure,
  type ExchangeErrorKind,
  ExchangeRequestError,
  type FailureKind,
  parseRetryAfter,
} from "./errors.ts";
export { type Clock, type LimiterOptions, systemClock, WeightLimiter } from "./limiter.ts";
export { candleProblem, type RejectedCandle, validateCandles, type ValidationResult } from "./validate.ts";
export { type PublishedLimit, type UsageProfile, usageProfile } from "./usage.ts";
