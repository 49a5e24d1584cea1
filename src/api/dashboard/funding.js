// The funding rates of a perpetual under the chart: the latest rows of GET /v1/funding-rates.
import { getJson } from "./api.js";
import { decimalsOf, esc, fmtFixed, fmtTime } from "./format.js";

const ROWS = 12;

/** A perpetual swap (`BTC/USDT:USDT`): a settle currency and no expiry. */
export const isPerpetual = (symbol) => /^[^/:]+\/[^/:]+:[^/:-]+$/.test(symbol);

/** A rate as a percentage, from its exact decimal text. */
function percent(rate) {
  const n = Number(rate) * 100;
  return `${n > 0 ? "+" : ""}${n.toFixed(4)}%`;
}

/**
 * Shows the latest funding rates of `view`'s symbol in `panel`: hidden for anything but a
 * perpetual, and for one `histories` (the `funding_rates` of GET /v1/series) has nothing of.
 * Mark prices are written like the candle table: thousands separators and one number of
 * decimals for the column, at least `options.decimals` (the market's price decimals).
 */
export async function showFunding(panel, view, histories, options = {}) {
  const body = panel.querySelector("tbody");
  const stored = (histories ?? []).some((h) => h.exchange === view?.exchange && h.symbol === view?.symbol);
  if (!view || !isPerpetual(view.symbol) || !stored) {
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  try {
    const q = new URLSearchParams({
      exchange: view.exchange,
      symbol: view.symbol,
      limit: String(ROWS),
      decimals: "string",
    });
    const page = await getJson(`/v1/funding-rates?${q}`);
    const rows = page.funding_rates.slice().reverse();
    const marks = rows.filter((r) => r.mark_price !== undefined).map((r) => Number(r.mark_price));
    const decimals = Math.max(options.decimals ?? 0, ...marks.map(decimalsOf));
    const mark = (r) => r.mark_price === undefined ? "" : fmtFixed(Number(r.mark_price), decimals);
    body.innerHTML = rows.map((r) =>
      `<tr><td>${fmtTime(Date.parse(r.time))}</td><td class="num ${r.rate.startsWith("-") ? "down" : "up"}">${
        esc(percent(r.rate))
      }</td><td class="num">${esc(r.rate)}</td><td class="num">${esc(mark(r))}</td></tr>`
    ).join("") || '<tr><td colspan="4" class="muted">No funding rates stored yet.</td></tr>';
  } catch (e) {
    body.innerHTML = `<tr><td colspan="4" class="muted">${esc(e.message)}</td></tr>`;
  }
}
