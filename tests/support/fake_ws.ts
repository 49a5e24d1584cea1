/**
 * The fake exchange's Binance spot and USDⓈ-M kline WebSocket streams, served on the fake's own
 * port (fake_exchange.ts upgrades `.../ws/...` and `.../stream` requests here), for the real
 * ccxt.pro (`ccxt.pro.binance`). A connection whose path starts with {@linkcode FUTURES_WS_PREFIX}
 * carries USDⓈ-M contracts (`btcusdt`, `btcusdt_261226`: the trade candles of
 * fake_derivatives_data.ts, so a closed candle equals the `/fapi/v1/klines` row); any other
 * carries spot markets. COIN-M (`dstream`) is not served.
 *
 * Endpoints, under any path prefix: raw `<prefix>/ws/<stream>` (`/ws/a/b` for several; an
 * unknown name such as ccxt's `/ws/0` opens a connection without streams), combined
 * `<prefix>/stream?streams=a/b` (events wrapped as `{stream, data}`), and the JSON messages
 * `SUBSCRIBE` / `UNSUBSCRIBE` / `LIST_SUBSCRIPTIONS` answered `{result, id}` (bad requests:
 * `{error: {code, msg}, id}`). Streams are `<symbol>@kline_<interval>`; a well-formed name of an
 * unknown symbol is accepted and stays quiet, as on Binance. Payloads: fake_ws_klines.ts.
 * Limits (FakeWsBehaviour): streams per connection (error reply / HTTP 400), incoming messages per
 * second (close 1008), connection attempts per IP per window (HTTP 429), lifetime (close 1001).
 *
 * ccxt.pro under Deno (ccxt 4.5.84, checked in js/src/base/ws/*.js and js/src/pro/binance.js):
 * - `isNode` is false under Deno, so WsClient uses the global (Deno) `WebSocket`, not the `ws`
 *   package (which is still imported, reading WS_NO_BUFFER_UTIL / WS_NO_UTF_8_VALIDATE, already
 *   in the permission sets). `ws://127.0.0.1:<port>` needs only `--allow-net`: -P=dev suffices.
 * - Without `connection.ping()` ccxt's keepAlive never fires a timeout (it fakes a pong each
 *   interval, as in browsers): a silent socket is never detected by ccxt. Deno's WebSocket
 *   answers server pings by itself.
 * - Spot klines go to `urls.api.ws.spot + "/" + n` (`n` = 0..49, round-robin per subscription
 *   kind; all `watchOHLCV*` share one connection) with a `SUBSCRIBE` message per call carrying
 *   new streams. ccxt maps an event's market id to a spot market only when the connection URL
 *   contains `/stream` (binance.isSpotUrl, true for stream.binance.com): the URLs of
 *   `ccxtConfig()` therefore use the prefix `/stream.binance` (else BTCUSDT resolves to the
 *   perpetual BTC/USDT:USDT when contracts are loaded and spot watchers never resolve).
 *   Futures read `urls.api.ws.future` (`.../ws` rewritten to `.../market/ws` for klines) and
 *   `ws.delivery`; `ws['ws-api']` is the request/response API. `ccxtConfig()` sets
 *   `ws.future` to `<FUTURES_WS_PREFIX>/ws` (ccxt subscribes on `<prefix>/market/ws/<n>`): the
 *   prefix `/fstream.binance` holds no `/stream`, so ccxt maps its events to contracts.
 * - `options.ws.cost` is 5 against the REST rateLimit 50 ms: with enableRateLimit ccxt sends at
 *   most ~4 messages/s per connection, under Binance's 5; without it a burst of subscribe calls
 *   exceeds it and the fake closes the socket.
 *
 * Clock: the fake's own (`now()` of fake_exchange.ts, Date.now() + behaviour.nowOffsetMs) is
 * shared with REST. `clock: "wall"` (default) pushes a forming update every `updateMs` (Binance:
 * 2000) and the `x: true` event `closeDelayMs` after each close on real time; `clock: "manual"`
 * sends nothing by itself: `advance(ms)` moves the shared clock and emits, for every stream,
 * each candle closed meanwhile (`x: true`) then the forming one — tests step through minutes
 * at once with REST agreeing. (`1s` klines are not served: the candles are minute-based.)
 *
 * @module
 */
