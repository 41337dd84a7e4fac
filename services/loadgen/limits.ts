// The limits of `lab load`'s numbers, in one place: the flags and variables (options.ts), the
// scenario files (scenario.ts) and the control API (control.ts) all check against these, and
// every refusal names the limit. Each is far past what a run of the lab needs, and each keeps the
// generator itself safe: a rate whose arrival gap a double can still add to the clock, a number
// of connections whose descriptors stay far below the usual open-files limit (4096 and more:
// Node raises its soft limit to the hard one), and durations that Node's timers can hold (a
// setTimeout over 2^31 - 1 ms fires after 1 ms).

import type { Limit } from '../lab/duration.js';

export type { Limit } from '../lab/duration.js';

const HOUR_MS = 3_600_000;

export const LOAD_LIMITS = {
  /** Requests per second of an open-loop probe against one target: a gap of at least 1 us. */
  rate: { min: 0.001, max: 1_000_000 },
  /** Connections of one probe against one target. */
  connections: { min: 1, max: 256 },
  /** Connections of a whole run: every probe against every target. */
  runConnections: { min: 1, max: 1024 },
  /** Open loop: requests in flight per connection. */
  depth: { min: 1, max: 256 },
  /** A ramp's steps. */
  rampSteps: { min: 1, max: 1000 },
  /** A weight of a weighted n (above 0). */
  weight: { min: 0, max: 1_000_000 },
  /** Closed loop: pause between a reply and the next request, ms. */
  thinkMs: { min: 0, max: HOUR_MS },
  /** A run's or a scenario's length, and when a probe starts, stops or staggers in it, ms (0: until stopped). */
  durationMs: { min: 0, max: 168 * HOUR_MS },
  warmupMs: { min: 0, max: HOUR_MS },
  timeoutMs: { min: 1, max: HOUR_MS },
  reportEveryMs: { min: 100, max: HOUR_MS },
  maxP99Ms: { min: 0, max: HOUR_MS },
  searchStepMs: { min: 100, max: HOUR_MS },
  spotlightPhaseMs: { min: 200, max: HOUR_MS },
  spotlightWarmupMs: { min: 0, max: HOUR_MS },
  spotlightGapMs: { min: 0, max: HOUR_MS },
  rotations: { min: 1, max: 1_000_000 },
  /** The spotlight's rounds per turn. */
  rounds: { min: 1, max: 100 },
  /** Threads that send (0: the main thread). */
  sendThreads: { min: 0, max: 64 },
  /** The control API's pause lease, s. */
  pauseSeconds: { min: 1, max: 3600 },
  /** The control token's length. */
  tokenLength: { min: 16, max: 256 },
} as const satisfies Record<string, Limit>;

/**
 * Due requests an open loop keeps waiting for a free connection, per probe and target (800 KB);
 * past it a due request counts as `timeout`, unsent, as one that waited past the timeout does.
 */
export const MAX_QUEUED_REQUESTS = 100_000;

/** The largest request body the control API reads. */
export const MAX_BODY_BYTES = 64 * 1024;
