// Candlekeep dashboard: plain ES modules over the JSON API; charts by lightweight-charts (served locally).
import { getJson } from "./api.js";
import { keyOf, markets, priceOf, pricesOf, resolve, timeframeOptions } from "./catalog.js";
import { showFunding } from "./funding.js";
import { createOpenInterestPanel } from "./open_interest.js";
import { createCandleChart } from "./chart.js";
import { createLiveFeed } from "./live.js";
import { drawCoverage } from "./coverage.js";
import { esc, fmtCount, isoSeconds, precisionOf } from "./format.js";
import { setupManage, token } from "./manage.js";
import { createTables, renderCandleTable, renderSeriesTable } from "./tables.js";
import { readUrl, writeUrl } from "./url_state.js";

const PAGE = 1000;
const POLL_MS = 5_000;
const RANGE_PAGES = 10; // pages walked back to reach a linked range before jumping to it
const CATCH_UP_PAGES = 20; // pages one poll follows before reloading instead

const $ = (id) => document.getElementById(id);
createTables(document);
const state = {
  series: [],
  funding: [], // funding and open-interest histories (GET /v1/series)
  openInterest: [],
  view: null, // { exchange, symbol, timeframe }
  candles: [], // oldest first
  next: null,
  live: true, // the loaded candles reach the newest: polls append to them
  source: null,
  precision: { price: 0, volume: 0 },
  loading: false,
  reloading: false, // loadChart is replacing the candles
  generation: 0,
  coverageSig: "",
};
// Read by the browser test.
const probe = {
  candles: 0,
  series: 0,
  selected: null,
  ready: false,
  polls: 0,
  streamed: 0,
  precision: state.precision,
};
globalThis.__candlekeep = probe;
const openInterest = createOpenInterestPanel($("oi-panel"));
const view = createCandleChart($("chart"), $("legend"), {
  candles: () => state.candles,
  precision: () => state.precision,
  price: () => priceOf(state.view),
});
probe.times = () => state.candles.map((c) => c.time);
probe.range = () => view.visibleRange();
probe.formats = () => view.formats();
probe.volumeShown = () => view.volumeShown();
// complete=false: the chart shows the forming candle (and partial buckets) live, marked "forming".
const query = (extra) =>
  `/v1/candles?${new URLSearchParams({ ...state.view, limit: String(PAGE), complete: "false", ...extra }).toString()}`;

function notice(lines) {
  $("notice").hidden = lines.length === 0;
  $("notice-text").textContent = lines.join(" ");
}

// ---- series and timeframes ----
function fillSelectors() {
  const map = markets(state.series);
  $("series-select").innerHTML = [...map.keys()].map((k) => {
    const [ex, sym] = k.split("|");
    return `<option value="${esc(k)}">${esc(sym)} · ${esc(ex)}</option>`;
  }).join("");
  if (!state.view) return;
  $("series-select").value = keyOf(state.view);
  const prices = pricesOf(state.series, keyOf(state.view));
  $("prices").hidden = prices.length < 2 && priceOf(state.view) === "trade";
  $("prices").innerHTML = prices.map((p) =>
    `<button type="button" role="radio" data-price="${p}" aria-checked="${p === priceOf(state.view)}">${p}</button>`
  ).join("");
  const { stored, options } = timeframeOptions(state.series, keyOf(state.view), priceOf(state.view));
  $("timeframes").innerHTML = options.map((tf) =>
    `<button type="button" role="radio" data-tf="${tf}" aria-checked="${tf === state.view.timeframe}" title="${
      stored.includes(tf) ? "stored" : "resampled in SQL"
    }">${tf}</button>`
  ).join("");
}

function coverageSeries() {
  if (!state.view) return null;
  const same = state.series.filter((s) => keyOf(s) === keyOf(state.view) && priceOf(s) === priceOf(state.view));
  return same.find((s) => s.timeframe === state.view.timeframe) ?? same.find((s) => s.timeframe === state.source) ??
    same.sort((a, b) => b.count - a.count)[0] ?? null;
}

