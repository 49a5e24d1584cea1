/**
 * Gauges of the stored funding and open-interest histories, refreshed from
 * {@linkcode fundingOverview} and {@linkcode openInterestOverview} (the queries behind
 * `status` and `GET /v1/series`): one label set per exchange × symbol (× period for open
 * interest), removed when a history disappears.
 *
 * @module
 */
import type { Sql } from "../db/client.ts";
import type { Gauge, Labels, Registry } from "../metrics.ts";
import { fundingOverview } from "./funding_status.ts";
import { openInterestOverview } from "./open_interest_overview.ts";

interface Family {
  last: Gauge;
  age: Gauge;
  rows: Gauge;
  holes: Gauge;
}

function family(registry: Registry, prefix: string, what: string, row: string): Family {
  return {
    last: registry.gauge(`${prefix}_last_timestamp_seconds`, `Time of the last stored ${row} (epoch seconds), ${what}`),
    age: registry.gauge(`${prefix}_age_seconds`, `Seconds between now and the last stored ${row}, ${what}`),
    rows: registry.gauge(`${prefix}_rows_stored`, `Stored ${row}s, ${what}`),
    holes: registry.gauge(`${prefix}_holes`, `Confirmed holes (${row}s the exchange never had), ${what}`),
  };
}

/** A fact set of one history for {@linkcode HistoryGauges.refresh}. */
interface Sample {
  labels: Labels;
  last: number | null;
  count: number;
  holes: number;
}

function apply(f: Family, samples: readonly Sample[], known: Map<string, Labels>, nowMs: number): Map<string, Labels> {
  const seen = new Map<string, Labels>();
  for (const s of samples) {
    seen.set(JSON.stringify(s.labels), s.labels);
    f.rows.set(s.labels, s.count);
    f.holes.set(s.labels, s.holes);
    if (s.last === null) {
      f.last.delete(s.labels);
      f.age.delete(s.labels);
    } else {
      f.last.set(s.labels, s.last / 1000);
      f.age.set(s.labels, Math.max(0, (nowMs - s.last) / 1000));
    }
  }
  for (const [k, labels] of known) {
    if (seen.has(k)) continue;
    for (const g of [f.last, f.age, f.rows, f.holes]) g.delete(labels);
  }
  return seen;
}

/** The funding and open-interest gauges of one registry. */
export class HistoryGauges {
  readonly #funding: Family;
  readonly #openInterest: Family;
  #knownFunding = new Map<string, Labels>();
  #knownOpenInterest = new Map<string, Labels>();

  /**
   * Registers `candlekeep_funding_*{exchange,symbol}` and
   * `candlekeep_open_interest_*{exchange,symbol,period}`: `last_timestamp_seconds`,
   * `age_seconds`, `rows_stored`, `holes`.
   */
  constructor(registry: Registry) {
    this.#funding = family(registry, "candlekeep_funding", "per perpetual", "funding rate");
    this.#openInterest = family(registry, "candlekeep_open_interest", "per perpetual and period", "open-interest row");
  }

  /** Reads both overviews and sets the gauges; ages are relative to `nowMs`. */
  async refresh(sql: Sql, nowMs: number): Promise<void> {
    const [funding, oi] = await Promise.all([fundingOverview(sql), openInterestOverview(sql, nowMs)]);
    this.#knownFunding = apply(
      this.#funding,
      funding.map((f) => ({
        labels: { exchange: f.exchange, symbol: f.symbol },
        last: f.last,
        count: f.count,
        holes: f.holes,
      })),
      this.#knownFunding,
      nowMs,
    );
    this.#knownOpenInterest = apply(
      this.#openInterest,
      oi.map((o) => ({
        labels: { exchange: o.exchange, symbol: o.symbol, period: o.period },
        last: o.lastTs,
        count: o.count,
        holes: o.holes,
      })),
      this.#knownOpenInterest,
      nowMs,
    );
  }
}
