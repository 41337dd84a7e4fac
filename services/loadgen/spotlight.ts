// The spotlight: the talk's experiment, one variant at a time, in rotation. A variant's turn is
// perf2 (one connection, closed loop, fib(1)) alone; then perf2 beside one perf1 hog (one
// connection looping fib(30)); then, where the variant computes in parallel, perf2 beside as many
// hogs as it has workers, which shows the pool saturating. The phases run in rounds, alternating
// (alone, beside, all, alone, beside, all, ...), so a machine that drifts (another process, a
// CPU's clock) moves every phase alike: each figure is the median of its rounds, exported with
// the lowest and highest round as its spread. Each phase of a round is one measure() stretch, so
// its percentiles are its own, and the background load is paused for the whole turn (against
// every variant: the others' fib(30)s would take the cores the lesson is about), so the variant is
// measured alone with the host's cores: a side-by-side closed-loop load cannot show this (its
// percentiles are weighted by throughput, and the variants' noise drowns the effect). The
// background runs between turns. At the end of each turn the variant's lesson figures are exported and kept until
// its next turn (docs/protocol.md lists them).
//
// Collapse ratio = perf2's requests per second alone / beside one long request, per round (the
// two stretches are seconds apart), then the median of the rounds; when beside it no short
// request was answered (sync: the hog keeps the only connection it serves), it is +Inf. When
// perf2 got nothing even alone, the ratio means nothing and its series is left out. Whether the
// generator was the bottleneck is judged per stretch, and counted per phase and cause.

import { parseExposition } from '../lab/exposition.js';
import type { LessonMetrics, LoadgenMetrics } from './metrics.js';
import { GENERATOR_CAUSES, judge, mergeHealth, type GeneratorCause, type HealthReport } from './health.js';
import { measure, type MeasuredProbe, type ProbeFigures } from './measure.js';
import type { Parallelism, SpotlightOptions, Target } from './options.js';
import type { PauseGate } from './pause.js';

export const LESSON_PHASES = ['alone', 'beside_one_long', 'beside_all_workers_long'] as const;
export type LessonPhase = (typeof LESSON_PHASES)[number];

/**
 * The percentiles of loadgen_lesson_short_latency_seconds: a gauge's `percentile` label (p50,
 * p99), not a summary's `quantile`, which Prometheus tools read as a summary's series.
 */
const PERCENTILES = [
  { label: 'p50', figure: 'p50Ms' },
  { label: 'p99', figure: 'p99Ms' },
] as const;

/** perf2 as the talk runs it: one connection, a closed loop of fib(1) without think time (perf1's n is an option). */
const SHORT_N = 1;

/** How long a turn waits for the background's requests in flight to the variant to come back. */
const QUIET_TIMEOUT_MS = 5000;
/** How long reading a variant's /metrics may take. */
const METRICS_TIMEOUT_MS = 2000;

/** What the spotlight needs to know about one variant. */
export interface SpotlightTarget {
  /** Its fib address; `name` is the `variant` label. */
  target: Target;
  /** Its own /metrics (its quota, workers and per-worker counts are read there); null: not read. */
  metricsUrl: string | null;
  /** It takes one client at a time (sync): perf2 connects per request, as the talk's clients take turns, while each hog keeps its connection. */
  takesTurns: boolean;
  /** single: no third phase; fixed-workers: third phase with as many hogs as fib_workers; per-connection: with ceil(quota cores). */
  parallelism: Parallelism;
}

export function toSpotlightTarget(target: Target): SpotlightTarget {
  return {
    target,
    metricsUrl: target.metrics ? `http://${target.metrics}/metrics` : null,
    takesTurns: target.takesTurns ?? false,
    parallelism: target.parallelism ?? 'single',
  };
}

/** One measured stretch: a phase in one round of a turn. */
export interface PhaseRound {
  /** perf1 hogs beside perf2. */
  hogs: number;
  seconds: number;
  short: ProbeFigures;
  long: ProbeFigures | null;
  /** Fixed workers with per-worker counts: how many computed requests during the stretch. */
  workersUsed: number | null;
  generator: HealthReport;
}

