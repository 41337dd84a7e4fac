// The generator watching itself, so a run says when the generator, not the server, was the
// bottleneck, and why. Each thread that sends measures itself (GeneratorHealth: its own
// event-loop delay and utilization, and its schedule lag: how late it sent a request that was
// due while a connection was free; waiting for a busy connection is the server's doing and is
// never counted here). The main thread merges the threads' reports and adds what only it can
// see: whether the CPU quota of the generator's own cgroup throttled it (judge()).
//
// A stretch is "generator-bound" when any of these passes its threshold (GENERATOR_BOUND), and
// the report names the cause:
//   - event_loop_delay: a sending thread's event-loop delay p99 over 20 ms (more than 1% of its
//     samples later than that): replies and timers were handled late, so latencies include the
//     generator's own delay;
//   - cpu: a sending thread busy over 90% of the time (it cannot send faster), or the
//     generator's cgroup throttled in over 5% of its CFS periods (its quota stalled it);
//   - schedule_lag: open-loop requests left late although a connection was free, p99 over 5 ms
//     (judged from 100 requests on: with a handful, p99 is just the one timer that fired late).

import { monitorEventLoopDelay, performance, type EventLoopUtilization, type IntervalHistogram } from 'node:perf_hooks';
import hdr from 'hdr-histogram-js';

export const GENERATOR_BOUND = { eventLoopDelayP99Ms: 20, busy: 0.9, throttled: 0.05, scheduleLagP99Ms: 5 } as const;

export const GENERATOR_CAUSES = ['event_loop_delay', 'cpu', 'schedule_lag'] as const;
export type GeneratorCause = (typeof GENERATOR_CAUSES)[number];

/** A p99 past a bound: more than this share of the samples past it. */
const LATE_SHARE = 0.01;

/** Fewer schedule-lag samples than this say nothing about a p99. */
const MIN_LAG_SAMPLES = 100;

/** How often a sending thread's event loop is sampled; Node's histogram counts it in every sample, so it is subtracted. */
const DELAY_RESOLUTION_MS = 10;

/**
 * The share of a histogram's samples above `limitNs`, found from its percentiles (Node's histogram
 * gives no bucket counts): the percentile where the values pass the limit, by bisection.
 */
function shareAbove(histogram: IntervalHistogram, limitNs: number): number {
  if (histogram.count === 0 || histogram.max <= limitNs) return 0;
  if (histogram.min > limitNs) return 1;
  let below = 0; // percentile(below) <= limitNs
  let above = 100; // percentile(above) > limitNs
  for (let i = 0; i < 30; i++) {
    const middle = (below + above) / 2;
    if (histogram.percentile(middle) > limitNs) above = middle;
    else below = middle;
  }
  // HdrHistogram, under Node's histogram, rounds the count at a percentile half up: the percentile
  // where the values pass the limit lies half a sample short of the samples past it.
  const late = Math.round(((100 - above) / 100) * histogram.count + 0.5);
  return Math.min(1, late / histogram.count);
}

/** What one sending thread measured of itself over a stretch. */
export interface ThreadHealth {
  /** The whole process's CPU over the stretch, in cores (every thread). */
  cpuCores: number;
  /** The thread's event-loop utilization: the share of the time it was running callbacks. */
  busy: number;
  /** The p99 of its event-loop delay (of a window: its worst stretch's; the verdict uses the share below). */
  eventLoopDelayP99Ms: number;
  /** Event-loop delay samples taken (one every DELAY_RESOLUTION_MS while it runs). */
  eventLoopDelaySamples: number;
  /**
   * The share of those samples later than GENERATOR_BOUND.eventLoopDelayP99Ms: over 1% is a p99
   * past the bound. Unlike a p99 it adds up over stretches: a 10 s window pools its flushes' samples
   * (its worst flush's p99, from about 100 samples, is nearly its single worst sample).
   */
  eventLoopDelayLateShare: number;
  scheduleLagP99Ms: number | null;
  scheduleLagMaxMs: number | null;
  /** Open-loop requests sent with a free connection (the schedule lag's samples). */
  scheduleLagCount: number;
  /** How long the stretch was (cpuCores and busy are shares of it). */
  wallMs: number;
}

