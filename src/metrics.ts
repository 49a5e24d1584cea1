/**
 * A small Prometheus registry: counters, gauges and histograms with labels, rendered in the
 * text exposition format. One registry is created in `main.ts` and passed down.
 *
 * @module
 */

/** Label values by label name. */
export type Labels = Record<string, string>;

function key(labels: Labels): string {
  return JSON.stringify(Object.keys(labels).sort().map((k) => [k, labels[k]]));
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(
    /"/g,
    '\\"',
  );
}

function renderLabels(labels: Labels, extra?: [string, string]): string {
  const pairs = Object.keys(labels).sort().map((k) => `${k}="${escapeLabel(labels[k])}"`);
  if (extra) pairs.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return pairs.length ? `{${pairs.join(",")}}` : "";
}

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

interface Metric {
  readonly name: string;
  readonly help: string;
  render(): string[];
}

/** A monotonically increasing counter. */
export class Counter implements Metric {
  readonly #values = new Map<string, { labels: Labels; value: number }>();
  /** Creates the counter; use {@linkcode Registry.counter}. */
  constructor(readonly name: string, readonly help: string) {}
  /** Adds `by` (default 1) to the series with these labels. */
  inc(labels: Labels = {}, by = 1): void {
    const k = key(labels);
    const entry = this.#values.get(k);
    if (entry) entry.value += by;
    else this.#values.set(k, { labels, value: by });
  }
  /** Sets the total for these labels from a source that counts by itself (never lower it). */
  setTotal(labels: Labels, value: number): void {
    this.#values.set(key(labels), { labels, value });
  }
  /** Current value for these labels. */
  get(labels: Labels = {}): number {
    return this.#values.get(key(labels))?.value ?? 0;
  }
  /** Text exposition lines. */
  render(): string[] {
    return [...this.#values.values()].map((e) => `${this.name}${renderLabels(e.labels)} ${formatNumber(e.value)}`);
  }
}

/** A value that goes up and down. */
export class Gauge implements Metric {
  readonly #values = new Map<string, { labels: Labels; value: number }>();
  /** Creates the gauge; use {@linkcode Registry.gauge}. */
  constructor(readonly name: string, readonly help: string) {}
  /** Sets the value for these labels. */
  set(labels: Labels, value: number): void {
    this.#values.set(key(labels), { labels, value });
  }
  /** Removes the series with these labels. */
  delete(labels: Labels): void {
    this.#values.delete(key(labels));
  }
  /** Current value for these labels. */
  get(labels: Labels = {}): number | undefined {
    return this.#values.get(key(labels))?.value;
  }
  /** Text exposition lines. */
  render(): string[] {
    return [...this.#values.values()].map((e) => `${this.name}${renderLabels(e.labels)} ${formatNumber(e.value)}`);
  }
}

/** Default latency buckets in seconds. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/** A cumulative histogram. */
export class Histogram implements Metric {
  readonly #values = new Map<
    string,
    { labels: Labels; counts: number[]; sum: number; count: number }
  >();
  /** Creates the histogram; use {@linkcode Registry.histogram}. */
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[] = LATENCY_BUCKETS,
  ) {}
  /** Records one observation. */
  observe(labels: Labels, value: number): void {
    const k = key(labels);
    let e = this.#values.get(k);
    if (!e) {
      e = {
        labels,
        counts: new Array(this.buckets.length).fill(0),
        sum: 0,
        count: 0,
      };
      this.#values.set(k, e);
    }
    for (let i = 0; i < this.buckets.length; i++) {
      if (value <= this.buckets[i]) e.counts[i]++;
    }
    e.sum += value;
    e.count++;
  }
  /** Text exposition lines. */
  render(): string[] {
    const lines: string[] = [];
    for (const e of this.#values.values()) {
      this.buckets.forEach((b, i) =>
        lines.push(
          `${this.name}_bucket${renderLabels(e.labels, ["le", formatNumber(b)])} ${e.counts[i]}`,
        )
      );
      lines.push(
        `${this.name}_bucket${renderLabels(e.labels, ["le", "+Inf"])} ${e.count}`,
      );
      lines.push(
        `${this.name}_sum${renderLabels(e.labels)} ${formatNumber(e.sum)}`,
      );
      lines.push(`${this.name}_count${renderLabels(e.labels)} ${e.count}`);
    }
    return lines;
  }
}

/** Holds every metric and renders them; metrics are created once and reused by name. */
export class Registry {
  readonly #metrics = new Map<string, { type: string; metric: Metric }>();
  readonly #collectors: (() => void | Promise<void>)[] = [];

  #get<M extends Metric>(type: string, name: string, make: () => M): M {
    const existing = this.#metrics.get(name);
    if (existing) {
      if (existing.type !== type) {
        throw new Error(
          `Cannot register ${type} ${name}: current type is ${existing.type}`,
        );
      }
      return existing.metric as M;
    }
    const metric = make();
    this.#metrics.set(name, { type, metric });
    return metric;
  }

  /** The counter called `name`, created on first use. */
  counter(name: string, help: string): Counter {
    return this.#get("counter", name, () => new Counter(name, help));
  }
  /** The gauge called `name`, created on first use. */
  gauge(name: string, help: string): Gauge {
    return this.#get("gauge", name, () => new Gauge(name, help));
  }
  /** The histogram called `name`, created on first use. */
  histogram(
    name: string,
    help: string,
    buckets?: readonly number[],
  ): Histogram {
    return this.#get(
      "histogram",
      name,
      () => new Histogram(name, help, buckets),
    );
  }
  /** Registers a function run before each render, to refresh gauges from their source. */
  collect(fn: () => void | Promise<void>): void {
    this.#collectors.push(fn);
  }
  /** Renders every metric in the Prometheus text format (version 0.0.4). */
  async render(): Promise<string> {
    for (const fn of this.#collectors) await fn();
    const out: string[] = [];
    for (const { type, metric } of this.#metrics.values()) {
      out.push(
        `# HELP ${metric.name} ${metric.help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`,
      );
      out.push(`# TYPE ${metric.name} ${type}`);
      out.push(...metric.render());
    }
    return out.join("\n") + "\n";
  }
}
