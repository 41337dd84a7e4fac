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

/** One answered request, as the connection that answered it saw it (sent across a process boundary). */
export interface RequestObservation {
  outcome: Outcome;
  /** From the request line received to the reply written. */
  durationSeconds: number;
  /** Present when fib ran: from the line received to the computation started. */
  queueWaitSeconds?: number;
  computeSeconds?: number;
}

/** Why a connection ended: the `reason` label of fib_connections_closed_total. */
export const CLOSE_REASONS = ['client', 'idle', 'line_too_long', 'line_timeout', 'input_overflow', 'shutdown'] as const;
export type CloseReason = (typeof CLOSE_REASONS)[number];

/**
 * Where a connection reports its requests. In the serving process it records straight into
 * the metrics; a child process that owns a socket forwards the same calls to its parent.
 * Positional arguments, no object per request: this runs once per request on every variant.
 */
export interface RequestRecorder {
  /** Requests received and not yet answered changed by `delta`. */
  inflight(delta: number): void;
  /** One request answered; `queueWaitSeconds` and `computeSeconds` are NaN where no fib ran. */
  finished(outcome: Outcome, durationSeconds: number, queueWaitSeconds: number, computeSeconds: number): void;
  /** A connection ended. */
  closed(reason: CloseReason): void;
}

/** Replays an observation sent by another process into a recorder. */
export function replay(recorder: RequestRecorder, observation: RequestObservation): void {
  recorder.finished(
    observation.outcome,
    observation.durationSeconds,
    observation.queueWaitSeconds ?? NaN,
    observation.computeSeconds ?? NaN,
  );
}

export interface ServerMetricsOptions {
  /** Reads the container's cgroup for the lab_cpu_* and lab_memory_bytes series; null reads none. */
  cgroup: CgroupReader | null;
  /**
   * This process's index in a fixed set of worker processes (cluster): its event-loop series
   * and request counts carry `worker`, so they stay per worker when the parent aggregates.
   */
  workerIndex?: number;
}

export type ServerMetrics = ReturnType<typeof createServerMetrics>;

/**
 * The metrics of one variant's serving process. Every series carries `variant` from the
 * process itself, so they are labelled the same in compose and on a laptop. Gauges of what is
 * alive (connections, workers, requests in flight) are read when scraped, from functions the
 * server and the variant provide, so they can never drift from what they count. A process of a
 * fixed set that a parent aggregates (a cluster worker) reports its own counts; the parent's
 * sum is the variant's.
 */
