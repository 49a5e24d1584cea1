/**
 * `GET /v1/stream`: Server-Sent Events of live candles for one or more series, any timeframe
 * `/v1/candles` can serve (resampled ones included).
 *
 * - `candle` events carry `{exchange, symbol, timeframe, price, time, open, high, low, close,
 *   volume, closed}`: updates of the forming candle (`closed: false`) as they arrive and each
 *   closed candle once (`closed: true`), in order per series.
 * - Each closed event has an `id` holding, for every followed series, the open time of the
 *   last closed candle sent. A client that reconnects with `Last-Event-ID` (EventSource does
 *   it by itself) first gets every closed candle after those times from the database, then the
 *   live ones: nothing is lost. A new stream starts with the last closed candle of each series.
 * - A comment line every `heartbeatMs` keeps proxies from closing an idle stream. A client that
 *   reads too slowly (more than `maxBufferBytes` waiting) is dropped rather than buffered
 *   without bound; it may reconnect and resume.
 *
 * Wake-ups come from {@linkcode StreamHub}: writes of any instance, forming candles published
 * by the live WebSocket ingest, and a poll.
 *
 * @module
 */
import { z } from "zod";
import type { Sql } from "../db/client.ts";
import { getLogger } from "../log.ts";
import { nextMonth } from "../timeframe.ts";
import { bucketFloor, type CandleRow, pageQuery, type PageSpec, planPage } from "./candle_query.ts";
import { addDecimalText, decimalText } from "./decimal_text.ts";
import { BadRequestError, type ErrorDetail } from "./errors.ts";
import { CandleTimeframe, Exchange, MarketSymbol, Price, problemOf, queryError } from "./params.ts";
import { type ResolvedSource, resolveSource } from "./series_source.ts";
import type { FormingCandle, StreamHub } from "./stream_hub.ts";

/** Most series one stream follows. */
export const MAX_STREAM_SERIES = 100;
/** Closed candles read per query while catching up. */
const PAGE = 1000;

/** Options of {@linkcode getStream}. */
export interface StreamOptions {
  hub: StreamHub;
  now?: () => number;
  /** Interval of heartbeat comments, in ms (default 15000). */
  heartbeatMs?: number;
  /** Bytes a slow client may leave unread before it is dropped (default 1 MiB). */
  maxBufferBytes?: number;
  /** Told of each candle event sent (for metrics). */
  onEvent?: (closed: boolean) => void;
  /** Told when a slow client is dropped (for metrics). */
  onDrop?: () => void;
}

/** One followed series of a `/v1/stream` query (each name may repeat, once per series). */
export const StreamSubscription = z.strictObject({
  exchange: Exchange,
  symbol: MarketSymbol,
  timeframe: CandleTimeframe,
  price: Price.optional(),
});

/** One followed series as requested. */
export interface StreamKey {
  exchange: string;
  symbol: string;
  timeframe: string;
  price: string;
}

/**
 * The series a `/v1/stream` query asks for: `exchange`, `symbol`, `timeframe` and `price`
 * repeated once per series, in order; a name given once applies to every series (e.g. one
 * `exchange` and `timeframe` with several `symbol`s). Throws {@linkcode BadRequestError}
 * naming each problem.
 */
export function parseStreamQuery(url: URL): { keys: StreamKey[]; lastEventId: string | null } {
  const names = ["exchange", "symbol", "timeframe", "price"] as const;
  const unknown = [...new Set(url.searchParams.keys())].filter((k) =>
    !(names as readonly string[]).includes(k) && k !== "last_event_id"
  );
  if (unknown.length > 0) {
    throw queryError(unknown.map((p) => ({ parameter: p, problem: "is not a parameter of /v1/stream" })));
  }
  const values = Object.fromEntries(names.map((n) => [n, url.searchParams.getAll(n)])) as Record<
    (typeof names)[number],
    string[]
  >;
  const n = Math.max(...names.map((k) => values[k].length));
  const problems: ErrorDetail[] = [];
  if (n === 0 || values.symbol.length === 0) {
    problems.push({ parameter: "symbol", problem: "is required: give exchange, symbol and timeframe per series" });
  }
  if (n > MAX_STREAM_SERIES) {
    problems.push({
      parameter: "symbol",
      problem: `is given ${n} times; a stream follows at most ${MAX_STREAM_SERIES} series`,
    });
  }
  for (const name of names) {
    const count = values[name].length;
    if (count > 1 && count !== n) {
      problems.push({
        parameter: name,
        problem: `is given ${count} times for ${n} series; give it once (for every series) or once per series`,
      });
    }
  }
  const lastEventIds = url.searchParams.getAll("last_event_id");
  if (lastEventIds.length > 1) problems.push({ parameter: "last_event_id", problem: "is given more than once" });
  if (problems.length > 0) throw queryError(problems);
  const keys: StreamKey[] = [];
  for (let i = 0; i < n; i++) {
    const raw: Record<string, string> = {};
    for (const name of names) {
      const list = values[name];
      if (list.length > 0) raw[name] = list.length === 1 ? list[0] : list[i];
    }
    const result = StreamSubscription.safeParse(raw);
    if (!result.success) {
      for (const issue of result.error.issues) {
        const name = String(issue.path[0] ?? "query");
        problems.push({
          parameter: n > 1 && values[name as (typeof names)[number]]?.length > 1 ? `${name}[${i}]` : name,
          problem: problemOf(issue, raw),
        });
      }
      continue;
    }
    keys.push({ ...result.data, price: result.data.price ?? "trade" });
  }
  if (problems.length > 0) throw queryError(problems);
  return { keys, lastEventId: lastEventIds[0] ?? null };
}