import { floorTo } from "../../src/timeframe.ts";
import type { FakeHole, FakeMarket } from "./fake_candles.ts";
import { klineEvent, type KlineStream, parseKlineStream, streamCandle } from "./fake_ws_klines.ts";

/** Path prefix of the USDⓈ-M (linear contract) streams; every other path serves spot. */
export const FUTURES_WS_PREFIX = "/fstream.binance";

/** Switchable behaviour of the streams; mutate it from tests. */
export interface FakeWsBehaviour {
  /** `wall`: timers push updates on the fake's clock; `manual`: only `advance`/`pump` emit. */
  clock: "wall" | "manual";
  /** Forming-candle update period in `wall` mode (ms). */
  updateMs: number;
  /** Delay of the `x: true` event after the close in `wall` mode (ms). */
  closeDelayMs: number;
  /**
   * Server ping period in seconds (Binance: 180): Deno's `idleTimeout` (twice this) pings after
   * this long without a frame from the client and closes (1001) without a pong within as long
   * again. 0: no pings.
   */
  pingIntervalSec: number;
  /** Streams per connection (Binance: 1024). */
  maxStreams: number;
  /** Incoming messages per second per connection before the socket is closed (Binance: 5). */
  maxMessagesPerSec: number;
  /** Connection attempts per IP per `connectionWindowMs` (Binance: 300 per 5 minutes). */
  maxConnections: number;
  connectionWindowMs: number;
  /** Every connection silent: events are dropped, sockets stay open. */
  silent: boolean;
  /** A connection is closed (1001) this long after it opened, on the real clock (Binance: 24 h). */
  maxLifetimeMs: number;
}

/** One open connection, as tests see it. */
export interface FakeWsConnection {
  id: number;
  path: string;
  combined: boolean;
  /** Serves USDⓈ-M contracts (path under {@linkcode FUTURES_WS_PREFIX}), not spot. */
  futures: boolean;
  streams: string[];
  silent: boolean;
  /** Messages received from the client (JSON text). */
  received: unknown[];
  /** Payloads sent (events and replies), oldest first. */
  sent: unknown[];
}

/** What the streams saw. */
export interface FakeWsStats {
  connections: number;
  rejectedConnections: number;
  messagesIn: number;
  eventsOut: number;
  /** Close codes and reasons of the sockets the fake closed (disconnect, rate limit). */
  closes: { id: number; code: number; reason: string }[];
  /** Every connection that ended, with the close event's code and reason (e.g. 1001 on a missed pong). */
  ended: { id: number; code: number; reason: string }[];
}

/** The fake's kline streams. */
export interface FakeWs {
  behaviour: FakeWsBehaviour;
  stats: FakeWsStats;
  /** Upgrades a stream request (null: not a stream path). */
  handle(request: Request, remoteIp: string): Response | null;
  /** Open connections, oldest first. */
  connections(): FakeWsConnection[];
  /** Closes one connection (or all) as Binance does for maintenance (default code 1001). */
  disconnect(id?: number, code?: number, reason?: string): void;
  /** Stops (or resumes) sending on one connection (or all), keeping the sockets open. */
  silence(on: boolean, id?: number): void;
  /** Moves the shared clock by `ms` and emits what happened meanwhile (both clock modes). */
  advance(ms: number): void;
  /** Emits a forming update (and any close) for every stream now. */
  pump(): void;
  /** Sends the last event of `stream` again on every connection carrying it. */
  sendDuplicate(stream: string): void;
  /** Sends the event of `stream` sent `back` events before the last one (default 1) again. */
  sendOutOfOrder(stream: string, back?: number): void;
  close(): void;
}

