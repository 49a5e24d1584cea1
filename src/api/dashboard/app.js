// Candlekeep dashboard: plain JS over the JSON API, charts by lightweight-charts (served locally).
(() => {
  "use strict";
  const LWC = globalThis.LightweightCharts;
  const TIMEFRAMES = ["1m", "5m", "15m", "1h", "4h", "1d", "1w"];
  const UNIT = { s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5 };
  const PAGE = 1000;
  const REFRESH_MS = 15_000;

  const state = {
    series: [],
    key: null, // "exchange|symbol"
    timeframe: null,
    candles: [],
    next: null,
    loading: false,
    generation: 0,
  };
  // Read by the browser test.
  const probe = { candles: 0, series: 0, selected: null, ready: false };
  globalThis.__candlekeep = probe;

  const $ = (id) => document.getElementById(id);
  const tfMs = (tf) => Number(tf.slice(0, -1)) * UNIT[tf.slice(-1)];
  const fmtTime = (ms) =>
    ms === null || ms === undefined ? "–" : new Date(ms).toISOString().replace("T", " ").slice(0, 16);
  const fmtNum = (n) => n.toLocaleString("en-US");
  const fmtPrice = (n) =>
    n >= 1000 ? n.toLocaleString("en-US", { maximumFractionDigits: 2 }) : n.toPrecision(6).replace(/\.?0+$/, "");
  const fmtLag = (s) => {
    if (s === null || s === undefined) return "–";
    if (s < 90) return `${s}s`;
    if (s < 5400) return `${Math.round(s / 60)}m`;
    if (s < 172800) return `${Math.round(s / 3600)}h`;
    return `${Math.round(s / 86400)}d`;
  };
  const esc = (s) =>
    String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

  async function api(path) {
    const res = await fetch(path, { headers: { accept: "application/json" } });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
    return body;
  }

  // ---- chart ----
  const chartEl = $("chart");
  const chart = LWC.createChart(chartEl, {
    autoSize: true,
    layout: {
      background: { type: "solid", color: "#151b23" },
      textColor: "#8591a3",
      fontSize: 12,
      attributionLogo: false,
    },
    grid: { vertLines: { color: "rgba(38,47,61,0.55)" }, horzLines: { color: "rgba(38,47,61,0.55)" } },
    rightPriceScale: { borderColor: "#262f3d" },
    timeScale: { borderColor: "#262f3d", timeVisible: true, secondsVisible: false, rightOffset: 4 },
    crosshair: { mode: 1 },
  });
  const candleSeries = chart.addSeries(LWC.CandlestickSeries, {
    upColor: "#26a69a",
    downColor: "#ef5350",
    borderVisible: false,
    wickUpColor: "#26a69a",
    wickDownColor: "#ef5350",
  });
  const volumeSeries = chart.addSeries(LWC.HistogramSeries, {
    priceScaleId: "",
    priceFormat: { type: "volume" },
    lastValueVisible: false,
    priceLineVisible: false,
  });
  volumeSeries.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  candleSeries.priceScale().applyOptions({ scaleMargins: { top: 0.08, bottom: 0.24 } });

  function render(keepRange) {
    const range = keepRange ? chart.timeScale().getVisibleLogicalRange() : null;
    const added = keepRange ? keepRange.added : 0;
    const data = state.candles.map((c) => ({
      time: Date.parse(c.time) / 1000,
      open: c.open,
      high: c.high,
      low: c.low,
      close: c.close,
    }));
    const vol = state.candles.map((c) => ({
      time: Date.parse(c.time) / 1000,
      value: c.volume,
      color: c.close >= c.open ? "rgba(38,166,154,0.45)" : "rgba(239,83,80,0.45)",
    }));
    candleSeries.setData(data);
    volumeSeries.setData(vol);
    if (range) chart.timeScale().setVisibleLogicalRange({ from: range.from + added, to: range.to + added });
    probe.candles = data.length;
    legend(state.candles[state.candles.length - 1]);
  }

  function legend(c) {
    const el = $("legend");
    if (!c) {
      el.innerHTML = "";
      return;
    }
    const cls = c.close >= c.open ? "up" : "down";
    const change = ((c.close - c.open) / c.open) * 100;
    el.innerHTML = `<span>${esc(fmtTime(Date.parse(c.time)))}</span>` +
      `<span>O <b>${fmtPrice(c.open)}</b></span><span>H <b>${fmtPrice(c.high)}</b></span>` +
      `<span>L <b>${fmtPrice(c.low)}</b></span><span>C <b class="${cls}">${fmtPrice(c.close)}</b></span>` +
      `<span class="${cls}">${change >= 0 ? "+" : ""}${change.toFixed(2)}%</span>` +
      `<span>Vol <b>${fmtNum(Math.round(c.volume))}</b></span>${c.partial ? '<span class="muted">partial</span>' : ""}`;
  }

  chart.subscribeCrosshairMove((param) => {
    if (!param.time) return legend(state.candles[state.candles.length - 1]);
    const t = param.time * 1000;
    const c = state.candles.find((x) => Date.parse(x.time) === t);
    if (c) legend(c);
  });

  async function loadOlder() {
    if (!state.next || state.loading) return;
    state.loading = true;
    const gen = state.generation;
    try {
      const page = await api(state.next);
      if (gen !== state.generation) return;
      state.next = page.next;
      if (page.candles.length > 0) {
        state.candles = page.candles.concat(state.candles);
        render({ added: page.candles.length });
      }
    } catch (e) {
      $("chart-sub").textContent = `Cannot load older candles: ${e.message}`;
    } finally {
      state.loading = false;
    }
  }

  chart.timeScale().subscribeVisibleLogicalRangeChange((range) => {
    if (range && range.from < 50) loadOlder();
  });

  async function loadChart() {
    const gen = ++state.generation;
    const [exchange, symbol] = state.key.split("|");
    const tf = state.timeframe;
    const empty = chartEl.querySelector(".empty");
    if (empty) empty.remove();
    $("chart-title").textContent = `${symbol} · ${exchange}`;
    $("chart-sub").textContent = `${tf} · loading…`;
    probe.ready = false;
    try {
      const q = new URLSearchParams({ exchange, symbol, timeframe: tf, limit: String(PAGE) });
      const page = await api(`/v1/candles?${q}`);
      if (gen !== state.generation) return;
      state.candles = page.candles;
      state.next = page.next;
      render(null);
      chart.timeScale().fitContent();
      if (page.candles.length > 150) {
        const n = page.candles.length;
        chart.timeScale().setVisibleLogicalRange({ from: n - 150, to: n + 4 });
      }
      const resampled = page.source_timeframe !== tf;
      $("chart-sub").textContent = `${tf}${resampled ? ` · resampled from ${page.source_timeframe}` : ""} · ${
        fmtNum(page.candles.length)
      } candles loaded${page.next ? " · scroll left for more" : ""}`;
      if (page.candles.length === 0) {
        const div = document.createElement("div");
        div.className = "empty";
        div.textContent = "No candles stored yet";
        chartEl.appendChild(div);
      }
    } catch (e) {
      state.candles = [];
      render(null);
      $("chart-sub").textContent = e.message;
    }
    probe.selected = `${state.key}|${tf}`;
    probe.ready = true;
    drawCoverage();
  }

  // ---- coverage strip ----
  async function drawCoverage() {
    const el = $("coverage");
    const [exchange, symbol] = state.key.split("|");
    const candidates = state.series.filter((s) => s.exchange === exchange && s.symbol === symbol && s.first);
    const s = candidates.sort((a, b) => b.count - a.count)[0];
    if (!s) {
      el.innerHTML = "";
      $("coverage-text").textContent = "nothing stored";
      $("coverage-from").textContent = $("coverage-to").textContent = "";
      return;
    }
    let detail;
    try {
      detail = await api(`/v1/series/${s.id}/gaps`);
    } catch (e) {
      $("coverage-text").textContent = e.message;
      return;
    }
    const from = Date.parse(s.first);
    const to = Date.parse(s.last) + tfMs(s.timeframe);
    const span = Math.max(1, to - from);
    const pct = (t) => `${(((t - from) / span) * 100).toFixed(4)}%`;
    const seg = (cls, a, b, title) =>
      `<div class="seg ${cls}" style="left:${pct(a)};width:calc(${pct(b)} - ${pct(a)})" title="${esc(title)}"></div>`;
    let html = seg("stored", from, to, `${s.timeframe} stored ${fmtTime(from)} → ${fmtTime(to)}`);
    for (const g of detail.gaps) {
      const a = Date.parse(g.from), b = Date.parse(g.to);
      html += seg("gap", a, b, `gap: ${g.count} missing, ${fmtTime(a)} → ${fmtTime(b)}`);
    }
    for (const h of detail.holes) {
      const a = Math.max(from, Date.parse(h.from)), b = Math.min(to, Date.parse(h.to));
      if (b > a) html += seg("hole", a, b, `hole (${h.reason}): ${fmtTime(a)} → ${fmtTime(b)}`);
    }
    el.innerHTML = html;
    $("coverage-text").textContent = `${s.timeframe} · ${fmtNum(s.count)} candles · ${
      fmtNum(s.gaps.missing)
    } missing in ${s.gaps.ranges} gap${s.gaps.ranges === 1 ? "" : "s"} · ${s.holes.ranges} hole${
      s.holes.ranges === 1 ? "" : "s"
    }`;
    $("coverage-from").textContent = fmtTime(from);
    $("coverage-to").textContent = fmtTime(to);
  }

  // ---- controls ----
  function markets() {
    const map = new Map();
    for (const s of state.series) {
      const key = `${s.exchange}|${s.symbol}`;
      if (!map.has(key)) map.set(key, []);
      map.get(key).push(s.timeframe);
    }
    return map;
  }

  function fillSelectors() {
    const map = markets();
    const select = $("series-select");
    const current = state.key;
    select.innerHTML = [...map.keys()].map((k) => {
      const [ex, sym] = k.split("|");
      return `<option value="${esc(k)}">${esc(sym)} · ${esc(ex)}</option>`;
    }).join("");
    if (current && map.has(current)) select.value = current;
    else if (map.size > 0) state.key = select.value = [...map.keys()][0];
    fillTimeframes();
  }

  function fillTimeframes() {
    const stored = (markets().get(state.key) || []).filter((tf) => /^\d+[smhdw]$/.test(tf));
    const storedMs = stored.map(tfMs);
    const options = [...new Set([...stored, ...TIMEFRAMES])]
      .filter((tf) => storedMs.some((ms) => tfMs(tf) % ms === 0))
      .sort((a, b) => tfMs(a) - tfMs(b));
    if (!options.includes(state.timeframe)) state.timeframe = stored[0] || options[0] || null;
    $("timeframes").innerHTML = options.map((tf) =>
      `<button type="button" role="radio" data-tf="${tf}" aria-checked="${tf === state.timeframe}" title="${
        stored.includes(tf) ? "stored" : "resampled in SQL"
      }">${tf}</button>`
    ).join("");
  }

  $("series-select").addEventListener("change", (e) => {
    state.key = e.target.value;
    fillTimeframes();
    renderTable();
    loadChart();
  });

  $("timeframes").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-tf]");
    if (!b || b.dataset.tf === state.timeframe) return;
    state.timeframe = b.dataset.tf;
    fillTimeframes();
    loadChart();
  });

  // ---- table ----
  function renderTable() {
    const rows = state.series.map((s) => {
      const key = `${s.exchange}|${s.symbol}`;
      const lagClass = s.lag_s === null
        ? ""
        : s.lag_s > 3600
        ? "bad"
        : s.lag_s > 4 * tfMs(s.timeframe) / 1000
        ? "warn"
        : "";
      return `<tr data-key="${esc(key)}" data-tf="${esc(s.timeframe)}" class="${key === state.key ? "selected" : ""}">
        <td>${s.id}</td><td>${esc(s.exchange)}</td><td>${esc(s.symbol)}</td><td>${esc(s.timeframe)}</td>
        <td><span class="badge ${esc(s.state)}" title="${esc(s.state_reason || "")}">${esc(s.state)}</span></td>
        <td class="num">${fmtNum(s.count)}</td><td>${fmtTime(s.first && Date.parse(s.first))}</td>
        <td>${fmtTime(s.last && Date.parse(s.last))}</td>
        <td class="num">${s.gaps.missing ? `<span class="warn">${fmtNum(s.gaps.missing)}</span>` : "0"}</td>
        <td class="num">${s.holes.ranges}</td>
        <td class="num"><span class="${lagClass}">${fmtLag(s.lag_s)}</span></td></tr>`;
    });
    $("series-table").tBodies[0].innerHTML = rows.join("") ||
      '<tr><td colspan="11" class="muted">No series yet. Configure SYMBOLS or POST /v1/series.</td></tr>';
    probe.series = state.series.length;
  }

  $("series-table").addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-key]");
    if (!tr) return;
    state.key = tr.dataset.key;
    state.timeframe = tr.dataset.tf;
    $("series-select").value = state.key;
    fillTimeframes();
    renderTable();
    loadChart();
  });

  async function refreshSeries(first) {
    try {
      const body = await api("/v1/series");
      state.series = body.series;
      if (first) fillSelectors();
      renderTable();
      $("table-updated").textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
      if (first && state.key && state.timeframe) await loadChart();
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

  refreshStatus();
  refreshSeries(true);
  setInterval(() => {
    refreshStatus();
    refreshSeries(false);
  }, REFRESH_MS);
})();