/** The event id for these last closed open times (one per followed series, null: none yet). */
export function encodeEventId(lastClosed: readonly (number | null)[]): string {
  return `c1:${lastClosed.map((t) => t === null ? "-" : t.toString(36)).join(",")}`;
}

/** The last closed open times an event id holds; throws BadRequestError when it does not fit `count` series. */
export function decodeEventId(id: string, count: number): (number | null)[] {
  const problem = (why: string) =>
    new BadRequestError(`Cannot resume the stream: Last-Event-ID ${why}; current value is "${id.slice(0, 80)}"`, [
      { parameter: "Last-Event-ID", problem: why },
    ]);
  if (!id.startsWith("c1:")) throw problem("is not an id this API sent");
  const parts = id.slice(3).split(",");
  if (parts.length !== count) {
    throw problem(
      `holds ${parts.length} series positions but the request follows ${count} series: reconnect with the same series`,
    );
  }
  return parts.map((p) => {
    if (p === "-") return null;
    const ms = /^[0-9a-z]{1,12}$/.test(p) ? parseInt(p, 36) : NaN;
    if (!Number.isSafeInteger(ms)) throw problem("is not an id this API sent");
    return ms;
  });
}

interface Follow {
  key: StreamKey;
  source: ResolvedSource;
  lastClosed: number | null;
  /** The forming bucket as read from stored candles (resampled series), for merging forming candles. */
  stored: CandleRow | null;
  /** The last forming event sent (its data), to skip repeats. */
  formingSent: string | null;
  busy: boolean;
  again: boolean;
}

const encoder = new TextEncoder();

