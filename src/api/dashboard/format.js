// Formatting helpers of the dashboard: times, lags, escaping, and the market's decimals.

/** Most decimals shown; beyond this a value is taken as not exactly decimal. */
export const MAX_DECIMALS = 12;
const UNIT = { s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5 };

/** Milliseconds of a timeframe such as "5m"; NaN when it is not one. */
export const tfMs = (tf) => /^\d+[smhdw]$/.test(tf) ? Number(tf.slice(0, -1)) * UNIT[tf.slice(-1)] : NaN;

/** "2024-03-01 12:00" (UTC), or "–". */
export const fmtTime = (ms) =>
  ms === null || ms === undefined || Number.isNaN(ms) ? "–" : new Date(ms).toISOString().replace("T", " ").slice(0, 16);

/** ISO-8601 without milliseconds: "2024-03-01T12:00:00Z". */
export const isoSeconds = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

/** An integer with thousands separators. */
export const fmtCount = (n) => n.toLocaleString("en-US");

/** A number with exactly `decimals` decimals and thousands separators. */
export const fmtFixed = (n, decimals) =>
  n.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });

/** A lag in seconds as "42s", "5m", "3h", "2d". */
export function fmtLag(s) {
  if (s === null || s === undefined) return "–";
  if (s < 90) return `${s}s`;
  if (s < 5400) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}

/** A duration in milliseconds as "3h 20m" or "2d 4h". */
export function fmtDuration(ms) {
  const m = Math.round(ms / 6e4);
  if (m < 60) return `${m}m`;
  if (m < 2880) return `${Math.floor(m / 60)}h${m % 60 ? ` ${m % 60}m` : ""}`;
  return `${Math.floor(m / 1440)}d${Math.floor(m / 60) % 24 ? ` ${Math.floor(m / 60) % 24}h` : ""}`;
}

/** `s` escaped for HTML text and attributes. */
export const esc = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

/**
 * Decimals a value was written with: the fewest that give it back. Prices arrive as the exchange's
 * exact decimals; summed volumes (resampled) carry float noise, hence the relative tolerance.
 */
export function decimalsOf(v) {
  if (!Number.isFinite(v) || Number.isInteger(v)) return 0;
  const tolerance = Math.abs(v) * 1e-12;
  for (let d = 1; d < MAX_DECIMALS; d++) {
    if (Math.abs(Number(v.toFixed(d)) - v) <= tolerance) return d;
  }
  return MAX_DECIMALS;
}

/** The market's decimals seen in `candles`: { price, volume }, at least `start`. */
export function precisionOf(candles, start = { price: 0, volume: 0 }) {
  let price = start.price, volume = start.volume;
  for (const c of candles) {
    price = Math.max(price, decimalsOf(c.open), decimalsOf(c.high), decimalsOf(c.low), decimalsOf(c.close));
    volume = Math.max(volume, decimalsOf(c.volume));
  }
  return { price, volume };
}
