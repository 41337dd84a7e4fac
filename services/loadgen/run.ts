// One load run: every probe of the scenario against every target at once, each probe on its own
// connections, until the duration ends or the run is stopped. The send loops run in sending
// threads (senders.ts), each on its share of the connections (part.ts); this, in the main thread,
// merges what they measured into one ProbeTally per target and probe, the Prometheus series and
// the generator's health. After the warm-up, results start afresh.

import type { LoadgenMetrics } from './metrics.js';
import { CgroupReader, type CgroupStats } from '../lab/cgroup.js';
import type { Clock, Connect } from './drivers.js';
import { concatHealth, judge, mergeHealth, type HealthReport, type ThreadHealth } from './health.js';
import type { Target } from './options.js';
import type { PauseGate } from './pause.js';
import { RunPart, seriesOf, type PartFlush, type PartSpec } from './part.js';
import { ProbeTally } from './recorder.js';
import type { Scenario } from './scenario.js';
import { sendHost, type PartHandle, type PartHost } from './senders.js';
import { performance } from 'node:perf_hooks';

/** How often the sending threads hand over what they measured, ms. */
const FLUSH_EVERY_MS = 1000;

export interface RunConfig {
  scenario: Scenario;
  targets: Target[];
  /** 0 runs until stop(). */
  durationMs: number;
  warmupMs: number;
  timeoutMs: number;
  /** Lets the load against some targets pause without stopping the run (pause.ts). */
  gate?: PauseGate | null;
  /** Leave out replies that come back after stop(): every figure is over exactly the run's time. */
  dropLateReplies?: boolean;
  /** Whether the run reports loadgen_fairness_index (default true; a measure() stretch has no report windows). */
  fairnessGauge?: boolean;
}

/** The tests' seams: a fake clock or fake connections run every loop in the calling thread. */
export interface RunSeams {
  clock?: Clock;
  connect?: Connect;
  host?: PartHost;
}

let nextRunId = 1;

/** The generator's cgroup, read at the start and end of a stretch for its throttling. */
const ownCgroup = new CgroupReader();

/** Share of CFS periods throttled between two readings; null without a quota or a cgroup. */
function throttledShare(before: CgroupStats | null, after: CgroupStats | null): number | null {
  if (!before || !after || after.quotaCores === null) return null;
  const periods = (after.periods ?? 0) - (before.periods ?? 0);
  const throttled = (after.throttledPeriods ?? 0) - (before.throttledPeriods ?? 0);
  return periods > 0 ? throttled / periods : null;
}

/** Merged, latest health of a run's parts: over the run, or over the windows since the last takeWindow(). */
class RunHealth {
  private readonly latest: ThreadHealth[] = [];
  private cgroupFrom: CgroupStats | null = ownCgroup.stats();

  set(part: number, health: ThreadHealth): void {
    this.latest[part] = health;
  }

  /** For windows: every report of a part since the last reset, as one stretch (concatHealth). */
  add(part: number, health: ThreadHealth): void {
    const before = this.latest[part];
    this.latest[part] = before ? concatHealth(before, health) : health;
  }

  report(): HealthReport {
    return judge(mergeHealth(this.latest.filter(Boolean)), throttledShare(this.cgroupFrom, ownCgroup.stats()));
  }

  reset(): void {
    this.latest.length = 0;
    this.cgroupFrom = ownCgroup.stats();
  }
}

export class LoadRun {
  /** One per target and probe: the merged figures. */
  readonly tallies: ProbeTally[];
  /** Over the measured run (from the end of the warm-up). */
  readonly health = new RunHealth();
  /** Since the last window (the live display). */
  private readonly windowHealth = new RunHealth();
  readonly finished: Promise<void>;
  /** ms the measured run spent in each phase of the scenario (where it has phases). */
  readonly phaseMs = new Map<string, number>();
  private readonly parts: PartHandle[] = [];
  private readonly startedAt = performance.now();
  private measuredFrom = this.startedAt;
  private stoppedAt: number | null = null;
  /** The parts' own measured lengths, once they have all finished. */
  private finalMeasuredMs: number | null = null;
  /** Flushes applied since the last window: none, and a window has nothing new to say. */
  private windowFlushes = 0;
  /** Per part: how many intervals it has flushed since the warm-up, and when the last one ended (its atMs). */
  private readonly partIntervals: Array<{ count: number; atMs: number }> = [];