export interface HealthReport extends ThreadHealth {
  /** Share of the generator cgroup's CFS periods that were throttled; null where it has no quota or no cgroup. */
  throttled: number | null;
  generatorBound: boolean;
  causes: GeneratorCause[];
  /** Which thresholds were passed, in words. */
  reasons: string[];
}

/** Measures the thread it is created in; see the header. */
export class GeneratorHealth {
  private readonly delay: IntervalHistogram;
  private readonly lag = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
  });
  private cpuStart = process.cpuUsage();
  private wallStart = performance.now();
  private eluStart: EventLoopUtilization = performance.eventLoopUtilization();

  constructor() {
    this.delay = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
    this.delay.enable();
  }

  /** An open-loop request left `lagMs` after it was due, with a connection free for it. */
  scheduleLag(lagMs: number): void {
    this.lag.recordValue(Math.max(1, Math.round(lagMs * 1000)));
  }

  /** What it measured since the last reset. */
  report(): ThreadHealth {
    const cpu = process.cpuUsage(this.cpuStart);
    const wallMs = Math.max(1, performance.now() - this.wallStart);
    const hasLag = this.lag.totalCount > 0;
    return {
      cpuCores: (cpu.user + cpu.system) / 1000 / wallMs,
      busy: performance.eventLoopUtilization(this.eluStart).utilization,
      eventLoopDelayP99Ms: this.delay.count > 0 ? Math.max(0, this.delay.percentile(99) / 1e6 - DELAY_RESOLUTION_MS) : 0,
      eventLoopDelaySamples: this.delay.count,
      eventLoopDelayLateShare: shareAbove(this.delay, (GENERATOR_BOUND.eventLoopDelayP99Ms + DELAY_RESOLUTION_MS) * 1e6),
      scheduleLagP99Ms: hasLag ? this.lag.getValueAtPercentile(99) / 1000 : null,
      scheduleLagMaxMs: hasLag ? this.lag.maxValue / 1000 : null,
      scheduleLagCount: this.lag.totalCount,
      wallMs,
    };
  }

  /** Starts a new measurement (after warm-up, or for the next window). */
  reset(): void {
    this.delay.reset();
    this.lag.reset();
    this.cpuStart = process.cpuUsage();
    this.wallStart = performance.now();
    this.eluStart = performance.eventLoopUtilization();
  }

  /**
   * Stops sampling the event loop while all load is paused (nothing is sent, so nothing is
   * judged): at DELAY_RESOLUTION_MS the sampler alone wakes an idle thread 100 times a second,
   * about 40% of what the paused generator cost (0.013 cores before, 0.0075 after, in
   * benchmarks/idle.ts). resume() samples again.
   */
  suspend(): void {
    this.delay.disable();
  }

  resume(): void {
    this.delay.enable();
  }

  close(): void {
    this.delay.disable();
  }
}

/** An idle thread's report: nothing measured. */
export const NO_HEALTH: ThreadHealth = {
  cpuCores: 0,
  busy: 0,
  eventLoopDelayP99Ms: 0,
  eventLoopDelaySamples: 0,
  eventLoopDelayLateShare: 0,
  scheduleLagP99Ms: null,
  scheduleLagMaxMs: null,
  scheduleLagCount: 0,
  wallMs: 0,
};

/** Several threads' reports as one: the worst of each (a stretch is as bound as its most bound thread). */
export function mergeHealth(reports: ThreadHealth[]): ThreadHealth {
  if (reports.length === 0) return NO_HEALTH;
  const tardiest = reports.reduce((a, b) => (b.eventLoopDelayLateShare > a.eventLoopDelayLateShare ? b : a));
  const worst = (pick: (r: ThreadHealth) => number | null) => {
    const values = reports.map(pick).filter((v): v is number => v !== null);
    return values.length > 0 ? Math.max(...values) : null;
  };
  return {
    cpuCores: worst((r) => r.cpuCores) ?? 0,
    busy: worst((r) => r.busy) ?? 0,
    eventLoopDelayP99Ms: worst((r) => r.eventLoopDelayP99Ms) ?? 0,
    // The thread late most often (the largest share) speaks, with its own count of samples.
    eventLoopDelaySamples: tardiest.eventLoopDelaySamples,
    eventLoopDelayLateShare: tardiest.eventLoopDelayLateShare,
    scheduleLagP99Ms: worst((r) => r.scheduleLagP99Ms),
    scheduleLagMaxMs: worst((r) => r.scheduleLagMaxMs),
    scheduleLagCount: reports.reduce((sum, r) => sum + r.scheduleLagCount, 0),
    wallMs: worst((r) => r.wallMs) ?? 0,
  };
}

