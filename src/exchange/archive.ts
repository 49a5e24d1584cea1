/**
 * Reader of the Binance Data Vision kline archive (`ARCHIVE_URL`, default
 * https://data.binance.vision): plans the monthly and daily files of a range
 * ({@linkcode archivePlan}) and downloads one file, verifies its SHA-256 against its `.CHECKSUM`
 * before anything is parsed, streams its CSV out of the zip and validates every row
 * ({@linkcode fetchArchiveFile}). A file the archive does not have (404) is `missing`, for REST.
 * Trade candles and USDⓈ-M mark, index and premium-index candles (the price is read from the
 * URL's directory) come out as the REST reader stores them.
 *
 * @module
 */
import type { Candle } from "../candle.ts";
import { timeframeMs } from "../timeframe.ts";
import type { PriceKind } from "../market_type.ts";
import { parseKlineLine } from "./archive_csv.ts";
import {
  ArchiveChecksumError,
  ArchiveCorruptError,
  ArchiveDownloadError,
  type ArchiveErrorCode,
} from "./archive_errors.ts";
import { ArchiveLimiter } from "./archive_limiter.ts";
import { archivePriceOfDirectory, type TimeRange } from "./archive_plan.ts";
import { readZipLines, ZipReadError } from "./archive_zip.ts";
import { type RejectedCandle, validateCandles } from "./validate.ts";

export * from "./archive_plan.ts";
export * from "./archive_errors.ts";
export { ArchiveLimiter, DEFAULT_ARCHIVE_FILES_IN_FLIGHT } from "./archive_limiter.ts";

/** Options of {@linkcode fetchArchiveFile}. */
export interface ArchiveFetchOptions {
  /** The fetch to use (default the global one). */
  fetch?: typeof fetch;
  /** Aborts the download (and a wait for a limiter slot); the signal's reason is thrown. */
  signal?: AbortSignal;
  /** Bounds files in flight; default one limiter shared by every call that passes none. */
  limiter?: ArchiveLimiter;
  /** One download (checksum and zip) failing to finish within this many ms counts as a failed download. */
  timeoutMs?: number;
}

/**
 * A downloaded file whose SHA-256 matched its `.CHECKSUM`, not parsed yet: a backfill keeps a few
 * of these (compressed, small) ahead and parses each when it is written.
 */
export interface ArchiveFileDownload {
  status: "downloaded";
  url: string;
  file: string;
  range: TimeRange;
  /** Size of the `.zip` in bytes. */
  bytes: number;
  /** The verified SHA-256 of the `.zip` (lowercase hex). */
  sha256: string;
  /** Downloads it took so far. */
  attempts: number;
  /**
   * Unzips and parses the file (once: the zip is released). A zip that cannot be read is
   * downloaded once more if no retry was spent, else thrown as {@linkcode ArchiveCorruptError}.
   */
  read(): Promise<ArchiveFileRows>;
}

/** A downloaded, verified and parsed archive file. */
export interface ArchiveFileRows {
  status: "ok";
  url: string;
  /** File name, e.g. `BTCUSDT-1m-2024-01.zip`. */
  file: string;
  /** Open times the file covers, from its name. */
  range: TimeRange;
  /** Valid candles, strictly increasing, all inside `range`. */
  candles: Candle[];
  /** Rows that are not candles (malformed, invalid, outside the file's range), never in `candles`. */
  rejected: RejectedCandle[];
  /** Open times listed more than once (the first copy was kept). */
  duplicates: number[];
  /** Size of the `.zip` in bytes. */
  bytes: number;
  /** The verified SHA-256 of the `.zip` (lowercase hex). */
  sha256: string;
  /** Downloads it took (2 when the first was retried). */
  attempts: number;
}

/** The archive has no such file (404 of the `.zip` or its `.CHECKSUM`): REST covers its range. */
export interface ArchiveFileMissing {
  status: "missing";
  url: string;
  file: string;
  range: TimeRange;
  attempts: number;
}

/** The outcome of {@linkcode fetchArchiveFile}. */
export type ArchiveFileResult = ArchiveFileRows | ArchiveFileMissing;

const NAME = /^([A-Z0-9_]+)-([0-9]+[smhdw])-([0-9]{4})-([0-9]{2})(?:-([0-9]{2}))?\.zip$/;
const CHECKSUM_LINE = /^([0-9a-fA-F]{64})[ \t]+\*?(\S+)[ \t]*$/;

/** What a Data Vision kline URL names. */
export interface ArchiveUrlInfo {
  /** File name, e.g. `BTCUSDT-1m-2024-01.zip`. */
  file: string;
  timeframe: string;
  /** Open times the file covers. */
  range: TimeRange;
  /**
   * The candles' price, from the directory (`klines` trade, `markPriceKlines` mark,
   * `indexPriceKlines` index, `premiumIndexKlines` premium); trade for any other path.
   */
  price: PriceKind;
}

