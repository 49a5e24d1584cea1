/**
 * The funding gap check: which funding times a stored history lacks, given the contract's
 * funding interval (stated by the exchange or inferred from the stored rows).
 *
 * @module
 */

const MINUTE = 60_000;

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

/**
 * Funding times on the grid of `intervalMs` between the first and the last of `stored` (ms,
 * sorted) that are neither stored (within a minute: some exchanges stamp a few ms late) nor
 * confirmed `holes`. Nothing before the first stored row counts: history starts there.
 */
export function missingFundingTimes(
  stored: readonly number[],
  intervalMs: number,
  holes: readonly number[] = [],
): number[] {
  if (stored.length < 2 || intervalMs <= 0) return [];
  const near = (set: Set<number>, t: number) => set.has(Math.round(t / MINUTE));
  const have = new Set(stored.map((t) => Math.round(t / MINUTE)));
  const known = new Set(holes.map((t) => Math.round(t / MINUTE)));
  const out: number[] = [];
  const last = stored[stored.length - 1];
  for (let t = Math.round(stored[0] / intervalMs) * intervalMs + intervalMs; t < last - MINUTE; t += intervalMs) {
    if (!near(have, t) && !near(known, t)) out.push(t);
  }
  return out;
}

/** Groups sorted grid times into runs `[from, to]` of consecutive funding times. */
export function fundingRuns(times: readonly number[], intervalMs: number): { from: number; to: number }[] {
  const runs: { from: number; to: number }[] = [];
  for (const t of times) {
    const run = runs[runs.length - 1];
    if (run && t - run.to === intervalMs) run.to = t;
    else runs.push({ from: t, to: t });
  }
  return runs;
}
