// One thread's share of a load run. A run (services/loadgen/run.ts, in the main thread) is cut
// into parts, one per sending thread: part `index` of `count` owns every probe's connections
// i with i % count === index, and an open loop's share of the rate in proportion. The part runs
// its connections' send loops (drivers.ts) where it lives, times its own warm-up and duration
// (so a stretch is exactly as long as asked, whatever the main thread is doing), records into
// its own ProbeRecorders and GeneratorHealth, and hands what it measured over as plain data
// every `flushEveryMs` and once more at the end (PartFlush): the main thread merges.

import { setMaxListeners } from 'node:events';
import type { Target } from './options.js';
import type { PauseGate } from './pause.js';
import { connectTo, realClock, runProbe, type Clock, type Connect } from './drivers.js';
import { GeneratorHealth, NO_HEALTH, type ThreadHealth } from './health.js';
import { preciseClock } from './pacer.js';
import { ProbeRecorder, bucketOf, type SeriesDelta } from './recorder.js';
import { LATENCY_BUCKETS } from '../lab/metrics.js';
import type { Scenario } from './scenario.js';
import { isScheduled, phaseAt } from './schedule.js';

/** How often the time spent in each phase of a scenario is sampled, ms. */
const PHASE_SAMPLE_MS = 50;

/** What a part is told to run: plain data (it crosses to a sending thread). */
export interface PartSpec {
  runId: number;
  scenario: Scenario;
  targets: Target[];
  /** 0 runs until stopped. */
  durationMs: number;
  warmupMs: number;
  timeoutMs: number;
  /** Leave out replies that come back after the stop: every figure is over exactly the run's time. */
  dropLateReplies: boolean;
  /** This part is `index` of `count`. */
  index: number;
  count: number;
  flushEveryMs: number;
}

/** What a part hands over: since the previous flush (series, lag) or so far (health). */
export interface PartFlush {
  runId: number;
  index: number;
  /** One per target and probe, in the order of PartSpec (targets, then the scenario's probes); null: nothing new. */
  series: Array<SeriesDelta | null>;
  /** Prometheus buckets of the schedule lag in seconds (not cumulative), and their sum; null: none. */
  lag: { buckets: number[]; sum: number } | null;
  /** Since the previous flush, and over the measured run so far. */
  health: { window: ThreadHealth; run: ThreadHealth };
  /** When this flush's figures end, ms after the part's measured stretch began (the end of the warm-up): each flush is one interval of `lab compare`'s samples. */
  atMs: number;
  /** The warm-up ended after this flush's figures: the run's figures start afresh from here. */
  warmupEnded?: boolean;
  /** The last flush: the part has stopped and every connection is closed. */
  final?: { measuredMs: number; phaseMs: Array<[string, number]> };
}

/** The series of a spec, in the order flushes carry them. */
export function seriesOf(spec: Pick<PartSpec, 'targets' | 'scenario'>) {
  return spec.targets.flatMap((target) => spec.scenario.probes.map((probe) => ({ target, probe })));
}

/** Connection indexes of a probe that belong to part `index` of `count`. */
export function connectionsOf(connections: number, index: number, count: number): number[] {
  const own: number[] = [];
  for (let i = index; i < connections; i += count) own.push(i);
  return own;
}

export class RunPart {
  private readonly stopper = new AbortController();
  private readonly recorders: ProbeRecorder[];
  private readonly health = new GeneratorHealth();
  private readonly windowHealth = new GeneratorHealth();
  private readonly lagBuckets = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
  private lagSum = 0;
  private lagCount = 0;
  private readonly timers: Array<() => void> = [];
  private readonly startedAt: number;
  private measuredFrom: number;
  private stoppedAt: number | null = null;
  private readonly phaseMs = new Map<string, number>();
  readonly finished: Promise<void>;

