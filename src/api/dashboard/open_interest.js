// A perpetual's stored open interest under the chart: GET /v1/open-interest of the history that
// GET /v1/series lists for it (amount and, where the exchange gives it, value), with its period.
import { getJson } from "./api.js";
import { esc, fmtCount, fmtTime } from "./format.js";
import { CHART_THEME } from "./chart.js";

const LWC = globalThis.LightweightCharts;
const ROWS = 1000;
const VALUE = "#e0a339", AMOUNT = "#5b9cf6";

/** The history stored for `view`'s market with the most rows, or null (spot, or OI not collected). */
export function historyOf(histories, view) {
  const mine = (histories ?? []).filter((h) =>
    view && h.exchange === view.exchange && h.symbol === view.symbol && h.count > 0
  );
  return mine.sort((a, b) => a.count - b.count).at(-1) ?? null;
}

/** A number with up to `max` decimals and thousands separators. */
const fmt = (n, max) => n.toLocaleString("en-US", { maximumFractionDigits: max });

/** The open-interest panel: `show(view, histories)` loads and draws, or hides the panel. */
export function createOpenInterestPanel(panel) {
  const el = panel.querySelector(".oi-chart");
  const sub = panel.querySelector(".oi-sub");
  const legend = panel.querySelector(".oi-legend");
  let chart = null, valueSeries = null, amountSeries = null, shown = "", gen = 0, rows = [];
  const probe = { period: null, points: 0, hasValue: false };
  if (globalThis.__candlekeep) globalThis.__candlekeep.openInterest = probe; // read by the browser test

  function ensureChart() {
    if (chart) return;
    chart = LWC.createChart(el, {
      ...CHART_THEME,
      rightPriceScale: { borderColor: "#262f3d", visible: true },
      leftPriceScale: { borderColor: "#262f3d", visible: true },
      timeScale: {
        borderColor: "#262f3d",
        timeVisible: true,
        secondsVisible: false,
        rightOffset: 2,
        fixLeftEdge: true,
        lockVisibleTimeRangeOnResize: true,
      },
      localization: { dateFormat: "yyyy-MM-dd" },
    });
    valueSeries = chart.addSeries(LWC.AreaSeries, {
      priceScaleId: "right",
      lineColor: VALUE,
      topColor: "rgba(224,163,57,0.30)",
      bottomColor: "rgba(224,163,57,0.02)",
      lineWidth: 2,
      priceFormat: { type: "volume" },
    });
    amountSeries = chart.addSeries(LWC.LineSeries, {
      priceScaleId: "left",
      color: AMOUNT,
      lineWidth: 1,
      priceFormat: { type: "volume" },
      lastValueVisible: false,
      priceLineVisible: false,
    });
    chart.subscribeCrosshairMove((param) => {
      const t = param.time ? param.time * 1000 : null;
      showLegend((t && rows.find((r) => Date.parse(r.time) === t)) || rows.at(-1));
    });
  }

  /** The legend: time, amount and value of `row` (hovered, else the newest). */
  function showLegend(row) {
    const hasValue = rows.some((r) => r.value !== null);
    legend.innerHTML = row
      ? `<span>${esc(fmtTime(Date.parse(row.time)))}</span>` +
        `<span><i class="swatch" style="background:${AMOUNT}"></i>Amount <b>${
          esc(fmt(Number(row.amount), 8))
        }</b></span>` +
        (hasValue
          ? `<span><i class="swatch" style="background:${VALUE}"></i>Value <b>${
            esc(row.value === null ? "–" : fmt(Number(row.value), 2))
          }</b></span>`
          : '<span class="muted">no value from this exchange</span>')
      : "";
  }

  function describe(h) {
    const latest = rows.length < h.count ? ` · latest ${fmtCount(rows.length)} shown` : "";
    sub.textContent = `${h.period} period · ${fmtCount(h.count)} stored from ${fmtTime(Date.parse(h.first))}${latest}` +
      ` · ${h.backfilled ? "live" : "backfilling"}${h.holes ? ` · ${h.holes} holes` : ""}`;
    showLegend(rows.at(-1));
  }

  return {
    /** Shows the open interest of `view`'s market (hidden when none is stored); reloads when it grew. */
    async show(view, histories) {
      const h = historyOf(histories, view);
      if (!h) {
        panel.hidden = true;
        shown = "";
        gen++;
        Object.assign(probe, { period: null, points: 0, hasValue: false });
        return;
      }
      const sig = `${h.exchange}|${h.symbol}|${h.period}|${h.last}|${h.count}`;
      if (sig === shown) return;
      shown = sig;
      const mine = ++gen;
      panel.hidden = false;
      ensureChart();
      try {
        const q = new URLSearchParams({
          exchange: h.exchange,
          symbol: h.symbol,
          period: h.period,
          limit: String(ROWS),
        });
        const page = await getJson(`/v1/open-interest?${q}`);
        if (mine !== gen) return;
        rows = page.open_interest;
        const time = (r) => Date.parse(r.time) / 1000;
        const hasValue = rows.some((r) => r.value !== null);
        valueSeries.setData(
          hasValue ? rows.filter((r) => r.value !== null).map((r) => ({ time: time(r), value: r.value })) : [],
        );
        amountSeries.setData(rows.map((r) => ({ time: time(r), value: r.amount })));
        chart.applyOptions({ leftPriceScale: { visible: hasValue } });
        amountSeries.applyOptions({ priceScaleId: hasValue ? "left" : "right", lastValueVisible: !hasValue });
        chart.timeScale().fitContent();
        describe(h);
        Object.assign(probe, { period: h.period, points: rows.length, hasValue });
      } catch (e) {
        if (mine !== gen) return;
        shown = "";
        sub.textContent = `Cannot load open interest: ${e.message}`;
      }
    },
  };
}