  constructor(
    readonly config: RunConfig,
    private readonly metrics: LoadgenMetrics | null,
    seams: RunSeams = {},
  ) {
    const runId = nextRunId++;
    const fairnessGauge = config.fairnessGauge ?? true;
    this.tallies = seriesOf(config).map(
      ({ target, probe }) =>
        new ProbeTally({ target: target.name, scenario: probe.scenario, probe: probe.name }, probe.connections, metrics, {
          fairnessGauge,
        }),
    );
    const inline = seams.clock !== undefined || seams.connect !== undefined;
    const host = seams.host ?? sendHost();
    const count = inline ? 1 : host.parts;
    const finals: Array<NonNullable<PartFlush['final']>> = [];
    let failure: string | null = null;
    this.finished = new Promise<void>((resolve, reject) => {
      let open = count;
      const done = () => {
        if (--open > 0) return;
        if (failure !== null) return reject(new Error(failure));
        this.finalMeasuredMs = finals.reduce((sum, f) => sum + f.measuredMs, 0) / Math.max(1, finals.length);
        this.phaseMs.clear();
        for (const final of finals)
          for (const [phase, ms] of final.phaseMs) this.phaseMs.set(phase, (this.phaseMs.get(phase) ?? 0) + ms / finals.length);
        resolve();
      };
      for (let index = 0; index < count; index++) {
        const spec: PartSpec = {
          runId,
          scenario: config.scenario,
          targets: config.targets,
          durationMs: config.durationMs,
          warmupMs: config.warmupMs,
          timeoutMs: config.timeoutMs,
          dropLateReplies: config.dropLateReplies ?? false,
          index,
          count,
          flushEveryMs: FLUSH_EVERY_MS,
        };
        const callbacks = {
          flush: (flush: PartFlush) => {
            this.apply(flush);
            if (flush.final) {
              finals.push(flush.final);
              done();
            }
          },
          failed: (message: string) => {
            failure ??= message;
            done();
          },
        };
        if (inline) {
          const part = new RunPart(spec, callbacks.flush, config.gate ?? null, seams.clock, seams.connect);
          part.finished.catch((error: Error) => callbacks.failed(error.message));
          this.parts.push({ stop: () => part.stop() });
        } else {
          this.parts.push(host.start(spec, config.gate ?? null, callbacks));
        }
      }
    });
  }

  private apply(flush: PartFlush): void {
    if (flush.warmupEnded) {
      for (const tally of this.tallies) tally.reset();
      this.health.reset();
      this.measuredFrom = performance.now();
      this.partIntervals[flush.index] = { count: 0, atMs: 0 };
      return;
    }
    const part = (this.partIntervals[flush.index] ??= { count: 0, atMs: 0 });
    const interval = { index: part.count++, ms: Math.max(0, flush.atMs - part.atMs), part: flush.index };
    part.atMs = flush.atMs;
    // Every series gets the interval, with nothing in it where nothing was recorded.
    flush.series.forEach((delta, i) => this.tallies[i]!.apply(delta, interval));
    if (flush.lag) this.metrics?.scheduleLag.add(flush.lag.buckets, flush.lag.sum);
    this.health.set(flush.index, flush.health.run);
    this.windowHealth.add(flush.index, flush.health.window);
    this.windowFlushes += 1;
  }

  /** Stops sending; what is in flight gets a grace period (STOP_GRACE_MS) to come back. */
  stop(): void {
    if (this.stoppedAt !== null) return;
    this.stoppedAt = performance.now();
    for (const part of this.parts) part.stop();
  }

  get stopped(): boolean {
    return this.stoppedAt !== null;
  }

  /** Time measured (after the warm-up) so far, or until the run was stopped (as the sending threads timed it, once they are done). */
  measuredMs(): number {
    if (this.finalMeasuredMs !== null) return this.finalMeasuredMs;
    return Math.max(0, (this.stoppedAt ?? performance.now()) - this.measuredFrom);
  }

  /** Time since the start, warm-up included. */
  elapsedMs(): number {
    return (this.stoppedAt ?? performance.now()) - this.startedAt;
  }

  /** How long the whole run takes, warm-up included; null when it runs until stopped. */
  get totalMs(): number | null {
    return this.config.durationMs > 0 ? this.config.warmupMs + this.config.durationMs : null;
  }

  /** The label sets of its loadgen_fairness_index series (removed when the run is replaced). */
  fairnessLabels(): Array<{ variant: string; scenario: string; probe: string }> {
    if (this.config.fairnessGauge === false) return [];
    return this.tallies.map((t) => ({ variant: t.key.target, scenario: t.key.scenario, probe: t.key.probe }));
  }

  /**
   * Figures since the previous window (also updates the fairness and generator-bound gauges); null
   * when no sending thread has flushed since (the next window takes this one's time with its own).
   */
  takeWindow() {
    if (this.windowFlushes === 0) return null;
    this.windowFlushes = 0;
    const health = this.windowHealth.report();
    this.windowHealth.reset();
    this.metrics?.generatorBound.set(health.generatorBound ? 1 : 0);
    return {
      health,
      probes: this.tallies.map((tally) => ({ key: tally.key, errors: tally.errors, ...tally.takeWindow() })),
    };
  }
}