/** Handles `GET /v1/stream` (see the module documentation). */
export async function getStream(sql: Sql, req: Request, url: URL, options: StreamOptions): Promise<Response> {
  const { keys, lastEventId } = parseStreamQuery(url);
  const resumeFrom = req.headers.get("last-event-id") ?? lastEventId;
  const positions = resumeFrom ? decodeEventId(resumeFrom, keys.length) : keys.map(() => null);
  const follows: Follow[] = [];
  for (const [i, key] of keys.entries()) {
    const source = await resolveSource(sql, key.exchange, key.symbol, key.timeframe, { price: key.price });
    follows.push({
      key,
      source,
      lastClosed: positions[i],
      stored: null,
      formingSent: null,
      busy: false,
      again: false,
    });
  }
  const now = options.now ?? Date.now;
  const log = getLogger("api");
  const maxBuffer = options.maxBufferBytes ?? 1024 * 1024;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let closed = false;
  let unsubscribe = () => {};
  let heartbeat: ReturnType<typeof setInterval> | undefined = undefined;
  let drained: (() => void) | null = null;
  const finish = () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    unsubscribe();
    drained?.();
  };
  const send = (text: string) => {
    if (closed) return;
    controller.enqueue(encoder.encode(text));
    if ((controller.desiredSize ?? 0) < -maxBuffer) {
      log.warn("Dropping a /v1/stream client that reads too slowly: over {bytes} bytes unread", { bytes: maxBuffer });
      options.onDrop?.();
      finish();
      controller.error(new Error("client too slow"));
    }
  };
  /** Waits until the client has read what is queued (between catch-up pages). */
  const readable = () =>
    closed || (controller.desiredSize ?? 1) > 0 ? Promise.resolve() : new Promise<void>((r) => drained = r);

  const nextOpen = (f: Follow, ms: number) => f.source.month ? nextMonth(ms) : ms + f.source.stepMs;
  const event = (
    f: Follow,
    row: { ms: number; time: string; open: number; high: number; low: number; close: number; volume: number | string },
    isClosed: boolean,
  ) => {
    const k = f.key;
    return `{"exchange":${JSON.stringify(k.exchange)},"symbol":${JSON.stringify(k.symbol)},"timeframe":${
      JSON.stringify(k.timeframe)
    },"price":"${k.price}","time":"${row.time}","open":${row.open},"high":${row.high},"low":${row.low},"close":${row.close},"volume":${
      decimalText(row.volume) ?? "null"
    },"closed":${isClosed}}`;
  };
  const emitClosed = (f: Follow, row: CandleRow) => {
    f.lastClosed = row.ms;
    f.formingSent = null;
    options.onEvent?.(true);
    send(`event: candle\nid: ${encodeEventId(follows.map((x) => x.lastClosed))}\ndata: ${event(f, row, true)}\n\n`);
  };
  const emitForming = (f: Follow, data: string) => {
    if (data === f.formingSent) return;
    f.formingSent = data;
    options.onEvent?.(false);
    send(`event: candle\ndata: ${data}\n\n`);
  };

  /** Sends what is new in the database for `f`: closed candles in order, then the forming one. */
  const catchUp = async (f: Follow) => {
    const s = f.source;
    const base = { seriesId: s.seriesId, stepMs: s.stepMs, month: s.month, sourceStepMs: s.sourceStepMs };
    if (f.lastClosed === null) {
      // A new stream starts with the last closed candle.
      const spec: PageSpec = { ...base, start: null, end: null, limit: 1, order: "desc", now: now() };
      const [row] = await pageQuery(sql, spec, await planPage(sql, spec));
      if (row) emitClosed(f, row);
    }
    for (;;) {
      if (closed) return;
      const t = now();
      const start = f.lastClosed === null ? bucketFloor(t, s) : nextOpen(f, f.lastClosed);
      const spec: PageSpec = { ...base, start, end: null, limit: PAGE, order: "asc", now: t, complete: false };
      const [rows, [stats]] = await Promise.all([
        pageQuery(sql, spec, await planPage(sql, spec)),
        sql<{ end_ms: number | null }[]>`
          select (extract(epoch from max(ts)) * 1000)::float8 + ${s.sourceStepMs} as end_ms
          from candles where series_id = ${s.seriesId}`,
      ]);
      const storedEnd = stats?.end_ms ?? -Infinity;
      f.stored = null;
      let allClosed = true;
      for (const row of rows) {
        const end = nextOpen(f, row.ms);
        if (end <= t && end <= storedEnd) {
          emitClosed(f, row);
          continue;
        }
        allClosed = false;
        f.stored = row;
        emitForming(f, event(f, row, false));
        break;
      }
      if (!allClosed || rows.length < PAGE) return;
      await readable();
    }
  };
  const sync = async (f: Follow) => {
    if (f.busy) {
      f.again = true;
      return;
    }
    f.busy = true;
    try {
      do {
        f.again = false;
        await catchUp(f);
      } while (f.again && !closed);
    } catch (error) {
      log.warn("A /v1/stream update failed: {reason}", {
        reason: error instanceof Error ? error.message : String(error),
      });
    } finally {
      f.busy = false;
    }
  };
  /** A forming candle of a stored series: as is, or merged into its resampled bucket. */
  const forming = (candle: FormingCandle) => {
    for (const f of follows) {
      if (f.source.seriesId !== candle.s) continue;
      const next = f.lastClosed === null ? -Infinity : nextOpen(f, f.lastClosed);
      if (candle.t < next) continue;
      const bucket = bucketFloor(candle.t, f.source);
      const time = new Date(bucket).toISOString();
      const stored = f.stored && f.stored.ms === bucket ? f.stored : null;
      const row = stored
        ? {
          ms: bucket,
          time,
          open: stored.open,
          high: Math.max(stored.high, candle.h),
          low: Math.min(stored.low, candle.l),
          close: candle.c,
          volume: addDecimalText(stored.volume, candle.v) ?? candle.v,
        }
        : { ms: bucket, time, open: candle.o, high: candle.h, low: candle.l, close: candle.c, volume: candle.v };
      emitForming(f, event(f, row, false));
    }
  };

  const body = new ReadableStream<Uint8Array>({
    start: (c) => {
      controller = c;
    },
    pull: () => {
      const d = drained;
      drained = null;
      d?.();
    },
    cancel: () => finish(),
  }, new ByteLengthQueuingStrategy({ highWaterMark: 64 * 1024 }));
  unsubscribe = await options.hub.subscribe(follows.map((f) => f.source.seriesId), {
    written: (id) => {
      for (const f of follows) if (f.source.seriesId === id) sync(f);
    },
    forming,
    end: () => {
      if (closed) return;
      finish();
      controller.close();
    },
  });
  send("retry: 3000\n\n");
  heartbeat = setInterval(() => send(": heartbeat\n\n"), options.heartbeatMs ?? 15_000);
  for (const f of follows) sync(f);
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
    },
  });
}