export function createServerMetrics(variant: string, { cgroup, workerIndex: worker }: ServerMetricsOptions) {
  const registry = new Registry();
  registry.setDefaultLabels({ variant });
  // A worker process's own figures (heap, CPU, event-loop delay) stay per worker when the parent
  // aggregates: never summed across processes.
  collectDefaultMetrics({ register: registry, ...(worker !== undefined && { labels: { worker: String(worker) } }) });

  // Requests are counted per outcome in plain numbers, handed to prom-client when it scrapes.
  const answered = Object.fromEntries(SERVER_OUTCOMES.map((outcome) => [outcome, 0])) as Record<Outcome, number>;
  new Counter({
    name: 'fib_requests_total',
    help: 'Requests answered, by outcome (ok or the error code sent).',
    labelNames: ['outcome'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const outcome of Object.keys(answered) as Outcome[]) this.labels({ outcome }).inc(answered[outcome]);
    },
  });
  const requestDuration = new CountingHistogram(
    registry,
    'fib_request_duration_seconds',
    'From the request line received to its reply written.',
  );
  const queueWait = new CountingHistogram(
    registry,
    'fib_queue_wait_seconds',
    'From the request line received to its computation started.',
  );
  const compute = new CountingHistogram(registry, 'fib_compute_seconds', 'Time spent computing fib(n) for one request.');
  let inflightNow = 0;
  new Gauge({
    name: 'fib_inflight_requests',
    help: 'Requests received and not yet answered.',
    registers: [registry],
    collect() {
      this.set(inflightNow);
    },
  });
  const closedConnections = new Counter({
    name: 'fib_connections_closed_total',
    help: 'Connections that ended, by reason: the client left, idle timeout, line_too_long, line_timeout, input_overflow, or shutdown.',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const byReason = new Map(CLOSE_REASONS.map((reason) => [reason, closedConnections.labels({ reason })] as const));
  for (const counter of byReason.values()) counter.inc(0);
  let countConnections: () => number = () => 0;
  new Gauge({
    name: 'fib_connections_active',
    help: 'Client connections open (admitted under the cap, served or waiting for their turn).',
    registers: [registry],
    collect() {
      this.set(countConnections());
    },
  });
  let countWorkers: () => number = () => 0;
  new Gauge({
    name: 'fib_workers',
    help: 'Threads or processes computing fib, alive now: one per connection for per-connection variants, the pool for pools, 1 where fib runs on the event loop.',
    registers: [registry],
    collect() {
      this.set(countWorkers());
    },
  });
  const workerRequests = new Counter({
    name: 'fib_worker_requests_total',
    help: 'Requests computed by each worker of a fixed set (pool thread, pool process, cluster worker).',
    labelNames: ['worker'] as const,
    registers: [registry],
  });
  const eventLoop = registerEventLoopMetrics(registry, worker);
  const ownWorkerRequests = worker === undefined ? null : workerRequests.labels({ worker: String(worker) });
  ownWorkerRequests?.inc(0);

  const recorder: RequestRecorder = {
    inflight(delta) {
      inflightNow += delta;
    },
    finished(outcome, durationSeconds, queueWaitSeconds, computeSeconds) {
      answered[outcome] = (answered[outcome] ?? 0) + 1;
      requestDuration.observe(durationSeconds);
      if (!Number.isNaN(computeSeconds)) {
        queueWait.observe(Number.isNaN(queueWaitSeconds) ? 0 : queueWaitSeconds);
        compute.observe(computeSeconds);
        ownWorkerRequests?.inc();
      }
    },
    closed(reason) {
      byReason.get(reason)?.inc();
    },
  };

  if (cgroup) registerCgroupMetrics(registry, cgroup);
  return {
    registry,
    recorder,
    /** A request answered without going through a connection (refused over the cap). */
    countRequest(outcome: Outcome) {
      answered[outcome] = (answered[outcome] ?? 0) + 1;
    },
    /** Where fib_connections_active is read from. */
    countConnections(read: () => number) {
      countConnections = read;
    },
    /** Where fib_workers is read from: the threads or processes alive now. */
    countWorkers(read: () => number) {
      countWorkers = read;
    },
    /** One request computed by worker `slot` of a pool; `busySeconds` is that worker's event-loop busy time so far. */
    workerComputed(slot: number, busySeconds?: number) {
      workerRequests.labels({ worker: String(slot) }).inc();
      if (busySeconds !== undefined) eventLoop.setWorker(slot, busySeconds);
    },
    /** Creates a pool worker's zero series, so every worker shows from the first scrape. */
    initWorker(slot: number) {
      workerRequests.labels({ worker: String(slot) }).inc(0);
      eventLoop.setWorker(slot, eventLoop.workerValue(slot) ?? 0);
    },
    /** A pool shrank: worker `slot` is gone, and so are its series. */
    removeWorker(slot: number) {
      workerRequests.remove({ worker: String(slot) });
      eventLoop.removeWorker(slot);
    },
  };
}

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

  /** prom-client's view of a histogram: cumulative buckets, sum and count. */
  async get() {
    let cumulative = 0;
    const values = LATENCY_BUCKETS.map((le, i) => {
      cumulative += this.counts[i]!;
      return { value: cumulative, labels: { le }, metricName: `${this.name}_bucket` };
    });
    values.push({ value: this.count, labels: { le: '+Inf' as unknown as number }, metricName: `${this.name}_bucket` });
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: [
        ...values,
        { value: this.sum, labels: {}, metricName: `${this.name}_sum` },
        { value: this.count, labels: {}, metricName: `${this.name}_count` },
      ],
    };
  }

  /** For Registry.resetMetrics(). */
  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

/** `generators`: how many fib slices its scheduler has run (each FIB_SLICE calls, then a yield). */
export function registerGeneratorMetrics(registry: Registry): Counter {
  return new Counter({
    name: 'fib_generator_slices_total',
    help: 'Fib slices the generators scheduler ran: FIB_SLICE calls each, then a yield to the next task.',
    registers: [registry],
  });
}

/**
 * Event-loop busy time; rate() of it is the event-loop utilization (0..1). One series for the
 * thread serving /metrics (with `worker` when it is one of a fixed set), one per pool worker as
 * they report it. Never summed across threads.
 */
