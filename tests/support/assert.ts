/**
 * Small assertion helpers (JSR's std/assert cannot be reached from our machines).
 *
 * @module
 */

/** Thrown by the helpers below. */
export class AssertionError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "AssertionError";
  }
}

/** Fails unless `condition` is truthy. */
export function assert(condition: unknown, message = "Assertion failed"): asserts condition {
  if (!condition) throw new AssertionError(message);
}

function canonical(value: unknown): unknown {
  if (value instanceof Date) return { $date: value.toISOString() };
  if (value instanceof Map) return { $map: [...value.entries()].map(([k, v]) => [canonical(k), canonical(v)]) };
  if (value instanceof Set) return { $set: [...value].map(canonical) };
  if (Array.isArray(value)) return value.map(canonical);
  if (typeof value === "bigint") return { $bigint: value.toString() };
  if (typeof value === "number" && Number.isNaN(value)) return { $nan: true };
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value).sort().filter((k) => (value as Record<string, unknown>)[k] !== undefined)
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** Deep structural equality (dates by instant, undefined keys ignored). */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  const a = JSON.stringify(canonical(actual));
  const e = JSON.stringify(canonical(expected));
  if (a !== e) {
    throw new AssertionError(
      `${message ? message + ": " : ""}values differ\n  actual:   ${a.slice(0, 2000)}\n  expected: ${e.slice(0, 2000)}`,
    );
  }
}

/** Fails unless `fn` throws (an instance of `ErrorClass`, when given); returns the error. */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  ErrorClass?: new (...args: any[]) => E,
  includes?: string,
): E {
  try {
    fn();
  } catch (error) {
    checkError(error, ErrorClass, includes);
    return error as E;
  }
  throw new AssertionError("Expected the function to throw");
}

/** Fails unless the promise rejects (with an instance of `ErrorClass`, when given); returns the error. */
export async function assertRejects<E extends Error = Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  ErrorClass?: new (...args: any[]) => E,
  includes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    checkError(error, ErrorClass, includes);
    return error as E;
  }
  throw new AssertionError("Expected the promise to reject");
}

function checkError(
  error: unknown,
  // deno-lint-ignore no-explicit-any
  ErrorClass?: new (...args: any[]) => Error,
  includes?: string,
): void {
  if (ErrorClass && !(error instanceof ErrorClass)) {
    throw new AssertionError(`Expected ${ErrorClass.name}, got ${String(error)}`);
  }
  if (includes && !(error instanceof Error && error.message.includes(includes))) {
    throw new AssertionError(`Expected the error message to include "${includes}", got "${(error as Error).message}"`);
  }
}

/** Fails unless `actual` is within `tolerance` of `expected`. */
export function assertAlmostEquals(actual: number, expected: number, tolerance: number, message?: string): void {
  if (!(Math.abs(actual - expected) <= tolerance)) {
    throw new AssertionError(`${message ? message + ": " : ""}${actual} is not within ${tolerance} of ${expected}`);
  }
}
