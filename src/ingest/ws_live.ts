/**
 * Live candles over WebSocket (`LIVE_MODE=ws`, or `auto` where ccxt.pro can watch candles):
 * the held, backfilled trade series of spot markets and linear contracts (perpetuals, dated
 * futures) of each exchange are subscribed in batches ({@linkcode KlineStreams}, spot and
 * contracts on connections of their own); each closed candle is validated and written at once, under the
 * series' lease, the same row REST would give; forming candles are published on the forming
 * channel for `GET /v1/stream`. The REST live tick stays the safety net: a series whose stream
 * is down or silent is updated over REST as before, a closed candle that arrives after a gap
 * has the gap fetched over REST, and every `LIVE_REST_CHECK` one REST request covering the
 * interval confirms (and if needed corrects) what the socket wrote.
 *
 * @module
 */
import type { Candle } from "../candle.ts";
import type { Histogram } from "../metrics.ts";
import { canWatchCandles, flagsCloses, KlineStreams, type KlineSubscription } from "../exchange/ws_klines.ts";
import { parseUnifiedSymbol } from "../market_type.ts";
import { timeframeMs } from "../timeframe.ts";
import { errorMessage, type Jobs } from "./jobs.ts";
import { FORMING_CHANNEL, writeCandles } from "./store.ts";
import { describeSeries, LeaseLostError, type SeriesTarget } from "./walk.ts";

/** What the engine asks of the exchange client to open streams. */
interface StreamableSource {
  exchange: { markets: unknown; currencies: unknown };
}

/** Forming candles are published at most this often per series. */
const FORMING_EVERY_MS = 1000;
/** A REST check is due this much before `LIVE_REST_CHECK` has fully passed (at most half of it). */
const CHECK_SLACK_MS = 30_000;

interface Watched {
  series: SeriesTarget;
  /** Open time of the newest candle stored for the series (written by the socket or REST). */
  lastStored: number | null;
  lastFormingAt: number;
  /** When REST last confirmed the series. */
  checkedAt: number;
  /** The series' writes, one after the other (a gap is judged in order). */
  writing: Promise<void>;
}

interface ExchangeStreams {
  key: string;
  streams: KlineStreams;
  /** Up state per batch. */
  up: boolean[];
  /** Last message time per batch. */
  heardAt: number[];
  bySeries: Map<string, Watched>;
  /** The batch of each series (symbol and timeframe), set once the streams start. */
  batchOf: Map<string, number>;
}

/** The WebSocket side of one engine's live updates. */
export class WsLive {
  readonly #jobs: Jobs;
  readonly #exchanges = new Map<string, ExchangeStreams>();
  readonly #warned = new Set<string>();
  readonly #metrics;
  /** Series with a gap to fetch over REST (a close arrived after a missed one): where the gap starts. */
  readonly #gaps = new Map<number, number>();
  #closed = false;

  /** Streams for `jobs` (its configuration, database, exchanges and lease identity). */
  constructor(jobs: Jobs) {
    this.#jobs = jobs;
    const r = jobs.registry;
    this.#metrics = r
      ? {
        connections: r.gauge("candlekeep_ws_connections", "Open WebSocket connections, by exchange"),
        reconnects: r.counter("candlekeep_ws_reconnects_total", "WebSocket connections lost and reopened, by exchange"),
        messages: r.counter(
          "candlekeep_ws_candle_updates_total",
          "Candle updates received over WebSocket, by exchange",
        ),
        latency: r.histogram(
          "candlekeep_ws_close_to_commit_seconds",
          "Time from a candle's close to the commit of its row written from the WebSocket",
          [0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30],
        ) as Histogram,
      }
      : null;
  }

