/**
 * The funding gap check on histories whose funding interval changed: 8 h → 4 h, 4 h → 8 h and
 * 8 h → 1 h switches leave no missing times, while a row missing in either regime, or right at
 * the switch, is found; rows stamped a few ms off the hour change nothing.
 */
import { findFundingGaps, fundingSlot, missingFundingTimes } from "../../src/derivatives/funding_gaps.ts";
import { assertEquals } from "../support/assert.ts";

const HOUR = 3_600_000;
const T0 = Date.UTC(2024, 0, 1);
const t = (h: number) => T0 + h * HOUR;

/** Funding times from `from` to `to` hours every `every` hours, for each regime in turn. */
function history(...regimes: [from: number, to: number, every: number][]): number[] {
  const out = new Set<number>();
  for (const [from, to, every] of regimes) for (let h = from; h <= to; h += every) out.add(t(h));
  return [...out].sort((a, b) => a - b);
}

const without = (times: number[], ...hours: number[]) => times.filter((x) => !hours.some((h) => x === t(h)));

const EIGHT_TO_FOUR = history([0, 160, 8], [164, 240, 4]);
const FOUR_TO_EIGHT = history([0, 80, 4], [88, 240, 8]);
const EIGHT_TO_ONE = history([0, 160, 8], [161, 200, 1]);

Deno.test("funding gaps: a change of interval is no gap, whichever interval is stated today", () => {
  for (const times of [EIGHT_TO_FOUR, FOUR_TO_EIGHT, EIGHT_TO_ONE, history([0, 80, 1], [84, 200, 4])]) {
    for (const statedMs of [null, HOUR, 4 * HOUR, 8 * HOUR]) {
      assertEquals(missingFundingTimes(times, { statedMs }), [], `stated ${statedMs}`);
    }
  }
  // and back again: 8 h → 4 h → 8 h
  assertEquals(missingFundingTimes(history([0, 80, 8], [84, 120, 4], [128, 240, 8]), { statedMs: 8 * HOUR }), []);
  assertEquals(findFundingGaps(EIGHT_TO_FOUR).currentMs, 4 * HOUR);
  assertEquals(findFundingGaps(FOUR_TO_EIGHT).currentMs, 8 * HOUR);
  assertEquals(findFundingGaps(EIGHT_TO_ONE).currentMs, HOUR);
});

Deno.test("funding gaps: a missing row in either regime is found, with the regime's interval", () => {
  for (const statedMs of [null, 4 * HOUR, 8 * HOUR]) {
    assertEquals(missingFundingTimes(without(EIGHT_TO_FOUR, 80), { statedMs }), [t(80)]);
    assertEquals(missingFundingTimes(without(EIGHT_TO_FOUR, 200), { statedMs }), [t(200)]);
    assertEquals(missingFundingTimes(without(EIGHT_TO_FOUR, 80, 88, 200, 204), { statedMs }), [
      t(80),
      t(88),
      t(200),
      t(204),
    ]);
    assertEquals(missingFundingTimes(without(FOUR_TO_EIGHT, 40), { statedMs }), [t(40)]);
    assertEquals(missingFundingTimes(without(FOUR_TO_EIGHT, 40, 44, 48), { statedMs }), [t(40), t(44), t(48)]);
    assertEquals(missingFundingTimes(without(FOUR_TO_EIGHT, 160), { statedMs }), [t(160)]);
    assertEquals(missingFundingTimes(without(EIGHT_TO_ONE, 180), { statedMs }), [t(180)]);
    assertEquals(missingFundingTimes(without(EIGHT_TO_ONE, 40), { statedMs }), [t(40)]);
  }
  const [gap] = findFundingGaps(without(EIGHT_TO_FOUR, 200, 204)).gaps;
  assertEquals(gap, { after: t(196), before: t(208), times: [t(200), t(204)], intervalMs: 4 * HOUR });
  assertEquals(findFundingGaps(without(EIGHT_TO_FOUR, 80)).gaps[0].intervalMs, 8 * HOUR);
});

