// What the load generator records per target and probe, in two halves that meet in messages.
//
// - ProbeRecorder lives in the thread that sends (a sending thread, services/loadgen/sender.ts):
//   it records each answered request into HDR histograms (microsecond resolution, 3 significant
//   digits), counts by outcome, per-connection counts for Jain's fairness index, and Prometheus
//   bucket counts, all as plain numbers; `takeDelta()` hands over what it recorded since the last
//   time and starts again. Nothing on the send path allocates per request beyond the histograms'
//   own counting.
// - ProbeTally lives in the main thread: it merges those deltas into the run's figures (exact
//   percentiles, counts, fairness), a window for the live display, and the prom-client series
//   that /metrics serves.
//
// In the open loop two latencies are kept per request: from the intended send time (corrected
// for coordinated omission: what a user arriving on schedule would see) and from the actual
// send (uncorrected: what a naive client reports), plus how long due requests waited for a free
// connection.

import hdr, { type JsHistogram } from 'hdr-histogram-js';
import { CLIENT_ERROR_CODES, SERVER_ERROR_CODES, type Outcome } from '../lab/errors.js';
import { LATENCY_BUCKETS } from '../lab/metrics.js';
import { type LoadgenMetrics } from './metrics.js';
import { jainIndex } from './fairness.js';

export interface SeriesKey {
  target: string;
  scenario: string;
  probe: string;
}

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

type Histogram = JsHistogram;

export function newHistogram(): Histogram {
  // Never the WebAssembly flavour (not initialised here): the JS one exposes its counts by index.
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000_000,
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
  }) as JsHistogram;
}

/**
 * A histogram's counts as [index, count, index, count, ..., max]: what a sending thread hands
 * over (a compressed encoding costs milliseconds; this, a scan of the counts array), null when
 * empty. Every histogram here has the same layout, so an index means the same value on both sides.
 */
export type SparseCounts = number[];

function sparse(histogram: Histogram): SparseCounts | null {
  if (histogram.totalCount === 0) return null;
  const out: number[] = [];
  for (let i = 0; i < histogram.countsArrayLength; i++) {
    const count = histogram.getCountAtIndex(i);
    if (count > 0) out.push(i, count);
  }
  out.push(histogram.maxValue);
  return out;
}

/** Adds SparseCounts into a histogram; the largest value is recorded exactly, so `max` stays exact. */
function addSparse(into: Histogram, counts: SparseCounts | null): void {
  if (counts === null) return;
  const last = counts.length - 1;
  for (let i = 0; i < last; i += 2) {
    const value = into.valueFromIndex(counts[i]!);
    const count = counts[i + 1]!;
    if (i === last - 2) {
      if (count > 1) into.recordValueWithCount(value, count - 1);
      into.recordValue(counts[last]!);
    } else into.recordValueWithCount(value, count);
  }
}

const micros = (ms: number) => Math.max(1, Math.round(ms * 1000));

/** Every outcome a client can record, in a fixed order: deltas carry counts by index. */
export const OUTCOMES: readonly Outcome[] = ['ok', ...SERVER_ERROR_CODES, ...CLIENT_ERROR_CODES];
const OUTCOME_INDEX = new Map(OUTCOMES.map((outcome, i) => [outcome, i]));

/** The Prometheus bucket (LATENCY_BUCKETS, then +Inf) of a value in seconds. */
export function bucketOf(seconds: number): number {
  let bucket = 0;
  while (bucket < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[bucket]!) bucket += 1;
  return bucket;
}

/** One finished request as a connection's loop saw it. */
export interface Observation {
  outcome: Outcome;
  /** From the intended send time (closed loop: the actual send); null without a reply. */
  latencyMs: number | null;
  /** Open loop: from the actual send. */
  uncorrectedMs?: number;
  /** Open loop: how long the request waited for a free connection after it was due. */
  queueWaitMs?: number;
  /** The scenario's phase when the request was sent (see ProbeRecorder.phaseOf). */
  phase?: string;
}

export interface ConnectionRecorder {
  record(observation: Observation): void;
  /** The connection was active (its probe's schedule let it send) for another `ms`. */
  active(ms: number): void;
}

/** What one ProbeRecorder recorded between two flushes: plain data, sent between threads. */
export interface SeriesDelta {
  requests: number;
  /** Counts by OUTCOMES index. */
  outcomes: number[];
  /** Ok replies per connection (the probe's connection index), and ms each was active. */
  perConnectionOk: number[];
  activeMs: number[];
  /** HDR histograms' counts, null when empty. */
  latency: SparseCounts | null;
  uncorrected: SparseCounts | null;
  queueWait: SparseCounts | null;
  phases: Array<{ phase: string; requests: number; ok: number; latency: SparseCounts | null }>;
  /** Prometheus buckets of the latency in seconds (not cumulative), their sum and count. */
  buckets: number[];
  sum: number;
}

