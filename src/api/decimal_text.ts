/**
 * Decimal text of candle values: the shortest exact decimal of a stored double (what the
 * exchange sent) and the normal form of a `numeric` sum (no trailing zeros).
 *
 * @module
 */

/**
 * `value` as its shortest exact decimal text: a double by its shortest round-trip form
 * (`String`), a decimal string (a PostgreSQL `numeric`) without trailing fractional zeros
 * (`1234.5600` → `1234.56`, `10.000` → `10`). Null for NaN and infinities.
 */
export function decimalText(value: number | string): string | null {
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : null;
  if (!/^-?\d+(\.\d+)?$/.test(value)) return null;
  if (!value.includes(".")) return value === "-0" ? "0" : value;
  const trimmed = value.replace(/0+$/, "").replace(/\.$/, "");
  return trimmed === "-0" ? "0" : trimmed;
}

/** `text` (a decimal, optionally with an exponent) as digits and a power of ten: value = digits × 10^-scale. */
function scaled(text: string): { digits: bigint; scale: number } | null {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (!m) return null;
  const fraction = m[3] ?? "";
  let digits = BigInt(m[2] + fraction);
  let scale = fraction.length - Number(m[4] ?? 0);
  if (scale < 0) {
    digits *= 10n ** BigInt(-scale);
    scale = 0;
  }
  return { digits: m[1] === "-" ? -digits : digits, scale };
}

/**
 * The exact sum of two decimals (doubles by their shortest round-trip form, or decimal text),
 * as decimal text without trailing zeros: `0.1 + 0.2` is `0.3`. Null when either is not a
 * finite decimal.
 */
export function addDecimalText(a: number | string, b: number | string): string | null {
  const x = scaled(typeof a === "number" ? (Number.isFinite(a) ? String(a) : "") : a);
  const y = scaled(typeof b === "number" ? (Number.isFinite(b) ? String(b) : "") : b);
  if (x === null || y === null) return null;
  const scale = Math.max(x.scale, y.scale);
  const sum = x.digits * 10n ** BigInt(scale - x.scale) + y.digits * 10n ** BigInt(scale - y.scale);
  const negative = sum < 0n;
  const text = (negative ? -sum : sum).toString().padStart(scale + 1, "0");
  const whole = text.slice(0, text.length - scale);
  const fraction = scale > 0 ? `.${text.slice(text.length - scale)}` : "";
  return decimalText(`${negative ? "-" : ""}${whole}${fraction}`);
}
