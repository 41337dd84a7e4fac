// The `queue` variant's own series: its front's (registered into the server's registry by the
// variant) and each worker's registry (lab worker).

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CgroupReader } from '../../lab/cgroup.js';
import { LATENCY_BUCKETS, defaultMetrics, registerCgroupMetrics, registerEventLoopMetrics } from '../../lab/metrics.js';

// ---- The `queue` variant (services/variants/queue) ------------------------------------------------------
// Its front serves the usual request series (variant="queue") plus what the queue itself looks
// like from Redis; each worker process serves its own, labelled with its `worker` name (the
// consumer name: the slot it claimed in Redis, w1, w2, ..., never a host name or a pid).

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
  // The pools' per-worker series, here labelled with each worker's name (its slot, w1, w2, ...).
  const workerRequests = registry.getSingleMetric('fib_worker_requests_total') as Counter<'worker'> | undefined;
  /** The workers this front has a series of. */
  const exported = new Set<string>();
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
      exported.add(name);
    },
    /**
     * Drops the series of every worker not in `live` (its heartbeat and lease lapsed, or it
     * stopped): a departed worker's counter does not linger, flat, beside those still working.
     */
    keepWorkers(live: ReadonlySet<string>) {
      for (const name of exported) {
        if (live.has(name)) continue;
        workerRequests?.remove({ worker: name });
        exported.delete(name);
      }
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
  defaultMetrics(registry);
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
