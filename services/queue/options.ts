// Configuration of the `queue` variant: its front (`lab serve queue`, read from the environment
// beside the shared serve options) and its workers (`lab worker`, flags or environment). One
// typed interface per process, one defaults object each, flat guards that name the option.

import { ConfigError } from '../common/errors.js';
import { int, optionLabel, optionalInt, str, type OptionName, type RawOptions } from '../common/options.js';

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
}

export interface QueueWorkerOptions extends QueueConnection {
  /** The consumer name and the `worker` label; null: the host name (with -2, -3... when taken). */
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

const connectionDefaults: QueueConnection = { redisUrl: 'redis://127.0.0.1:6379', keyPrefix: 'lab:fib' };

export const queueFrontDefaults: QueueFrontOptions = { ...connectionDefaults, deadlineMs: 10_000, streamMaxLength: 10_000 };

export const queueWorkerDefaults: QueueWorkerOptions = {
  ...connectionDefaults,
  name: null,
  claimIdleMs: 5_000,
  maxDeliveries: 3,
  host: '127.0.0.1',
  metricsPort: 0,
};

type Names<T> = Record<keyof T, OptionName & { description: string }>;

const connectionNames: Names<QueueConnection> = {
  redisUrl: { flag: '--redis', env: 'REDIS_URL', description: 'the Redis server (redis://host:6379)' },
  keyPrefix: { flag: '--key-prefix', env: 'QUEUE_KEY_PREFIX', description: 'prefix of every Redis key of the queue' },
};

/** The front's options: environment variables of `lab serve queue` (the flags are the worker's spelling). */
export const queueFrontOptionNames: Names<QueueFrontOptions> = {
  ...connectionNames,
  deadlineMs: {
    flag: '--deadline-ms',
    env: 'QUEUE_DEADLINE_MS',
    description: 'answer unavailable when no worker has answered after this long, ms',
  },
  streamMaxLength: {
    flag: '--stream-max-length',
    env: 'QUEUE_STREAM_MAX_LEN',
    description: 'entries the request stream may hold before fronts answer overloaded',
  },
};

export const queueWorkerOptionNames: Names<QueueWorkerOptions> = {
  ...connectionNames,
  name: { flag: '--name', env: 'WORKER_NAME', description: 'consumer name and worker label (default: the host name)' },
  claimIdleMs: {
    flag: '--claim-idle-ms',
    env: 'CLAIM_IDLE_MS',
    description: "claim another worker's job after it has been silent this long, ms",
  },
  maxDeliveries: {
    flag: '--max-deliveries',
    env: 'MAX_DELIVERIES',
    description: 'dead-letter a job delivered more often than this (answered internal)',
  },
  host: { flag: '--host', env: 'HOST', description: 'interface of the /metrics and /healthz listener' },
  metricsPort: {
    flag: '--metrics-port',
    env: 'METRICS_PORT',
    description: 'port of /metrics and /healthz (0 picks a free port)',
  },
};

/** Reads the front's options from environment variables (`REDIS_URL`, `QUEUE_DEADLINE_MS`, ...). */
export function queueFrontOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): RawOptions<QueueFrontOptions> {
  const raw: RawOptions<QueueFrontOptions> = {};
  for (const [key, name] of Object.entries(queueFrontOptionNames) as Array<[keyof QueueFrontOptions, OptionName]>) {
    const value = env[name.env!];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  return raw;
}

export function resolveQueueFrontOptions(raw: RawOptions<QueueFrontOptions> = {}): QueueFrontOptions {
  const names = queueFrontOptionNames;
  const pick = <K extends keyof QueueFrontOptions>(key: K) => raw[key] ?? queueFrontDefaults[key];
  return {
    ...resolveConnection(raw, names),
    deadlineMs: int(names.deadlineMs, pick('deadlineMs'), 1, 3_600_000),
    streamMaxLength: int(names.streamMaxLength, pick('streamMaxLength'), 1, 100_000_000),
  };
}

export function resolveQueueWorkerOptions(raw: RawOptions<QueueWorkerOptions> = {}): QueueWorkerOptions {
  const names = queueWorkerOptionNames;
  const pick = <K extends keyof QueueWorkerOptions>(key: K) => raw[key] ?? queueWorkerDefaults[key];
  const name = raw.name === undefined || raw.name === null || raw.name === '' ? null : str(names.name, raw.name);
  if (name !== null && !/^[\w.-]{1,64}$/.test(name)) {
    throw new ConfigError(
      optionLabel(names.name),
      `expected 1 to 64 letters, digits, '.', '_' or '-', got ${JSON.stringify(name)}`,
    );
  }
  return {
    ...resolveConnection(raw, names),
    name,
    claimIdleMs: int(names.claimIdleMs, pick('claimIdleMs'), 100, 3_600_000),
    maxDeliveries: int(names.maxDeliveries, pick('maxDeliveries'), 1, 1000),
    host: str(names.host, pick('host')),
    metricsPort: optionalInt(names.metricsPort, pick('metricsPort'), 0, 65535) ?? 0,
  };
}

function resolveConnection(raw: RawOptions<QueueConnection>, names: Names<QueueConnection>): QueueConnection {
  const redisUrl = str(names.redisUrl, raw.redisUrl ?? connectionDefaults.redisUrl);
  let url: URL;
  try {
    url = new URL(redisUrl);
  } catch {
    throw new ConfigError(
      optionLabel(names.redisUrl),
      `expected a URL such as redis://127.0.0.1:6379, got ${JSON.stringify(redisUrl)}`,
    );
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new ConfigError(optionLabel(names.redisUrl), `expected a redis:// or rediss:// URL, got ${JSON.stringify(redisUrl)}`);
  }
  const keyPrefix = str(names.keyPrefix, raw.keyPrefix ?? connectionDefaults.keyPrefix);
  if (/\s/.test(keyPrefix))
    throw new ConfigError(optionLabel(names.keyPrefix), `must not contain spaces, got ${JSON.stringify(keyPrefix)}`);
  return { redisUrl, keyPrefix };
}

/** The URL without its password, for log lines. */
export function redactRedisUrl(redisUrl: string): string {
  const url = new URL(redisUrl);
  if (url.password) url.password = '***';
  return url.toString();
}
