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
