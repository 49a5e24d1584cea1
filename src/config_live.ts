/**
 * Configuration of how live candles arrive: `LIVE_MODE` (WebSocket or REST), `LIVE_REST_CHECK`
 * and `LIVE_WS_SILENCE`.
 *
 * @module
 */
import { z } from "zod";
import { parseDuration } from "./config_values.ts";

/** The variables of this file, spread into `CONFIG_VARIABLES`. */
export const LIVE_VARIABLES = ["LIVE_MODE", "LIVE_REST_CHECK", "LIVE_WS_SILENCE"] as const;

/** How live candles arrive. */
export interface LiveConfig {
  /** `auto`: WebSocket where ccxt.pro can watch candles, else REST; `ws`; `rest`. */
  mode: "auto" | "ws" | "rest";
  /** How often a series fed by a WebSocket is checked over REST (one request covering the interval), in ms. */
  restCheckMs: number;
  /** A stream with no message for this long is reconnected (null: twice its timeframe, at least 30 s). */
  silenceMs: number | null;
}

const duration = (name: string, min: number) =>
  z.string().transform((text, ctx) => {
    const ms = parseDuration(text.trim());
    if (ms === null || ms < min) {
      ctx.addIssue({ code: "custom", message: `a duration such as 30s, 5m or 1h, at least ${min / 1000}s` });
      return z.NEVER;
    }
    return ms;
  }).describe(name);

/** The zod schema of {@linkcode LIVE_VARIABLES}, spread into the configuration schema. */
export const LIVE_SCHEMA = {
  LIVE_MODE: z.string().default("auto").transform((text, ctx) => {
    const value = text.trim().toLowerCase();
    if (value === "auto" || value === "ws" || value === "rest") return value;
    ctx.addIssue({ code: "custom", message: "auto, ws or rest" });
    return z.NEVER;
  }),
  LIVE_REST_CHECK: z.string().default("15m").pipe(duration("LIVE_REST_CHECK", 60_000)),
  LIVE_WS_SILENCE: z.string().default("auto").transform((text) => text.trim().toLowerCase()).pipe(
    z.union([z.literal("auto").transform(() => null), duration("LIVE_WS_SILENCE", 5_000)]),
  ),
};

/** The {@linkcode LiveConfig} of parsed variables. */
export function liveConfig(
  v: { LIVE_MODE: LiveConfig["mode"]; LIVE_REST_CHECK: number; LIVE_WS_SILENCE: number | null },
): LiveConfig {
  return { mode: v.LIVE_MODE, restCheckMs: v.LIVE_REST_CHECK, silenceMs: v.LIVE_WS_SILENCE };
}