  /** Whether series of `exchange` may be fed by WebSocket under `LIVE_MODE`. */
  eligibleExchange(exchange: string): boolean {
    const mode = this.#jobs.config.live?.mode ?? "rest";
    if (mode === "rest" || this.#jobs.config.deploy) return false;
    const source = this.#jobs.sources.get(exchange) as unknown as StreamableSource | undefined;
    if (!source?.exchange) return false;
    // `auto` streams only where the exchange flags closed candles: elsewhere a close is taken
    // from the next candle's first update, and its values may not be final (`ws` accepts that;
    // the REST check corrects it).
    if (canWatchCandles(exchange) && (mode === "ws" || flagsCloses(exchange))) return true;
    if (mode === "ws" && !canWatchCandles(exchange) && !this.#warned.has(exchange)) {
      this.#warned.add(exchange);
      this.#jobs.log.warn("LIVE_MODE=ws: ccxt.pro cannot watch candles of {exchange}; its series stay on REST", {
        exchange,
      });
    }
    return false;
  }

  /**
   * Whether `series` is one a stream may feed: a trade series of a spot market or of a linear
   * contract (perpetual or dated future) of an eligible exchange. Mark, index and premium
   * klines, options and inverse contracts stay on REST (ccxt.pro reads an inverse kline's
   * volume in contracts where REST gives it in the base currency).
   */
  eligible(series: SeriesTarget): boolean {
    if ((series.price ?? "trade") !== "trade") return false;
    const parsed = parseUnifiedSymbol(series.symbol);
    const streamable = !parsed || parsed.type === "spot" ||
      ((parsed.type === "swap" || parsed.type === "future") && parsed.margin === "linear");
    return streamable && this.eligibleExchange(series.exchange);
  }

  /** Subscribes exactly the eligible ones among `series` (held and backfilled), per exchange. */
  async sync(series: readonly SeriesTarget[]): Promise<void> {
    if (this.#closed) return;
    const byExchange = new Map<string, SeriesTarget[]>();
    for (const s of series) {
      if (!this.eligible(s)) continue;
      byExchange.set(s.exchange, [...(byExchange.get(s.exchange) ?? []), s]);
    }
    for (const [exchange, current] of this.#exchanges) {
      if (!byExchange.has(exchange)) {
        this.#exchanges.delete(exchange);
        await current.streams.close();
        this.#setSource(current, null, "rest");
      }
    }
    for (const [exchange, list] of byExchange) {
      const sorted = [...list].sort((a, b) => a.id - b.id);
      const key = sorted.map((s) => s.id).join(",");
      const current = this.#exchanges.get(exchange);
      if (current?.key === key) continue;
      if (current) {
        await current.streams.close();
        this.#setSource(current, null, "rest");
      }
      await this.#open(exchange, sorted, key, current);
    }
  }

  async #open(exchange: string, list: SeriesTarget[], key: string, previous?: ExchangeStreams): Promise<void> {
    const jobs = this.#jobs;
    const source = jobs.sources.get(exchange) as unknown as StreamableSource;
    const bySeries = new Map<string, Watched>();
    const stored = await this.#lastStored(list.map((s) => s.id));
    for (const s of list) {
      const old = previous?.bySeries.get(`${s.symbol}\u0000${s.timeframe}`);
      const last = old?.lastStored ?? stored.get(s.id) ?? null;
      bySeries.set(`${s.symbol}\u0000${s.timeframe}`, {
        series: s,
        lastStored: last,
        lastFormingAt: 0,
        checkedAt: old?.checkedAt ?? jobs.now(),
        writing: Promise.resolve(),
      });
    }
    const subs: KlineSubscription[] = list.map((s) => ({ symbol: s.symbol, timeframe: s.timeframe }));
    const state: ExchangeStreams = {
      key,
      streams: undefined as unknown as KlineStreams,
      up: [],
      heardAt: [],
      bySeries,
      batchOf: new Map(),
    };
    const silence = jobs.config.live?.silenceMs ?? undefined;
    state.streams = new KlineStreams({
      id: exchange,
      ccxtConfig: jobs.config.ccxtConfig?.[exchange],
      markets: { markets: source.exchange.markets, currencies: source.exchange.currencies },
      silenceMs: silence ?? undefined,
      onEvent: (e) => {
        const w = bySeries.get(`${e.symbol}\u0000${e.timeframe}`);
        if (!w) return;
        const batch = this.#batchOf(state, e.symbol, e.timeframe);
        if (batch >= 0) state.heardAt[batch] = jobs.now();
        this.#metrics?.messages.inc({ exchange });
        if (e.closed) w.writing = jobs.track(w.writing.then(() => this.#closedCandle(w, e.candle)));
        else this.#forming(w, e.candle);
      },
      onState: (s) => {
        const wasUp = state.up[s.batch] ?? false;
        state.up[s.batch] = s.up;
        state.heardAt[s.batch] = jobs.now();
        this.#metrics?.connections.set({ exchange }, state.up.filter(Boolean).length);
        const count = state.streams.batches[s.batch]?.length ?? 0;
        if (s.up !== wasUp) this.#setSource(state, s.batch, s.up ? "ws" : "rest");
        if (s.up && !wasUp) {
          jobs.log.info("WebSocket of {exchange} is live: {count} series", { exchange, count });
        } else if (!s.up && wasUp) {
          this.#metrics?.reconnects.inc({ exchange });
          jobs.log.warn("WebSocket of {exchange} ({count} series) dropped: {reason}; reconnecting, REST fills in", {
            exchange,
            count,
            reason: s.reason ?? "unknown",
          });
        } else if (!s.up) {
          jobs.log.debug("WebSocket of {exchange} cannot connect: {reason}", {
            exchange,
            reason: s.reason ?? "unknown",
          });
        }
      },
      onRejected: (symbol, timeframe, reason) =>
        jobs.log.warn("{exchange} {symbol} {timeframe}: a streamed candle was rejected: {reason}", {
          exchange,
          symbol,
          timeframe,
          reason,
        }),
    });
    this.#exchanges.set(exchange, state);
    state.streams.start(subs);
    state.streams.batches.forEach((b, i) => {
      for (const sub of b) state.batchOf.set(`${sub.symbol}\u0000${sub.timeframe}`, i);
    });
  }

  /** Records where the live candles of a batch's series come from (`series.live_source`, for `status`). */
  #setSource(state: ExchangeStreams, batch: number | null, source: "ws" | "rest"): void {
    const subs = batch === null ? state.streams.batches.flat() : state.streams.batches[batch] ?? [];
    const ids = subs.map((s) => state.bySeries.get(`${s.symbol}\u0000${s.timeframe}`)?.series.id)
      .filter((id): id is number => id !== undefined);
    if (ids.length === 0) return;
    this.#jobs.track(
      this.#jobs.db.sql`update series set live_source = ${source} where id = any(${ids}::int[])
        and live_source is distinct from ${source}`.then(() => {}),
    ).catch(() => {});
  }

  #batchOf(state: ExchangeStreams, symbol: string, timeframe: string): number {
    return state.batchOf.get(`${symbol}\u0000${timeframe}`) ?? -1;
  }

  /** Open time of the newest stored candle of each of `ids` (one index probe each, one query). */
  async #lastStored(ids: readonly number[]): Promise<Map<number, number>> {
    const rows = await this.#jobs.db.retry("last stored candles", (sql) =>
      sql<{ id: number; ms: number }[]>`
        select s.id, (extract(epoch from l.ts) * 1000)::float8 as ms
        from unnest(${[...ids]}::int[]) as s(id)
        cross join lateral (select ts from candles c where c.series_id = s.id order by ts desc limit 1) l`);
    return new Map(rows.map((r) => [r.id, r.ms]));
  }

  #forming(w: Watched, candle: Candle): void {
    const now = this.#jobs.now();
    if (now - w.lastFormingAt < FORMING_EVERY_MS) return;
    w.lastFormingAt = now;
    const payload = JSON.stringify({
      s: w.series.id,
      t: candle.ts,
      o: candle.open,
      h: candle.high,
      l: candle.low,
      c: candle.close,
      v: candle.volume,
    });
    this.#jobs.db.sql`select pg_notify(${FORMING_CHANNEL}, ${payload})`.catch(() => {});
  }

  /** Writes one closed candle under the series' lease; a gap before it is left to REST. */
  async #closedCandle(w: Watched, candle: Candle): Promise<void> {
    const jobs = this.#jobs;
    const series = w.series;
    const tf = timeframeMs(series.timeframe);
    if (!jobs.owned.has(series.id)) return;
    try {
      const written = await jobs.db.retry("write streamed candle", (sql) =>
        sql.begin(async (tx) => {
          const [held] = await tx<{ ok: boolean }[]>`
            select exists (select 1 from series where id = ${series.id} and lease_owner = ${jobs.owner}) as ok`;
          if (!held.ok) throw new LeaseLostError(series);
          return await writeCandles(tx, series.id, [candle]);
        }));
      const committedAt = jobs.now();
      this.#metrics?.latency.observe({ exchange: series.exchange }, Math.max(0, committedAt - (candle.ts + tf)) / 1000);
      if (written.updated > 0) {
        jobs.log.info("{series}: the stream changed the stored candle at {time}", {
          series: describeSeries(series),
          time: new Date(candle.ts).toISOString(),
        });
      }
      if (w.lastStored !== null && candle.ts > w.lastStored + tf && !this.#gaps.has(series.id)) {
        this.#gaps.set(series.id, w.lastStored + tf);
      }
      w.lastStored = Math.max(w.lastStored ?? -Infinity, candle.ts);
    } catch (error) {
      if (error instanceof LeaseLostError) return;
      jobs.log.error("Cannot write a streamed candle of {series}: {reason}", {
        series: describeSeries(series),
        reason: errorMessage(error),
      });
    }
  }

  /**
   * How the REST live tick treats `series` now: `rest` (not streamed, or its stream is down or
   * silent: update over REST), `check` (streamed, and its REST check is due or a gap was seen:
   * one request covering the interval) or `ws` (streamed and healthy: nothing to do).
   */
  mode(series: SeriesTarget): "rest" | "check" | "ws" {
    const state = this.#exchanges.get(series.exchange);
    const w = state?.bySeries.get(`${series.symbol}\u0000${series.timeframe}`);
    if (!state || !w || w.series.id !== series.id) return "rest";
    const batch = this.#batchOf(state, series.symbol, series.timeframe);
    const silenceMs = this.#jobs.config.live?.silenceMs ?? Math.max(30_000, 2 * timeframeMs(series.timeframe));
    const now = this.#jobs.now();
    if (!state.up[batch] || now - (state.heardAt[batch] ?? 0) > silenceMs) return "rest";
    const every = this.#jobs.config.live?.restCheckMs ?? 15 * 60_000;
    // Checks run in live ticks and count from the tick's own time: the tick one interval later
    // may start a few ms earlier in its minute and must not slip the check to the tick after.
    const slack = Math.min(every / 2, CHECK_SLACK_MS);
    if (this.#gaps.has(series.id) || now - w.checkedAt >= every - slack) return "check";
    return "ws";
  }

  /**
   * Starts the REST check of `series`: returns where its window starts (the previous check,
   * or an earlier gap) and counts the check as done from `now` on.
   */
  beginCheck(series: SeriesTarget): number {
    const w = this.#exchanges.get(series.exchange)?.bySeries.get(`${series.symbol}\u0000${series.timeframe}`);
    const now = this.#jobs.now();
    const from = Math.min(w?.checkedAt ?? now, this.#gaps.get(series.id) ?? Infinity) -
      timeframeMs(series.timeframe);
    if (w) w.checkedAt = now;
    this.#gaps.delete(series.id);
    return from;
  }

  /** Closes every stream. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#exchanges.values()].map((s) => s.streams.close()));
    for (const state of this.#exchanges.values()) this.#setSource(state, null, "rest");
    this.#exchanges.clear();
  }
}