/** The file name, timeframe, covered range and price of a Data Vision kline URL. */
export function describeArchiveUrl(url: string): ArchiveUrlInfo {
  const parts = new URL(url).pathname.split("/");
  const file = parts.at(-1) ?? "";
  // .../<directory>/<SYMBOL>/<interval>/<file>
  const price = parts.length >= 4 ? archivePriceOfDirectory(parts[parts.length - 4]) ?? "trade" : "trade";
  const match = NAME.exec(file);
  if (match === null) {
    throw new Error(
      `Cannot read the archive file: current value is "${url}", expected a kline file such as BTCUSDT-1m-2024-01.zip`,
    );
  }
  const [, , timeframe, year, month, day] = match;
  const from = Date.UTC(Number(year), Number(month) - 1, day === undefined ? 1 : Number(day));
  const to = day === undefined ? Date.UTC(Number(year), Number(month), 1) : from + 86_400_000;
  return { file, timeframe, range: { from, to }, price };
}

/**
 * The SHA-256 (lowercase hex) a `.CHECKSUM` body gives for `file`: its first line is
 * `<64 hex>  <file name>`, as `sha256sum` writes it. A body in another shape or for another file
 * gives `{ problem }` instead.
 */
export function parseChecksum(text: string, file: string): { sha256: string } | { problem: string } {
  const line = text.split("\n").map((l) => l.trim()).find((l) => l !== "") ?? "";
  const match = CHECKSUM_LINE.exec(line);
  if (match === null) {
    return { problem: `a .CHECKSUM that is not "<sha256>  <file>" (${JSON.stringify(line.slice(0, 80))})` };
  }
  if (match[2] !== file) return { problem: `a .CHECKSUM for ${match[2]}` };
  return { sha256: match[1].toLowerCase() };
}

/** A failed file is downloaded again once. */
const MAX_ATTEMPTS = 2;

let sharedLimiter: ArchiveLimiter | undefined;

/** A failed attempt, before the retry decides. */
class AttemptFailure extends Error {
  constructor(readonly code: ArchiveErrorCode, message: string, readonly status?: number, cause?: unknown) {
    super(message, { cause });
  }
}

type Downloaded = { zip: Uint8Array; sha256: string } | { missing: true };

async function download(url: string, file: string, fetchFn: typeof fetch, signal?: AbortSignal): Promise<Downloaded> {
  const body = async <T>(response: Response, read: (response: Response) => Promise<T>): Promise<T> => {
    try {
      return await read(response);
    } catch (error) {
      signal?.throwIfAborted();
      throw new AttemptFailure("download_failed", `body cut off (${String(error)})`, response.status, error);
    }
  };
  const get = async (target: string): Promise<Response | null> => {
    let response: Response;
    try {
      response = await fetchFn(target, { signal });
    } catch (error) {
      signal?.throwIfAborted();
      throw new AttemptFailure("download_failed", `network failure (${String(error)})`, undefined, error);
    }
    if (response.status === 404) {
      await response.body?.cancel();
      return null;
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new AttemptFailure("download_failed", `HTTP ${response.status} for ${target}`, response.status);
    }
    return response;
  };
  const checksumResponse = await get(`${url}.CHECKSUM`);
  if (checksumResponse === null) return { missing: true };
  const checksum = parseChecksum(await body(checksumResponse, (r) => r.text()), file);
  if ("problem" in checksum) throw new AttemptFailure("checksum_mismatch", checksum.problem);
  const expected = checksum.sha256;
  const zipResponse = await get(url);
  if (zipResponse === null) return { missing: true };
  const zip = new Uint8Array(await body(zipResponse, (r) => r.arrayBuffer()));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", zip));
  const actual = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  if (actual !== expected) {
    throw new AttemptFailure("checksum_mismatch", `SHA-256 ${actual}, the .CHECKSUM says ${expected}`);
  }
  return { zip, sha256: actual };
}

function parseZip(zip: Uint8Array, range: TimeRange, stepMs: number, price: PriceKind) {
  const rows: Candle[] = [];
  const rejected: RejectedCandle[] = [];
  try {
    readZipLines(zip, (line) => {
      const parsed = parseKlineLine(line, { price });
      if (parsed.kind === "rejected") rejected.push(parsed.rejected);
      else if (parsed.kind === "candle") {
        const { candle } = parsed;
        if (candle.ts < range.from || candle.ts >= range.to) {
          rejected.push({ ts: candle.ts, reason: "open time outside the file's range" });
        } else rows.push(candle);
      }
    });
  } catch (error) {
    if (error instanceof ZipReadError) throw new AttemptFailure("corrupt_zip", error.message, undefined, error);
    throw error;
  }
  const validated = validateCandles(rows, stepMs);
  return {
    candles: validated.candles,
    rejected: [...rejected, ...validated.rejected],
    duplicates: validated.duplicates,
  };
}

