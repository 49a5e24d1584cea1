/**
 * Wake-ups for `GET /v1/stream`: one PostgreSQL `LISTEN` connection per process tells every
 * open stream when candles of the series it follows were written (by any instance: the write
 * path notifies `candlekeep_candles` in the writing transaction, so the notice arrives once
 * the rows are visible) and passes on forming candles published on `candlekeep_forming`.
 * A poll of `series_stats` every few seconds covers notices lost while the listening
 * connection was down and writes made outside Candlekeep.
 *
 * @module
 */
import type { Sql } from "../db/client.ts";
import { getLogger } from "../log.ts";
import { CANDLES_CHANNEL, FORMING_CHANNEL } from "../ingest/store.ts";

/** A forming candle as published on `FORMING_CHANNEL`: `s` is the series id, `t` the open time (ms). */
export interface FormingCandle {
  s: number;
  t: number;
  o: number;
  h: number;
  l: number;
  c: number;
  v: number;
}

/** What a stream is told. */
export interface StreamListener {
  /** Candles of `seriesId` were written (or may have been: after a reconnect or a poll). */
  written(seriesId: number): void;
  /** A forming candle of `seriesId` arrived. */
  forming(candle: FormingCandle): void;
  /** The hub is closing (the server shuts down): end the stream. */
  end(): void;
}

/** Options of {@linkcode StreamHub}. */
export interface StreamHubOptions {
  /** How often `series_stats` is polled for writes no notice announced, in ms (default 5000). */
  pollMs?: number;
}

/** Parses a `FORMING_CHANNEL` payload; null when it is not a forming candle. */
export function parseForming(payload: string): FormingCandle | null {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const v = value as Record<string, unknown>;
  const keys = ["s", "t", "o", "h", "l", "c", "v"] as const;
  if (!keys.every((k) => typeof v[k] === "number" && Number.isFinite(v[k]))) return null;
  return v as unknown as FormingCandle;
}

/** Fans database notices out to the open streams of this process. */
export class StreamHub {
  readonly #sql: Sql;
  readonly #pollMs: number;
  readonly #listeners = new Map<StreamListener, ReadonlySet<number>>();
  readonly #log = getLogger("api");
  #started: Promise<void> | null = null;
  #unlisten: (() => Promise<void>)[] = [];
  #poll: ReturnType<typeof setInterval> | undefined;
  #lastSeen = new Map<number, string>();
  #closed = false;

  /** Listens through `sql` once the first stream subscribes. */
  constructor(sql: Sql, options: StreamHubOptions = {}) {
    this.#sql = sql;
    this.#pollMs = options.pollMs ?? 5000;
  }

  /** Open streams now. */
  get size(): number {
    return this.#listeners.size;
  }

  /**
   * Tells `listener` about writes and forming candles of `seriesIds` until the returned
   * function is called. Resolves once notices are being received.
   */
  async subscribe(seriesIds: readonly number[], listener: StreamListener): Promise<() => void> {
    if (this.#closed) throw new Error("Cannot open a stream: the server is shutting down");
    this.#listeners.set(listener, new Set(seriesIds));
    await this.#start();
    return () => {
      this.#listeners.delete(listener);
    };
  }

  #each(seriesId: number, fn: (l: StreamListener) => void): void {
    for (const [listener, ids] of this.#listeners) {
      if (!ids.has(seriesId)) continue;
      try {
        fn(listener);
      } catch (error) {
        this.#log.warn("A stream listener failed: {reason}", { reason: String(error) });
      }
    }
  }

  #start(): Promise<void> {
    this.#started ??= (async () => {
      const onWritten = (payload: string) => {
        const id = Number(payload);
        if (Number.isInteger(id)) this.#each(id, (l) => l.written(id));
      };
      const onForming = (payload: string) => {
        const candle = parseForming(payload);
        if (candle) this.#each(candle.s, (l) => l.forming(candle));
      };
      // postgres.js calls the third argument again after it re-listens on a new connection:
      // whatever was written meanwhile is looked for.
      const everyone = () => {
        for (const [listener, ids] of this.#listeners) for (const id of ids) listener.written(id);
      };
      const a = await this.#sql.listen(CANDLES_CHANNEL, onWritten, everyone);
      const b = await this.#sql.listen(FORMING_CHANNEL, onForming);
      this.#unlisten = [a.unlisten, b.unlisten];
      this.#poll = setInterval(() => this.#pollStats().catch(() => {}), this.#pollMs);
    })().catch((error) => {
      this.#started = null;
      throw error;
    });
    return this.#started;
  }

  async #pollStats(): Promise<void> {
    if (this.#closed || this.#listeners.size === 0) return;
    const ids = [...new Set([...this.#listeners.values()].flatMap((s) => [...s]))];
    const rows = await this.#sql<{ id: number; mark: string }[]>`
      select series_id as id, coalesce(last_ts::text, '') || '|' || count::text as mark
      from series_stats where series_id = any(${ids}::int[])`;
    for (const row of rows) {
      const before = this.#lastSeen.get(row.id);
      this.#lastSeen.set(row.id, row.mark);
      if (before !== undefined && before !== row.mark) this.#each(row.id, (l) => l.written(row.id));
    }
  }

  /** Ends every open stream and stops listening. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#poll);
    for (const listener of [...this.#listeners.keys()]) {
      try {
        listener.end();
      } catch { /* already ended */ }
    }
    this.#listeners.clear();
    await Promise.all(this.#unlisten.map((u) => u().catch(() => {})));
    this.#unlisten = [];
  }
}
