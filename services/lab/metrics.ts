// The building blocks of the lab's Prometheus metrics, shared by every process that exports some
// (a variant's server, the load generator, a queue worker): the latency buckets, histograms
// counted in plain numbers and handed to prom-client when scraped, Node's default metrics sampled
// as the lab can afford, event-loop utilization, and the container's own cgroup figures. What
// each exports is defined by its owner: services/server/metrics.ts (every variant's request
// series), services/loadgen/metrics.ts (the client side and the lessons), and a variant's own
// folder for what only it has. Names follow Prometheus conventions (base units, `_seconds`,
// `_total`); labels stay low-cardinality: never n, never a connection id, never a pid.

import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { Registry } from 'prom-client';
import { Counter, Gauge } from 'prom-client';
import type { CgroupReader } from './cgroup.js';

/**
 * How often Node's event-loop delay is sampled for nodejs_eventloop_lag_* (prom-client's default
 * is every 10 ms: a hundred wake-ups a second in every idle process of the lab, 4 ms of CPU a
 * second each). A blocked loop delays every sample it overlaps, so a fib(30) blocking the loop
 * still shows in the percentiles at this rate.
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

/**
 * This thread's event-loop delay sampler. It samples while something holds it (a server while a
 * client is connected, the load generator while its load is not paused, a queue worker while it
 * computes) and until the next scrape after the last hold ends; then it sleeps. Even every
 * EVENT_LOOP_SAMPLE_MS, sampling wakes an idle process ten times a second, about 1 ms of CPU a
 * second in a container of this lab (a variant's idle cost went from 0.0034 to 0.0027 cores,
 * benchmarks/idle.ts), and the lab runs some twenty Node processes.
 */
export class EventLoopSampler {
  private readonly histogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_SAMPLE_MS });
  private holders = 0;

  /** Samples until the returned function is called (and until the scrape after it). */
  hold(): () => void {
    this.holders += 1;
    this.histogram.enable();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.holders -= 1;
    };
  }

  /** What was sampled since the last take, in seconds (null: nothing was), and a fresh start. */
  take(): Record<'min' | 'max' | 'mean' | 'stddev' | 'p50' | 'p90' | 'p99', number> | null {
    const h = this.histogram;
    const taken =
      h.count === 0
        ? null
        : {
            min: h.min / 1e9,
            max: h.max / 1e9,
            mean: h.mean / 1e9,
            stddev: h.stddev / 1e9,
            p50: h.percentile(50) / 1e9,
            p90: h.percentile(90) / 1e9,
            p99: h.percentile(99) / 1e9,
          };
    h.reset();
    if (this.holders === 0) h.disable();
    return taken;
  }
}

/** The sampler of this process's main thread (the one that serves /metrics). */
export const eventLoopSampler = new EventLoopSampler();

/**
 * prom-client's nodejs_eventloop_lag_* series (the same names, help and aggregation across a
 * cluster), from eventLoopSampler: NaN where nothing held it since the last scrape (an idle
 * process, not sampled: a gap in a panel, not a figure). nodejs_eventloop_lag_seconds is
 * prom-client's own measure, always there: how late a setImmediate() queued at the previous
 * scrape ran.
 */
function registerEventLoopDelay(registry: Registry, labels: Record<string, string>): void {
  const labelNames = Object.keys(labels);
  // Registered first, as prom-client does: its collect sets the others before they are written.
  new Gauge({
    name: 'nodejs_eventloop_lag_seconds',
    help: 'Lag of event loop in seconds.',
    labelNames,
    aggregator: 'average',
    registers: [registry],
    collect() {
      const start = process.hrtime.bigint();
      setImmediate(() => this.set(labels, Number(process.hrtime.bigint() - start) / 1e9));
      const taken = eventLoopSampler.take();
      for (const [key, stat] of Object.entries(stats)) stat.set(labels, taken?.[key as keyof typeof stats] ?? NaN);
    },
  });
  const gauge = (name: string, help: string, aggregator: 'average' | 'min' | 'max') =>
    new Gauge({ name: `nodejs_eventloop_lag_${name}_seconds`, help, labelNames, aggregator, registers: [registry] });
  const stats = {
    min: gauge('min', 'The minimum recorded event loop delay.', 'min'),
    max: gauge('max', 'The maximum recorded event loop delay.', 'max'),
    mean: gauge('mean', 'The mean of the recorded event loop delays.', 'average'),
    stddev: gauge('stddev', 'The standard deviation of the recorded event loop delays.', 'average'),
    p50: gauge('p50', 'The 50th percentile of the recorded event loop delays.', 'average'),
    p90: gauge('p90', 'The 90th percentile of the recorded event loop delays.', 'average'),
    p99: gauge('p99', 'The 99th percentile of the recorded event loop delays.', 'average'),
  };
}

/**
 * The part of prom-client's default metrics the lab reads: CPU (process_cpu_*), start time and
 * heap (nodejs_heap_size_*, nodejs_external_memory_bytes), and the event-loop delay
 * (nodejs_eventloop_lag_*, sampled by eventLoopSampler). All of them cost every process at every
 * scrape, and the rest were read by no panel, lesson or test: the 27 heap-space gauges, the GC
 * histogram (a JavaScript callback after every collection, under load too), open and maximum
 * file descriptors and resident memory (files of /proc read at each scrape; lab_memory_bytes has
 * the container's), active handles, requests and resources, the version.
 */
export const DEFAULT_METRICS = ['processCpuTotal', 'processStartTime', 'heapSizeAndUsed'] as const;

/** One of prom-client's default collectors, as collectDefaultMetrics() calls each of them. */
type DefaultCollector = (registry: Registry, config: { labels?: Record<string, string> }) => void;

// prom-client registers its default metrics all or none; each one is a module of its own, which
// collectDefaultMetrics() calls in turn. They are taken here one by one (the version is pinned in
// package-lock.json; the conformance test checks each series is there).
const requireCjs = createRequire(import.meta.url);

/** Node's default metrics the lab reads (DEFAULT_METRICS and the event-loop delay) into `registry`. */
export function defaultMetrics(registry: Registry, labels: Record<string, string> = {}): void {
  for (const name of DEFAULT_METRICS) {
    const collector = requireCjs(`prom-client/lib/metrics/${name}`) as DefaultCollector;
    collector(registry, { labels });
  }
  registerEventLoopDelay(registry, labels);
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