function renderTables() {
  renderSeriesTable($("series-table").tBodies[0], state.series, { view: state.view, token: token() });
  renderCandleTable($("candle-table").tBodies[0], state.candles, state.precision, view.volumeShown());
  probe.series = state.series.length;
  const s = coverageSeries();
  const sig = s ? `${s.id}|${s.count}|${s.last}|${s.gaps.missing}|${s.holes.ranges}|${s.state}` : "";
  if (sig !== state.coverageSig) {
    state.coverageSig = sig;
    drawCoverage(s);
  }
}

// ---- candles ----
function subtitle() {
  const tf = state.view.timeframe;
  const rollup = state.rollup ? ` (${state.rollup} rollup)` : "";
  const resampled = state.source && state.source !== tf ? ` · resampled from ${state.source}${rollup}` : "";
  const more = state.next ? " · scroll left for more" : "";
  const live = state.live ? " · live" : " · history (live updates paused)";
  const price = priceOf(state.view) === "trade" ? "" : ` · ${priceOf(state.view)} price`;
  $("chart-sub").textContent = `${tf}${price}${resampled} · ${
    fmtCount(state.candles.length)
  } candles loaded${more}${live}`;
  $("latest").hidden = state.live;
}

function showPrecision() {
  view.setPrecision(state.precision);
  probe.precision = state.precision;
  $("precision").textContent = `${state.precision.price} price / ${state.precision.volume} volume decimals`;
}

/** Loads the chart of `state.view`: the newest page, or enough pages to show `range`. */
async function loadChart(range) {
  const gen = ++state.generation;
  const v = state.view;
  state.loading = true;
  state.reloading = true;
  probe.ready = false;
  $("chart").querySelector(".empty")?.remove();
  $("chart-title").textContent = `${v.symbol} · ${v.exchange}`;
  openInterest.show(v, state.openInterest);
  $("chart-sub").textContent = `${v.timeframe} · loading…`;
  try {
    let page = await getJson(query({}));
    let candles = page.candles, next = page.next, live = true;
    const before = (t) => candles.length > 0 && Date.parse(candles[0].time) > t;
    for (let i = 0; range && i < RANGE_PAGES && next && before(range.from); i++) {
      page = await getJson(next);
      candles = page.candles.concat(candles);
      next = page.next;
    }
    if (range && next && before(range.from)) {
      // Far back in history: load the page that ends just after the range; polls pause.
      page = await getJson(query({ end: isoSeconds(range.to + (range.to - range.from)) }));
      [candles, next, live] = [page.candles, page.next, false];
    }
    if (gen !== state.generation) return;
    Object.assign(state, {
      candles,
      next,
      live,
      source: page.stored_timeframe ?? page.source_timeframe,
      rollup: page.source_timeframe !== page.stored_timeframe ? page.source_timeframe : "",
      coverageSig: "",
    });
    state.precision = precisionOf(candles);
    showPrecision();
    view.setCandles(candles, 0);
    if (range) view.showRange(range);
    else view.showNewest(candles.length, 150);
    subtitle();
    if (candles.length === 0) {
      const div = Object.assign(document.createElement("div"), { className: "empty", textContent: "No candles yet" });
      $("chart").appendChild(div);
    }
  } catch (e) {
    if (gen !== state.generation) return;
    Object.assign(state, { candles: [], next: null, live: false, coverageSig: "" });
    view.setCandles([], 0);
    $("chart-sub").textContent = `Cannot load ${v.symbol} ${v.timeframe}: ${e.message}`;
  }
  state.loading = false;
  state.reloading = false;
  probe.candles = state.candles.length;
  probe.selected = `${keyOf(v)}|${v.timeframe}${priceOf(v) === "trade" ? "" : `|${priceOf(v)}`}`;
  probe.ready = true;
  renderTables();
  // After the candles: the funding table's mark prices take the market's price decimals.
  showFunding($("funding-panel"), v, state.funding, { decimals: state.precision.price });
}

