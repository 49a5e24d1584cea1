// The funding rates of a perpetual under the chart: the latest rows of GET /v1/funding-rates.
import { getJson } from "./api.js";
import { esc, fmtTime } from "./format.js";

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
 */
export async function showFunding(panel, view, histories) {
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
    body.innerHTML = page.funding_rates.slice().reverse().map((r) =>
      `<tr><td>${fmtTime(Date.parse(r.time))}</td><td class="num ${r.rate.startsWith("-") ? "down" : "up"}">${
        esc(percent(r.rate))
      }</td><td class="num">${esc(r.rate)}</td><td class="num">${esc(r.mark_price ?? "")}</td></tr>`
    ).join("") || '<tr><td colspan="4" class="muted">No funding rates stored yet.</td></tr>';
  } catch (e) {
    body.innerHTML = `<tr><td colspan="4" class="muted">${esc(e.message)}</td></tr>`;
  }
}