Deno.test("funding gaps: a row missing right at the switch is found", () => {
  // 8 h → 4 h: the last 8-hour row (160) missing leaves 152 → 164, one 8 h and one 4 h step
  assertEquals(missingFundingTimes(without(EIGHT_TO_FOUR, 160)), [t(160)]);
  // the first 4-hour row missing leaves 160 → 168, which reads as 8 h lasting one funding longer
  // (the history alone cannot tell): nothing is missing, rather than a false hole
  assertEquals(missingFundingTimes(without(EIGHT_TO_FOUR, 164)), []);
  // the last 8-hour row and the first 4-hour row missing: 152 → 168
  assertEquals(missingFundingTimes(without(EIGHT_TO_FOUR, 160, 164)), [t(160)]);
  // 4 h → 8 h: the last 4-hour row (80) missing leaves 76 → 88; the first 8-hour one (88), 80 → 96
  assertEquals(missingFundingTimes(without(FOUR_TO_EIGHT, 80)), [t(80)]);
  assertEquals(missingFundingTimes(without(FOUR_TO_EIGHT, 88)), [t(88)]);
  // 8 h → 1 h: the last 8-hour row missing, the first 1-hour rows missing
  assertEquals(missingFundingTimes(without(EIGHT_TO_ONE, 160)), [t(160)]);
  assertEquals(missingFundingTimes(without(EIGHT_TO_ONE, 161)), [t(161)]);
  assertEquals(missingFundingTimes(without(EIGHT_TO_ONE, 161, 162)), [t(161), t(162)]);
  // a missing row just before the switch, with the old interval's last step still ahead
  assertEquals(missingFundingTimes(without(EIGHT_TO_ONE, 144)), [t(144)]);
  // 1 h → 8 h: the new grid need not continue the old one (19:00 → 00:00), not a gap
  assertEquals(missingFundingTimes(history([0, 19, 1], [24, 96, 8])), []);
  assertEquals(missingFundingTimes(history([0, 19, 1], [32, 96, 8])), [t(24)]);
});

Deno.test("funding gaps: rows a few ms off the hour, confirmed holes and odd extra rows make no gaps", () => {
  const jitter = (times: number[]) => times.map((x, i) => x + [0, 5, 1, 8, -3, 17][i % 6]);
  for (const times of [EIGHT_TO_FOUR, FOUR_TO_EIGHT, EIGHT_TO_ONE]) {
    assertEquals(missingFundingTimes(jitter(times), { statedMs: 8 * HOUR }), []);
  }
  assertEquals(missingFundingTimes(jitter(without(EIGHT_TO_FOUR, 80, 200))), [t(80), t(200)]);
  assertEquals(fundingSlot(t(8) + 40_000), t(8));
  assertEquals(fundingSlot(t(8) - 7), t(8));
  // confirmed holes count as known points: not missing, and they do not split a regime
  assertEquals(missingFundingTimes(without(EIGHT_TO_FOUR, 80, 200), { holes: [t(80), t(200)] }), []);
  assertEquals(missingFundingTimes(without(EIGHT_TO_FOUR, 80, 200), { holes: [t(200)] }), [t(80)]);
  // an extra settlement at an odd time is not a new regime
  assertEquals(missingFundingTimes([...history([0, 80, 8]), t(41)].sort((a, b) => a - b)), []);
  assertEquals(missingFundingTimes([t(0)]), []);
  assertEquals(missingFundingTimes([]), []);
});

Deno.test("funding gaps: the stated interval settles only the recent end", () => {
  // too little data for a regime: the stated interval applies where the spacings are multiples of it
  assertEquals(missingFundingTimes([t(0), t(16)], { statedMs: 8 * HOUR }), [t(8)]);
  assertEquals(missingFundingTimes([t(0), t(16)]), []);
  // a switch to 8 h seen in one spacing only: the stated 8 h confirms it
  const recent = history([0, 80, 4], [88, 88, 8]);
  assertEquals(missingFundingTimes(recent, { statedMs: 8 * HOUR }), []);
  // a stated 4 h does not turn an 8-hour history into one with every other row missing
  assertEquals(missingFundingTimes(history([0, 240, 8]), { statedMs: 4 * HOUR }), []);
  assertEquals(missingFundingTimes(without(history([0, 240, 8]), 120), { statedMs: 4 * HOUR }), [t(120)]);
});
