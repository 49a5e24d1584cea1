// Live candles pushed by the server (GET /v1/stream, Server-Sent Events): the chart follows the
// forming candle and each closed one as soon as it is stored, instead of waiting for the next
// poll. EventSource reconnects by itself and resumes with Last-Event-ID; the poll stays as the
// safety net and fills whatever came before the stream's first event.

/** A feed of the live candles of one view at a time; `onCandle(data)`, `onOpen()` on each (re)connect. */
export function createLiveFeed({ onCandle, onOpen }) {
  let source = null;
  let key = "";
  const follow = (view) => {
    const next = view ? JSON.stringify([view.exchange, view.symbol, view.timeframe, view.price ?? "trade"]) : "";
    if (next === key && (source !== null || !view)) return;
    source?.close();
    source = null;
    key = next;
    if (!view || typeof EventSource === "undefined") return;
    const q = new URLSearchParams({
      exchange: view.exchange,
      symbol: view.symbol,
      timeframe: view.timeframe,
      price: view.price ?? "trade",
    });
    const mine = new EventSource(`/v1/stream?${q.toString()}`);
    source = mine;
    mine.addEventListener("open", () => {
      if (source === mine) onOpen();
    });
    mine.addEventListener("candle", (e) => {
      if (source === mine) onCandle(JSON.parse(e.data));
    });
  };
  return { follow, stop: () => follow(null), connected: () => source?.readyState === 1 };
}
