/**
 * One export as a byte stream: chunks read from the database cursor (`read.ts`) are encoded
 * (`formats.ts`) only when the consumer asks for more, so memory holds one chunk and its
 * bytes whatever the size of the export.
 *
 * @module
 */
import type { Encoder } from "./formats.ts";
import type { CandleChunk } from "./read.ts";

/** Counters of a finished or running export. */
export interface ExportProgress {
  rows: number;
  bytes: number;
}

/** Options of {@linkcode exportStream}. */
export interface ExportStreamOptions {
  /** Called once when the stream ends, fails or is cancelled. */
  onEnd?: (error?: unknown) => void;
  /** Counts rows and bytes as they go. */
  progress?: ExportProgress;
  /** Abort when the consumer takes nothing for this long (ms); default: never. */
  idleMs?: number;
}

/**
 * A pull-driven stream of the encoded file: each `pull` reads one chunk and encodes it.
 * Cancelling the stream closes the chunk iterator (and so the cursor).
 */
export function exportStream(
  chunks: AsyncIterator<CandleChunk>,
  encoder: Encoder,
  options: ExportStreamOptions = {},
): ReadableStream<Uint8Array> {
  let ended = false;
  let idle: ReturnType<typeof setTimeout> | undefined;
  const end = (error?: unknown) => {
    if (ended) return;
    ended = true;
    clearTimeout(idle);
    options.onEnd?.(error);
  };
  const arm = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    if (options.idleMs === undefined) return;
    const idleMs = options.idleMs;
    idle = setTimeout(() => {
      const error = new Error(`Cannot keep the export open: current value is ${idleMs} ms without the client reading`);
      end(error);
      controller.error(error);
      chunks.return?.().catch(() => {});
    }, idleMs);
  };
  const progress = options.progress;
  const put = (controller: ReadableStreamDefaultController<Uint8Array>, pieces: Uint8Array[]) => {
    for (const p of pieces) {
      if (progress) progress.bytes += p.byteLength;
      controller.enqueue(p);
    }
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      arm(controller);
    },
    async pull(controller) {
      clearTimeout(idle);
      try {
        // Skip chunks that encode to nothing (Parquet and Arrow always give bytes; text may not).
        for (;;) {
          const step = await chunks.next();
          if (ended) return;
          if (step.done) {
            put(controller, encoder.finish());
            end();
            controller.close();
            return;
          }
          if (progress) progress.rows += step.value.length;
          const pieces = encoder.encode(step.value);
          if (pieces.length > 0) {
            put(controller, pieces);
            arm(controller);
            return;
          }
        }
      } catch (error) {
        end(error);
        controller.error(error);
      }
    },
    async cancel(reason) {
      end(reason);
      await chunks.return?.();
    },
  }, { highWaterMark: 0 });
}

/**
 * Reads the first chunk now (so that a failing query surfaces before any response is sent)
 * and returns an iterator that yields it, then the rest.
 */
export async function primeChunks(chunks: AsyncIterator<CandleChunk>): Promise<AsyncIterator<CandleChunk>> {
  let first: IteratorResult<CandleChunk> | undefined = await chunks.next();
  return {
    next() {
      const step = first;
      first = undefined;
      return step ? Promise.resolve(step) : chunks.next();
    },
    async return() {
      first = undefined;
      return await chunks.return?.() ?? { done: true, value: undefined };
    },
  };
}
