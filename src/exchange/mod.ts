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
export { type ExchangeStatus, NO_ANSWER_YET, Reachability } from "./reachability.ts";
export { RequestRunner, type RequestRunnerOptions, type RequestStats, type TimedValue } from "./request_runner.ts";
export { Markets, type MarketsOptions } from "./markets.ts";
export { type CandleStats, OhlcvReader, type OhlcvReaderOptions } from "./ohlcv.ts";
export {
  classifyFailure,
  type ExchangeErrorKind,
  ExchangeRequestError,
  type FailureKind,
  parseRetryAfter,
  unreachableReason,
} from "./errors.ts";
export { type Clock, type LimiterOptions, systemClock, WeightLimiter } from "./limiter.ts";
export { candleProblem, type RejectedCandle, validateCandles, type ValidationResult } from "./validate.ts";
export { type PublishedLimit, type UsageProfile, usageProfile } from "./usage.ts";
