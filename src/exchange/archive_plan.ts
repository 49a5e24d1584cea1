/**
 * Which Binance Data Vision files cover a candle range: monthly files for whole calendar months,
 * daily files for the remaining whole days, never today (UTC), which is not published yet.
 * Trade candles are under `klines` (spot and USDⓈ-M); USDⓈ-M mark, index and premium-index
 * candles under `markPriceKlines`, `indexPriceKlines` (keyed by pair, which for a USDⓈ-M
 * perpetual is its symbol id) and `premiumIndexKlines`, with the same file names.
 *
 * @module
 */
import type { PriceKind } from "../market_type.ts";

/** The published archive of Binance (`ARCHIVE_URL` default). */
export const DEFAULT_ARCHIVE_URL = "https://data.binance.vision";

/** Which Binance market an archive file belongs to: spot or USDⓈ-M futures. */
export type ArchiveKind = "spot" | "um";

/** A half-open time range `[from, to)` in epoch ms (candle open times). */
export interface TimeRange {
  from: number;
  to: number;
}

/** One archive file of a plan. */
export interface ArchiveFile {
  /** `monthly` (a whole calendar month) or `daily` (one UTC day). */
  granularity: "monthly" | "daily";
  /** File name, e.g. `BTCUSDT-1m-2024-01.zip`; unique within one series (a checkpoint key). */
  name: string;
  /** Full URL of the `.zip`; its checksum is at the same URL plus `.CHECKSUM`. */
  url: string;
  /** Open times the file covers. */
  range: TimeRange;
}

/** The outcome of {@linkcode archivePlan}. */
export interface ArchivePlan {
  /** Exchange market id, e.g. `BTCUSDT`. */
  marketId: string;
  /** Files in time order, adjacent and not overlapping. */
  files: ArchiveFile[];
  /** Parts of the requested range no file covers (partial days, today and later): REST's share. */
  uncovered: TimeRange[];
}

/** Options of {@linkcode archivePlan}. */
export interface ArchivePlanOptions {
  kind: ArchiveKind;
  /** Which candles: trade (default) or, on USDⓈ-M only, mark, index or premium index. */
  price?: PriceKind;
  /** The current time in ms: today (UTC) and later are never planned. */
  now: number;
  /** Base URL (default {@linkcode DEFAULT_ARCHIVE_URL}), e.g. a mirror or `http://127.0.0.1:8080`. */
  baseUrl?: string;
  /** Daily files only, also for whole months (e.g. a month whose monthly file is not published yet). */
  dailyOnly?: boolean;
}

const DAY_MS = 86_400_000;

/**
 * Timeframes the archive serves as exact copies of the REST candles. Binance also publishes
 * `3d`, `1w` and `1mo` (1M) files, but those candles straddle file boundaries (a week or three
 * days open in one month and close in the next, a month is not a fixed length), so they stay on
 * REST, where a year is a few dozen candles anyway. `1s` is published for spot only.
 */
const TIMEFRAMES: Record<ArchiveKind, readonly string[]> = {
  spot: ["1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"],
  um: ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"],
};

/** The archive directory of each price kind's candles (`data/<market>/<granularity>/<dir>/...`). */
export const ARCHIVE_PRICE_DIRECTORIES: Readonly<Record<PriceKind, string>> = {
  trade: "klines",
  mark: "markPriceKlines",
  index: "indexPriceKlines",
  premium: "premiumIndexKlines",
};

/** The price kind an archive directory holds, or null for another directory. */
export function archivePriceOfDirectory(directory: string): PriceKind | null {
  const found = Object.entries(ARCHIVE_PRICE_DIRECTORIES).find(([, dir]) => dir === directory);
  return found === undefined ? null : found[0] as PriceKind;
}

/** Whether the archive publishes `price` candles on `kind`: spot has trade candles only. */
function publishes(kind: ArchiveKind, price: PriceKind): boolean {
  return price === "trade" || kind === "um";
}

/** The timeframes the archive is used for on `kind` (see the module notes on 3d, 1w and 1M). */
export function archiveTimeframes(kind: ArchiveKind): readonly string[] {
  return TIMEFRAMES[kind];
}

/**
 * The Binance market id of a ccxt unified symbol, or null when the archive has no klines for it
 * here: spot `BTC/USDT` → `BTCUSDT`; USDⓈ-M perpetual `BTC/USDT:USDT` → `BTCUSDT` (settled in the
 * quote currency). Dated futures and inverse contracts are not covered.
 */
