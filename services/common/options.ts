// Configuration of `lab serve`: one typed interface, one defaults object, and flat guards whose
// messages name the option as the user wrote it (flag and environment variable). The CLI
// collects raw strings (commander reads each flag, or its environment variable); tests and
// child processes pass typed values. Either way everything is validated here, once, at start.

import { ConfigError } from './errors.js';
import { FIB_MAX_N_LIMIT } from './protocol.js';

export interface ServeOptions {
  /** Interface for both listeners. */
  host: string;
  /** The fib protocol's TCP port; 0 picks a free one. */
  port: number;
  /** HTTP port for /metrics and /healthz; 0 picks a free one. */
  metricsPort: number;
  /** The largest n served; larger ones get `out_of_range`. */
  fibMaxN: number;
  /** Workers in a pool; null sizes it from the CPU quota. */
  poolSize: number | null;
  /** Open connections allowed; null takes the variant's own default. */
  maxConnections: number | null;
  /** How long shutdown waits for in-flight requests before answering them `unavailable`. */
  drainTimeoutMs: number;
  /** Requests a pool may hold waiting for a worker before answering `overloaded`. */
  maxQueue: number;
  /** Requests of one connection in flight at once; further pipelined lines wait unread. */
  maxPipeline: number;
  /** Worker processes of `cluster`; null sizes it from the CPU quota. */
  workers: number | null;
  /** `gil`: how long a thread may hold the lock while another waits (CPython's switch interval). */
  gilSwitchMs: number;
  /** `generators`: fib calls between two yields to the scheduler. */
  fibSlice: number;
}

export const serveDefaults: ServeOptions = {
  host: '127.0.0.1',
  port: 25000,
  metricsPort: 9464,
  fibMaxN: 40,
  poolSize: null,
  maxConnections: null,
  drainTimeoutMs: 10_000,
  maxQueue: 1024,
  maxPipeline: 64,
  workers: null,
  gilSwitchMs: 5,
  fibSlice: 10_000,
};

export interface OptionName {
  flag: string;
  env?: string;
}

/** How each option is spelled on the command line and in the environment. */
export const serveOptionNames: Record<keyof ServeOptions, OptionName & { description: string }> = {
  host: { flag: '--host', env: 'HOST', description: 'interface to listen on' },
  port: { flag: '--port', env: 'PORT', description: 'fib protocol TCP port (0 picks a free port)' },
  metricsPort: { flag: '--metrics-port', env: 'METRICS_PORT', description: 'HTTP port for /metrics and /healthz' },
  fibMaxN: { flag: '--fib-max-n', env: 'FIB_MAX_N', description: `largest n served (at most ${FIB_MAX_N_LIMIT})` },
  poolSize: { flag: '--pool-size', env: 'POOL_SIZE', description: 'workers in a pool (default: the CPU quota)' },
  maxConnections: { flag: '--max-connections', env: 'MAX_CONNECTIONS', description: 'connection cap (default: per variant)' },
  drainTimeoutMs: { flag: '--drain-timeout-ms', env: 'DRAIN_TIMEOUT_MS', description: 'shutdown drain timeout in ms' },
  maxQueue: { flag: '--max-queue', env: 'MAX_QUEUE', description: 'requests waiting for a pool worker before overloaded' },
  maxPipeline: { flag: '--max-pipeline', env: 'MAX_PIPELINE', description: 'requests in flight per connection' },
  workers: { flag: '--workers', env: 'WORKERS', description: 'cluster: worker processes (default: the CPU quota)' },
  gilSwitchMs: {
    flag: '--gil-switch-ms',
    env: 'GIL_SWITCH_MS',
    description: "gil: switch interval in ms, as CPython's sys.getswitchinterval()",
  },
  fibSlice: { flag: '--fib-slice', env: 'FIB_SLICE', description: 'generators: fib calls between yields to the scheduler' },
};

export type RawOptions<T> = { [K in keyof T]?: T[K] | string | undefined };

/** Merges raw values over the defaults and validates every option; throws ConfigError. */
export function resolveServeOptions(raw: RawOptions<ServeOptions> = {}): ServeOptions {
  const names = serveOptionNames;
  const pick = <K extends keyof ServeOptions>(key: K) => (raw[key] === undefined ? serveDefaults[key] : raw[key]);
  return {
    host: str(names.host, pick('host')),
    port: int(names.port, pick('port'), 0, 65535),
    metricsPort: int(names.metricsPort, pick('metricsPort'), 0, 65535),
    fibMaxN: int(names.fibMaxN, pick('fibMaxN'), 0, FIB_MAX_N_LIMIT),
    poolSize: optionalInt(names.poolSize, pick('poolSize'), 1, 1024),
    maxConnections: optionalInt(names.maxConnections, pick('maxConnections'), 1, 1_000_000),
    drainTimeoutMs: int(names.drainTimeoutMs, pick('drainTimeoutMs'), 0, 3_600_000),
    maxQueue: int(names.maxQueue, pick('maxQueue'), 0, 1_000_000),
    maxPipeline: int(names.maxPipeline, pick('maxPipeline'), 1, 100_000),
    workers: optionalInt(names.workers, pick('workers'), 1, 256),
    gilSwitchMs: int(names.gilSwitchMs, pick('gilSwitchMs'), 1, 10_000),
    fibSlice: int(names.fibSlice, pick('fibSlice'), 1, 1_000_000_000),
  };
}

/** How an option appears in messages: `--port (PORT)`. */
export function optionLabel(name: OptionName): string {
  return name.env ? `${name.flag} (${name.env})` : name.flag;
}

export function int(name: OptionName, value: unknown, min: number, max: number): number {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\s*-?\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(optionLabel(name), `expected an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** An integer, or null when unset (an empty string counts as unset, as `POOL_SIZE=` in .env). */
export function optionalInt(name: OptionName, value: unknown, min: number, max: number): number | null {
  if (value === null || value === undefined || value === '') return null;
  return int(name, value, min, max);
}

export function str(name: OptionName, value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ConfigError(optionLabel(name), `expected a non-empty string, got ${JSON.stringify(value)}`);
  }
  return value.trim();
}
