/**
 * Prometheus metrics through prom-client: counters, gauges and histograms with labels, plus the
 * standard process and runtime metrics, rendered in the text exposition format 0.0.4. One
 * {@linkcode Registry} is created in `main.ts` and passed down; every instance has its own
 * prom-client registry (the library's global default one is never used), so instances never share
 * or collide.
 *
 * A metric's label names are fixed by its first use (prom-client declares them once); later uses
 * may leave some out but not add new ones.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import process from "node:process";
import client from "prom-client";
// prom-client's default collectors, taken one by one: `collectDefaultMetrics` registers all of them
// at once, including those that report nonsense under Deno (see README, Metrics).
import processCpuTotal from "prom-client/lib/metrics/processCpuTotal.js";
import processStartTime from "prom-client/lib/metrics/processStartTime.js";
import heapSizeAndUsed from "prom-client/lib/metrics/heapSizeAndUsed.js";
import heapSpacesSizeAndUsed from "prom-client/lib/metrics/heapSpacesSizeAndUsed.js";
import { redactor } from "./secrets.ts";

/** Label values by label name. */
export type Labels = Record<string, string>;

type DefaultCollector = (registry: client.Registry) => void;
const DEFAULT_COLLECTORS = [
  processCpuTotal,
  processStartTime,
  heapSizeAndUsed,
  heapSpacesSizeAndUsed,
] as DefaultCollector[];

/** The content type of {@linkcode Registry.render}'s text (Prometheus text format 0.0.4). */
export const CONTENT_TYPE: string = client.Registry.PROMETHEUS_CONTENT_TYPE;

function key(labels: Labels): string {
  return JSON.stringify(Object.keys(labels).sort().map((k) => [k, labels[k]]));
}

type PromMetric = client.Counter | client.Gauge | client.Histogram;

/**
 * The part every metric shares: the prom-client metric, created on first use with the label
 * names of that use, in the owning registry.
 */
abstract class Base<M extends PromMetric> {
  #metric: M | undefined;
  #labelNames: readonly string[] = [];

  /** Creates the metric; use the {@linkcode Registry} methods. */
  constructor(
    readonly name: string,
    readonly help: string,
    protected readonly registry: client.Registry,
  ) {}

  protected abstract create(labelNames: string[]): M;

  /** The prom-client metric for a use with `labels`, created on the first use. */
  protected use(labels: Labels): M {
    if (this.#metric === undefined) {
      this.#labelNames = Object.keys(labels);
      this.#metric = this.create([...this.#labelNames]);
      return this.#metric;
    }
    for (const name in labels) {
      if (!this.#labelNames.includes(name)) {
        throw new Error(
          `Cannot use label ${name} on ${this.name}: current label names are ${this.#labelNames.join(", ") || "none"}`,
        );
      }
    }
    return this.#metric;
  }

  /** The prom-client metric, or undefined before the first use. */
  protected get metric(): M | undefined {
    return this.#metric;
  }
}

/** A monotonically increasing counter. */
export class Counter extends Base<client.Counter> {
  readonly #values = new Map<string, number>();

  protected create(labelNames: string[]): client.Counter {
    return new client.Counter({ name: this.name, help: this.help, labelNames, registers: [this.registry] });
  }

  /** Adds `by` (default 1, never negative) to the series with these labels. */
  inc(labels: Labels = {}, by = 1): void {
    this.use(labels).inc(labels, by);
    const k = key(labels);
    this.#values.set(k, (this.#values.get(k) ?? 0) + by);
  }

  /**
   * Sets the total for these labels from a source that counts by itself. A lower total than
   * the current one restarts the series there (Prometheus reads it as a counter reset).
   */
  setTotal(labels: Labels, value: number): void {
    const metric = this.use(labels);
    const k = key(labels);
    const current = this.#values.get(k);
    if (current !== undefined && value >= current) {
      if (value > current) metric.inc(labels, value - current);
    } else {
      metric.remove(labels);
      metric.inc(labels, value);
    }
    this.#values.set(k, value);
  }

  /** Current value for these labels. */
  get(labels: Labels = {}): number {
    return this.#values.get(key(labels)) ?? 0;
  }
}

/** A value that goes up and down. */
export class Gauge extends Base<client.Gauge> {
  readonly #values = new Map<string, number>();

  protected create(labelNames: string[]): client.Gauge {
    return new client.Gauge({ name: this.name, help: this.help, labelNames, registers: [this.registry] });
  }