/** Options of {@linkcode createFakeWs}. */
export interface FakeWsOptions {
  markets: readonly FakeMarket[];
  /** The fake exchange's clock and a way to move it. */
  clock: { now(): number; shift(ms: number): void };
  /** Holes of the REST side (read at each emission). */
  holes: () => readonly FakeHole[];
  behaviour?: Partial<FakeWsBehaviour>;
  /** USDⓈ-M contracts served under {@linkcode FUTURES_WS_PREFIX}: by exchange id, with their holes. */
  futures?: { byId: ReadonlyMap<string, FakeMarket>; holes: () => readonly FakeHole[] };
}

interface StreamState {
  stream: KlineStream;
  market: FakeMarket | undefined;
  /** Holes of the REST klines the stream's candles agree with (spot or USDⓈ-M). */
  holes: () => readonly FakeHole[];
  /** Open time of the candle last emitted. */
  lastTs: number | null;
  lastSentAt: number;
  history: string[];
}

interface Conn {
  id: number;
  socket: WebSocket;
  openedAt: number;
  path: string;
  combined: boolean;
  /** A USDⓈ-M connection (its path starts with {@linkcode FUTURES_WS_PREFIX}). */
  futures: boolean;
  streams: Map<string, StreamState>;
  silent: boolean;
  inbound: number[];
  received: unknown[];
  sent: unknown[];
}

const HISTORY = 8;

/** Binance's limits and update speeds, a wall clock, pings every 180 s. */
export function defaultWsBehaviour(): FakeWsBehaviour {
  return {
    clock: "wall",
    updateMs: 2000,
    closeDelayMs: 50,
    pingIntervalSec: 180,
    maxStreams: 1024,
    maxMessagesPerSec: 5,
    maxConnections: 300,
    connectionWindowMs: 300_000,
    silent: false,
    maxLifetimeMs: 86_400_000,
  };
}

