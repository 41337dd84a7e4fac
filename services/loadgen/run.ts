// One load run: every probe of the scenario against every target at once, each probe on its own
// connections, until the duration ends or the run is stopped. After the warm-up, results start
// afresh. The generator watches itself throughout (health.ts): over the whole measured run for
// the results, and window by window for the live display and the generator-bound gauge.

import type { LoadgenMetrics } from '../common/metrics.js';
import { connectTo, realClock, runProbe, type Clock, type Connect } from './drivers.js';
import { GeneratorHealth } from './health.js';
import type { Target } from './options.js';
import type { PauseGate } from './pause.js';
import { ProbeRecorder } from './recorder.js';
import { isScheduled, phaseAt, type Scenario } from './scenario.js';

/** How often the time spent in each phase of a scenario is sampled, ms. */
const PHASE_SAMPLE_MS = 50;

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

export class LoadRun {
  readonly recorders: ProbeRecorder[] = [];
  /** Over the measured run (from the end of the warm-up). */
  readonly health: GeneratorHealth;
  /** Since the last window (the live display). */
  readonly windowHealth: GeneratorHealth;
  readonly finished: Promise<void>;
  private readonly stopper = new AbortController();
  private readonly startedAt: number;
  private measuredFrom: number;
  private stoppedAt: number | null = null;
  private windowStart: number;
  private readonly cancelTimers: Array<() => void> = [];
  /** ms the measured run spent in each phase of the scenario (where it has phases). */
  readonly phaseMs = new Map<string, number>();

  constructor(
    readonly config: RunConfig,
    private readonly metrics: LoadgenMetrics | null,
    private readonly clock: Clock = realClock,
    connect: Connect = connectTo,
  ) {
    const onLag = (seconds: number) => metrics?.scheduleLag.observe(seconds);
    this.health = new GeneratorHealth(onLag);
    this.windowHealth = new GeneratorHealth();
    this.startedAt = clock.now();
    this.measuredFrom = this.startedAt;
    this.windowStart = this.startedAt;
    const probes: Promise<void>[] = [];
    for (const target of config.targets) {
      for (const probe of config.scenario.probes) {
        const recorder = new ProbeRecorder(
          { target: target.name, scenario: probe.scenario, probe: probe.name },
          probe.connections,
          metrics,
          { fairnessGauge: config.fairnessGauge ?? true },
        );
        this.recorders.push(recorder);
        probes.push(
          runProbe({
            target,
            probe,
            recorder,
            timeoutMs: config.timeoutMs,
            periodMs: config.scenario.durationMs,
            startedAt: this.startedAt,
            stopped: this.stopper.signal,
            clock,
            connect,
            gate: config.gate ?? null,
            dropLateReplies: config.dropLateReplies ?? false,
            onScheduleLag: (ms) => {
              this.health.scheduleLag(ms);
              this.windowHealth.scheduleLag(ms);
            },
          }),
        );
      }
    }
    const { scenario } = config;
    if (scenario.probes.some(isScheduled)) {
      const phase = () => phaseAt(scenario, (clock.now() - this.startedAt) % scenario.durationMs);
      for (const recorder of this.recorders) recorder.phaseOf = phase;
      // Time in each phase, sampled: what each phase's requests per second are divided by.
      let last = clock.now();
      const sample = () => {
        const now = clock.now();
        const key = phase();
        this.phaseMs.set(key, (this.phaseMs.get(key) ?? 0) + (now - last));
        last = now;
        if (!this.stopper.signal.aborted) this.cancelTimers.push(clock.setTimer(sample, PHASE_SAMPLE_MS));
      };
      this.cancelTimers.push(clock.setTimer(sample, PHASE_SAMPLE_MS));
    }
    if (config.warmupMs > 0) {
      this.cancelTimers.push(
        clock.setTimer(() => {
          this.measuredFrom = clock.now();
          for (const recorder of this.recorders) recorder.reset();
          this.phaseMs.clear();
          this.health.reset();
        }, config.warmupMs),
      );
    }
    if (config.durationMs > 0) this.cancelTimers.push(clock.setTimer(() => this.stop(), config.warmupMs + config.durationMs));
    this.finished = Promise.all(probes).then(() => {
      for (const cancel of this.cancelTimers) cancel();
      this.health.close();
      this.windowHealth.close();
    });
  }

  /** Stops sending; what is in flight gets a grace period (STOP_GRACE_MS) to come back. */
  stop(): void {
    this.stoppedAt ??= this.clock.now();
    this.stopper.abort();
  }

  get stopped(): boolean {
    return this.stoppedAt !== null;
  }

  /** Time measured (after the warm-up) so far, or until the run was stopped. */
  measuredMs(): number {
    return Math.max(0, (this.stoppedAt ?? this.clock.now()) - this.measuredFrom);
  }

  /** Time since the start, warm-up included. */
  elapsedMs(): number {
    return (this.stoppedAt ?? this.clock.now()) - this.startedAt;
  }

  /** How long the whole run takes, warm-up included; null when it runs until stopped. */
  get totalMs(): number | null {
    return this.config.durationMs > 0 ? this.config.warmupMs + this.config.durationMs : null;
  }

  /** The label sets of its loadgen_fairness_index series (removed when the run is replaced). */
  fairnessLabels(): Array<{ variant: string; scenario: string; probe: string }> {
    if (this.config.fairnessGauge === false) return [];
    return this.recorders.map((r) => ({ variant: r.key.target, scenario: r.key.scenario, probe: r.key.probe }));
  }

  /** Figures since the previous window (also updates the fairness and generator-bound gauges). */
  takeWindow() {
    const now = this.clock.now();
    const windowMs = now - this.windowStart;
    this.windowStart = now;
    const health = this.windowHealth.report();
    this.windowHealth.reset();
    this.metrics?.generatorBound.set(health.generatorBound ? 1 : 0);
    return {
      windowMs,
      health,
      probes: this.recorders.map((recorder) => ({ key: recorder.key, errors: recorder.errors, ...recorder.takeWindow() })),
    };
  }
}
