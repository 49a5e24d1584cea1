/**
 * Configuration of what is collected for contract markets: `CANDLE_PRICES`, `FUNDING_RATES`, `OPEN_INTEREST`.
 *
 * @module
 */
import { z } from "zod";
import { PRICE_KINDS, type PriceKind } from "./market_type.ts";
import { splitList } from "./config_values.ts";

/** The variables of this file, spread into `CONFIG_VARIABLES`. */
export const DERIVATIVES_VARIABLES = ["CANDLE_PRICES", "FUNDING_RATES", "OPEN_INTEREST"] as const;

/** Open-interest periods (`OPEN_INTEREST`), the grid Binance's `openInterestHist` offers. */
export const OPEN_INTEREST_PERIODS = ["5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d"] as const;

/** One of {@linkcode OPEN_INTEREST_PERIODS}. */
export type OpenInterestPeriod = typeof OPEN_INTEREST_PERIODS[number];

/** The zod schema of {@linkcode DERIVATIVES_VARIABLES}, spread into the configuration schema. */
export const DERIVATIVES_SCHEMA = {
  CANDLE_PRICES: z.string().default("trade").transform((text, ctx) => {
    const items = splitList(text.toLowerCase());
    const bad = items.filter((p) => !(PRICE_KINDS as readonly string[]).includes(p));
    if (bad.length > 0 || items.length === 0) {
      ctx.addIssue({
        code: "custom",
        message: `a comma list of ${PRICE_KINDS.join(", ")}${bad.length > 0 ? `; not valid: ${bad.join(", ")}` : ""}`,
      });
      return z.NEVER;
    }
    const prices = [...new Set(items as PriceKind[])];
    return PRICE_KINDS.filter((p) => prices.includes(p));
  }),
  FUNDING_RATES: z.string().default("auto").transform((text, ctx) => {
    const value = text.trim().toLowerCase();
    if (value === "auto") return "auto" as const;
    if (value === "true") return true;
    if (value === "false") return false;
    ctx.addIssue({ code: "custom", message: "auto, true or false" });
    return z.NEVER;
  }),
  OPEN_INTEREST: z.string().default("off").transform((text, ctx) => {
    const value = text.trim().toLowerCase();
    if (value === "off" || value === "") return "off" as const;
    if (!(OPEN_INTEREST_PERIODS as readonly string[]).includes(value)) {
      ctx.addIssue({ code: "custom", message: `off or a period: ${OPEN_INTEREST_PERIODS.join(", ")}` });
      return z.NEVER;
    }
    return value as OpenInterestPeriod;
  }),
};
