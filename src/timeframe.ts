const UNIT_MS: Record<string, number> = {
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/** Monday 1970-01-05T00:00:00Z: weeks are aligned to Mondays in UTC. */
const WEEK_ORIGIN_MS = 4 * 86_400_000;

/** Error thrown for a timeframe string that cannot be understood. */
export class TimeframeError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "TimeframeError";
  }
}

/**
 * Length of a ccxt timeframe in milliseconds: `1m` → 60000, `4h`, `1d`, `1w`.
 * Months (`1M`) have no fixed length and are rejected.
 */
export function timeframeMs(timeframe: string): number {
  const match = /^([1-9][0-9]{0,3})([smhdw])$/.exec(timeframe);
  if (!match) {
    throw new TimeframeError(
      `Cannot parse timeframe: current value is "${timeframe}", expected a count and a unit s, m, h, d or w such as 1m, 15m, 4h, 1d`,
    );
  }
  return Number(match[1]) * UNIT_MS[match[2]];
}

/** Whether `timeframe` is a valid fixed-length timeframe. */
export function isTimeframe(timeframe: string): boolean {
  try {
    timeframeMs(timeframe);
    return true;
  } catch {
    return false;
  }
}

/** The UTC origin buckets of this length are aligned to (Mondays for whole weeks, else the epoch). */
export function bucketOrigin(stepMs: number): number {
  return stepMs % UNIT_MS.w === 0 ? WEEK_ORIGIN_MS : 0;
}

/** Start of the bucket of length `stepMs` that contains `ms`, aligned in UTC. */
export function floorTo(ms: number, stepMs: number): number {
  const origin = bucketOrigin(stepMs);
  return Math.floor((ms - origin) / stepMs) * stepMs + origin;
}

/** Whether `ms` is exactly on a bucket boundary of length `stepMs`. */
export function isAligned(ms: number, stepMs: number): boolean {
  return floorTo(ms, stepMs) === ms;
}

/** Whether `timeframe` is a calendar month (`1M`): buckets start on the 1st, 00:00 UTC. */
export function isMonthTimeframe(timeframe: string): boolean {
  return timeframe === "1M";
}

/** Start of the UTC calendar month that contains `ms`. */
export function floorMonth(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
}

/** Start of the UTC calendar month after the one that contains `ms`. */
export function nextMonth(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}