export function archiveMarketId(symbol: string, kind: ArchiveKind): string | null {
  const match = /^([A-Z0-9]+)\/([A-Z0-9]+)(?::([A-Z0-9]+))?$/.exec(symbol);
  if (match === null) return null;
  const [, base, quote, settle] = match;
  if (kind === "spot" && settle !== undefined) return null;
  if (kind === "um" && settle !== quote) return null;
  return `${base}${quote}`;
}

/** Options of {@linkcode archiveSupports}. */
export interface ArchiveSupportsOptions {
  /** Which candles (default trade). */
  price?: PriceKind;
}

/**
 * Whether the archive serves `symbol`'s `price` candles (default trade) at `timeframe` on
 * `kind`; spot has trade candles only.
 */
export function archiveSupports(
  symbol: string,
  timeframe: string,
  kind: ArchiveKind,
  options: ArchiveSupportsOptions = {},
): boolean {
  return publishes(kind, options.price ?? "trade") && archiveMarketId(symbol, kind) !== null &&
    TIMEFRAMES[kind].includes(timeframe);
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

function monthStart(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

function monthAfter(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}

function ceilDay(ms: number): number {
  return Math.ceil(ms / DAY_MS) * DAY_MS;
}

/**
 * The archive files that cover the whole UTC days of `range` before today: a monthly file for
 * every calendar month wholly inside (never for 1s: daily files keep a file's rows small), a daily
 * file for every other whole day. What no file covers
 * (a partial first or last day, today and later) is listed in `uncovered` for REST.
 * `options.price` picks the candles' directory (mark, index and premium index on USDⓈ-M only).
 * Throws when the symbol, timeframe or price is not served (check {@linkcode archiveSupports} first).
 */
export function archivePlan(
  symbol: string,
  timeframe: string,
  range: TimeRange,
  options: ArchivePlanOptions,
): ArchivePlan {
  const { kind, now } = options;
  const price = options.price ?? "trade";
  if (!Object.hasOwn(ARCHIVE_PRICE_DIRECTORIES, price)) {
    throw new Error(
      `Cannot plan archive files: current value is price "${price}", expected one of ${
        Object.keys(ARCHIVE_PRICE_DIRECTORIES).join(", ")
      }`,
    );
  }
  if (!publishes(kind, price)) {
    throw new Error(
      `Cannot plan archive files: current value is price "${price}" on ${kind}, which has trade candles (klines) only`,
    );
  }
  const marketId = archiveMarketId(symbol, kind);
  if (marketId === null) {
    throw new Error(`Cannot plan archive files: current value is symbol "${symbol}", not a Binance ${kind} market`);
  }
  if (!TIMEFRAMES[kind].includes(timeframe)) {
    throw new Error(
      `Cannot plan archive files: current value is timeframe "${timeframe}", expected one of ${
        TIMEFRAMES[kind].join(", ")
      } on ${kind}`,
    );
  }
  const base = (options.baseUrl ?? DEFAULT_ARCHIVE_URL).replace(/\/+$/, "");
  const market = kind === "spot" ? "spot" : "futures/um";
  const directory = ARCHIVE_PRICE_DIRECTORIES[price];
  const today = Math.floor(now / DAY_MS) * DAY_MS;
  const start = ceilDay(range.from);
  const end = Math.min(Math.floor(range.to / DAY_MS) * DAY_MS, today);
  const files: ArchiveFile[] = [];
  const file = (granularity: "monthly" | "daily", from: number, to: number): ArchiveFile => {
    const d = new Date(from);
    const date = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}` +
      (granularity === "daily" ? `-${pad(d.getUTCDate())}` : "");
    const name = `${marketId}-${timeframe}-${date}.zip`;
    const url = `${base}/data/${market}/${granularity}/${directory}/${marketId}/${timeframe}/${name}`;
    return { granularity, name, url, range: { from, to } };
  };
  // A 1s month is 2.6 million rows: daily files keep one file's rows small.
  const monthly = timeframe !== "1s" && !options.dailyOnly;
  let cursor = start;
  while (cursor < end) {
    const nextMonth = monthAfter(cursor);
    if (monthly && monthStart(cursor) === cursor && nextMonth <= end) {
      files.push(file("monthly", cursor, nextMonth));
      cursor = nextMonth;
    } else {
      files.push(file("daily", cursor, cursor + DAY_MS));
      cursor += DAY_MS;
    }
  }
  const uncovered: TimeRange[] = [];
  if (files.length === 0) {
    if (range.from < range.to) uncovered.push({ from: range.from, to: range.to });
  } else {
    if (range.from < start) uncovered.push({ from: range.from, to: start });
    if (end < range.to) uncovered.push({ from: end, to: range.to });
  }
  return { marketId, files, uncovered };
}
