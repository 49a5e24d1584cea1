// The view in the address bar: exchange, symbol, timeframe and visible range (from, to).
import { isoSeconds, tfMs } from "./format.js";

const KEYS = ["exchange", "symbol", "timeframe", "price", "from", "to"];

/** Reads the query string: { view: {exchange, symbol, timeframe, range}, problems: [text] }. */
export function readUrl() {
  const q = new URLSearchParams(location.search);
  const problems = [];
  const view = {
    exchange: q.get("exchange"),
    symbol: q.get("symbol"),
    timeframe: q.get("timeframe"),
    price: q.get("price") ?? "trade",
    range: null,
  };
  if (view.timeframe !== null && Number.isNaN(tfMs(view.timeframe))) {
    problems.push(`Cannot open the link: timeframe "${view.timeframe}" is not a timeframe such as 1m, 4h or 1d.`);
    view.timeframe = null;
    view.exchange = view.symbol = null;
  }
  if (q.has("from") || q.has("to")) {
    const from = Date.parse(q.get("from") ?? ""), to = Date.parse(q.get("to") ?? "");
    if (Number.isNaN(from) || Number.isNaN(to)) {
      problems.push(
        `Cannot use the link's range: from="${q.get("from") ?? ""}" to="${
          q.get("to") ?? ""
        }" needs two ISO-8601 times.`,
      );
    } else if (from >= to) {
      problems.push(`Cannot use the link's range: from=${q.get("from")} is not before to=${q.get("to")}.`);
    } else view.range = { from, to };
  }
  return { view, problems };
}

/** Writes the view to the query string: a new history entry when `push`, else in place. */
export function writeUrl(view, push) {
  const q = new URLSearchParams(location.search);
  for (const k of KEYS) q.delete(k);
  q.set("exchange", view.exchange);
  q.set("symbol", view.symbol);
  q.set("timeframe", view.timeframe);
  if (view.price && view.price !== "trade") q.set("price", view.price);
  if (view.range) {
    q.set("from", isoSeconds(view.range.from));
    q.set("to", isoSeconds(view.range.to));
  }
  const url = `${location.pathname}?${q.toString().replaceAll("%2F", "/").replaceAll("%3A", ":")}`;
  if (url === `${location.pathname}${location.search}`) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}
