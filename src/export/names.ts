/**
 * File names freqtrade expects: `<PAIR>-<timeframe>.<ext>` with the pair's `/` (and `:`, ` `,
 * `.`, `@`, `$`, `+`) turned into `_`, so `BTC/USDT` 1h is `BTC_USDT-1h.feather`. A futures
 * (or swap) symbol, ccxt's `BTC/USDT:USDT`, is `BTC_USDT_USDT-1h-futures.feather` in a
 * `futures/` folder, as freqtrade lays out `user_data/data/<exchange>/`.
 *
 * @module
 */
import { type ExportFormat, extensionOf } from "./formats.ts";

/** The pair as freqtrade writes it in file names. */
export function pairFileName(symbol: string): string {
  return symbol.replace(/[/ .@$+:]/g, "_");
}

/** The file name of one series in `format` (`BTC_USDT-1h.feather`). */
export function exportFileName(
  series: { symbol: string; timeframe: string; price?: string },
  format: ExportFormat,
): string {
  // freqtrade's candle types: futures (trade candles of a contract), mark, index, premiumIndex.
  const price = series.price ?? "trade";
  const kind = price === "trade" ? "futures" : price === "premium" ? "premiumIndex" : price;
  const suffix = series.symbol.includes(":") ? `-${kind}` : "";
  return `${pairFileName(series.symbol)}-${series.timeframe}${suffix}.${extensionOf(format)}`;
}

/** The path of one series under a freqtrade data folder: `<exchange>/[futures/]<file>`. */
export function exportRelativePath(
  series: { exchange: string; symbol: string; timeframe: string; price?: string },
  format: ExportFormat,
): string {
  const folder = series.symbol.includes(":") ? `${series.exchange}/futures` : series.exchange;
  return `${folder}/${exportFileName(series, format)}`;
}
