// The options every variant shares (`lab serve`), declared once with the lab's option specs
// (services/lab/options.ts); a variant's own options come from its row of the variant table.

import {
  defaultsOf,
  intOption,
  optionalIntOption,
  resolveOptions,
  stringOption,
  type EnvOptionSpecs,
  type RawOptions,
} from '../lab/options.js';
import { FIB_MAX_N_LIMIT } from './protocol.js';

/** What every variant shares. A variant's own options come from its row of the variant table. */
export interface ServeOptions {
  /** Interface for both listeners. */
  host: string;
  /** The fib protocol's TCP port; 0 picks a free one. */
  port: number;
  /** HTTP port for /metrics and /healthz; 0 picks a free one. */
  metricsPort: number;
  /** The largest n served; larger ones get `out_of_range`. */
  fibMaxN: number;
  /** Open connections allowed; null takes the variant's own cap (what its model can afford). */
  maxConnections: number | null;
  /** How long shutdown waits for in-flight requests before answering them `unavailable`. */
  drainTimeoutMs: number;
  /** Requests of one connection in flight at once; further pipelined lines wait unread. */
  maxPipeline: number;
  /** A connection with nothing in flight and nothing received for this long is closed; null takes the variant's own. */
  idleTimeoutMs: number | null;
  /** A request line must be finished within this long of its first byte, or `line_timeout` closes the connection. */
  lineTimeoutMs: number;
}

export const serveOptions: EnvOptionSpecs<ServeOptions> = {
  host: stringOption({
    flag: '--host',
    env: 'HOST',
    argument: 'address',
    description: 'interface to listen on',
    default: '127.0.0.1',
  }),
  port: intOption({
    flag: '--port',
    env: 'PORT',
    description: 'fib protocol TCP port (0 picks a free port)',
    default: 25000,
    min: 0,
    max: 65535,
  }),
  metricsPort: intOption({
    flag: '--metrics-port',
    env: 'METRICS_PORT',
    description: 'HTTP port for /metrics and /healthz',
    default: 9464,
    min: 0,
    max: 65535,
  }),
  fibMaxN: intOption({
    flag: '--fib-max-n',
    env: 'FIB_MAX_N',
    description: `largest n served (at most ${FIB_MAX_N_LIMIT})`,
    default: 40,
    min: 0,
    max: FIB_MAX_N_LIMIT,
  }),
  maxConnections: optionalIntOption({
    flag: '--max-connections',
    env: 'MAX_CONNECTIONS',
    description: 'connection cap; over it a client gets `overloaded` and is closed',
    defaultText: "the variant's own (lab variants --json)",
    min: 1,
    max: 1_000_000,
  }),
  drainTimeoutMs: intOption({
    flag: '--drain-timeout-ms',
    env: 'DRAIN_TIMEOUT_MS',
    argument: 'ms',
    description: 'on SIGTERM, how long in-flight requests may take before they are answered `unavailable`',
    default: 10_000,
    min: 0,
    max: 3_600_000,
  }),
  maxPipeline: intOption({
    flag: '--max-pipeline',
    env: 'MAX_PIPELINE',
    description: 'requests of one connection in flight at once; further lines wait unread',
    default: 64,
    min: 1,
    max: 100_000,
  }),
  idleTimeoutMs: optionalIntOption({
    flag: '--idle-timeout-ms',
    env: 'IDLE_TIMEOUT_MS',
    argument: 'ms',
    description: 'close a connection with nothing in flight and nothing received for this long',
    defaultText: "the variant's own (5 minutes; sync 30 s)",
    min: 1,
    max: 86_400_000,
  }),
  lineTimeoutMs: intOption({
    flag: '--line-timeout-ms',
    env: 'LINE_TIMEOUT_MS',
    argument: 'ms',
    description: 'a request line must be finished within this long of its first byte, or `line_timeout` closes the connection',
    // Generous: a line is at most 66 bytes; a client that takes longer trickles it to hold a slot.
    default: 30_000,
    min: 1,
    max: 86_400_000,
  }),
};

export const serveDefaults: ServeOptions = defaultsOf(serveOptions);

/** Validates the options every variant shares; throws ConfigError naming the option. */
export function resolveServeOptions(raw: RawOptions<ServeOptions> = {}): ServeOptions {
  return resolveOptions(serveOptions, raw);
}
