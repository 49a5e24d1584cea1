// The candlestick chart with volume (lightweight-charts) and its legend.
import { esc, fmtFixed, fmtTime } from "./format.js";

const LWC = globalThis.LightweightCharts;
const UP = "#26a69a", DOWN = "#ef5350";

const bar = (c) => ({ time: Date.parse(c.time) / 1000, open: c.open, high: c.high, low: c.low, close: c.close });
const vol = (c) => ({
  time: Date.parse(c.time) / 1000,
  value: c.volume,
  color: c.close >= c.open ? "rgba(38,166,154,0.45)" : "rgba(239,83,80,0.45)",
});
const format = (decimals) => ({ type: "price", precision: decimals, minMove: 10 ** -decimals });

/** The dashboard's chart look (dark background, muted text and grid), shared by every chart. */
export const CHART_THEME = {
  autoSize: true,
  layout: {
    background: { type: "solid", color: "#151b23" },
    textColor: "#8591a3",
    fontSize: 12,
    attributionLogo: false,
  },
  grid: { vertLines: { color: "rgba(38,47,61,0.55)" }, horzLines: { color: "rgba(38,47,61,0.55)" } },
};

/** Creates the chart in `el`; `candles()` gives the loaded candles (oldest first), `precision()` their decimals. */
export function createCandleChart(el, legendEl, options) {
  const chart = LWC.createChart(el, {
    ...CHART_THEME,
    rightPriceScale: { borderColor: "#262f3d" },
    timeScale: { borderColor: "#262f3d", timeVisible: true, secondsVisible: false, rightOffset: 4 },
    crosshair: { mode: 1 },
    localization: { dateFormat: "yyyy-MM-dd" },
  });
  const candleSeries = chart.addSeries(LWC.CandlestickSeries, {
    upColor: UP,
    downColor: DOWN,
    borderVisible: false,
    wickUpColor: UP,
    wickDownColor: DOWN,
  });
  const volumeSeries = chart.addSeries(LWC.HistogramSeries, {
    priceScaleId: "",
    lastValueVisible: false,
    priceLineVisible: false,
  });
  volumeSeries.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  candleSeries.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.24 } });
  let hovered = null;

  function legend(c) {
    if (!c) {
      legendEl.innerHTML = "";
      return;
    }
    const p = options.precision();
    const cls = c.close >= c.open ? "up" : "down";
    const change = ((c.close - c.open) / c.open) * 100;
    const price = (n) => fmtFixed(n, p.price);
    legendEl.innerHTML = `<span>${esc(fmtTime(Date.parse(c.time)))}</span>` +
      `<span>O <b>${price(c.open)}</b></span><span>H <b>${price(c.high)}</b></span>` +
      `<span>L <b>${price(c.low)}</b></span><span>C <b class="${cls}">${price(c.close)}</b></span>` +
      `<span class="${cls}">${change >= 0 ? "+" : ""}${change.toFixed(2)}%</span>` +
      `<span>Vol <b>${fmtFixed(c.volume, p.volume)}</b></span>${c.partial ? '<span class="muted">forming</span>' : ""}`;
  }
  const newest = () => options.candles().at(-1);

  chart.subscribeCrosshairMove((param) => {
    hovered = param.time ? options.candles().find((x) => Date.parse(x.time) === param.time * 1000) ?? null : null;
    legend(hovered ?? newest());
  });

  return {
    chart,
    /** Applies the market's decimals to both series' price formats and the legend. */
    setPrecision(p) {
      candleSeries.applyOptions({ priceFormat: format(p.price) });
      volumeSeries.applyOptions({ priceFormat: format(p.volume) });
      legend(hovered ?? newest());
    },
    /** Replaces the data; `shift` keeps the view on the same candles after `shift` were prepended. */
    setCandles(candles, shift) {
      const range = shift ? chart.timeScale().getVisibleLogicalRange() : null;
      candleSeries.setData(candles.map(bar));
      volumeSeries.setData(candles.map(vol));
      if (range) chart.timeScale().setVisibleLogicalRange({ from: range.from + shift, to: range.to + shift });
      hovered = null;
      legend(newest());
    },
    /** Updates the newest candle in place or appends a newer one. */
    update(c) {
      candleSeries.update(bar(c));
      volumeSeries.update(vol(c));
      if (!hovered) legend(c);
    },
    /** The price formats in use: { price, volume }. */
    formats: () => ({
      price: candleSeries.options().priceFormat,
      volume: volumeSeries.options().priceFormat,
    }),
    /** The visible time range in epoch ms, or null. */
    visibleRange() {
      const r = chart.timeScale().getVisibleRange();
      return r ? { from: Number(r.from) * 1000, to: Number(r.to) * 1000 } : null;
    },
    /** Shows the time range `r` (epoch ms). */
    showRange(r) {
      chart.timeScale().setVisibleRange({ from: r.from / 1000, to: r.to / 1000 });
    },
    /** Shows the newest `n` candles of `total`. */
    showNewest(total, n) {
      chart.timeScale().fitContent();
      if (total > n) chart.timeScale().setVisibleLogicalRange({ from: total - n, to: total + 4 });
    },
  };
}