  constructor(
    private readonly spec: PartSpec,
    private readonly emit: (flush: PartFlush) => void,
    gate: PauseGate | null,
    private readonly clock: Clock = realClock,
    connect: Connect = connectTo,
  ) {
    const { scenario } = spec;
    // Every connection's loop listens for the stop (up to 256 of them): not a leak, which is what
    // Node's warning past 10 listeners would tell the user.
    setMaxListeners(0, this.stopper.signal);
    this.startedAt = clock.now();
    this.measuredFrom = this.startedAt;
    const onScheduleLag = (ms: number) => {
      this.health.scheduleLag(ms);
      this.windowHealth.scheduleLag(ms);
      this.lagBuckets[bucketOf(ms / 1000)]! += 1;
      this.lagSum += ms / 1000;
      this.lagCount += 1;
    };
    const probes: Promise<void>[] = [];
    this.recorders = seriesOf(spec).map(({ target, probe }) => {
      const recorder = new ProbeRecorder({ target: target.name, scenario: probe.scenario, probe: probe.name }, probe.connections);
      const connections = connectionsOf(probe.connections, spec.index, spec.count);
      if (connections.length > 0)
        probes.push(
          runProbe({
            target,
            probe,
            recorder,
            connections,
            rateScale: connections.length / probe.connections,
            timeoutMs: spec.timeoutMs,
            periodMs: scenario.durationMs,
            startedAt: this.startedAt,
            stopped: this.stopper.signal,
            // An open loop's schedule needs better than Node's millisecond timers (pacer.ts).
            clock: probe.model === 'open' && clock === realClock ? preciseClock() : clock,
            connect,
            gate,
            dropLateReplies: spec.dropLateReplies,
            onScheduleLag,
          }),
        );
      return recorder;
    });
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
        if (!this.stopper.signal.aborted) this.timers.push(clock.setTimer(sample, PHASE_SAMPLE_MS));
      };
      this.timers.push(clock.setTimer(sample, PHASE_SAMPLE_MS));
    }
    if (spec.warmupMs > 0) {
      this.timers.push(
        clock.setTimer(() => {
          this.flush();
          this.measuredFrom = clock.now();
          this.phaseMs.clear();
          this.health.reset();
          this.emit({ ...this.emptyFlush(), warmupEnded: true });
        }, spec.warmupMs),
      );
    }
    if (gate) {
      // All load paused (a sweep's lease, the idle lab): the health samplers sleep too.
      const follow = () => {
        for (const health of [this.health, this.windowHealth]) {
          if (gate.allPaused) health.suspend();
          else health.resume();
        }
      };
      follow();
      this.timers.push(gate.subscribe(follow));
    }
    if (spec.durationMs > 0) this.timers.push(clock.setTimer(() => this.stop(), spec.warmupMs + spec.durationMs));
    const tick = () => {
      this.flush();
      if (!this.stopper.signal.aborted) this.timers.push(clock.setTimer(tick, spec.flushEveryMs));
    };
    this.timers.push(clock.setTimer(tick, spec.flushEveryMs));
    this.finished = Promise.all(probes).then(() => {
      for (const cancel of this.timers) cancel();
      this.stoppedAt ??= clock.now();
      this.flush({
        measuredMs: Math.max(0, this.stoppedAt - this.measuredFrom),
        phaseMs: [...this.phaseMs],
      });
      this.health.close();
      this.windowHealth.close();
    });
  }

  /** Stops sending; what is in flight gets a grace period (STOP_GRACE_MS) to come back. */
  stop(): void {
    this.stoppedAt ??= this.clock.now();
    this.stopper.abort();
  }

  private emptyFlush(): PartFlush {
    return {
      runId: this.spec.runId,
      index: this.spec.index,
      series: this.recorders.map(() => null),
      lag: null,
      health: { window: NO_HEALTH, run: this.health.report() },
      atMs: 0,
    };
  }

  /** Hands over what was measured so far (also called when a paused target's last connection closes). */
  flush(final?: PartFlush['final']): void {
    const lag = this.lagCount > 0 ? { buckets: [...this.lagBuckets], sum: this.lagSum } : null;
    this.lagBuckets.fill(0);
    this.lagSum = 0;
    this.lagCount = 0;
    const window = this.windowHealth.report();
    this.windowHealth.reset();
    this.emit({
      runId: this.spec.runId,
      index: this.spec.index,
      series: this.recorders.map((recorder) => recorder.takeDelta()),
      lag,
      health: { window, run: this.health.report() },
      atMs: Math.min(this.clock.now(), this.stoppedAt ?? Infinity) - this.measuredFrom,
      ...(final && { final }),
    });
  }
}
