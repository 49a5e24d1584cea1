/**
 * The market type a ccxt unified symbol names: `BTC/USDT` spot, `BTC/USDT:USDT` a linear
 * perpetual (swap), `BTC/USD:BTC` an inverse perpetual, `BTC/USDT:USDT-261225` a dated future,
 * `BTC/USD:BTC-261225-60000-C` an option. Each series' type comes from its symbol, so spot and
 * contract series can be collected side by side.
 *
 * @module
 */

/** The market type of a unified symbol, as ccxt's `market.type` says it. */
export type SymbolMarketType = "spot" | "swap" | "future" | "option";

/** A unified symbol taken apart. */
export interface UnifiedSymbol {
  base: string;
  quote: string;
  /** Settlement currency of a contract; undefined for spot. */
  settle?: string;
  /** `YYMMDD` of a dated contract. */
  expiry?: string;
  type: SymbolMarketType;
  /** Contracts: linear (settled in the quote) or inverse (settled in the base). */
  margin?: "linear" | "inverse";
}

const UNIFIED = /^([^/:\s-]+)\/([^/:\s-]+)(?::([^/:\s-]+)(?:-(\d{6})(?:-([0-9.]+)-([CP]))?)?)?$/;

/** Parses a ccxt unified symbol; null when `symbol` does not have that form. */
export function parseUnifiedSymbol(symbol: string): UnifiedSymbol | null {
  const m = UNIFIED.exec(symbol);
  if (!m) return null;
  const [, base, quote, settle, expiry, strike] = m;
  if (settle === undefined) return { base, quote, type: "spot" };
  const type: SymbolMarketType = strike !== undefined ? "option" : expiry !== undefined ? "future" : "swap";
  const margin = settle === quote ? "linear" : settle === base ? "inverse" : undefined;
  return { base, quote, settle, expiry, type, ...(margin ? { margin } : {}) };
}

/** The market type of `symbol` (spot when it is not in the unified form). */
export function marketTypeOf(symbol: string): SymbolMarketType {
  return parseUnifiedSymbol(symbol)?.type ?? "spot";
}

/** Whether `symbol` names a contract (a perpetual or dated future, or an option). */
export function isContractSymbol(symbol: string): boolean {
  return marketTypeOf(symbol) !== "spot";
}

const LOADS: Record<string, string[]> = {
  spot: ["spot"],
  margin: ["spot"],
  swap: ["linear", "inverse"],
  future: ["linear", "inverse"],
  option: ["option"],
};

/**
 * The ccxt `fetchMarkets` types to load: those of `marketType` (what TOP_SYMBOLS ranks) and of
 * every symbol's own type; a contract loads the linear or inverse markets it needs.
 */
export function marketLoads(marketType: string, symbols: readonly string[]): string[] {
  const out = new Set(LOADS[marketType] ?? [marketType]);
  for (const symbol of symbols) {
    const parsed = parseUnifiedSymbol(symbol);
    if (!parsed || parsed.type === "spot") out.add("spot");
    else if (parsed.type === "option") out.add("option");
    else if (parsed.margin) out.add(parsed.margin);
    else for (const kind of LOADS[parsed.type]) out.add(kind);
  }
  return [...out];
}

/** The price a series' candles are of: trade candles, or a contract's mark, index or premium index. */
export type PriceKind = "trade" | "mark" | "index" | "premium";

/** Which klines of a market to read (default: trade candles). */
export interface PriceOption {
  price?: PriceKind;
}

/** Every price kind, in documentation order. */
export const PRICE_KINDS: readonly PriceKind[] = ["trade", "mark", "index", "premium"];

/** ccxt's `fetchOHLCV` `params.price` for a price kind (none for trade candles). */
export function ccxtPriceParam(price: PriceKind): string | undefined {
  return price === "trade" ? undefined : price === "premium" ? "premiumIndex" : price;
}

/** The price kinds collected for `symbol`: spot markets have trade candles only. */
export function pricesFor(symbol: string, configured: readonly PriceKind[]): PriceKind[] {
  return isContractSymbol(symbol) ? [...configured] : ["trade"];
}
