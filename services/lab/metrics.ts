// The building blocks of the lab's Prometheus metrics, shared by every process that exports some
// (a variant's server, the load generator, a queue worker): the latency buckets, histograms
// counted in plain numbers and handed to prom-client when scraped, Node's default metrics sampled
// as the lab can afford, event-loop utilization, and the container's own cgroup figures. What
// each exports is defined by its owner: services/server/metrics.ts (every variant's request
// series), services/loadgen/metrics.ts (the client side and the lessons), and a variant's own
// folder for what only it has. Names follow Prometheus conventions (base units, `_seconds`,
// `_total`); labels stay low-cardinality: never n, never a connection id, never a pid.

import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Registry } from 'prom-client';
import { Counter, Gauge, collectDefaultMetrics } from 'prom-client';
import type { CgroupReader } from './cgroup.js';

/**
 * How often Node's event-loop delay is sampled for nodejs_eventloop_lag_* (prom-client's default
 * is every 10 ms: a hundred wake-ups a second in every idle process of the lab, 4 ms of CPU a
 * second each). A blocked loop delays every sample it overlaps, so a fib(30) blocking the loop
 * still shows in the percentiles at this rate.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

/** Node's default metrics (heap, GC, CPU, event-loop delay) into `registry`, sampled as the lab can afford. */
export function defaultMetrics(registry: Registry, labels?: Record<string, string>): void {
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS, ...(labels && { labels }) });
}

/** Histogram buckets from 100 us to 30 s, for every latency the lab records. */
export const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

/**
 * A histogram that counts into a plain array on the request path and hands prom-client its series
 * when scraped: prom-client's own Histogram allocates and hashes labels on every observe(), which
 * cost the shared server a tenth of its throughput (benchmarks/hotpath.ts). Unlabelled (the
 * registry adds `variant`), with the lab's LATENCY_BUCKETS; aggregated by summing like any
 * histogram (cluster's primary).
 */
export class CountingHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly counts = new Float64Array(LATENCY_BUCKETS.length + 1);
  private sum = 0;
  private count = 0;

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
  ) {
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  observe(value: number): void {
    let bucket = 0;
    while (bucket < LATENCY_BUCKETS.length && value > LATENCY_BUCKETS[bucket]!) bucket += 1;
    this.counts[bucket]! += 1;
    this.sum += value;
    this.count += 1;
  }

  /** Observations counted elsewhere (another thread): per bucket, not cumulative, and their sum. */
  add(buckets: readonly number[], sum: number): void {
    for (let i = 0; i < this.counts.length; i++) {
      this.counts[i]! += buckets[i] ?? 0;
      this.count += buckets[i] ?? 0;
    }
    this.sum += sum;
  }

  /** prom-client's view of a histogram: cumulative buckets, sum and count. */
  async get() {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: histogramValues(this.name, this.counts, this.sum, this.count, {}),
    };
  }

  /** For Registry.resetMetrics(). */
  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

/** prom-client's samples of one histogram series: cumulative buckets, sum and count. */
function histogramValues(name: string, counts: Float64Array, sum: number, count: number, labels: Record<string, string>) {
  let cumulative = 0;
  const values: Array<{ value: number; labels: Record<string, string | number>; metricName: string }> = LATENCY_BUCKETS.map(
    (le, i) => {
      cumulative += counts[i]!;
      return { value: cumulative, labels: { ...labels, le }, metricName: `${name}_bucket` };
    },
  );
  values.push({ value: count, labels: { ...labels, le: '+Inf' }, metricName: `${name}_bucket` });
  values.push({ value: sum, labels, metricName: `${name}_sum` }, { value: count, labels, metricName: `${name}_count` });
  return values;
}

/**
 * A CountingHistogram with labels: observations are counted where they are made (a sending
 * thread), handed over per bucket, and rendered when Prometheus scrapes.
 */