/** The figures of one phase of a turn, over its rounds. */
export interface PhaseResult {
  phase: LessonPhase;
  /** perf1 hogs beside perf2. */
  hogs: number;
  /** Measured, over every round. */
  seconds: number;
  /** Medians of the rounds (requests, ok and errors: sums; maxMs: the largest). */
  short: ProbeFigures;
  /** perf2's requests per second: the lowest and highest round. */
  shortLow: number;
  shortHigh: number;
  long: ProbeFigures | null;
  /** The median of the rounds. */
  workersUsed: number | null;
  /** The worst of the rounds. */
  generator: HealthReport;
  /** Rounds in which the generator was the bottleneck, by cause. */
  boundRounds: Partial<Record<GeneratorCause, number>>;
  rounds: PhaseRound[];
}

export interface LessonTurn {
  variant: string;
  /** 1 for the first rotation. */
  rotation: number;
  startedAt: string;
  endedAt: string;
  parallelism: Parallelism;
  /** Read from the variant's own metrics at the start of the turn; null when they could not be read. */
  quotaCores: number | null;
  /** Its fib_workers at the start of the turn. */
  workers: number | null;
  /** Hogs in beside_all_workers_long; 1 where that phase was not run because one worker is all there is. */
  allWorkersHogs: number | null;
  phases: PhaseResult[];
  /** perf2 alone / beside one long request, the rounds' median: Infinity when beside it nothing was answered, NaN when nothing was answered alone. */
  collapseRatio: number;
  /** The lowest and highest round's collapse ratio. */
  collapseLow: number;
  collapseHigh: number;
  generatorBound: boolean;
  /** What was left out, and why. */
  notes: string[];
}

export type SpotlightEvent =
  | { type: 'phase'; variant: string; phase: LessonPhase; hogs: number; round: number }
  | { type: 'turn'; turn: LessonTurn }
  | { type: 'abandoned'; variant: string; reason: string }
  | { type: 'note'; variant: string; note: string };

export interface SpotlightDeps {
  /** The background load's gate: paused against every target during a turn; a lease pauses it all. */
  gate: PauseGate;
  metrics: LoadgenMetrics | null;
  onEvent?: (event: SpotlightEvent) => void;
}

/** Runs turns in rotation until stopped (or its rotations are done), exporting each turn's figures. */
export class Spotlight {
  private rotation: SpotlightTarget[];
  private next = 0;
  private rotationNumber = 1;
  private turnAbort: AbortController | null = null;
  private current: { variant: string; phase: LessonPhase | null } | null = null;
  /** Settles when the turn in progress has ended (its connections closed). */
  private turnEnded: Promise<unknown> = Promise.resolve();
  /** The last turn of each variant (in the rotation). */
  readonly lastTurns = new Map<string, LessonTurn>();
  private readonly lesson: LessonMetrics | null;

  constructor(
    private readonly known: SpotlightTarget[],
    private readonly options: SpotlightOptions,
    private readonly deps: SpotlightDeps,
  ) {
    this.rotation = this.pick(options.variants);
    this.lesson = deps.metrics?.lesson ?? null;
    this.initSeries();
  }

  /** The rotation's variant names. */
  get variants(): string[] {
    return this.rotation.map((s) => s.target.name);
  }

  /** Changes the rotation from the next turn; variants taken out lose their series now (their turn, if running, is abandoned). */
  setVariants(names: string[]): void {
    const rotation = this.pick(names);
    const removed = this.variants.filter((name) => !names.includes(name));
    const now = this.current?.variant;
    this.rotation = rotation;
    const at = now === undefined ? -1 : names.indexOf(now);
    this.next = at >= 0 ? (at + 1) % rotation.length : 0;
    for (const variant of removed) {
      this.lastTurns.delete(variant);
      this.removeSeries(variant);
    }
    if (now !== undefined && removed.includes(now)) this.turnAbort?.abort(new Error('taken out of the rotation'));
    this.initSeries();
  }