  /** Sets the value for these labels. */
  set(labels: Labels, value: number): void {
    this.use(labels).set(labels, value);
    this.#values.set(key(labels), value);
  }

  /** Removes the series with these labels. */
  delete(labels: Labels): void {
    if (!this.#values.delete(key(labels))) return;
    this.metric?.remove(labels);
  }

  /** Current value for these labels. */
  get(labels: Labels = {}): number | undefined {
    return this.#values.get(key(labels));
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
export class Histogram extends Base<client.Histogram> {
  /** Creates the histogram; use {@linkcode Registry.histogram}. */
  constructor(
    name: string,
    help: string,
    registry: client.Registry,
    readonly buckets: readonly number[] = LATENCY_BUCKETS,
  ) {
    super(name, help, registry);
  }

  protected create(labelNames: string[]): client.Histogram {
    return new client.Histogram({
      name: this.name,
      help: this.help,
      labelNames,
      buckets: [...this.buckets],
      registers: [this.registry],
    });
  }

  /** Records one observation. */
  observe(labels: Labels, value: number): void {
    this.use(labels).observe(labels, value);
  }
}

/**
 * Adds the process and runtime metrics to `registry`: prom-client's collectors that work under
 * Deno, and the two it gets wrong here, resident memory and event-loop lag, measured with what
 * Deno does provide.
 */
function addRuntimeMetrics(registry: client.Registry): void {
  for (const add of DEFAULT_COLLECTORS) add(registry);
  new client.Gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes.",
    registers: [registry],
    collect() {
      this.set(process.memoryUsage.rss());
    },
  });
  new client.Gauge({
    name: "nodejs_eventloop_lag_seconds",
    help: "Lag of event loop in seconds.",
    registers: [registry],
    async collect() {
      const started = performance.now();
      await new Promise((resolve) => setImmediate(resolve));
      this.set((performance.now() - started) / 1000);
    },
  });
}

type AnyMetric = Counter | Gauge | Histogram;

/** Holds every metric and renders them; metrics are created once and reused by name. */
export class Registry {
  readonly #prom = new client.Registry();
  readonly #runtime = new client.Registry();
  readonly #metrics = new Map<string, { type: string; metric: AnyMetric }>();
  readonly #collectors: (() => void | Promise<void>)[] = [];

  /** Creates an empty registry holding only the process and runtime metrics. */
  constructor() {
    addRuntimeMetrics(this.#runtime);
  }

  #get<M extends AnyMetric>(type: string, name: string, make: () => M): M {
    const existing = this.#metrics.get(name);
    if (existing) {
      if (existing.type !== type) {
        throw new Error(`Cannot register ${type} ${name}: current type is ${existing.type}`);
      }
      return existing.metric as M;
    }
    if (!client.validateMetricName(name)) throw new Error(`Cannot register ${type}: current name is "${name}"`);
    if (this.#runtime.getSingleMetric(name)) {
      throw new Error(`Cannot register ${type} ${name}: current holder is the process/runtime metric of that name`);
    }
    const metric = make();
    this.#metrics.set(name, { type, metric });
    return metric;
  }

  /** The counter called `name`, created on first use. */
  counter(name: string, help: string): Counter {
    return this.#get("counter", name, () => new Counter(name, help, this.#prom));
  }
  /** The gauge called `name`, created on first use. */
  gauge(name: string, help: string): Gauge {
    return this.#get("gauge", name, () => new Gauge(name, help, this.#prom));
  }
  /** The histogram called `name`, created on first use. */
  histogram(name: string, help: string, buckets?: readonly number[]): Histogram {
    return this.#get("histogram", name, () => new Histogram(name, help, this.#prom, buckets));
  }
  /** Registers a function run before each render, to refresh gauges from their source. */
  collect(fn: () => void | Promise<void>): void {
    this.#collectors.push(fn);
  }
  /** The content type of the rendered text, {@linkcode CONTENT_TYPE}. */
  get contentType(): string {
    return this.#prom.contentType;
  }
  /**
   * Renders every metric in the Prometheus text format (version 0.0.4), scrubbed of secrets by
   * the installed redactor (label values come from configuration and exchanges).
   */
  async render(): Promise<string> {
    for (const fn of this.#collectors) await fn();
    // prom-client separates families by an empty line; the format allows it, strict parsers do not.
    const [own, runtime] = await Promise.all([this.#prom.metrics(), this.#runtime.metrics()]);
    const text = (own.trim() === "" ? "" : own) + runtime;
    return redactor().scrub(text.replaceAll("\n\n", "\n"));
  }
}
