// Configuration of the `queue` variant, on the lab's one option machinery
// (services/lab/options.ts): the front's options are the variant's own slice of `lab serve`
// (flags and environment variables, in its row of the variant table); the workers' are `lab
// worker`'s. Both share how they find Redis and name their keys. Guards name the option.

import { ConfigError } from '../../lab/errors.js';
import { intOption, optionLabel, str, stringOption, type EnvOptionSpec, type EnvOptionSpecs } from '../../lab/options.js';
import { serveOptions } from '../../server/options.js';
import { poolOptions } from '../../server/pools.js';

/** What every process of the queue needs to find the others: the Redis server and the key names. */
export interface QueueConnection {
  /** The Redis server, `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS). */
  redisUrl: string;
  /** Every key the variant uses starts with this, so several labs (or tests) can share one Redis. */
  keyPrefix: string;
}

export interface QueueFrontOptions extends QueueConnection {
  /** A request no worker has answered after this long is answered `unavailable`, ms. */
  deadlineMs: number;
  /**
   * The request stream may hold this many entries (all fronts together, waiting, being computed
   * and acknowledged-but-not-yet-trimmed); above it a front answers `overloaded` instead of adding.
   */
  streamMaxLength: number;
  /** Requests of this front that may wait for a free worker before new ones get `overloaded`. */
  maxQueue: number;
}

export interface QueueWorkerOptions extends QueueConnection {
  /** The consumer name and the `worker` label; null: the lowest free slot (w1, w2, ...), leased in Redis. */
  name: string | null;
  /** A job delivered to a worker that has not reported on it for this long is claimed by another, ms. */
  claimIdleMs: number;
  /** A job delivered more often than this is dead-lettered and answered `internal`. */
  maxDeliveries: number;
  /** Interface of the worker's /metrics and /healthz listener. */
  host: string;
  /** Port of the worker's /metrics and /healthz listener; 0 picks a free one. */
  metricsPort: number;
}

const redisUrl: EnvOptionSpec<string> = {
  flag: '--redis',
  env: 'REDIS_URL',
  argument: 'url',
  description: 'the Redis server of the queue (redis://host:6379)',
  default: 'redis://127.0.0.1:6379',
  parse(value) {
    const text = str(this, value);
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new ConfigError(optionLabel(this), `expected a URL such as redis://127.0.0.1:6379, got ${JSON.stringify(text)}`);
    }
    if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
      throw new ConfigError(optionLabel(this), `expected a redis:// or rediss:// URL, got ${JSON.stringify(text)}`);
    }
    // ioredis reads the path as the database number and would quietly use database 0 for `/abc`.
    if (!/^(\/\d*)?$/.test(url.pathname)) {
      throw new ConfigError(
        optionLabel(this),
        `expected a database number after the host (redis://host:6379/0), got ${JSON.stringify(url.pathname)}`,
      );
    }
    return text;
  },
};

/** How messages name the Redis URL option: what Redis refuses in it is a configuration error too. */
export const REDIS_URL_OPTION = optionLabel(redisUrl);

const keyPrefix: EnvOptionSpec<string> = {
  ...stringOption({
    flag: '--key-prefix',
    env: 'QUEUE_KEY_PREFIX',
    description: 'prefix of every Redis key of the queue',
    default: 'lab:fib',
  }),
  argument: 'prefix',
  parse(value) {
    const text = str(this, value);
    if (/\s/.test(text)) throw new ConfigError(optionLabel(this), `must not contain spaces, got ${JSON.stringify(text)}`);
    return text;
  },
};

export const queueFrontOptions: EnvOptionSpecs<QueueFrontOptions> = {
  redisUrl,
  keyPrefix,
  deadlineMs: intOption({
    flag: '--deadline-ms',
    env: 'QUEUE_DEADLINE_MS',
    argument: 'ms',
    description: 'answer `unavailable` when no worker has answered after this long',
    default: 10_000,
    min: 1,
    max: 3_600_000,
  }),
  streamMaxLength: intOption({
    flag: '--stream-max-length',
    env: 'QUEUE_STREAM_MAX_LEN',
    description: 'entries the request stream may hold before fronts answer `overloaded`',
    default: 10_000,
    min: 1,
    max: 100_000_000,
  }),
  // The pools' option: requests waiting beyond the (live) workers.
  maxQueue: poolOptions.maxQueue,
};

const WORKER_NAME = /^[\w.-]{1,64}$/;

export const queueWorkerOptions: EnvOptionSpecs<QueueWorkerOptions> = {
  redisUrl,
  keyPrefix,
  name: {
    flag: '--name',
    env: 'WORKER_NAME',
    argument: 'name',
    description: 'consumer name and `worker` label',
    default: null,
    defaultText: 'the lowest free slot, w1, w2..., claimed in Redis under a lease',
    parse(value) {
      if (value === null || value === undefined || value === '') return null;
      const name = str(this, value);
      if (!WORKER_NAME.test(name)) {
        throw new ConfigError(
          optionLabel(this),
          `expected 1 to 64 letters, digits, '.', '_' or '-', got ${JSON.stringify(name)}`,
        );
      }
      return name;
    },
  },
  claimIdleMs: intOption({
    flag: '--claim-idle-ms',
    env: 'CLAIM_IDLE_MS',
    argument: 'ms',
    description: "claim another worker's job after it has been silent this long",
    default: 5_000,
    min: 100,
    max: 3_600_000,
  }),
  maxDeliveries: intOption({
    flag: '--max-deliveries',
    env: 'MAX_DELIVERIES',
    description: 'dead-letter a job delivered more often than this (answered `internal`)',
    default: 3,
    min: 1,
    max: 1000,
  }),
  host: serveOptions.host,
  metricsPort: intOption({
    flag: '--metrics-port',
    env: 'METRICS_PORT',
    description: 'port of /metrics and /healthz (0 picks a free port)',
    default: 0,
    min: 0,
    max: 65535,
  }),
};

/** The URL without its password, for log lines. */
export function redactRedisUrl(redisUrl: string): string {
  const url = new URL(redisUrl);
  if (url.password) url.password = '***';
  return url.toString();
}