interface PhaseStats {
  latency: Histogram;
  requests: number;
  ok: number;
}

/** Records one target and probe in the thread that sends its requests; see the header. */
export class ProbeRecorder {
  /** Set where the scenario has phases (connections joining and leaving): the current one. */
  phaseOf: (() => string) | null = null;
  private readonly phases = new Map<string, PhaseStats>();
  private readonly latency = newHistogram();
  private readonly uncorrected = newHistogram();
  private readonly queueWait = newHistogram();
  private requests = 0;
  private readonly outcomes = new Array<number>(OUTCOMES.length).fill(0);
  private readonly perConnectionOk: number[];
  private readonly activeMs: number[];
  private readonly buckets = new Array<number>(LATENCY_BUCKETS.length + 1).fill(0);
  private sum = 0;
  private dirty = false;

  constructor(
    readonly key: SeriesKey,
    connections: number,
  ) {
    this.perConnectionOk = new Array<number>(connections).fill(0);
    this.activeMs = new Array<number>(connections).fill(0);
  }

  /** What one connection's loop records through. */
  forConnection(connection: number): ConnectionRecorder {
    return {
      record: (observation) => this.record(connection, observation),
      active: (ms) => {
        this.activeMs[connection]! += ms;
        this.dirty = true;
      },
    };
  }

  /** The phase now, to be passed back with the request's observation; undefined without phases. */
  currentPhase(): string | undefined {
    return this.phaseOf?.();
  }

  record(connection: number, { outcome, latencyMs, uncorrectedMs, queueWaitMs, phase: sentIn }: Observation): void {
    this.dirty = true;
    this.requests += 1;
    this.outcomes[OUTCOME_INDEX.get(outcome)!]! += 1;
    const ok = outcome === 'ok';
    if (ok) this.perConnectionOk[connection]! += 1;
    let phase: PhaseStats | undefined;
    if (this.phaseOf) {
      const key = sentIn ?? this.phaseOf();
      phase = this.phases.get(key);
      if (!phase) this.phases.set(key, (phase = { latency: newHistogram(), requests: 0, ok: 0 }));
      phase.requests += 1;
      if (ok) phase.ok += 1;
    }
    if (latencyMs === null) return;
    const us = micros(latencyMs);
    phase?.latency.recordValue(us);
    this.latency.recordValue(us);
    if (uncorrectedMs !== undefined) this.uncorrected.recordValue(micros(uncorrectedMs));
    if (queueWaitMs !== undefined) this.queueWait.recordValue(micros(queueWaitMs));
    const seconds = latencyMs / 1000;
    this.buckets[bucketOf(seconds)]! += 1;
    this.sum += seconds;
  }

  /** What was recorded since the last call (null: nothing), and a fresh start. */
  takeDelta(): SeriesDelta | null {
    if (!this.dirty) return null;
    const delta: SeriesDelta = {
      requests: this.requests,
      outcomes: [...this.outcomes],
      perConnectionOk: [...this.perConnectionOk],
      activeMs: [...this.activeMs],
      latency: sparse(this.latency),
      uncorrected: sparse(this.uncorrected),
      queueWait: sparse(this.queueWait),
      phases: [...this.phases].map(([phase, stats]) => ({
        phase,
        requests: stats.requests,
        ok: stats.ok,
        latency: sparse(stats.latency),
      })),
      buckets: [...this.buckets],
      sum: this.sum,
    };
    this.clear();
    return delta;
  }

  private clear(): void {
    for (const histogram of [this.latency, this.uncorrected, this.queueWait]) histogram.reset();
    this.phases.clear();
    this.requests = 0;
    this.outcomes.fill(0);
    this.perConnectionOk.fill(0);
    this.activeMs.fill(0);
    this.buckets.fill(0);
    this.sum = 0;
    this.dirty = false;
  }
}

/**
 * The run cut into intervals (one per flush of the sending threads: about a second), each with
 * its requests and latencies: the samples `lab compare` resamples for its confidence intervals.
 * At most MAX_INTERVALS are kept; past that, later intervals are left out (a run of more than an
 * hour still has its whole figures, but its samples end there: `intervalsComplete` is false).
 */
export const MAX_INTERVALS = 3600;

interface Interval {
  ms: number;
  requests: number;
  ok: number;
  /** Every part's latency counts for this interval. */
  latency: SparseCounts[];
}

