/**
 * The funding gap check: which funding times a stored history lacks. Contracts change their
 * funding interval over time (Binance moved many perpetuals from 8 h to 4 h or 1 h), so the
 * interval in force is read from the stored rows themselves, point by point: a regime is a
 * spacing the neighbouring rows repeat, a gap is a spacing that is a whole multiple (≥ 2) of
 * the regime in force, or at a switch a spacing longer than its transition step (see
 * `decompose`): the times it lacks are old steps after its start, then new steps before its
 * end. The interval the exchange states today only helps at the recent end, where the data is
 * too short to establish a regime.
 *
 * Funding times are compared on whole hours: rows more than a minute off an hour are rejected
 * when fetched, and exchanges stamp a few ms late (Binance), so `08:00:00.005` is 08:00.
 *
 * @module
 */

const MINUTE = 60_000;
const HOUR = 3_600_000;
/** Spacings looked at (from the current one on) to accept a new regime. */
const LOOKAHEAD = 4;

/** A funding time on the hourly grid (the nearest whole hour). */
export function fundingSlot(ts: number): number {
  return Math.round(ts / HOUR) * HOUR;
}

/** The most common spacing between consecutive `times` (ms, sorted), or null with fewer than two. */
export function inferFundingInterval(times: readonly number[]): number | null {
  const counts = new Map<number, number>();
  for (let i = 1; i < times.length; i++) {
    const step = Math.round((times[i] - times[i - 1]) / MINUTE) * MINUTE;
    if (step > 0) counts.set(step, (counts.get(step) ?? 0) + 1);
  }
  let best: number | null = null;
  for (const [step, n] of counts) {
    if (best === null || n > counts.get(best)! || (n === counts.get(best)! && step < best)) best = step;
  }
  return best;
}

/** Missing funding times between two known points (a stored row or a confirmed hole). */
export interface FundingGap {
  /** The known point before the gap (ms, on the hour). */
  after: number;
  /** The known point after the gap (ms, on the hour). */
  before: number;
  /** The missing funding times, oldest first. */
  times: number[];
  /** The smallest interval (ms) in force across the gap. */
  intervalMs: number;
}

/** Options of {@linkcode findFundingGaps}. */
export interface FundingGapOptions {
  /** Funding times confirmed as never published (they count as known points). */
  holes?: readonly number[];
  /** The interval the exchange states today (ms): consulted only at the recent end. */
  statedMs?: number | null;
}

/** What {@linkcode findFundingGaps} found. */
export interface FundingGapAnalysis {
  gaps: FundingGap[];
  /** The interval in force at the last known point (ms), or null when none is established. */
  currentMs: number | null;
}

/**
 * How a switch from `old` to `next` spans `span`: `a` steps of the old interval, one step of
 * exactly `old` or of at most `next` (the new grid need not continue the old one: 1 h → 8 h goes
 * 19:00 → 00:00), then `b` steps of the new interval; the fewest missing times `a + b` (old
 * steps first on a tie).
 */
function decompose(span: number, old: number | null, next: number): { a: number; b: number } {
  const most = Math.ceil(span / Math.min(old ?? next, next));
  for (let total = 0; total <= most; total++) {
    for (let a = old === null ? 0 : total; a >= 0; a--) {
      const rest = span - a * (old ?? 0) - (total - a) * next;
      if ((rest > 0 && rest <= next) || rest === old) return { a, b: total - a };
    }
  }
  return { a: 0, b: 0 };
}

/**
 * The funding gaps of a stored history (`stored`: ms, any order, a few ms off the hour allowed):
 * nothing before the first or after the last known point counts (see the module comment).
 */
export function findFundingGaps(stored: readonly number[], options: FundingGapOptions = {}): FundingGapAnalysis {
  const points = [...new Set([...stored, ...(options.holes ?? [])].map(fundingSlot))].sort((a, b) => a - b);
  const spacings = points.slice(1).map((t, i) => t - points[i]);
  const stated = options.statedMs && options.statedMs > 0 ? options.statedMs : null;
  /** Spacings from `i` on, with the stated interval appended when they run out (the recent end). */
  const window = (i: number) => {
    const w = spacings.slice(i, i + LOOKAHEAD);
    return w.length < LOOKAHEAD && stated !== null ? [...w, stated] : w;
  };
  /**
   * A new regime starts at `i` when it is the spacing at `i` or the next one, the spacings after
   * `i` are multiples of it and the window repeats it (the spacing at `i` may mix steps of the
   * old and the new regime).
   */
  const accepts = (v: number, i: number, lenient: boolean) => {
    const w = window(i);
    return (w[0] === v || w[1] === v) && w.slice(1).every((d) => d % v === 0) &&
      (w.filter((d) => d === v).length >= 2 || (lenient && v === stated && w[0] % v === 0));
  };
  const gaps: FundingGap[] = [];
  let current: number | null = null;
  for (let i = 0; i < spacings.length; i++) {
    const d = spacings[i];
    if (d === current) continue;
    const candidates = [...new Set(window(i))].filter((v) => v !== current).sort((a, b) => a - b);
    // with no regime yet, the stated interval is taken where the data agrees with it
    const next = candidates.find((v) => accepts(v, i, current === null)) ?? null;
    if (next !== null) {
      const old = current ?? next;
      const { a, b } = decompose(d, current, next);
      current = next;
      if (a + b === 0) continue;
      const times: number[] = [];
      for (let k = 1; k <= a; k++) times.push(points[i] + k * old);
      for (let k = b; k >= 1; k--) times.push(points[i + 1] - k * next);
      gaps.push({ after: points[i], before: points[i + 1], times, intervalMs: a > 0 ? Math.min(old, next) : next });
      continue;
    }
    if (current === null || d % current !== 0) continue; // irregular: an odd extra row, not a gap
    const times: number[] = [];
    for (let t = points[i] + current; t < points[i + 1]; t += current) times.push(t);
    gaps.push({ after: points[i], before: points[i + 1], times, intervalMs: current });
  }
  return { gaps, currentMs: current };
}

/**
 * Funding times missing between the first and the last known point of `stored` (ms), following
 * the interval in force at each point (see {@linkcode findFundingGaps}).
 */
export function missingFundingTimes(stored: readonly number[], options: FundingGapOptions = {}): number[] {
  return findFundingGaps(stored, options).gaps.flatMap((g) => g.times);
}