function registerEventLoopMetrics(registry: Registry, ownWorker: number | undefined) {
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
  registerEventLoopMetrics(registry, undefined);
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
    scheduleLag: new Histogram({
      name: 'loadgen_schedule_lag_seconds',
      help: "The generator's own lateness: how late an open-loop request left although it was due and a connection was free.",
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    generatorBound: new Gauge({
      name: 'loadgen_generator_bound',
      help: '1 while the generator itself is the bottleneck (event-loop delay, CPU or schedule lag past its thresholds), else 0.',
      registers: [registry],
    }),
    fairness: new Gauge({
      name: 'loadgen_fairness_index',
      help: "Jain's fairness index over a probe's connections (requests each completed in the last report interval): 1 when all got the same, 1/n when one got everything.",
      labelNames: ['variant', 'scenario', 'probe'] as const,
      registers: [registry],
    }),
    /** Creates the zero series of one target and probe, so rates exist from the first scrape. */
    initSeries(labels: { variant: string; scenario: string; probe: string }, { fairnessGauge = true } = {}) {
      for (const outcome of CLIENT_OUTCOMES) this.requests.labels({ ...labels, outcome }).inc(0);
      this.requestDuration.labels(labels);
      if (fairnessGauge) this.fairness.labels(labels).set(1);
    },
    paused: new Gauge({
      name: 'loadgen_paused',
      help: '1 while all load is paused through the control API (PUT /pause: a lease, e.g. the quota sweep taking the lab), else 0.',
      registers: [registry],
    }),
    lesson: registerLessonMetrics(registry),
  };
}

// ---- The spotlight's lesson figures (services/loadgen/spotlight.ts) ----------------------------
// The talk's experiment run on one variant at a time: perf2 alone, beside one perf1 hog, beside
// as many hogs as the variant has workers. Set per variant at the end of its turn and kept until
// its next one; a variant taken out of the rotation loses its series.

export type LessonMetrics = ReturnType<typeof registerLessonMetrics>;

function registerLessonMetrics(registry: Registry) {
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Gauge<L>({ name, help, labelNames, registers: [registry] });
  return {
    shortRate: gauge(
      'loadgen_lesson_short_requests_per_second',
      "The spotlight's perf2 (one connection, closed loop, fib(1)): requests answered per second in each phase of the variant's last turn.",
      ['variant', 'phase'] as const,
    ),
    shortLatency: gauge(
      'loadgen_lesson_short_latency_seconds',
      "perf2's latency in each phase of the variant's last turn (quantile 0.5 and 0.99, measured within the phase); absent when no short request was answered.",
      ['variant', 'phase', 'quantile'] as const,
    ),
    longRate: gauge(
      'loadgen_lesson_long_requests_per_second',
      'The perf1 hogs (fib(30) in a loop, one connection each): requests answered per second in each phase they ran.',
      ['variant', 'phase'] as const,
    ),
    collapse: gauge(
      'loadgen_lesson_collapse_ratio',
      'perf2 alone / perf2 beside one long request (requests per second): 1 when a hog changes nothing; +Inf when beside it no short request was answered (sync).',
      ['variant'] as const,
    ),
    quota: gauge(
      'loadgen_lesson_cpu_quota_cores',
      "The variant's CPU quota during its last turn, read from its own lab_cpu_quota_cores.",
      ['variant'] as const,
    ),
    workers: gauge(
      'loadgen_lesson_workers',
      'How many hogs the last turn ran beside perf2 in its phase beside_all_workers_long (the workers a long request can occupy): 1 for single-threaded variants.',
      ['variant'] as const,
    ),
    workersUsed: gauge(
      'loadgen_lesson_workers_used',
      "Variants with a fixed set of workers: how many of them computed requests during a phase (from their fib_worker_requests_total). On cluster, 1 beside one long request means the short connection landed on the hog's worker.",
      ['variant', 'phase'] as const,
    ),
    generatorBound: gauge(
      'loadgen_lesson_generator_bound',
      "1 when the load generator itself was the bottleneck during the variant's last turn (its figures then describe the generator), else 0.",
      ['variant'] as const,
    ),
    timestamp: gauge(
      'loadgen_lesson_timestamp_seconds',
      "When the variant's last turn ended (Unix time): the lesson figures' age.",
      ['variant'] as const,
    ),
    spotlight: gauge(
      'loadgen_spotlight',
      '1 for the variant being measured now (the background load is paused against it), 0 for the others in the rotation.',
      ['variant'] as const,
    ),
    phase: gauge(
      'loadgen_spotlight_phase',
      'Live: 1 while that phase of the spotlight runs on that variant (warm-up included: the hogs have joined), else 0. Its changes mark hogs joining and leaving.',
      ['variant', 'phase'] as const,
    ),
  };
}

// ---- The `queue` variant (services/queue) ------------------------------------------------------
// Its front serves the usual request series (variant="queue") plus what the queue itself looks
// like from Redis; each worker process serves its own, labelled with its `worker` name (the
// consumer name it picked: a host name, never a pid).

export type QueueFrontMetrics = ReturnType<typeof registerQueueFrontMetrics>;

/** The front's queue series, on the serving registry (which carries `variant`). */
export function registerQueueFrontMetrics(registry: Registry) {
  const gauge = (name: string, help: string) => new Gauge({ name, help, registers: [registry] });
  const dropped = new Counter({
    name: 'lab_queue_dropped_replies_total',
    help: 'Worker replies the front did not pass on: duplicate (the request had its reply already) or late (the front had answered it unavailable, or its client had left).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const unavailable = new Counter({
    name: 'lab_queue_unavailable_total',
    help: 'Requests the front answered unavailable, by reason: redis_down (at once), deadline (no worker answered in time), redis_lost (Redis restarted without the request).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  for (const reason of ['duplicate', 'late']) dropped.labels({ reason }).inc(0);
  for (const reason of ['redis_down', 'deadline', 'redis_lost']) unavailable.labels({ reason }).inc(0);
  // The pools' per-worker series, here labelled with each worker's name.
  const workerRequests = registry.getSingleMetric('fib_worker_requests_total') as Counter<'worker'> | undefined;
  return {
    streamEntries: gauge(
      'lab_queue_stream_entries',
      'Entries in the request stream: waiting, being computed, or done and not yet trimmed.',
    ),
    pendingEntries: gauge(
      'lab_queue_pending_entries',
      'Requests delivered to a worker and not yet acknowledged (being computed, or held by a worker that died).',
    ),
    waitingEntries: gauge('lab_queue_waiting_entries', 'Requests in the stream that no worker has taken yet.'),
    deadLetterEntries: gauge(
      'lab_queue_dead_letter_entries',
      'Entries in the dead-letter stream (jobs delivered more than MAX_DELIVERIES times).',
    ),
    redisUp: gauge('lab_queue_redis_up', '1 while the front reaches Redis (it answers unavailable at once otherwise), else 0.'),
    redeliveries: new Counter({
      name: 'lab_queue_redeliveries_total',
      help: 'Extra deliveries of the requests this front got answers for: a job claimed from a worker that died or stalled counts once per claim.',
      registers: [registry],
    }),
    deadLetters: new Counter({
      name: 'lab_queue_dead_letters_total',
      help: 'Requests of this front dead-lettered after MAX_DELIVERIES deliveries (answered internal).',
      registers: [registry],
    }),
    dropped,
    unavailable,
    /** One request answered by worker `name`. */
    workerAnswered(name: string) {
      workerRequests?.labels({ worker: name }).inc();
    },
  };
}

export type QueueWorkerMetrics = ReturnType<typeof createQueueWorkerMetrics>;

/**
 * A queue worker's own registry: every series carries its variant's name and its `worker` name
 * (set once the name is known), and the worker's container's cgroup figures.
 */
export function createQueueWorkerMetrics({ variant, cgroup }: { variant: string; cgroup: CgroupReader | null }) {
  const registry = new Registry();
  registry.setDefaultLabels({ variant });
  collectDefaultMetrics({ register: registry });
  registerEventLoopMetrics(registry, undefined);
  if (cgroup) registerCgroupMetrics(registry, cgroup);
  const jobs = new Counter({
    name: 'lab_queue_worker_jobs_total',
    help: 'Jobs this worker finished, by outcome: replied, dead_lettered, cancelled (its front gave up, or another worker took it over), superseded (computed, but another worker had answered first: no reply sent).',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  for (const outcome of ['replied', 'dead_lettered', 'cancelled', 'superseded']) jobs.labels({ outcome }).inc(0);
  return {
    registry,
    jobs,
    claims: new Counter({
      name: 'lab_queue_claims_total',
      help: 'Jobs this worker claimed from a worker that had been silent longer than CLAIM_IDLE_MS (died or stalled).',
      registers: [registry],
    }),
    busy: new Gauge({
      name: 'lab_queue_worker_busy',
      help: '1 while this worker computes a job, else 0.',
      registers: [registry],
    }),
    redisUp: new Gauge({ name: 'lab_queue_redis_up', help: '1 while this worker reaches Redis, else 0.', registers: [registry] }),
    queueWait: new Histogram({
      name: 'lab_queue_wait_seconds',
      help: "From a request added to the stream to its computation started, on Redis's clock (comparable across hosts).",
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    compute: new Histogram({
      name: 'lab_queue_compute_seconds',
      help: 'Time this worker spent computing fib(n) for one job.',
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    /** Every series gets the worker's name once it has one. */
    nameWorker(name: string) {
      registry.setDefaultLabels({ variant, worker: name });
    },
  };
}