/** One interval of a run as --json writes it: its length, requests, ok replies and latency histogram (HDR, compressed base64; null: no reply). */
export interface IntervalSample {
  ms: number;
  requests: number;
  ok: number;
  latency: string | null;
}

/** One target and probe of a run, merged in the main thread from every thread that sends for it; see the header. */
export class ProbeTally {
  private readonly intervals: Interval[] = [];
  private intervalsDropped = false;
  private readonly phases = new Map<string, PhaseStats>();
  private readonly latency = newHistogram();
  private readonly uncorrected = newHistogram();
  private readonly queueWait = newHistogram();
  private readonly window = newHistogram();
  /**
   * Per sending thread, the requests of its flushes since the last window and the time those
   * flushes cover (their own clock): the window's rate is what the flushes measured, not what
   * happened to arrive in the display's second (a thread flushes every second on its own clock,
   * so a display second can hold no flush or two).
   */
  private readonly windowParts = new Map<number, { requests: number; ms: number }>();
  /** Requests answered ok per connection: over the run, and in the current window. */
  private readonly perConnection: number[];
  private readonly perConnectionWindow: number[];
  /** ms each connection was active, where its probe's schedule staggers them (else unknown: all equal). */
  private readonly activeMs: number[];
  readonly outcomes = new Map<Outcome, number>();
  requests = 0;
  private readonly labels: { variant: string; scenario: string; probe: string };

  constructor(
    readonly key: SeriesKey,
    connections: number,
    private readonly metrics: LoadgenMetrics | null,
    private readonly series: { fairnessGauge: boolean } = { fairnessGauge: true },
  ) {
    this.perConnection = new Array<number>(connections).fill(0);
    this.perConnectionWindow = new Array<number>(connections).fill(0);
    this.activeMs = new Array<number>(connections).fill(0);
    this.labels = { variant: key.target, scenario: key.scenario, probe: key.probe };
    metrics?.initSeries(this.labels, series);
  }