/** Creates the streams side of a fake exchange (fake_exchange.ts wires it to its server). */
export function createFakeWs(options: FakeWsOptions): FakeWs {
  const behaviour: FakeWsBehaviour = { ...defaultWsBehaviour(), ...options.behaviour };
  const stats: FakeWsStats = {
    connections: 0,
    rejectedConnections: 0,
    messagesIn: 0,
    eventsOut: 0,
    closes: [],
    ended: [],
  };
  const byId = new Map(options.markets.map((m) => [m.symbol.replace("/", ""), m]));
  const conns = new Map<number, Conn>();
  const attempts = new Map<string, number[]>();
  let nextId = 1;
  let timer: ReturnType<typeof setInterval> | undefined;

  const send = (conn: Conn, payload: unknown) => {
    if (conn.socket.readyState !== WebSocket.OPEN) return;
    conn.sent.push(payload);
    conn.socket.send(typeof payload === "string" ? payload : JSON.stringify(payload));
  };

  const sendEvent = (conn: Conn, state: StreamState, event: Record<string, unknown>) => {
    const text = JSON.stringify(conn.combined ? { stream: state.stream.name, data: event } : event);
    state.history.push(text);
    if (state.history.length > HISTORY) state.history.shift();
    if (conn.silent || behaviour.silent) return;
    stats.eventsOut++;
    send(conn, text);
  };

  /** Emits the closes since the last emission of `state`, then the forming candle at `t`. */
  const emit = (conn: Conn, state: StreamState, t: number) => {
    const market = state.market;
    if (!market) return;
    const step = state.stream.intervalMs;
    const current = floorTo(t, step);
    if (state.lastTs !== null) {
      for (let ts = state.lastTs; ts < current; ts += step) {
        const c = streamCandle(market, step, ts, ts + step, state.holes());
        if (c) sendEvent(conn, state, klineEvent(state.stream, c, true, t));
      }
    }
    const forming = streamCandle(market, step, current, t, state.holes());
    if (forming) sendEvent(conn, state, klineEvent(state.stream, forming, false, t));
    state.lastTs = current;
    state.lastSentAt = t;
  };

  const pump = () => {
    const t = options.clock.now();
    for (const conn of conns.values()) for (const state of conn.streams.values()) emit(conn, state, t);
  };

  /** Wall clock: a forming update every `updateMs`, a close `closeDelayMs` after it happens. */
  const tick = () => {
    for (const conn of [...conns.values()]) {
      if (Date.now() - conn.openedAt >= behaviour.maxLifetimeMs) closeConn(conn, 1001, "Connection lifetime reached");
    }
    if (behaviour.clock !== "wall") return;
    const t = options.clock.now();
    for (const conn of conns.values()) {
      for (const state of conn.streams.values()) {
        const closed = state.lastTs !== null && t - behaviour.closeDelayMs >= state.lastTs + state.stream.intervalMs;
        if (closed || t - state.lastSentAt >= behaviour.updateMs) emit(conn, state, t);
      }
    }
  };

  const closeConn = (conn: Conn, code: number, reason: string) => {
    stats.closes.push({ id: conn.id, code, reason });
    conns.delete(conn.id);
    try {
      conn.socket.close(code, reason);
    } catch {
      // already closing
    }
    if (conns.size === 0 && timer !== undefined) timer = void clearInterval(timer);
  };

  const addStreams = (conn: Conn, names: string[]): string | null => {
    const parsed = names.map((n) => [n, parseKlineStream(n)] as const);
    const bad = parsed.find(([, s]) => s === null);
    if (bad) return `Invalid request: invalid stream name ${JSON.stringify(bad[0])}`;
    const fresh = parsed.filter(([n]) => !conn.streams.has(n));
    if (conn.streams.size + fresh.length > behaviour.maxStreams) {
      return `Invalid request: a connection carries at most ${behaviour.maxStreams} streams (current ${conn.streams.size}, asked ${fresh.length} more)`;
    }
    const futures = options.futures;
    for (const [name, stream] of fresh) {
      conn.streams.set(name, {
        stream: stream!,
        market: conn.futures ? futures?.byId.get(stream!.marketId) : byId.get(stream!.marketId),
        holes: conn.futures && futures ? futures.holes : options.holes,
        lastTs: null,
        lastSentAt: 0,
        history: [],
      });
    }
    return null;
  };

  const onMessage = (conn: Conn, data: unknown) => {
    stats.messagesIn++;
    const t = Date.now();
    conn.inbound = conn.inbound.filter((at) => at > t - 1000);
    conn.inbound.push(t);
    if (conn.inbound.length > behaviour.maxMessagesPerSec) {
      closeConn(conn, 1008, `Too many messages: more than ${behaviour.maxMessagesPerSec} per second`);
      return;
    }
    let message: { method?: unknown; params?: unknown; id?: unknown };
    try {
      message = JSON.parse(String(data));
      conn.received.push(message);
    } catch {
      send(conn, { error: { code: 3, msg: "Invalid JSON: expected an object" }, id: null });
      return;
    }
    const id = message.id ?? null;
    const params = Array.isArray(message.params) ? message.params.map(String) : [];
    switch (message.method) {
      case "SUBSCRIBE": {
        const error = addStreams(conn, params);
        send(conn, error ? { error: { code: 2, msg: error }, id } : { result: null, id });
        return;
      }
      case "UNSUBSCRIBE":
        for (const name of params) conn.streams.delete(name);
        send(conn, { result: null, id });
        return;
      case "LIST_SUBSCRIPTIONS":
        send(conn, { result: [...conn.streams.keys()], id });
        return;
    }
    send(conn, { error: { code: 2, msg: `Invalid request: unknown method ${JSON.stringify(message.method)}` }, id });
  };

  const handle = (request: Request, remoteIp: string): Response | null => {
    const url = new URL(request.url);
    const raw = /^(?:\/[^/]+)*?\/ws(?:\/(.*))?$/.exec(url.pathname);
    const combined = /^(?:\/[^/]+)*?\/stream$/.test(url.pathname);
    if (!raw && !combined) return null;
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("Cannot serve a stream: current request is not a WebSocket upgrade", { status: 400 });
    }
    const t = Date.now();
    const recent = (attempts.get(remoteIp) ?? []).filter((at) => at > t - behaviour.connectionWindowMs);
    recent.push(t);
    attempts.set(remoteIp, recent);
    if (recent.length > behaviour.maxConnections) {
      stats.rejectedConnections++;
      return new Response(
        JSON.stringify({ code: -1003, msg: `Too many connections: more than ${behaviour.maxConnections} per window` }),
        { status: 429, headers: { "content-type": "application/json", "retry-after": "60" } },
      );
    }
    const names = combined
      ? (url.searchParams.get("streams") ?? "").split("/").filter((s) => s !== "")
      : (raw![1] ?? "").split("/").filter((s) => parseKlineStream(s) !== null);
    if (names.length > behaviour.maxStreams) {
      stats.rejectedConnections++;
      return new Response(
        `Cannot open a stream: current value is ${names.length} streams, more than ${behaviour.maxStreams}`,
        {
          status: 400,
        },
      );
    }
    const { socket, response } = Deno.upgradeWebSocket(request, { idleTimeout: behaviour.pingIntervalSec * 2 });
    const conn: Conn = {
      id: nextId++,
      socket,
      openedAt: Date.now(),
      path: url.pathname + url.search,
      combined,
      futures: url.pathname.startsWith(`${FUTURES_WS_PREFIX}/`),
      streams: new Map(),
      silent: false,
      inbound: [],
      received: [],
      sent: [],
    };
    const error = addStreams(conn, names);
    if (error) {
      stats.rejectedConnections++;
      return new Response(error, { status: 400 });
    }
    stats.connections++;
    socket.onopen = () => {
      conns.set(conn.id, conn);
      timer ??= setInterval(tick, 50);
    };
    socket.onmessage = (e) => onMessage(conn, e.data);
    socket.onclose = (e) => {
      // Deno dispatches a second close event (1005) after its own idle-timeout close: keep the first.
      if (!stats.ended.some((x) => x.id === conn.id)) stats.ended.push({ id: conn.id, code: e.code, reason: e.reason });
      conns.delete(conn.id);
      if (conns.size === 0 && timer !== undefined) timer = void clearInterval(timer);
    };
    socket.onerror = () => {};
    return response;
  };

  const resend = (stream: string, back: number) => {
    for (const conn of conns.values()) {
      const state = conn.streams.get(stream);
      const text = state?.history[state.history.length - 1 - back];
      if (text !== undefined) {
        stats.eventsOut++;
        send(conn, text);
      }
    }
  };

  return {
    behaviour,
    stats,
    handle,
    connections: () =>
      [...conns.values()].map((c) => ({
        id: c.id,
        path: c.path,
        combined: c.combined,
        futures: c.futures,
        streams: [...c.streams.keys()],
        silent: c.silent,
        received: c.received,
        sent: c.sent,
      })),
    disconnect(id, code = 1001, reason = "Service restarting") {
      for (const conn of [...conns.values()]) if (id === undefined || conn.id === id) closeConn(conn, code, reason);
    },
    silence(on, id) {
      for (const conn of conns.values()) if (id === undefined || conn.id === id) conn.silent = on;
    },
    advance(ms) {
      options.clock.shift(ms);
      pump();
    },
    pump,
    sendDuplicate: (stream) => resend(stream, 0),
    sendOutOfOrder: (stream, back = 1) => resend(stream, back),
    close() {
      for (const conn of [...conns.values()]) closeConn(conn, 1001, "Fake exchange closing");
      if (timer !== undefined) timer = void clearInterval(timer);
    },
  };
}
