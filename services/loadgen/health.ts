// The generator watching itself, so a run says when the generator, not the server, was the
// bottleneck. It measures its own event-loop delay, its CPU use and its schedule lag: how late
// it sent a request that was due while a connection was free. Waiting for a busy connection is
// the server's doing and is never counted here (it is the open loop's queue wait).
//
// A run is "generator-bound" when any of these passes its threshold (GENERATOR_BOUND):
//   - event-loop delay p99 over 20 ms: timers and socket events were handled late;
//   - CPU over 0.9 cores: the generator's one thread is close to saturated;
//   - schedule lag p99 over 5 ms: open-loop requests left late although a connection was free
//     (judged from 100 requests on: with a handful, p99 is just the one timer that fired late).

import { monitorEventLoopDelay, performance, type IntervalHistogram } from 'node:perf_hooks';
import hdr from 'hdr-histogram-js';

export const GENERATOR_BOUND = { eventLoopDelayP99Ms: 20, cpuCores: 0.9, scheduleLagP99Ms: 5 } as const;

/** Fewer schedule-lag samples than this say nothing about a p99. */
const MIN_LAG_SAMPLES = 100;

/** How often the event loop is sampled; Node's histogram counts it in every sample, so it is subtracted. */
const DELAY_RESOLUTION_MS = 10;

export interface HealthReport {
  cpuCores: number;
  eventLoopDelayP99Ms: number;
  /** null when no open-loop request was sent. */
  scheduleLagP99Ms: number | null;
  scheduleLagMaxMs: number | null;
  generatorBound: boolean;
  /** Which thresholds were passed, in words. */
  reasons: string[];
}

export class GeneratorHealth {
  private delay: IntervalHistogram;
  private lag = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
  private cpuStart = process.cpuUsage();
  private wallStart = performance.now();

  constructor(private readonly onLag: (seconds: number) => void = () => {}) {
    this.delay = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
    this.delay.enable();
  }

  /** An open-loop request left `lagMs` after it was due, with a connection free for it. */
  scheduleLag(lagMs: number): void {
    this.lag.recordValue(Math.max(1, Math.round(lagMs * 1000)));
    this.onLag(lagMs / 1000);
  }

  /** The report since the last reset. */
  report(): HealthReport {
    const cpu = process.cpuUsage(this.cpuStart);
    const wallMs = Math.max(1, performance.now() - this.wallStart);
    const cpuCores = (cpu.user + cpu.system) / 1000 / wallMs;
    const eventLoopDelayP99Ms = this.delay.count > 0 ? Math.max(0, this.delay.percentile(99) / 1e6 - DELAY_RESOLUTION_MS) : 0;
    const hasLag = this.lag.totalCount > 0;
    const scheduleLagP99Ms = hasLag ? this.lag.getValueAtPercentile(99) / 1000 : null;
    const reasons: string[] = [];
    if (eventLoopDelayP99Ms > GENERATOR_BOUND.eventLoopDelayP99Ms)
      reasons.push(`event-loop delay p99 ${eventLoopDelayP99Ms.toFixed(1)} ms > ${GENERATOR_BOUND.eventLoopDelayP99Ms} ms`);
    if (cpuCores > GENERATOR_BOUND.cpuCores) reasons.push(`CPU ${cpuCores.toFixed(2)} cores > ${GENERATOR_BOUND.cpuCores}`);
    if (
      scheduleLagP99Ms !== null &&
      this.lag.totalCount >= MIN_LAG_SAMPLES &&
      scheduleLagP99Ms > GENERATOR_BOUND.scheduleLagP99Ms
    )
      reasons.push(`schedule lag p99 ${scheduleLagP99Ms.toFixed(1)} ms > ${GENERATOR_BOUND.scheduleLagP99Ms} ms`);
    return {
      cpuCores,
      eventLoopDelayP99Ms,
      scheduleLagP99Ms,
      scheduleLagMaxMs: hasLag ? this.lag.maxValue / 1000 : null,
      generatorBound: reasons.length > 0,
      reasons,
    };
  }

  /** Starts a new measurement (after warm-up, or for the next window). */
  reset(): void {
    this.delay.reset();
    this.lag.reset();
    this.cpuStart = process.cpuUsage();
    this.wallStart = performance.now();
  }

  close(): void {
    this.delay.disable();
  }
}