  /**
   * Merges what a sending thread recorded (as interval `interval.index` of its own, `interval.ms`
   * long, where given; `interval.part` says which thread, for the window's rate).
   */
  apply(delta: SeriesDelta | null, interval?: { index: number; ms: number; part?: number }): void {
    if (interval) {
      this.addInterval(interval, delta);
      const part = this.windowParts.get(interval.part ?? 0) ?? { requests: 0, ms: 0 };
      part.requests += delta?.requests ?? 0;
      part.ms += interval.ms;
      this.windowParts.set(interval.part ?? 0, part);
    }
    if (!delta) return;
    this.requests += delta.requests;
    delta.outcomes.forEach((count, i) => {
      if (count === 0) return;
      const outcome = OUTCOMES[i]!;
      this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + count);
      this.metrics?.requests.labels({ ...this.labels, outcome }).inc(count);
    });
    delta.perConnectionOk.forEach((count, i) => {
      this.perConnection[i]! += count;
      this.perConnectionWindow[i]! += count;
    });
    delta.activeMs.forEach((ms, i) => (this.activeMs[i]! += ms));
    addSparse(this.latency, delta.latency);
    addSparse(this.window, delta.latency);
    addSparse(this.uncorrected, delta.uncorrected);
    addSparse(this.queueWait, delta.queueWait);
    for (const { phase, requests, ok, latency } of delta.phases) {
      let stats = this.phases.get(phase);
      if (!stats) this.phases.set(phase, (stats = { latency: newHistogram(), requests: 0, ok: 0 }));
      stats.requests += requests;
      stats.ok += ok;
      addSparse(stats.latency, latency);
    }
    this.metrics?.requestDuration.add(this.labels, delta.buckets, delta.sum);
  }

  private addInterval({ index, ms }: { index: number; ms: number }, delta: SeriesDelta | null): void {
    if (index >= MAX_INTERVALS) {
      this.intervalsDropped = true;
      return;
    }
    while (this.intervals.length <= index) this.intervals.push({ ms: 0, requests: 0, ok: 0, latency: [] });
    const into = this.intervals[index]!;
    // The parts' intervals of one index cover about the same time: the longest is its length.
    into.ms = Math.max(into.ms, ms);
    if (!delta) return;
    into.requests += delta.requests;
    into.ok += delta.outcomes[0]!; // OUTCOMES[0] is 'ok'
    if (delta.latency) into.latency.push(delta.latency);
  }

  /** The run's intervals, counts only (the sweep's throughput samples). */
  intervalCounts(): Array<{ ms: number; requests: number; ok: number }> {
    return this.intervals.map(({ ms, requests, ok }) => ({ ms: Number(ms.toFixed(3)), requests, ok }));
  }

  /** The run's intervals, each histogram HDR-encoded; and whether they cover the whole run. */
  intervalSamples(): { intervals: IntervalSample[]; intervalsComplete: boolean } {
    const histogram = newHistogram();
    const intervals = this.intervals.map(({ ms, requests, ok, latency }) => {
      histogram.reset();
      for (const counts of latency) addSparse(histogram, counts);
      return {
        ms: Number(ms.toFixed(3)),
        requests,
        ok,
        latency: histogram.totalCount > 0 ? hdr.encodeIntoCompressedBase64(histogram) : null,
      };
    });
    return { intervals, intervalsComplete: !this.intervalsDropped };
  }

  get errors(): number {
    return this.requests - (this.outcomes.get('ok') ?? 0);
  }

  /** Latency percentiles (corrected in the open loop) over the run, in ms. */
  summary(): LatencySummary {
    return summarize(this.latency);
  }

  /** Requests and latency per phase of the scenario (empty where it has none). */
  phaseSummaries(): Array<{ phase: string; requests: number; ok: number; latency: LatencySummary }> {
    return [...this.phases].map(([phase, stats]) => ({
      phase,
      requests: stats.requests,
      ok: stats.ok,
      latency: summarize(stats.latency),
    }));
  }

  /** Open loop: latency from the actual send, and the wait for a free connection; null in a closed loop. */
  openLoopSummary(): { uncorrected: LatencySummary; queueWait: LatencySummary } | null {
    if (this.uncorrected.totalCount === 0) return null;
    return { uncorrected: summarize(this.uncorrected), queueWait: summarize(this.queueWait) };
  }

  /**
   * Jain's index over the connections' ok replies in the whole run (null before any); where
   * connections were active for different times (a staggered schedule), over their rates.
   */
  fairness(): number | null {
    const times = this.activeMs;
    if (times.every((ms) => ms === times[0])) return jainIndex(this.perConnection);
    return jainIndex(
      this.perConnection.map((count, i) => (times[i]! > 0 ? count / times[i]! : 0)).filter((_, i) => times[i]! > 0),
    );
  }

  /**
   * The request rate, latency and fairness since the previous call (the live display, and the fairness
   * gauge), then starts a new window.
   */
  takeWindow(): {
    /** Requests per second as the window's flushes measured them; null when no flush covered any time. */
    requestsPerSecond: number | null;
    latency: LatencySummary;
    fairness: number | null;
  } {
    const fairness = jainIndex(this.perConnectionWindow);
    const covered = [...this.windowParts.values()].filter((part) => part.ms > 0);
    const requestsPerSecond =
      covered.length === 0 ? null : covered.reduce((sum, part) => sum + (part.requests / part.ms) * 1000, 0);
    const result = { requestsPerSecond, latency: summarize(this.window), fairness };
    if (fairness !== null && this.series.fairnessGauge) this.metrics?.fairness.labels(this.labels).set(fairness);
    this.window.reset();
    this.windowParts.clear();
    this.perConnectionWindow.fill(0);
    return result;
  }

  /** Forgets everything merged so far (the warm-up); Prometheus series keep counting. */
  reset(): void {
    for (const histogram of [this.latency, this.uncorrected, this.queueWait, this.window]) histogram.reset();
    this.windowParts.clear();
    this.perConnection.fill(0);
    this.perConnectionWindow.fill(0);
    this.activeMs.fill(0);
    this.phases.clear();
    this.outcomes.clear();
    this.requests = 0;
    this.intervals.length = 0;
    this.intervalsDropped = false;
  }

  /** The run's histograms, HDR-encoded (compressed, base64), so runs can be merged and compared later. */
  encodedHistograms(): { latency: string; uncorrected: string | null } {
    return {
      latency: hdr.encodeIntoCompressedBase64(this.latency),
      uncorrected: this.uncorrected.totalCount > 0 ? hdr.encodeIntoCompressedBase64(this.uncorrected) : null,
    };
  }
}

export function summarize(histogram: Histogram): LatencySummary {
  if (histogram.totalCount === 0) return { p50: NaN, p90: NaN, p99: NaN, p999: NaN, max: NaN, mean: NaN };
  // A percentile is reported as the top of its HDR bucket, which may lie above the largest value seen.
  const at = (percentile: number) => Math.min(histogram.getValueAtPercentile(percentile), histogram.maxValue) / 1000;
  return {
    p50: at(50),
    p90: at(90),
    p99: at(99),
    p999: at(99.9),
    max: histogram.maxValue / 1000,
    mean: histogram.mean / 1000,
  };
}