function failureError(url: string, file: string, failure: AttemptFailure, attempts: number): Error {
  const message =
    `Cannot import the archive file ${file}: current value is ${failure.message} (after ${attempts} attempts)`;
  const fields = { url, attempts };
  if (failure.code === "checksum_mismatch") return new ArchiveChecksumError(message, fields, { cause: failure });
  if (failure.code === "corrupt_zip") return new ArchiveCorruptError(message, fields, { cause: failure.cause });
  return new ArchiveDownloadError(message, { ...fields, status: failure.status }, { cause: failure.cause });
}

/**
 * Downloads one archive `.zip` and its `.CHECKSUM` and verifies the SHA-256 (WebCrypto); parsing
 * waits for {@linkcode ArchiveFileDownload.read}. A 404 of either file is `missing` (not an error).
 * A checksum mismatch or a failed download (5xx, network, `timeoutMs`) is retried once, then thrown
 * as {@linkcode ArchiveChecksumError} or {@linkcode ArchiveDownloadError}, naming the file.
 * Downloads hold a slot of `options.limiter` (a few files in flight), not the REST weight budget.
 */
export async function downloadArchiveFile(
  url: string,
  options: ArchiveFetchOptions = {},
): Promise<ArchiveFileDownload | ArchiveFileMissing> {
  const { file, timeframe, range, price } = describeArchiveUrl(url);
  const stepMs = timeframeMs(timeframe);
  const fetchFn = options.fetch ?? fetch;
  const limiter = options.limiter ?? (sharedLimiter ??= new ArchiveLimiter());
  const once = async (): Promise<Downloaded> => {
    if (options.timeoutMs === undefined) return await download(url, file, fetchFn, options.signal);
    const timeout = AbortSignal.timeout(options.timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    try {
      return await download(url, file, fetchFn, signal);
    } catch (error) {
      options.signal?.throwIfAborted();
      if (!timeout.aborted) throw error;
      throw new AttemptFailure("download_failed", `no answer within ${options.timeoutMs / 1000} s`, undefined, error);
    }
  };
  const from = async (first: number): Promise<ArchiveFileDownload | ArchiveFileMissing> => {
    for (let attempt = first;; attempt++) {
      let got: Downloaded;
      try {
        got = await limiter.run(once, options);
      } catch (error) {
        if (!(error instanceof AttemptFailure)) throw error;
        if (attempt >= MAX_ATTEMPTS) throw failureError(url, file, error, attempt);
        continue;
      }
      if ("missing" in got) return { status: "missing", url, file, range, attempts: attempt };
      let zip: Uint8Array | null = got.zip;
      const { sha256 } = got;
      const bytes = got.zip.length;
      return {
        status: "downloaded",
        url,
        file,
        range,
        bytes,
        sha256,
        attempts: attempt,
        read: async () => {
          if (zip === null) throw new Error(`Cannot read the archive file ${file}: current value is already read`);
          try {
            const parsed = parseZip(zip, range, stepMs, price);
            return { status: "ok", url, file, range, ...parsed, bytes, sha256, attempts: attempt };
          } catch (error) {
            if (!(error instanceof AttemptFailure)) throw error;
            if (attempt >= MAX_ATTEMPTS) throw failureError(url, file, error, attempt);
            const again = await from(attempt + 1);
            if (again.status === "missing") throw failureError(url, file, error, attempt + 1);
            return await again.read();
          } finally {
            zip = null;
          }
        },
      };
    }
  };
  return await from(1);
}

/**
 * Downloads one archive `.zip` and its `.CHECKSUM`, verifies the SHA-256 (WebCrypto) before
 * anything is parsed, streams the CSV out of the zip and validates every row like a REST page
 * ({@linkcode downloadArchiveFile}, then its `read`). A 404 of either file is `missing` (not an
 * error). A checksum mismatch, a corrupt zip or a failed download is retried once, then thrown as
 * {@linkcode ArchiveChecksumError}, {@linkcode ArchiveCorruptError} or
 * {@linkcode ArchiveDownloadError}, naming the file.
 */
export async function fetchArchiveFile(url: string, options: ArchiveFetchOptions = {}): Promise<ArchiveFileResult> {
  const downloaded = await downloadArchiveFile(url, options);
  return downloaded.status === "missing" ? downloaded : await downloaded.read();
}
