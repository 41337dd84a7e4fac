// What the load generator records per target and probe: exact latency percentiles from an HDR
// histogram (microsecond resolution, 3 significant digits), counts by outcome, a one-second
// window for the live line, and the same observations in prom-client series for Grafana.

import hdr from 'hdr-histogram-js';
import type { Outcome } from '../common/errors.js';
import type { LoadgenMetrics } from '../common/metrics.js';

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

export class ProbeRecorder {
  private readonly histogram = newHistogram();
  private readonly window = newHistogram();
  private windowCount = 0;
  readonly outcomes = new Map<Outcome, number>();
  requests = 0;

  constructor(
    readonly key: SeriesKey,
    private readonly metrics: LoadgenMetrics | null,
  ) {
    metrics?.initSeries(this.labels());
  }

  /** One finished request; latency is null for failures that got no reply. */
  record(outcome: Outcome, latencyMs: number | null): void {
    this.requests += 1;
    this.windowCount += 1;
    this.outcomes.set(outcome, (this.outcomes.get(outcome) ?? 0) + 1);
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

  /** Requests and latency since the previous call (the live line), then starts a new window. */
  takeWindow(): { requests: number; latency: LatencySummary } {
    const result = { requests: this.windowCount, latency: summarize(this.window) };
    this.window.reset();
    this.windowCount = 0;
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
