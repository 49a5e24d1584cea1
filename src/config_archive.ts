/**
 * Configuration of deep-history imports from the exchange's public archive: `ARCHIVE`
 * (`auto` or `off`) and `ARCHIVE_URL` (Binance Data Vision or a mirror of it).
 *
 * @module
 */
import { z } from "zod";

/** The variables of this file, spread into `CONFIG_VARIABLES`. */
export const ARCHIVE_VARIABLES = ["ARCHIVE", "ARCHIVE_URL"] as const;

/** The published archive of Binance, the default `ARCHIVE_URL`. */
export const DEFAULT_ARCHIVE_BASE_URL = "https://data.binance.vision";

/** Where deep history comes from. */
export interface ArchiveConfig {
  /** `auto`: backfill whole past days from the archive where the exchange has one; `off`: REST only. */
  mode: "auto" | "off";
  /** Base URL of the archive (no trailing slash), e.g. `https://data.binance.vision`. */
  url: string;
}

/** The zod schema of {@linkcode ARCHIVE_VARIABLES}, spread into the configuration schema. */
export const ARCHIVE_SCHEMA = {
  ARCHIVE: z.string().default("auto").transform((text, ctx) => {
    const value = text.trim().toLowerCase();
    if (value === "auto" || value === "off") return value;
    ctx.addIssue({ code: "custom", message: "auto or off" });
    return z.NEVER;
  }),
  ARCHIVE_URL: z.string().default(DEFAULT_ARCHIVE_BASE_URL).transform((text, ctx) => {
    const value = text.trim();
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: "custom", message: "an http(s) URL such as https://data.binance.vision" });
      return z.NEVER;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      ctx.addIssue({ code: "custom", message: "an http(s) URL such as https://data.binance.vision" });
      return z.NEVER;
    }
    if (url.search !== "" || url.hash !== "") {
      ctx.addIssue({ code: "custom", message: "a base URL without ?query or #fragment" });
      return z.NEVER;
    }
    return value.replace(/\/+$/, "");
  }),
};

/** The {@linkcode ArchiveConfig} of parsed variables. */
export function archiveConfig(v: { ARCHIVE: ArchiveConfig["mode"]; ARCHIVE_URL: string }): ArchiveConfig {
  return { mode: v.ARCHIVE, url: v.ARCHIVE_URL };
}
