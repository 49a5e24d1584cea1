// The series table (coverage of every series, remove buttons) and the latest-candles table.
import { esc, fmtCount, fmtDuration, fmtFixed, fmtLag, fmtTime, tfMs } from "./format.js";

const LATEST = 10;

// The column headings of both tables; a "#" marks a right-aligned (numeric) column.
const HEADINGS = {
  series: ["ID", "Exchange", "Symbol", "TF", "State", "First", "Last", "#Candles", "#Gaps", "#Holes", "#Lag", ""],
  candles: ["Time (UTC)", "#Open", "#High", "#Low", "#Close", "#Volume"],
};

/**
 * Creates the series table and the latest-candles table, with their heading rows, in the
 * `[data-table]` boxes of the page (`#series-table`, `#candle-table`).
 */
export function createTables(root) {
  for (const [id, names] of [["series-table", HEADINGS.series], ["candle-table", HEADINGS.candles]]) {
    const heads = names.map((n) => n.startsWith("#") ? `<th class="num">${n.slice(1)}</th>` : `<th>${n}</th>`);
    root.querySelector(`[data-table="${id}"]`).innerHTML = `<table id="${id}"><thead><tr>${
      heads.join("")
    }</tr></thead><tbody></tbody></table>`;
  }
}

const plural = (n, word) => `${fmtCount(n)} ${word}${n === 1 ? "" : "s"}`;

function lagClass(s) {
  if (s.lag_s === null || !s.active) return "";
  if (s.lag_s > 3600) return "bad";
  return s.lag_s > 4 * tfMs(s.timeframe) / 1000 ? "warn" : "";
}

/** Renders the rows of every series; `view` marks the selected one, `token` enables the remove buttons. */
export function renderSeriesTable(tbody, series, options) {
  const { view, token } = options;
  const rows = series.map((s) => {
    const selected = view && s.exchange === view.exchange && s.symbol === view.symbol;
    const gaps = s.gaps.ranges
      ? `<span class="warn" title="${plural(s.gaps.ranges, "gap")}">${fmtCount(s.gaps.missing)} in ${
        plural(s.gaps.ranges, "gap")
      }</span>`
      : "none";
    const holes = s.holes.ranges ? `${fmtCount(s.holes.ranges)} · ${fmtDuration(s.holes.ms)}` : "none";
    const remove = !s.active
      ? ""
      : token
      ? `<button type="button" class="remove" data-id="${s.id}" title="Stop updating series ${s.id} (its candles are kept)">Remove</button>`
      : `<button type="button" class="remove" disabled title="Enter the API token below to remove series">Remove</button>`;
    return `<tr data-exchange="${esc(s.exchange)}" data-symbol="${esc(s.symbol)}" data-tf="${
      esc(s.timeframe)
    }" data-price="${esc(s.price ?? "trade")}"
      data-id="${s.id}" class="${selected ? "selected" : ""}">
      <td>${s.id}</td><td>${esc(s.exchange)}</td><td>${esc(s.symbol)}</td><td>${esc(s.timeframe)}${
      s.price && s.price !== "trade" ? ` <span class="muted">${esc(s.price)}</span>` : ""
    }</td>
      <td><span class="badge ${esc(s.state)}" title="${esc(s.state_reason || "")}">${esc(s.state)}</span></td>
      <td>${fmtTime(s.first && Date.parse(s.first))}</td><td>${fmtTime(s.last && Date.parse(s.last))}</td>
      <td class="num">${fmtCount(s.count)}</td><td class="num">${gaps}</td><td class="num">${holes}</td>
      <td class="num"><span class="${lagClass(s)}">${fmtLag(s.lag_s)}</span></td><td>${remove}</td></tr>`;
  });
  tbody.innerHTML = rows.join("") ||
    '<tr><td colspan="12" class="muted">No series yet. Configure SYMBOLS, or add one below with the API token.</td></tr>';
}

/**
 * Renders the newest candles (newest first) with the market's decimals; without the Volume
 * column when `volume` is false (mark, index and premium candles have none).
 */
export function renderCandleTable(tbody, candles, precision, volume = true) {
  const price = (n) => fmtFixed(n, precision.price);
  const head = tbody.parentElement?.tHead?.rows[0]?.cells;
  if (head?.length) head[head.length - 1].hidden = !volume;
  tbody.innerHTML =
    candles.slice(-LATEST).reverse().map((c) =>
      `<tr><td>${fmtTime(Date.parse(c.time))}${
        c.partial ? ' <span class="muted">forming</span>' : ""
      }</td><td class="num">${price(c.open)}</td><td class="num">${price(c.high)}</td><td class="num">${
        price(c.low)
      }</td><td class="num ${c.close >= c.open ? "up" : "down"}">${price(c.close)}</td>${
        volume ? `<td class="num">${fmtFixed(c.volume, precision.volume)}</td>` : ""
      }</tr>`
    ).join("") || `<tr><td colspan="${volume ? 6 : 5}" class="muted">No candles.</td></tr>`;
}