async function loadOlder() {
  if (!state.next || state.loading) return;
  const gen = state.generation;
  state.loading = true;
  try {
    const page = await getJson(state.next);
    if (gen !== state.generation) return;
    state.next = page.next;
    state.candles = page.candles.concat(state.candles);
    const p = precisionOf(page.candles, state.precision);
    if (p.price !== state.precision.price || p.volume !== state.precision.volume) {
      state.precision = p;
      showPrecision();
    }
    view.setCandles(state.candles, page.candles.length);
    probe.candles = state.candles.length;
    subtitle();
  } catch (e) {
    $("chart-sub").textContent = `Cannot load older candles: ${e.message}`;
  } finally {
    if (gen === state.generation) state.loading = false;
  }
}

/** Puts candles newer than (or equal to) the newest loaded one on the chart: in place or appended. */
function merge(fresh) {
  for (const c of fresh) {
    const last = state.candles.at(-1);
    const t = Date.parse(c.time), lastT = last ? Date.parse(last.time) : -Infinity;
    if (t < lastT) continue;
    if (t === lastT) state.candles[state.candles.length - 1] = c;
    else state.candles.push(c);
    view.update(c);
  }
  const p = precisionOf(fresh, state.precision);
  if (p.price !== state.precision.price || p.volume !== state.precision.volume) {
    state.precision = p;
    showPrecision();
  }
  renderCandleTable($("candle-table").tBodies[0], state.candles, state.precision, view.volumeShown());
  probe.candles = state.candles.length;
  subtitle();
}

/** Fetches what is new since the newest loaded candle, following `next` so nothing is skipped. */
async function pollCandles() {
  if (!state.view || state.loading || !state.live) return;
  const gen = state.generation;
  const last = state.candles.at(-1);
  state.loading = true;
  try {
    let page = await getJson(query(last ? { start: last.time } : {}));
    let fresh = page.candles;
    for (let i = 0; last && page.next && i < CATCH_UP_PAGES; i++) {
      page = await getJson(page.next);
      fresh = page.candles.concat(fresh);
    }
    if (gen !== state.generation) return;
    state.loading = false;
    if (!last || page.next) {
      if (fresh.length > 0) await loadChart(last ? view.visibleRange() : null);
      return;
    }
    merge(fresh);
  } catch (e) {
    if (gen === state.generation) $("chart-sub").textContent = `Cannot update: ${e.message}`;
  } finally {
    if (gen === state.generation) state.loading = false;
  }
}

async function refreshSeries() {
  try {
    const before = JSON.stringify([...markets(state.series)]);
    const body = await getJson("/v1/series");
    state.series = body.series;
    state.funding = body.funding_rates ?? [];
    state.openInterest = body.open_interest ?? [];
    if (state.view && JSON.stringify([...markets(state.series)]) !== before) fillSelectors();
    $("table-updated").textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
  } catch (e) {
    $("table-updated").textContent = `Cannot refresh: ${e.message}`;
  }
}

async function refreshStatus() {
  const el = $("status");
  try {
    const res = await fetch("/ready");
    const body = await res.json();
    el.className = `status ${res.ok ? "ok" : "bad"}`;
    el.querySelector(".label").textContent = res.ok ? "ready" : "not ready";
    el.title = body.reason || "database reachable, migrations applied";
  } catch {
    el.className = "status bad";
    el.querySelector(".label").textContent = "offline";
  }
}