/**
 * One thread's consecutive stretches as one: its CPU and busy share weighted by their lengths,
 * its late event-loop samples pooled, the tails the worst of the two. (Taking the worst busy share
 * too read 100% whenever a thread flushed twice in one callback: at the start of a spotlight turn
 * each paused target's last connection closing flushes every part, and a window of a few
 * microseconds spent inside a callback is all busy. Taking the worst p99 of a window's one-second
 * flushes judged its single worst sample: a 10 s window was flagged for one stall of 22-27 ms.)
 */
export function concatHealth(a: ThreadHealth, b: ThreadHealth): ThreadHealth {
  const wallMs = a.wallMs + b.wallMs;
  const samples = a.eventLoopDelaySamples + b.eventLoopDelaySamples;
  const weighted = (pick: (r: ThreadHealth) => number) =>
    wallMs > 0 ? (pick(a) * a.wallMs + pick(b) * b.wallMs) / wallMs : Math.max(pick(a), pick(b));
  const worst = (x: number | null, y: number | null) => (x === null ? y : y === null ? x : Math.max(x, y));
  return {
    cpuCores: weighted((r) => r.cpuCores),
    busy: weighted((r) => r.busy),
    eventLoopDelayP99Ms: Math.max(a.eventLoopDelayP99Ms, b.eventLoopDelayP99Ms),
    eventLoopDelaySamples: samples,
    eventLoopDelayLateShare:
      samples > 0
        ? (a.eventLoopDelayLateShare * a.eventLoopDelaySamples + b.eventLoopDelayLateShare * b.eventLoopDelaySamples) / samples
        : 0,
    scheduleLagP99Ms: worst(a.scheduleLagP99Ms, b.scheduleLagP99Ms),
    scheduleLagMaxMs: worst(a.scheduleLagMaxMs, b.scheduleLagMaxMs),
    scheduleLagCount: a.scheduleLagCount + b.scheduleLagCount,
    wallMs,
  };
}

/** The verdict on a stretch: which thresholds were passed, by cause. */
export function judge(health: ThreadHealth, throttled: number | null): HealthReport {
  const causes = new Set<GeneratorCause>();
  const reasons: string[] = [];
  if (health.eventLoopDelayLateShare > LATE_SHARE) {
    causes.add('event_loop_delay');
    reasons.push(
      `event-loop delay p99 over ${GENERATOR_BOUND.eventLoopDelayP99Ms} ms: ${(health.eventLoopDelayLateShare * 100).toFixed(1)}% of ${health.eventLoopDelaySamples} samples later (worst stretch's p99 ${health.eventLoopDelayP99Ms.toFixed(1)} ms)`,
    );
  }
  if (health.busy > GENERATOR_BOUND.busy) {
    causes.add('cpu');
    reasons.push(`a sending thread busy ${(health.busy * 100).toFixed(0)}% of the time > ${GENERATOR_BOUND.busy * 100}%`);
  }
  if (throttled !== null && throttled > GENERATOR_BOUND.throttled) {
    causes.add('cpu');
    reasons.push(
      `throttled by its CPU quota in ${(throttled * 100).toFixed(0)}% of periods > ${GENERATOR_BOUND.throttled * 100}%`,
    );
  }
  if (
    health.scheduleLagP99Ms !== null &&
    health.scheduleLagCount >= MIN_LAG_SAMPLES &&
    health.scheduleLagP99Ms > GENERATOR_BOUND.scheduleLagP99Ms
  ) {
    causes.add('schedule_lag');
    reasons.push(`schedule lag p99 ${health.scheduleLagP99Ms.toFixed(1)} ms > ${GENERATOR_BOUND.scheduleLagP99Ms} ms`);
  }
  return { ...health, throttled, generatorBound: causes.size > 0, causes: [...causes], reasons };
}
