// Every Prometheus metric of the lab is defined here (LAB-SPEC section 6): the servers' request
// series, the container's own cgroup figures, event-loop utilization, and the load generator's
// client-side series. Names follow Prometheus conventions (base units, `_seconds`, `_total`);
// labels stay low-cardinality: never n, never a connection id, never a pid.

import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CgroupReader } from './cgroup.js';
import { CLIENT_ERROR_CODES, SERVER_ERROR_CODES, type Outcome } from './errors.js';

/** Histogram buckets from 100 us to 30 s, for every latency the lab records. */
export const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
];

const SERVER_OUTCOMES: Outcome[] = ['ok', ...SERVER_ERROR_CODES];
const CLIENT_OUTCOMES: Outcome[] = ['ok', ...SERVER_ERROR_CODES, ...CLIENT_ERROR_CODES];

export type ServerMetrics = ReturnType<typeof createServerMetrics>;

/**
 * The metrics of one variant's serving process. Every series carries `variant` from the
 * process itself, so they are labelled the same in compose and on a laptop.
 */
export function createServerMetrics(variant: string, cgroup: CgroupReader | null) {
  const registry = new Registry();
  registry.setDefaultLabels({ variant });
  collectDefaultMetrics({ register: registry });

  const requests = new Counter({
    name: 'fib_requests_total',
    help: 'Requests answered, by outcome (ok or the error code sent).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  for (const outcome of SERVER_OUTCOMES) requests.labels({ outcome }).inc(0);

  const metrics = {
    registry,
    requests,
    requestDuration: new Histogram({
      name: 'fib_request_duration_seconds',
      help: 'From the request line received to its reply written.',
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    queueWait: new Histogram({
      name: 'fib_queue_wait_seconds',
      help: 'From the request line received to its computation started.',
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    compute: new Histogram({
      name: 'fib_compute_seconds',
      help: 'Time spent computing fib(n) for one request.',
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    connections: new Gauge({
      name: 'fib_connections_active',
      help: 'Client connections open.',
      registers: [registry],
    }),
    inflight: new Gauge({
      name: 'fib_inflight_requests',
      help: 'Requests received and not yet answered.',
      registers: [registry],
    }),
    workers: new Gauge({
      name: 'fib_workers',
      help: 'Threads or processes computing fib (1 where fib runs on the event loop).',
      registers: [registry],
    }),
  };

  registerEventLoopMetrics(registry);
  if (cgroup) registerCgroupMetrics(registry, cgroup);
  return metrics;
}

/** Busy time of this thread's event loop; rate() of it is the event-loop utilization. */
function registerEventLoopMetrics(registry: Registry): void {
  new Counter({
    name: 'lab_event_loop_busy_seconds_total',
    help: 'Time the serving thread\'s event loop spent busy; rate() is its utilization (0..1).',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(performance.eventLoopUtilization().active / 1000);
    },
  });
}

/**
 * The container's own CPU and memory from its cgroup, read once by the process that serves
 * /metrics: they describe the whole container and must never be summed across processes.
 */
function registerCgroupMetrics(registry: Registry, cgroup: CgroupReader): void {
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


export type LoadgenMetrics = ReturnType<typeof createLoadgenMetrics>;

/** The load generator's client-side series; `variant` is the target's name, per series. */
export function createLoadgenMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  registerEventLoopMetrics(registry);
  return {
    registry,
    requests: new Counter({
      name: 'loadgen_requests_total',
      help: 'Requests the load generator completed, by outcome.',
      labelNames: ['variant', 'scenario', 'probe', 'outcome'] as const,
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: 'loadgen_request_duration_seconds',
      help: 'Client-observed latency (from the intended send time in open-loop mode).',
      labelNames: ['variant', 'scenario', 'probe'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    /** Creates the zero series of one target and probe, so rates exist from the first scrape. */
    initSeries(labels: { variant: string; scenario: string; probe: string }) {
      for (const outcome of CLIENT_OUTCOMES) this.requests.labels({ ...labels, outcome }).inc(0);
      this.requestDuration.labels(labels);
    },
  };
}
