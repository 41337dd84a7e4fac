// What the load generator records per target and probe: exact latency percentiles from an HDR
// histogram (microsecond resolution, 3 significant digits), counts by outcome, a one-second
// window for the live line, and the same observations in prom-client series for Grafana.

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

function newHistogram() {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
}

export interface ConnectionRecorder {
  record(outcome: Outcome, latencyMs: number | null): void;
}

export class ProbeRecorder {
  private readonly histogram = newHistogram();
  private readonly window = newHistogram();
  private windowCount = 0;
  /** Requests answered ok per connection: over the run, and in the current window. */
  private readonly perConnection: number[];
  private readonly perConnectionWindow: number[];
  readonly outcomes = new Map<Outcome, number>();
  requests = 0;

  constructor(
    readonly key: SeriesKey,
    connections: number,
    private readonly metrics: LoadgenMetrics | null,
  ) {
    this.perConnection = new Array<number>(connections).fill(0);
    this.perConnectionWindow = new Array<number>(connections).fill(0);
    metrics?.initSeries(this.labels());
  }

  /** One finished request on connection `connection`; latency is null for failures that got no reply. */
  record(connection: number, outcome: Outcome, latencyMs: number | null): void {
    this.requests += 1;
    this.windowCount += 1;
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
    if (outcome === 'ok') {
      this.perConnection[connection]! += 1;
      this.perConnectionWindow[connection]! += 1;
    }
    const labels = this.labels();
    this.metrics?.requests.labels({ ...labels, outcome }).inc();
    if (latencyMs === null) return;
    const micros = Math.max(1, Math.round(latencyMs * 1000));
    this.histogram.recordValue(micros);
    this.window.recordValue(micros);
    this.metrics?.requestDuration.labels(labels).observe(latencyMs / 1000);
  }

  get errors(): number {
    return this.requests - (this.outcomes.get('ok') ?? 0);
  }

  /** Latency percentiles over the whole run, in ms. */
  summary(): LatencySummary {
    return summarize(this.histogram);
  }

  /** What one connection's loop records through. */
  forConnection(connection: number): ConnectionRecorder {
    return { record: (outcome, latencyMs) => this.record(connection, outcome, latencyMs) };
  }

  /** Jain's index over the connections' ok replies in the whole run (null before any). */
  fairness(): number | null {
    return jainIndex(this.perConnection);
  }

  /**
   * Requests, latency and fairness since the previous call (the live line, and the fairness
   * gauge), then starts a new window.
   */
  takeWindow(): { requests: number; latency: LatencySummary; fairness: number | null } {
    const fairness = jainIndex(this.perConnectionWindow);
    const result = { requests: this.windowCount, latency: summarize(this.window), fairness };
    if (fairness !== null) this.metrics?.fairness.labels(this.labels()).set(fairness);
    this.window.reset();
    this.windowCount = 0;
    this.perConnectionWindow.fill(0);
    return result;
  }

  /** The whole run's histogram, HDR-encoded (compressed, base64), so runs can be merged later. */
  encodedHistogram(): string {
    return hdr.encodeIntoCompressedBase64(this.histogram);
  }

  private labels() {
    return { variant: this.key.target, scenario: this.key.scenario, probe: this.key.probe };
  }
}

function summarize(histogram: ReturnType<typeof newHistogram>): LatencySummary {
  const ms = (micros: number) => micros / 1000;
  if (histogram.totalCount === 0) return { p50: NaN, p90: NaN, p99: NaN, p999: NaN, max: NaN, mean: NaN };
  return {
    p50: ms(histogram.getValueAtPercentile(50)),
    p90: ms(histogram.getValueAtPercentile(90)),
    p99: ms(histogram.getValueAtPercentile(99)),
    p999: ms(histogram.getValueAtPercentile(99.9)),
    max: ms(histogram.maxValue),
    mean: ms(histogram.mean),
  };
}
