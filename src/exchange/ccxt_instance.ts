/**
 * The ccxt instance of one exchange: defaults (rate limiting on, a request timeout, only the
 * configured market type loaded) with the user's `CCXT_CONFIG[id]` deep-merged over them.
 *
 * @module
 */
import ccxt from "ccxt";
import type { Config } from "../config_types.ts";
import { marketLoads } from "../market_type.ts";

/** A ccxt exchange instance. */
export type CcxtExchange = InstanceType<typeof ccxt.Exchange>;

/** The configuration fields the exchange layer reads. */
export type ExchangeConfig =
  & Pick<Config, "exchanges" | "ccxtConfig" | "symbols" | "topSymbols" | "quote" | "timeframes">
  & {
    marketType?: Config["marketType"];
  };

/** Deep-merges plain objects; arrays and other values from `override` replace. Returns a new object. */
export function deepMerge(base: Record<string, unknown>, override: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : value;
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype;
}

/**
 * Creates the ccxt instance for `id`: `enableRateLimit` on (its throttle is replaced by our
 * limiter), a request timeout, only the markets needed loaded (those of `marketType`, which
 * TOP_SYMBOLS ranks, and of each configured symbol's own type), then the user's
 * `ccxtConfig[id]` deep-merged over all that. Throws for an unknown id or an exchange without
 * `fetchOHLCV`.
 */
export function createCcxtExchange(
  id: string,
  config: Pick<ExchangeConfig, "ccxtConfig" | "marketType"> & { symbols?: readonly string[] },
  timeoutMs = 15_000,
): CcxtExchange {
  const registry = ccxt as unknown as Record<string, unknown>;
  const known = (ccxt.exchanges as string[]).includes(id) && typeof registry[id] === "function";
  if (!known) {
    throw new Error(
      `Cannot create exchange: current value is "${id}", which ccxt ${ccxt.version} does not know (expected a ccxt id such as binance, bybit, okx, kraken)`,
    );
  }
  const marketType = config.marketType ?? "spot";
  const defaults: Record<string, unknown> = {
    enableRateLimit: true,
    timeout: timeoutMs,
    options: {
      defaultType: marketType === "margin" ? "spot" : marketType,
      fetchMarkets: { types: marketLoads(marketType, config.symbols ?? []) },
    },
  };
  const merged = deepMerge(defaults, config.ccxtConfig?.[id] ?? {});
  merged.enableRateLimit = true;
  const Cls = registry[id] as new (config: Record<string, unknown>) => CcxtExchange;
  const exchange = new Cls(merged);
  if (!exchange.has?.fetchOHLCV) {
    throw new Error(`Cannot use exchange: current value is "${id}", whose ccxt class has no fetchOHLCV`);
  }
  return exchange;
}
