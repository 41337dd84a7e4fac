// What the load generator records per target and probe: exact latency percentiles from HDR
// histograms (microsecond resolution, 3 significant digits), counts by outcome, per-connection
// counts for Jain's fairness index, a window for the live display, and the same observations
// in prom-client series for Grafana. In the open loop it keeps two latencies per request: from
// the intended send time (corrected for coordinated omission: what a user arriving on schedule
// would see) and from the actual send (uncorrected: what a naive client reports), plus how long
// due requests waited for a free connection.

import hdr from 'hdr-histogram-js';
import type { Outcome } from '../common/errors.js';
import type { LoadgenMetrics } from '../common/metrics.js';
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

type Histogram = ReturnType<typeof newHistogram>;

function newHistogram() {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
}

const micros = (ms: number) => Math.max(1, Math.round(ms * 1000));

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

interface PhaseStats {
  latency: Histogram;
  requests: number;
  ok: number;
}

export class ProbeRecorder {
  /** Set where the scenario has phases (connections joining and leaving): the current one. */
  phaseOf: (() => string) | null = null;
  private readonly phases = new Map<string, PhaseStats>();
  private latency = newHistogram();
  private uncorrected = newHistogram();
  private queueWait = newHistogram();
  private window = newHistogram();
  private windowCount = 0;
  /** Requests answered ok per connection: over the run, and in the current window. */
  private readonly perConnection: number[];
  private readonly perConnectionWindow: number[];
  /** ms each connection was active, where its probe's schedule staggers them (else unknown: all equal). */
  private readonly activeMs: number[];
  readonly outcomes = new Map<Outcome, number>();
  requests = 0;
  private readonly labels: { variant: string; scenario: string; probe: string };
  private readonly durationSeries: { observe(value: number): void } | null;
  private readonly byOutcome = new Map<Outcome, { inc(): void }>();

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
    this.durationSeries = metrics?.requestDuration.labels(this.labels) ?? null;
  }

  /** What one connection's loop records through. */
  forConnection(connection: number): ConnectionRecorder {
    return {
      record: (observation) => this.record(connection, observation),
      active: (ms) => void (this.activeMs[connection]! += ms),
    };
  }

  /** The phase now, to be passed back with the request's observation; undefined without phases. */
  currentPhase(): string | undefined {
    return this.phaseOf?.();
  }

  record(connection: number, { outcome, latencyMs, uncorrectedMs, queueWaitMs, phase: sentIn }: Observation): void {
    this.requests += 1;
    this.windowCount += 1;
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
    if (outcome === 'ok') {
      this.perConnection[connection]! += 1;
      this.perConnectionWindow[connection]! += 1;
    }
    this.outcomeSeries(outcome)?.inc();
    let phase: PhaseStats | undefined;
    if (this.phaseOf) {
      const key = sentIn ?? this.phaseOf();
      phase = this.phases.get(key);
      if (!phase) this.phases.set(key, (phase = { latency: newHistogram(), requests: 0, ok: 0 }));
      phase.requests += 1;
      if (outcome === 'ok') phase.ok += 1;
    }
    if (latencyMs === null) return;
    phase?.latency.recordValue(micros(latencyMs));
    this.latency.recordValue(micros(latencyMs));
    this.window.recordValue(micros(latencyMs));
    if (uncorrectedMs !== undefined) this.uncorrected.recordValue(micros(uncorrectedMs));
    if (queueWaitMs !== undefined) this.queueWait.recordValue(micros(queueWaitMs));
    this.durationSeries?.observe(latencyMs / 1000);
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
   * Requests, latency and fairness since the previous call (the live display, and the fairness
   * gauge), then starts a new window.
   */
  takeWindow(): { requests: number; latency: LatencySummary; fairness: number | null } {
    const fairness = jainIndex(this.perConnectionWindow);
    const result = { requests: this.windowCount, latency: summarize(this.window), fairness };
    if (fairness !== null && this.series.fairnessGauge) this.metrics?.fairness.labels(this.labels).set(fairness);
    this.window.reset();
    this.windowCount = 0;
    this.perConnectionWindow.fill(0);
    return result;
  }

  /** Forgets everything recorded so far (the warm-up); Prometheus series keep counting. */
  reset(): void {
    for (const histogram of [this.latency, this.uncorrected, this.queueWait, this.window]) histogram.reset();
    this.windowCount = 0;
    this.perConnection.fill(0);
    this.perConnectionWindow.fill(0);
    this.activeMs.fill(0);
    this.phases.clear();
    this.outcomes.clear();
    this.requests = 0;
  }

  /** The run's histograms, HDR-encoded (compressed, base64), so runs can be merged and compared later. */
  encodedHistograms(): { latency: string; uncorrected: string | null } {
    return {
      latency: hdr.encodeIntoCompressedBase64(this.latency),
      uncorrected: this.uncorrected.totalCount > 0 ? hdr.encodeIntoCompressedBase64(this.uncorrected) : null,
    };
  }

  /** The requests counter of one outcome, looked up once (the send loop's hot path). */
  private outcomeSeries(outcome: Outcome) {
    if (!this.metrics) return null;
    let series = this.byOutcome.get(outcome);
    if (!series) this.byOutcome.set(outcome, (series = this.metrics.requests.labels({ ...this.labels, outcome })));
    return series;
  }
}

function summarize(histogram: Histogram): LatencySummary {
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
