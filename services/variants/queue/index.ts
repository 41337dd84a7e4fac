// queue: scale-out across containers and hosts. The front (`lab serve queue`) speaks the protocol
// and adds each request to a Redis stream; workers (`lab worker`, one process each, each in its
// own container) read it through a consumer group, compute fib and reply to the front that owns
// the connection. See README.md for the design and its failure handling. Its row brings its
// companions: Redis and the scalable `queue-worker` service.

import { defineVariant } from '../../server/plugin.js';
import { addWorkerCommand } from './cli.js';
import { queueDashboards } from './dashboards.js';
import { queueFrontOptions, type QueueFrontOptions } from './options.js';

export const queue = defineVariant<QueueFrontOptions>({
  name: 'queue',
  hostPort: 25010,
  group: 'queue',
  model: 'front service + worker containers on Redis (ioredis, Streams with consumer groups)',
  shows: 'scale-out across containers and hosts; no request lost when a worker dies',
  options: queueFrontOptions,
  // A connection costs the front a few kilobytes; the queue is bounded per front by MAX_QUEUE.
  connectionCap: 10_000,
  idleTimeoutMs: 300_000,
  takesTurns: false,
  // A set of workers (as many as are running), each counted and labelled like a pool's.
  parallelism: 'fixed-workers',
  // A client that leaves takes its request out of the stream; its worker stops computing it.
  interruptible: true,
  queueOption: 'maxQueue',
  limits: { memory: '512m', pids: 128 },
  backend: 'redis',
  dashboards: queueDashboards,
  commands: addWorkerCommand,
  companions: {
    dependsOn: ['redis'],
    // `lab cpus queue N` sets each worker's quota: they compute; the front only forwards.
    quotaServices: ['queue-worker'],
    optionDefaults: { REDIS_URL: 'redis://redis:6379' },
    services: `  # redis: the queue's Streams (no host port). No persistence: a restart loses the queue, and
  # the fronts answer what they had in flight \`unavailable\`. noeviction: never drop a stream.
  redis:
    image: \${REDIS_IMAGE:-redis:7.4.2}
    command: ["redis-server", "--save", "", "--appendonly", "no", "--maxmemory", "256mb", "--maxmemory-policy", "noeviction"]
    restart: \${LAB_RESTART:-on-failure}
    cpus: \${REDIS_CPUS:-1}
    mem_limit: 320m
    healthcheck:
      <<: *health-timing
      test: ["CMD", "redis-cli", "ping"]

  # queue-worker: \`lab worker\`, the queue's workers, each its own container with its own CPU
  # quota (QUEUE_WORKER_CPUS, per worker). Scale with \`make scale N=4\` or
  # \`docker compose up -d --scale queue-worker=4\`; a worker on another host joins the same group.
  queue-worker:
    <<: *variant
    command: ["worker"]
    environment:
      REDIS_URL: redis://redis:6379
      CLAIM_IDLE_MS: \${QUEUE_CLAIM_IDLE_MS:-5000}
      MAX_DELIVERIES: \${QUEUE_MAX_DELIVERIES:-3}
    cpus: \${QUEUE_WORKER_CPUS:-1}
    mem_limit: 384m
    pids_limit: 64
    deploy:
      replicas: \${QUEUE_WORKERS:-2}
    depends_on:
      redis:
        condition: service_started # the worker retries Redis until it answers
`,
    scrape: `  # The queue's workers, however many are scaled: found by their service name in Docker's DNS.
  - job_name: queue-worker
    dns_sd_configs:
      - names: ["queue-worker"]
        type: A
        port: 9464
        refresh_interval: 5s
`,
    env: [
      ['QUEUE_WORKERS', '2', 'queue: worker containers started by make up (make scale N=4 changes it live)'],
      ['QUEUE_WORKER_CPUS', '1', 'queue: CPU quota of each worker container, in cores'],
      ['QUEUE_CLAIM_IDLE_MS', '5000', 'queue: claim a job from a worker silent this long (it died or stalled), ms'],
      ['QUEUE_MAX_DELIVERIES', '3', 'queue: dead-letter a job delivered more often than this (answered internal)'],
      ['REDIS_CPUS', '1', 'queue: CPU quota of the Redis container'],
    ],
  },
  plugin: {
    level: 'executor',
    // Loaded when the variant runs, so that other `lab` commands do not load ioredis.
    async createExecutor(ctx) {
      const { QueueFront } = await import('./front.js');
      return QueueFront.start(ctx);
    },
  },
});