export class LabelledCountingHistogram<L extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series = new Map<string, { labels: Record<L, string>; counts: Float64Array; sum: number; count: number }>();

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly L[],
  ) {
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  private entry(labels: Record<L, string>) {
    const key = this.labelNames.map((name) => labels[name]).join('\0');
    let entry = this.series.get(key);
    if (!entry) {
      entry = { labels: { ...labels }, counts: new Float64Array(LATENCY_BUCKETS.length + 1), sum: 0, count: 0 };
      this.series.set(key, entry);
    }
    return entry;
  }

  /** Creates the series at zero, so rates exist from the first scrape. */
  init(labels: Record<L, string>): void {
    this.entry(labels);
  }

  /** Observations counted elsewhere: per bucket, not cumulative, and their sum. */
  add(labels: Record<L, string>, buckets: readonly number[], sum: number): void {
    const entry = this.entry(labels);
    for (let i = 0; i < entry.counts.length; i++) {
      entry.counts[i]! += buckets[i] ?? 0;
      entry.count += buckets[i] ?? 0;
    }
    entry.sum += sum;
  }

  async get() {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: [...this.series.values()].flatMap((s) => histogramValues(this.name, s.counts, s.sum, s.count, s.labels)),
    };
  }

  reset(): void {
    this.series.clear();
  }
}

/**
 * Event-loop busy time; rate() of it is the event-loop utilization (0..1). One series for the
 * thread serving /metrics (with `worker` when it is one of a fixed set), one per pool worker as
 * they report it. Never summed across threads.
 */
export function registerEventLoopMetrics(registry: Registry, ownWorker: number | undefined) {
  const workers = new Map<number, number>();
  new Counter({
    name: 'lab_event_loop_busy_seconds_total',
    help: 'Time an event loop spent busy (one series per thread or process); rate() is its utilization.',
    labelNames: ['worker'] as const,
    registers: [registry],
    collect() {
      this.reset();
      const own = performance.eventLoopUtilization().active / 1000;
      if (ownWorker === undefined) this.inc(own);
      else this.labels({ worker: String(ownWorker) }).inc(own);
      for (const [slot, seconds] of workers) this.labels({ worker: String(slot) }).inc(seconds);
    },
  });
  return {
    setWorker: (slot: number, seconds: number) => void workers.set(slot, seconds),
    workerValue: (slot: number) => workers.get(slot),
    removeWorker: (slot: number) => void workers.delete(slot),
  };
}

/**
 * The container's own CPU and memory from its cgroup, read once by the process that serves
 * /metrics: they describe the whole container and must never be summed across processes.
 */
export function registerCgroupMetrics(registry: Registry, cgroup: CgroupReader): void {
  let stats = cgroup.stats();
  const refresh = () => {
    stats = cgroup.stats();
  };
  const counter = (name: string, help: string, read: () => number | null | undefined, first = false) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        if (first) refresh();
        const value = read();
        this.reset();
        if (value !== null && value !== undefined) this.inc(value);
      },
    });
  const gauge = (name: string, help: string, read: () => number | null | undefined, first = false) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        if (first) refresh();
        const value = read();
        if (value !== null && value !== undefined) this.set(value);
      },
    });
  // prom-client collects metrics in registration order: the first one re-reads the files.
  gauge(
    'lab_cpu_quota_cores',
    'CPU quota of the container in cores (the CPU count when it has no quota).',
    () => stats?.quotaCores ?? availableParallelism(),
    true,
  );
  gauge('lab_cpu_quota_limited', '1 when the container has a CPU quota, else 0.', () => (stats?.quotaCores == null ? 0 : 1));
  counter('lab_cpu_usage_seconds_total', 'CPU time used by the whole container.', () => stats?.usageSeconds);
  counter('lab_cpu_periods_total', 'CFS enforcement periods elapsed.', () => stats?.periods);
  counter('lab_cpu_throttled_periods_total', 'CFS periods in which the container was throttled.', () => stats?.throttledPeriods);
  counter('lab_cpu_throttled_seconds_total', 'Time the container spent throttled.', () => stats?.throttledSeconds);
  gauge('lab_memory_bytes', 'Memory used by the whole container, without inactive file cache.', () => stats?.memoryBytes);
}