  /** Resolves once no turn runs (a lease abandons the turn in progress: this says it is over), false after `timeoutMs`. */
  async idle(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const ended = this.turnEnded.then(
      () => true,
      () => true,
    );
    try {
      return await Promise.race([ended, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** What runs now, for GET /spotlight and GET /scenario. */
  state() {
    return {
      variants: this.variants,
      phaseSeconds: this.options.phaseMs / 1000,
      warmupSeconds: this.options.warmupMs / 1000,
      gapSeconds: this.options.gapMs / 1000,
      rotation: this.rotationNumber,
      now: this.current,
      last: Object.fromEntries([...this.lastTurns].map(([variant, turn]) => [variant, turnSummary(turn)])),
    };
  }

  /**
   * Runs turns until `signal` aborts or the rotations asked for are done. A lease (the gate
   * paused everything) abandons the turn in progress; it starts again once the lease is over.
   */
  async run(signal: AbortSignal): Promise<void> {
    const { gate } = this.deps;
    const unsubscribe = gate.subscribe(() => {
      if (gate.allPaused) this.turnAbort?.abort(new Error('all load paused (PUT /pause)'));
    });
    try {
      while (!signal.aborted) {
        if (gate.allPaused) {
          await gate.whenAllResumed(signal);
          continue;
        }
        const spot = this.rotation[this.next % this.rotation.length]!;
        this.turnAbort = new AbortController();
        const turnSignal = AbortSignal.any([signal, this.turnAbort.signal]);
        const running = this.turn(spot, turnSignal);
        this.turnEnded = running;
        const turn = await running;
        if (signal.aborted) break;
        if (turnSignal.aborted) {
          const reason: unknown = this.turnAbort.signal.reason;
          this.deps.onEvent?.({
            type: 'abandoned',
            variant: spot.target.name,
            reason: reason instanceof Error ? reason.message : String(reason),
          });
          continue; // the same variant again (unless taken out of the rotation: setVariants moved `next`)
        }
        if (turn) {
          this.lastTurns.set(turn.variant, turn);
          this.exportTurn(turn);
          this.deps.onEvent?.({ type: 'turn', turn });
        }
        this.next += 1;
        if (this.next >= this.rotation.length) {
          this.next = 0;
          if (this.options.rotations !== null && this.rotationNumber >= this.options.rotations) break;
          this.rotationNumber += 1;
        }
        await sleep(this.options.gapMs, signal);
      }
    } finally {
      unsubscribe();
      this.turnAbort = null;
    }
  }

  /** One variant's turn; null when it was abandoned. */
  private async turn(spot: SpotlightTarget, signal: AbortSignal): Promise<LessonTurn | null> {
    const { gate } = this.deps;
    const variant = spot.target.name;
    const notes: string[] = [];
    const note = (text: string) => {
      notes.push(text);
      this.deps.onEvent?.({ type: 'note', variant, note: text });
    };
    const startedAt = new Date();
    this.current = { variant, phase: null };
    this.lesson?.spotlight.labels({ variant }).set(1);
    // The machine to itself: the background load pauses against every target for the turn (on a
    // 2-core machine the others' fib(30)s would take the cores the lesson is about), and runs
    // between turns.
    const everyone = this.known.map((spot) => spot.target.name);
    for (const name of everyone) gate.pause(name);
    try {
      if (!(await gate.quiet(null, QUIET_TIMEOUT_MS, signal))) {
        const held = everyone.filter((name) => gate.connections(name) > 0);
        note(`the background still held connections to ${held.join(', ')} after ${QUIET_TIMEOUT_MS} ms`);
      }
      if (signal.aborted) return null;
      const state = spot.metricsUrl ? await readVariantState(spot.metricsUrl).catch((error: Error) => error) : null;
      if (state instanceof Error) note(`could not read ${spot.metricsUrl}: ${state.message}`);
      const known = state instanceof Error ? null : state;
      const quotaCores = known?.quotaCores ?? null;
      const workers = known?.workers ?? null;

      const phases: PhaseResult[] = [];
      const hogsForAll = allWorkersHogs(spot.parallelism, quotaCores, workers);
      const plan: Array<{ phase: LessonPhase; hogs: number }> = [
        { phase: 'alone', hogs: 0 },
        { phase: 'beside_one_long', hogs: 1 },
      ];
      if (spot.parallelism !== 'single') {
        if (hogsForAll === null)
          note(
            `beside_all_workers_long skipped: ${spot.parallelism === 'fixed-workers' ? 'fib_workers' : 'lab_cpu_quota_cores'} unknown (give the target metrics=host:port)`,
          );
        else if (hogsForAll <= 1) note('beside_all_workers_long skipped: one worker, so it would repeat beside_one_long');
        else plan.push({ phase: 'beside_all_workers_long', hogs: hogsForAll });
      }
      // Round by round, the phases alternate: drift between them cancels in the medians.
      const rounds = new Map<LessonPhase, PhaseRound[]>(plan.map(({ phase }) => [phase, []]));
      for (let round = 1; round <= this.options.rounds; round++) {
        for (const { phase, hogs } of plan) {
          if (signal.aborted) return null;
          const result = await this.phase(spot, phase, hogs, round, signal);
          if (signal.aborted) return null;
          rounds.get(phase)!.push(result);
        }
      }
      for (const { phase, hogs } of plan) phases.push(overRounds(phase, hogs, rounds.get(phase)!));
      if (spot.metricsUrl && quotaCores !== null) {
        // A live quota change (docker update --cpus) during the turn makes its figures a mix.
        const after = await readVariantState(spot.metricsUrl).catch(() => null);
        if (after?.quotaCores != null && after.quotaCores !== quotaCores)
          note(`the CPU quota changed during the turn, from ${quotaCores} to ${after.quotaCores} cores`);
      }
      const alone = rounds.get('alone')!;
      const beside = rounds.get('beside_one_long')!;
      const collapses = alone.map((a, i) => collapseRatio(a.short.okPerSecond, beside[i]!.short.okPerSecond));
      const defined = collapses.filter((ratio) => !Number.isNaN(ratio));
      return {
        variant,
        rotation: this.rotationNumber,
        startedAt: startedAt.toISOString(),
        endedAt: new Date().toISOString(),
        parallelism: spot.parallelism,
        quotaCores,
        workers,
        allWorkersHogs: spot.parallelism === 'single' ? 1 : hogsForAll,
        phases,
        collapseRatio: defined.length > 0 ? median(defined) : NaN,
        collapseLow: defined.length > 0 ? Math.min(...defined) : NaN,
        collapseHigh: defined.length > 0 ? Math.max(...defined) : NaN,
        generatorBound: phases.some((p) => p.generator.generatorBound),
        notes,
      };
    } finally {
      this.current = null;
      // A variant taken out of the rotation meanwhile has lost its series: do not bring them back.
      if (this.variants.includes(variant)) this.lesson?.spotlight.labels({ variant }).set(0);
      for (const name of everyone) gate.resume(name);
    }
  }

  private async phase(
    spot: SpotlightTarget,
    phase: LessonPhase,
    hogs: number,
    round: number,
    signal: AbortSignal,
  ): Promise<PhaseRound> {
    const variant = spot.target.name;
    this.current = { variant, phase };
    this.deps.onEvent?.({ type: 'phase', variant, phase, hogs, round });
    const countsBefore = spot.parallelism === 'fixed-workers' && spot.metricsUrl ? await workerCounts(spot.metricsUrl) : null;
    const probes: MeasuredProbe[] = [{ name: 'short', n: SHORT_N, connections: 1, connectPerRequest: spot.takesTurns }];
    if (hogs > 0) probes.push({ name: 'long', n: this.options.longN, connections: hogs, connectPerRequest: false });
    const live = this.lesson?.phase.labels({ variant, phase });
    live?.set(1);
    try {
      const measured = await measure(spot.target, probes, {
        durationMs: this.options.phaseMs,
        warmupMs: this.options.warmupMs,
        signal,
        metrics: this.deps.metrics,
        scenario: 'spotlight',
        dropLateReplies: true,
      });
      const countsAfter = countsBefore && spot.metricsUrl ? await workerCounts(spot.metricsUrl) : null;
      return {
        hogs,
        seconds: measured.seconds,
        short: measured.probes.short!,
        long: measured.probes.long ?? null,
        workersUsed: countsBefore && countsAfter ? workersUsed(countsBefore, countsAfter) : null,
        generator: measured.generator,
      };
    } finally {
      if (this.variants.includes(variant)) live?.set(0);
    }
  }

  private pick(names: string[]): SpotlightTarget[] {
    if (names.length === 0) throw new Error('the spotlight needs at least one target');
    return names.map((name) => {
      const spot = this.known.find((s) => s.target.name === name);
      if (!spot) throw new Error(`unknown target ${JSON.stringify(name)}`);
      return spot;
    });
  }

  /** The live series of every variant in the rotation: not in the spotlight, no phase running. */
  private initSeries(): void {
    if (!this.lesson) return;
    for (const spot of this.rotation) {
      const variant = spot.target.name;
      if (this.current?.variant !== variant) this.lesson.spotlight.labels({ variant }).set(0);
      for (const phase of phasesOf(spot.parallelism))
        if (this.current?.variant !== variant || this.current.phase !== phase)
          this.lesson.phase.labels({ variant, phase }).set(0);
    }
  }

  /** Replaces the variant's lesson figures with its last turn's. */
  private exportTurn(turn: LessonTurn): void {
    const lesson = this.lesson;
    if (!lesson) return;
    const { variant } = turn;
    removeFigures(lesson, variant);
    for (const p of turn.phases) {
      lesson.shortRate.labels({ variant, phase: p.phase }).set(p.short.okPerSecond);
      lesson.shortRateLow.labels({ variant, phase: p.phase }).set(p.shortLow);
      lesson.shortRateHigh.labels({ variant, phase: p.phase }).set(p.shortHigh);
      for (const [cause, count] of Object.entries(p.boundRounds))
        lesson.generatorBoundRounds.labels({ variant, phase: p.phase, cause }).set(count);
      for (const { label, figure } of PERCENTILES) {
        const ms = p.short[figure];
        if (Number.isFinite(ms)) lesson.shortLatency.labels({ variant, phase: p.phase, percentile: label }).set(ms / 1000);
      }
      if (p.long) lesson.longRate.labels({ variant, phase: p.phase }).set(p.long.okPerSecond);
      if (p.workersUsed !== null) lesson.workersUsed.labels({ variant, phase: p.phase }).set(p.workersUsed);
    }
    if (!Number.isNaN(turn.collapseRatio)) {
      lesson.collapse.labels({ variant }).set(turn.collapseRatio);
      lesson.collapseLow.labels({ variant }).set(turn.collapseLow);
      lesson.collapseHigh.labels({ variant }).set(turn.collapseHigh);
    }
    if (turn.quotaCores !== null) lesson.quota.labels({ variant }).set(turn.quotaCores);
    if (turn.allWorkersHogs !== null) lesson.workers.labels({ variant }).set(turn.allWorkersHogs);
    lesson.generatorBound.labels({ variant }).set(turn.generatorBound ? 1 : 0);
    lesson.timestamp.labels({ variant }).set(Date.parse(turn.endedAt) / 1000);
    this.exportGroups();
  }

  /** Which variants' collapse ratios cannot be told apart: their spreads overlap (collapseGroups). */
  private exportGroups(): void {
    const lesson = this.lesson;
    if (!lesson) return;
    const groups = collapseGroups([...this.lastTurns.values()]);
    for (const variant of this.variants) {
      const group = groups.get(variant);
      if (group === undefined) lesson.collapseGroup.remove({ variant });
      else lesson.collapseGroup.labels({ variant }).set(group);
    }
  }

  private removeSeries(variant: string): void {
    if (!this.lesson) return;
    removeFigures(this.lesson, variant);
    this.lesson.spotlight.remove({ variant });
    for (const phase of LESSON_PHASES) this.lesson.phase.remove({ variant, phase });
  }
}

function removeFigures(lesson: LessonMetrics, variant: string): void {
  for (const phase of LESSON_PHASES) {
    lesson.shortRate.remove({ variant, phase });
    lesson.shortRateLow.remove({ variant, phase });
    lesson.shortRateHigh.remove({ variant, phase });
    for (const cause of GENERATOR_CAUSES) lesson.generatorBoundRounds.remove({ variant, phase, cause });
    for (const { label } of PERCENTILES) lesson.shortLatency.remove({ variant, phase, percentile: label });
    lesson.longRate.remove({ variant, phase });
    lesson.workersUsed.remove({ variant, phase });
  }
  for (const gauge of [
    lesson.collapse,
    lesson.collapseLow,
    lesson.collapseHigh,
    lesson.collapseGroup,
    lesson.quota,
    lesson.workers,
    lesson.generatorBound,
    lesson.timestamp,
  ])
    gauge.remove({ variant });
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** A phase over its rounds: medians, the spread of perf2's rate, the worst generator report. */
export function overRounds(phase: LessonPhase, hogs: number, rounds: PhaseRound[]): PhaseResult {
  const figures = (pick: (round: PhaseRound) => ProbeFigures | null): ProbeFigures | null => {
    const all = rounds.map(pick).filter((f): f is ProbeFigures => f !== null);
    if (all.length === 0) return null;
    const errors: Record<string, number> = {};
    for (const f of all) for (const [code, count] of Object.entries(f.errors)) errors[code] = (errors[code] ?? 0) + count;
    const answered = (key: 'p50Ms' | 'p99Ms') => {
      const values = all.map((f) => f[key]).filter((v) => !Number.isNaN(v));
      return values.length > 0 ? median(values) : NaN;
    };
    return {
      requests: all.reduce((sum, f) => sum + f.requests, 0),
      ok: all.reduce((sum, f) => sum + f.ok, 0),
      okPerSecond: median(all.map((f) => f.okPerSecond)),
      p50Ms: answered('p50Ms'),
      p99Ms: answered('p99Ms'),
      maxMs: Math.max(...all.map((f) => (Number.isNaN(f.maxMs) ? -Infinity : f.maxMs))),
      errors,
    };
  };
  const short = figures((r) => r.short)!;
  if (short.maxMs === -Infinity) short.maxMs = NaN;
  const long = figures((r) => r.long);
  if (long && long.maxMs === -Infinity) long.maxMs = NaN;
  const used = rounds.map((r) => r.workersUsed).filter((v): v is number => v !== null);
  const boundRounds: Partial<Record<GeneratorCause, number>> = {};
  for (const round of rounds) for (const cause of round.generator.causes) boundRounds[cause] = (boundRounds[cause] ?? 0) + 1;
  const worst = rounds.map((r) => r.generator);
  const throttled = worst.map((g) => g.throttled).filter((t): t is number => t !== null);
  const merged = judge(mergeHealth(worst), throttled.length > 0 ? Math.max(...throttled) : null);
  return {
    phase,
    hogs,
    seconds: rounds.reduce((sum, r) => sum + r.seconds, 0),
    short,
    shortLow: Math.min(...rounds.map((r) => r.short.okPerSecond)),
    shortHigh: Math.max(...rounds.map((r) => r.short.okPerSecond)),
    long,
    workersUsed: used.length > 0 ? median(used) : null,
    generator: phaseVerdict(merged, rounds),
    boundRounds,
    rounds,
  };
}

/**
 * A phase's verdict from its rounds'. Its figures are medians of the rounds, and a median stays
 * within the range of the rounds the generator did not bound while those are more than half
 * (wherever a slowed round's figure falls, the median lies between two clean rounds' figures):
 * one stalled round in three (a 20 ms hiccup of the generator's thread on a shared core) does
 * not make the phase's figures describe the generator. So the phase is generator-bound when at
 * least half its rounds were, with their causes; the rounds that were stay counted in
 * `boundRounds`.
 */
export function phaseVerdict(merged: HealthReport, rounds: PhaseRound[]): HealthReport {
  const bound = rounds.filter((r) => r.generator.generatorBound);
  if (bound.length * 2 >= rounds.length && bound.length > 0) return merged;
  return { ...merged, generatorBound: false, causes: [], reasons: [] };
}

/**
 * Groups variants whose collapse ratios cannot be told apart: sorted by their median, a variant
 * joins the group before it when its lowest round is not above the highest round seen in that
 * group (the spreads overlap), else it starts the next group. 1 collapses least.
 */
export function collapseGroups(turns: LessonTurn[]): Map<string, number> {
  const known = turns.filter((t) => !Number.isNaN(t.collapseRatio)).sort((a, b) => a.collapseRatio - b.collapseRatio);
  const groups = new Map<string, number>();
  let group = 0;
  let reach = -Infinity;
  for (const turn of known) {
    if (group === 0 || turn.collapseLow > reach) {
      group += 1;
      reach = turn.collapseHigh;
    } else reach = Math.max(reach, turn.collapseHigh);
    groups.set(turn.variant, group);
  }
  return groups;
}

/** The phases a variant's turn may run. */
export function phasesOf(parallelism: Parallelism): LessonPhase[] {
  return parallelism === 'single' ? ['alone', 'beside_one_long'] : [...LESSON_PHASES];
}

/** Hogs that occupy every worker: fib_workers for a fixed set, the quota rounded up for a thread or process per connection. */
export function allWorkersHogs(parallelism: Parallelism, quotaCores: number | null, workers: number | null): number | null {
  if (parallelism === 'single') return null;
  if (parallelism === 'fixed-workers') return workers !== null && workers >= 1 ? Math.round(workers) : null;
  return quotaCores !== null && quotaCores > 0 ? Math.ceil(quotaCores - 1e-9) : null;
}

export function collapseRatio(alonePerSecond: number, besidePerSecond: number): number {
  if (!(alonePerSecond > 0)) return NaN;
  return besidePerSecond > 0 ? alonePerSecond / besidePerSecond : Infinity;
}

function turnSummary(turn: LessonTurn) {
  return {
    rotation: turn.rotation,
    endedAt: turn.endedAt,
    quotaCores: turn.quotaCores,
    collapseRatio: jsonNumber(turn.collapseRatio),
    generatorBound: turn.generatorBound,
    phases: turn.phases.map((p) => ({
      phase: p.phase,
      hogs: p.hogs,
      shortPerSecond: Number(p.short.okPerSecond.toFixed(1)),
      shortP50Ms: jsonNumber(p.short.p50Ms),
      shortP99Ms: jsonNumber(p.short.p99Ms),
      longPerSecond: p.long ? Number(p.long.okPerSecond.toFixed(1)) : null,
      workersUsed: p.workersUsed,
    })),
    notes: turn.notes,
  };
}

/** JSON has no Infinity or NaN: Infinity becomes the string "Infinity", NaN null. */
export function jsonNumber(value: number): number | string | null {
  if (Number.isNaN(value)) return null;
  return Number.isFinite(value) ? value : String(value);
}

export interface VariantState {
  quotaCores: number | null;
  workers: number | null;
  /** fib_worker_requests_total by worker (variants with a fixed set of workers). */
  workerRequests: Map<string, number>;
}

/** Reads a variant's quota, workers and per-worker counts from its own /metrics. */
export async function readVariantState(url: string): Promise<VariantState> {
  const response = await fetch(url, { signal: AbortSignal.timeout(METRICS_TIMEOUT_MS) });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const samples = parseExposition(await response.text());
  const first = (name: string) => {
    const value = samples.find((s) => s.name === name)?.value;
    return value !== undefined && Number.isFinite(value) ? value : null;
  };
  const workerRequests = new Map<string, number>();
  for (const s of samples)
    if (s.name === 'fib_worker_requests_total' && s.labels.worker !== undefined) workerRequests.set(s.labels.worker, s.value);
  return { quotaCores: first('lab_cpu_quota_cores'), workers: first('fib_workers'), workerRequests };
}

async function workerCounts(url: string): Promise<Map<string, number> | null> {
  try {
    const { workerRequests } = await readVariantState(url);
    return workerRequests.size > 0 ? workerRequests : null;
  } catch {
    return null;
  }
}

function workersUsed(before: Map<string, number>, after: Map<string, number>): number {
  let used = 0;
  for (const [worker, count] of after) if (count > (before.get(worker) ?? 0)) used += 1;
  return used;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
