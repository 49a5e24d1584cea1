// The coverage strip of one stored series: stored range, gaps and confirmed holes.
import { getJson } from "./api.js";
import { esc, fmtCount, fmtTime, tfMs } from "./format.js";

const $ = (id) => document.getElementById(id);

/** Draws the strip for series `s` (a /v1/series row) or says nothing is stored. */
export async function drawCoverage(s) {
  const el = $("coverage");
  if (!s || !s.first) {
    el.innerHTML = "";
    $("coverage-text").textContent = s ? `${s.timeframe} · nothing stored yet` : "no stored series";
    $("coverage-from").textContent = $("coverage-to").textContent = "";
    return;
  }
  let detail;
  try {
    detail = await getJson(`/v1/series/${s.id}/gaps`);
  } catch (e) {
    $("coverage-text").textContent = `Cannot load the gaps: ${e.message}`;
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
  const plural = (n, word) => `${fmtCount(n)} ${word}${n === 1 ? "" : "s"}`;
  $("coverage-text").textContent = `series ${s.id} · ${s.timeframe} · ${plural(s.count, "candle")} · ${
    fmtCount(s.gaps.missing)
  } missing in ${plural(s.gaps.ranges, "gap")} · ${plural(s.holes.ranges, "hole")} · ${s.state}`;
  $("coverage-from").textContent = fmtTime(from);
  $("coverage-to").textContent = fmtTime(to);
}
