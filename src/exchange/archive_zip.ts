/**
 * Streams the CSV entry of a downloaded archive `.zip` line by line (fflate's streaming unzip):
 * the inflated text is never held whole, only one chunk and one partial line at a time.
 *
 * @module
 */
import { Unzip, UnzipInflate } from "fflate";
import { LineSplitter } from "./archive_csv.ts";

/** Thrown by {@linkcode readZipLines} when the bytes are not a readable zip with one CSV entry. */
export class ZipReadError extends Error {
  /** Creates the error. */
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ZipReadError";
  }
}

/** Bytes pushed into the unzipper at a time. */
const CHUNK = 64 * 1024;

/**
 * Calls `onLine` for every line of the first `.csv` entry of `zip`, in order, as it is inflated.
 * Throws {@linkcode ZipReadError} when the zip has no CSV entry, the entry is truncated or its
 * deflate stream is broken, or its inflated size differs from the size the zip declares.
 */
export function readZipLines(zip: Uint8Array, onLine: (line: string) => void): { entry: string; bytes: number } {
  let entry: string | null = null;
  let failure: unknown = null;
  let done = false;
  let inflated = 0;
  let declared: number | undefined;
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const lines = new LineSplitter();
  const unzip = new Unzip((file) => {
    if (entry !== null || !file.name.toLowerCase().endsWith(".csv")) return;
    entry = file.name;
    declared = file.originalSize;
    file.ondata = (error, data, final) => {
      if (failure !== null) return;
      if (error) {
        failure = error;
        return;
      }
      try {
        inflated += data.length;
        lines.push(decoder.decode(data, { stream: !final }), onLine);
        if (final) {
          lines.end(onLine);
          done = true;
        }
      } catch (e) {
        failure = e;
      }
    };
    file.start();
  });
  unzip.register(UnzipInflate);
  try {
    if (zip.length === 0) unzip.push(zip, true);
    for (let offset = 0; offset < zip.length && failure === null; offset += CHUNK) {
      const end = Math.min(zip.length, offset + CHUNK);
      unzip.push(zip.subarray(offset, end), end === zip.length);
    }
  } catch (e) {
    failure ??= e;
  }
  if (failure !== null) {
    if (failure instanceof ZipReadError) throw failure;
    const reason = failure instanceof Error ? failure.message : String(failure);
    throw new ZipReadError(`Cannot read the zip: current value is a broken entry (${reason})`, { cause: failure });
  }
  if (entry === null) throw new ZipReadError("Cannot read the zip: current value has no .csv entry");
  if (!done) throw new ZipReadError(`Cannot read the zip: current value has a truncated entry ${entry}`);
  if (declared !== undefined && declared !== inflated) {
    throw new ZipReadError(
      `Cannot read the zip: current value inflates ${entry} to ${inflated} bytes, the zip declares ${declared}`,
    );
  }
  return { entry, bytes: inflated };
}