// ---- navigation: the URL holds the view ----
/** Shows what the current URL names (on start and on back/forward). */
async function openFromUrl() {
  const { view: wanted, problems } = readUrl();
  const { v, fellBack } = resolve(state.series, wanted, problems);
  const range = fellBack ? null : wanted.range;
  if (wanted.range && fellBack) problems.push("The range of the link is ignored.");
  else if (problems.length > 0 && !wanted.range) problems.push("Showing the newest candles.");
  notice(problems);
  state.view = v && { exchange: v.exchange, symbol: v.symbol, timeframe: v.timeframe, price: priceOf(v) };
  fillSelectors();
  if (!state.view) {
    renderTables();
    probe.ready = true;
    return;
  }
  writeUrl({ ...state.view, range }, false);
  feed.follow(state.view);
  await loadChart(range);
}

function select(v) {
  notice([]);
  state.view = v;
  feed.follow(v);
  writeUrl(v, true);
  fillSelectors();
  renderTables();
  loadChart(null);
}

$("series-select").addEventListener("change", (e) => {
  const [exchange, symbol] = e.target.value.split("|");
  const price = pricesOf(state.series, e.target.value)[0] ?? "trade";
  const { stored } = timeframeOptions(state.series, e.target.value, price);
  select({ exchange, symbol, timeframe: stored[0], price });
});
$("prices").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-price]");
  if (!b || b.dataset.price === priceOf(state.view)) return;
  const { stored, options } = timeframeOptions(state.series, keyOf(state.view), b.dataset.price);
  const timeframe = options.includes(state.view.timeframe) ? state.view.timeframe : stored[0];
  select({ ...state.view, timeframe, price: b.dataset.price });
});
$("timeframes").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-tf]");
  if (b && b.dataset.tf !== state.view.timeframe) select({ ...state.view, timeframe: b.dataset.tf });
});

$("series-table").addEventListener("click", (e) => {
  const tr = e.target.closest("tr[data-id]");
  if (!tr || e.target.closest("button")) return;
  select({
    exchange: tr.dataset.exchange,
    symbol: tr.dataset.symbol,
    timeframe: tr.dataset.tf,
    price: tr.dataset.price,
  });
});
$("latest").addEventListener("click", () => select(state.view));
$("notice-close").addEventListener("click", () => notice([]));
globalThis.addEventListener("popstate", () => openFromUrl());

let rangeTimer = 0;
view.chart.timeScale().subscribeVisibleLogicalRangeChange((r) => {
  if (r && r.from < 50) loadOlder();
  clearTimeout(rangeTimer);
  rangeTimer = setTimeout(() => {
    const range = view.visibleRange();
    if (probe.ready && state.view && range) writeUrl({ ...state.view, range }, false);
  }, 300);
});

// ---- live updates: pushed candles, and a poll every few seconds while the tab is visible ----
const feed = createLiveFeed({
  onOpen: () => pollCandles(),
  onCandle: (d) => {
    probe.streamed++;
    // While a chart loads, the page it loads has this candle (or the next event brings it); a
    // poll in flight merges only what is not older than this.
    if (!state.view || !state.live || state.reloading) return;
    const row = { time: d.time, open: d.open, high: d.high, low: d.low, close: d.close, volume: d.volume };
    merge([d.closed ? row : { ...row, partial: true }]);
  },
});
probe.streaming = () => feed.connected();
let pollTimer = 0;
async function tick() {
  clearTimeout(pollTimer);
  probe.polls++;
  feed.follow(state.view);
  await Promise.all([refreshStatus(), refreshSeries(), pollCandles()]);
  renderTables();
  if (state.view) openInterest.show(state.view, state.openInterest);
  clearTimeout(pollTimer);
  if (!document.hidden) pollTimer = setTimeout(tick, POLL_MS);
}
document.addEventListener("visibilitychange", () => {
  clearTimeout(pollTimer);
  if (document.hidden) feed.stop();
  else tick();
});

setupManage($("series-table"), async () => {
  renderTables();
  await refreshSeries();
  renderTables();
});
refreshStatus();
await refreshSeries();
await openFromUrl();
feed.follow(state.view);
pollTimer = setTimeout(tick, POLL_MS);
