import type { SeriesOverview } from "../db/overview.ts";
import { seriesDocument, type StoredHistories } from "../derivatives/overview_json.ts";

function iso(ms: number | null): string {
  return ms === null ? "-" : new Date(ms).toISOString().replace(".000Z", "Z");
}

/** Formats a lag in ms as `45s`, `12m`, `3h05m` or `2d04h`. */
export function formatLag(ms: number | null): string {
  if (ms === null) return "-";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, "0")}h`;
}

/** A plain-text table of series for the `status` command. */
export function renderStatusTable(rows: readonly SeriesOverview[], _nowMs: number): string {
  const header = ["id", "exchange", "symbol", "tf", "first", "last", "count", "gaps", "holes", "lag", "live", "state"];
  const body = rows.map((r) => [
    String(r.id),
    r.exchange,
    r.symbol,
    r.price === "trade" ? r.timeframe : `${r.timeframe} ${r.price}`,
    iso(r.firstTs),
    iso(r.lastTs),
    r.count.toLocaleString("en-US"),
    r.gaps.ranges === 0 ? "0" : `${r.gaps.missing} in ${r.gaps.ranges}`,
    String(r.holes.ranges),
    formatLag(r.lagMs),
    r.active ? r.liveSource : "-",
    r.active
      ? r.state + (r.stateReason ? ` (${r.stateReason})` : "")
      : `inactive${r.stateReason ? ` (${r.stateReason})` : ""}`,
  ]);
  if (body.length === 0) return "No series yet: set SYMBOLS (and EXCHANGES, TIMEFRAMES) and run start or backfill.";
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => i === cells.length - 1 ? c : c.padEnd(widths[i])).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}

/** The `status --json` document: the same facts as the tables, in the shape of `GET /v1/series`. */
export function statusJson(histories: StoredHistories, nowMs: number) {
  return { generated_at: new Date(nowMs).toISOString(), ...seriesDocument(histories) };
}
