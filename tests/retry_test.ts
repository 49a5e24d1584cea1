import { assertEquals, assertRejects } from "./support/assert.ts";
import { backoffDelay, retry } from "../src/retry.ts";

/** A fake clock: sleeping advances it and records the delay. */
function fakeTime() {
  let now = 0;
  const slept: number[] = [];
  return {
    slept,
    now: () => now,
    sleep: (ms: number) => {
      slept.push(ms);
      now += ms;
      return Promise.resolve();
    },
  };
}

/** A function that fails `failures` times with the given errors, then returns "done". */
function flaky(failures: number, error: (attempt: number) => Error = (n) => new Error(`failure ${n}`)) {
  const attempts: number[] = [];
  return {
    attempts,
    fn: (attempt: number) => {
      attempts.push(attempt);
      return attempts.length <= failures ? Promise.reject(error(attempt)) : Promise.resolve("done");
    },
  };
}

Deno.test("retry: a success on the first try neither sleeps nor calls onRetry", async () => {
  const time = fakeTime();
  const calls = flaky(0);
  let retried = 0;
  const result = await retry(calls.fn, { retries: 3, delayMs: 10, ...time, onRetry: () => retried++ });
  assertEquals(result, "done");
  assertEquals(calls.attempts, [1]);
  assertEquals(time.slept, []);
  assertEquals(retried, 0);
});

Deno.test("retry: retries with the delay of each retry number, then returns the result", async () => {
  const time = fakeTime();
  const calls = flaky(3);
  const seen: [string, number, number][] = [];
  const result = await retry(calls.fn, {
    retries: 5,
    delayMs: (n) => n * 100,
    ...time,
    onRetry: (error, n, delayMs) => seen.push([(error as Error).message, n, delayMs]),
  });
  assertEquals(result, "done");
  assertEquals(calls.attempts, [1, 2, 3, 4]);
  assertEquals(time.slept, [100, 200, 300]);
  assertEquals(seen, [["failure 1", 1, 100], ["failure 2", 2, 200], ["failure 3", 3, 300]]);
});

Deno.test("retry: the last error is thrown as is once the retries are spent", async () => {
  const time = fakeTime();
  const calls = flaky(10);
  const error = await assertRejects(() => retry(calls.fn, { retries: 2, delayMs: 5, ...time }), Error);
  assertEquals(error.message, "failure 3");
  assertEquals(calls.attempts, [1, 2, 3], "the first try plus 2 retries");
  assertEquals(time.slept, [5, 5]);
});

Deno.test("retry: an error shouldRetry refuses is thrown at once", async () => {
  const time = fakeTime();
  const calls = flaky(10, (n) => n === 2 ? new TypeError("fatal") : new Error("transient"));
  const error = await assertRejects(
    () => retry(calls.fn, { retries: 5, delayMs: 5, ...time, shouldRetry: (e) => !(e instanceof TypeError) }),
    TypeError,
  );
  assertEquals(error.message, "fatal");
  assertEquals(calls.attempts, [1, 2]);
  assertEquals(time.slept, [5]);
});

Deno.test("retry: timeoutMs stops retrying once that much time has passed since the first try", async () => {
  const time = fakeTime();
  const calls = flaky(100);
  const error = await assertRejects(() => retry(calls.fn, { timeoutMs: 1000, delayMs: 250, ...time }), Error);
  // Failures at 0, 250, 500, 750 and 1000 ms are retried (not over 1000 ms yet); the one at 1250 ms is not.
  assertEquals(calls.attempts, [1, 2, 3, 4, 5, 6]);
  assertEquals(time.slept, [250, 250, 250, 250, 250]);
  assertEquals(error.message, "failure 6");
});

Deno.test("retry: with both budgets the first one spent ends it", async () => {
  const time = fakeTime();
  const calls = flaky(100);
  await assertRejects(() => retry(calls.fn, { retries: 2, timeoutMs: 60_000, delayMs: 10, ...time }), Error);
  assertEquals(calls.attempts.length, 3);
});

Deno.test("retry: without retries or timeoutMs it refuses to loop forever", async () => {
  const calls = flaky(0);
  const error = await assertRejects(() => retry(calls.fn, { delayMs: 1 }), RangeError);
  assertEquals(error.message, "Cannot retry without a budget: current value is neither retries nor timeoutMs");
  assertEquals(calls.attempts, []);
});

Deno.test("retry: without an injected sleep it waits on the real clock", async () => {
  const calls = flaky(1);
  const started = performance.now();
  assertEquals(await retry(calls.fn, { retries: 1, delayMs: 30 }), "done");
  const elapsed = performance.now() - started;
  if (elapsed < 25) throw new Error(`retried after ${elapsed} ms, expected about 30 ms`);
});

Deno.test("backoffDelay: doubles from the base, spread by the jitter", () => {
  assertEquals([1, 2, 3].map((n) => backoffDelay(n, { baseMs: 100, random: () => 0.5 })), [100, 200, 400]);
  assertEquals(backoffDelay(1, { baseMs: 100, jitter: 0.5, random: () => 0 }), 50);
  assertEquals(backoffDelay(1, { baseMs: 100, jitter: 0, random: () => 0.99 }), 100);
});
