/**
 * Typed failures of an archive file that could not be imported after its one retry. The caller
 * falls back to REST for the file's range and logs the file by name.
 *
 * @module
 */

/** Why an archive file failed. */
export type ArchiveErrorCode =
  /** The `.zip` did not match the SHA-256 of its `.CHECKSUM` (or the `.CHECKSUM` was unreadable). */
  | "checksum_mismatch"
  /** The checksum matched but the zip could not be read (no CSV entry, broken or truncated entry). */
  | "corrupt_zip"
  /** The server answered neither the file nor 404 (5xx, network failure). */
  | "download_failed";

/** An archive file that failed twice (the first failure is retried once). */
export class ArchiveFileError extends Error {
  /** See {@linkcode ArchiveErrorCode}. */
  readonly code: ArchiveErrorCode;
  /** URL of the `.zip`. */
  readonly url: string;
  /** File name, e.g. `BTCUSDT-1m-2024-01.zip`. */
  readonly file: string;
  /** Downloads tried (2 after the retry). */
  readonly attempts: number;

  /** Creates the error. */
  constructor(
    message: string,
    fields: { code: ArchiveErrorCode; url: string; attempts: number },
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "ArchiveFileError";
    this.code = fields.code;
    this.url = fields.url;
    this.file = fields.url.slice(fields.url.lastIndexOf("/") + 1);
    this.attempts = fields.attempts;
  }
}

/** The `.zip` does not match its `.CHECKSUM`. */
export class ArchiveChecksumError extends ArchiveFileError {
  /** Creates the error. */
  constructor(message: string, fields: { url: string; attempts: number }, options?: { cause?: unknown }) {
    super(message, { ...fields, code: "checksum_mismatch" }, options);
    this.name = "ArchiveChecksumError";
  }
}

/** The `.zip` matched its checksum but cannot be read. */
export class ArchiveCorruptError extends ArchiveFileError {
  /** Creates the error. */
  constructor(message: string, fields: { url: string; attempts: number }, options?: { cause?: unknown }) {
    super(message, { ...fields, code: "corrupt_zip" }, options);
    this.name = "ArchiveCorruptError";
  }
}

/** The server failed to serve the file (neither the file nor a 404). */
export class ArchiveDownloadError extends ArchiveFileError {
  /** HTTP status of the last response, when one arrived. */
  readonly status?: number;

  /** Creates the error. */
  constructor(
    message: string,
    fields: { url: string; attempts: number; status?: number },
    options?: { cause?: unknown },
  ) {
    super(message, { url: fields.url, attempts: fields.attempts, code: "download_failed" }, options);
    this.name = "ArchiveDownloadError";
    this.status = fields.status;
  }
}
