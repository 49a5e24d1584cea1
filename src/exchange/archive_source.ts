/**
 * The archive as the backfill sees it: which series Binance Data Vision serves (spot pairs on
 * `binance`; USDⓈ-M perpetuals on `binance` and `binanceusdm`, trade, mark, index and
 * premium-index klines), the files of a
 * range, and one file fetched with a time limit. When the archive cannot be reached at all
 * (three download failures in a row) it is paused for ten minutes, so backfills go straight to
 * REST instead of timing out file after file.
 *
 * @module
 */
import { getLogger } from "../log.ts";
import type { PriceKind } from "../market_type.ts";
import {
  ArchiveDownloadError,
  type ArchiveFile,
  type ArchiveFileDownload,
  type ArchiveFileMissing,
  type ArchiveFileResult,
  type ArchiveKind,
  ArchiveLimiter,
  archiveMarketId,
  type ArchivePlan,
  archivePlan,
  archiveSupports,
  downloadArchiveFile,
  type TimeRange,
} from "./archive.ts";

/** A series as the archive needs it. */
export interface ArchiveTarget {
  exchange: string;
  symbol: string;
  timeframe: string;
  price?: PriceKind;
}

/** Options of {@linkcode BinanceArchive}. */
export interface BinanceArchiveOptions {
  /** Base URL (`ARCHIVE_URL`). */
  url: string;
  /** The fetch to use (default the global one). */
  fetch?: typeof fetch;
  /** Files downloaded at once, across every series (default 4). */
  limiter?: ArchiveLimiter;
  /** Files parsed and written at once, across every series (default 2). */
  writes?: number;
  /** One download of a file, checksum and all, may take this long before it counts as failed (default 120 s). */
  fileTimeoutMs?: number;
  /** Download failures in a row that pause the archive (default 3). */
  failuresToPause?: number;
  /** How long a pause lasts (default 10 minutes). */
  pauseMs?: number;
  now?: () => number;
}

const log = getLogger("archive");

/** Binance Data Vision (or a mirror) for the backfill: plans and fetches files. */
export class BinanceArchive {
  readonly url: string;
  readonly limiter: ArchiveLimiter;
  /** Files parsed and written at once in the process, across series: a parsed month is megabytes. */
  readonly writes: ArchiveLimiter;
  readonly #options: BinanceArchiveOptions;
  #failuresInARow = 0;
  #pausedUntil = 0;

  /** Creates the reader; nothing is fetched until a backfill asks. */
  constructor(options: BinanceArchiveOptions) {
    this.url = options.url.replace(/\/+$/, "");
    this.limiter = options.limiter ?? new ArchiveLimiter();
    this.writes = new ArchiveLimiter(options.writes ?? 2);
    this.#options = options;
  }

  #now(): number {
    return this.#options.now?.() ?? Date.now();
  }

  /** The archive market of a series (`spot` or `um`), or null when the archive does not serve it. */
  kindOf(target: ArchiveTarget): ArchiveKind | null {
    const price = target.price ?? "trade";
    const kinds: ArchiveKind[] = target.exchange === "binance"
      ? ["spot", "um"]
      : target.exchange === "binanceusdm"
      ? ["um"]
      : [];
    return kinds.find((kind) =>
      archiveMarketId(target.symbol, kind) !== null && archiveSupports(target.symbol, target.timeframe, kind, { price })
    ) ?? null;
  }

  /** Until when the archive is paused after repeated download failures (0: not paused). */
  get pausedUntil(): number {
    return this.#pausedUntil > this.#now() ? this.#pausedUntil : 0;
  }

  /**
   * The files covering the whole past UTC days of `range` for a series, or null when the archive
   * does not serve the series or is paused (then REST covers everything).
   */
  plan(target: ArchiveTarget, range: TimeRange, options: { now: number; dailyOnly?: boolean }): ArchivePlan | null {
    const kind = this.kindOf(target);
    if (kind === null || this.pausedUntil > 0) return null;
    return archivePlan(target.symbol, target.timeframe, range, {
      kind,
      now: options.now,
      baseUrl: this.url,
      price: target.price ?? "trade",
      dailyOnly: options.dailyOnly,
    });
  }

  /**
   * Downloads one file and verifies its checksum (see `downloadArchiveFile`); its `read()` parses
   * it. A download that outlasts the time limit fails like any other download; failures are thrown
   * as `ArchiveFileError`s, and three download failures in a row pause the archive.
   */
  async download(
    file: ArchiveFile,
    options: { signal?: AbortSignal } = {},
  ): Promise<ArchiveFileDownload | ArchiveFileMissing> {
    try {
      const result = await downloadArchiveFile(file.url, {
        fetch: this.#options.fetch,
        limiter: this.limiter,
        signal: options.signal,
        timeoutMs: this.#options.fileTimeoutMs ?? 120_000,
      });
      this.#failuresInARow = 0;
      return result;
    } catch (error) {
      if (error instanceof ArchiveDownloadError) this.#noteDownloadFailure(error);
      throw error;
    }
  }

  /** Downloads, verifies and parses one file: {@linkcode BinanceArchive.download}, then `read()`. */
  async fetchFile(file: ArchiveFile, options: { signal?: AbortSignal } = {}): Promise<ArchiveFileResult> {
    const downloaded = await this.download(file, options);
    return downloaded.status === "missing" ? downloaded : await downloaded.read();
  }

  #noteDownloadFailure(error: ArchiveDownloadError): void {
    this.#failuresInARow++;
    if (this.#failuresInARow < (this.#options.failuresToPause ?? 3) || this.pausedUntil > 0) return;
    const pauseMs = this.#options.pauseMs ?? 600_000;
    this.#pausedUntil = this.#now() + pauseMs;
    this.#failuresInARow = 0;
    log.warn(
      "The archive at {url} cannot be reached: {count} downloads failed in a row (the last: {reason}). Backfills use REST only until {until}",
      {
        url: this.url,
        count: this.#options.failuresToPause ?? 3,
        reason: error.message,
        until: new Date(this.#pausedUntil).toISOString(),
      },
    );
  }
}

/** The archive `config` asks for (`ARCHIVE=auto`: Binance Data Vision at `ARCHIVE_URL`), or null (REST only). */
export function archiveFor(config: { archive?: { mode: "auto" | "off"; url: string } }): BinanceArchive | null {
  return config.archive?.mode === "auto" ? new BinanceArchive({ url: config.archive.url }) : null;
}
