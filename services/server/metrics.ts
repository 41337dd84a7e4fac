// Every variant's server-side series (docs/protocol.md lists them): requests by outcome, the
// request, queue-wait and compute histograms, connections, requests in flight, workers, and the
// container's figures. A variant with series of its own registers them into the same registry
// from its own folder.

import { Counter, Gauge, Registry } from 'prom-client';
import type { CgroupReader } from '../lab/cgroup.js';
import { SERVER_ERROR_CODES, type Outcome } from '../lab/errors.js';
import { CountingHistogram, defaultMetrics, registerCgroupMetrics, registerEventLoopMetrics } from '../lab/metrics.js';

const SERVER_OUTCOMES: Outcome[] = ['ok', ...SERVER_ERROR_CODES];

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
  defaultMetrics(registry, worker === undefined ? undefined : { worker: String(worker) });

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
