// The load generator's series (docs/protocol.md lists them): its client-side request counts and
// latency histograms per target and probe, its schedule lag, whether it was the bottleneck, and
// the spotlight's lesson figures.

import { Counter, Gauge, Registry } from 'prom-client';
import { CLIENT_ERROR_CODES, SERVER_ERROR_CODES, type Outcome } from '../lab/errors.js';
import { CountingHistogram, LabelledCountingHistogram, defaultMetrics, registerEventLoopMetrics } from '../lab/metrics.js';

const CLIENT_OUTCOMES: Outcome[] = ['ok', ...SERVER_ERROR_CODES, ...CLIENT_ERROR_CODES];

export type LoadgenMetrics = ReturnType<typeof createLoadgenMetrics>;

/** The load generator's client-side series; `variant` is the target's name, per series. */
export function createLoadgenMetrics() {
  const registry = new Registry();
  defaultMetrics(registry);
  registerEventLoopMetrics(registry, undefined);
  return {
    registry,
    requests: new Counter({
      name: 'loadgen_requests_total',
      help: 'Requests the load generator completed, by outcome.',
      labelNames: ['variant', 'scenario', 'probe', 'outcome'] as const,
      registers: [registry],
    }),
    requestDuration: new LabelledCountingHistogram(
      registry,
      'loadgen_request_duration_seconds',
      'Client-observed latency (from the intended send time in open-loop mode).',
      ['variant', 'scenario', 'probe'] as const,
    ),
    scheduleLag: new CountingHistogram(
      registry,
      'loadgen_schedule_lag_seconds',
      "The generator's own lateness: how late an open-loop request left although it was due and a connection was free.",
    ),
    generatorBound: new Gauge({
      name: 'loadgen_generator_bound',
      help: '1 while the generator itself is the bottleneck (event-loop delay, CPU or schedule lag past its thresholds), else 0.',
      registers: [registry],
    }),
    fairness: new Gauge({
      name: 'loadgen_fairness_index',
      help: "Jain's fairness index over a probe's connections (requests each completed in the last report interval): 1 when all got the same, 1/n when one got everything.",
      labelNames: ['variant', 'scenario', 'probe'] as const,
      registers: [registry],
    }),
    /** Creates the zero series of one target and probe, so rates exist from the first scrape. */
    initSeries(labels: { variant: string; scenario: string; probe: string }, { fairnessGauge = true } = {}) {
      for (const outcome of CLIENT_OUTCOMES) this.requests.labels({ ...labels, outcome }).inc(0);
      this.requestDuration.init(labels);
      if (fairnessGauge) this.fairness.labels(labels).set(1);
    },
    paused: new Gauge({
      name: 'loadgen_paused',
      help: '1 while all load is paused through the control API (PUT /pause: a lease, e.g. the quota sweep taking the lab), else 0.',
      registers: [registry],
    }),
    lesson: registerLessonMetrics(registry),
  };
}

// ---- The spotlight's lesson figures (services/loadgen/spotlight.ts) ----------------------------
// The talk's experiment run on one variant at a time: perf2 alone, beside one perf1 hog, beside
// as many hogs as the variant has workers. Set per variant at the end of its turn and kept until
// its next one; a variant taken out of the rotation loses its series.

export type LessonMetrics = ReturnType<typeof registerLessonMetrics>;

function registerLessonMetrics(registry: Registry) {
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) =>
    new Gauge<L>({ name, help, labelNames, registers: [registry] });
  return {
    shortRate: gauge(
      'loadgen_lesson_short_requests_per_second',
      "The spotlight's perf2 (one connection, closed loop, fib(1)): requests answered per second in each phase of the variant's last turn.",
      ['variant', 'phase'] as const,
    ),
    shortLatency: gauge(
      'loadgen_lesson_short_latency_seconds',
      "perf2's latency in each phase of the variant's last turn, its percentile p50 or p99 measured within the phase (a gauge: no summary's quantile label); absent when no short request was answered.",
      ['variant', 'phase', 'percentile'] as const,
    ),
    longRate: gauge(
      'loadgen_lesson_long_requests_per_second',
      'The perf1 hogs (fib(30) in a loop, one connection each): requests answered per second in each phase they ran.',
      ['variant', 'phase'] as const,
    ),
    shortRateLow: gauge(
      'loadgen_lesson_short_requests_per_second_low',
      "The lowest of the last turn's rounds for loadgen_lesson_short_requests_per_second (which is their median).",
      ['variant', 'phase'] as const,
    ),
    shortRateHigh: gauge(
      'loadgen_lesson_short_requests_per_second_high',
      "The highest of the last turn's rounds for loadgen_lesson_short_requests_per_second (which is their median).",
      ['variant', 'phase'] as const,
    ),
    collapse: gauge(
      'loadgen_lesson_collapse_ratio',
      "perf2 alone / perf2 beside one long request (requests per second), the median of the last turn's rounds: 1 when a hog changes nothing; +Inf when beside it no short request was answered (sync).",
      ['variant'] as const,
    ),
    collapseLow: gauge(
      'loadgen_lesson_collapse_ratio_low',
      "The lowest collapse ratio among the last turn's rounds: with _high, the spread of loadgen_lesson_collapse_ratio.",
      ['variant'] as const,
    ),
    collapseHigh: gauge(
      'loadgen_lesson_collapse_ratio_high',
      "The highest collapse ratio among the last turn's rounds: with _low, the spread of loadgen_lesson_collapse_ratio.",
      ['variant'] as const,
    ),
    collapseGroup: gauge(
      'loadgen_lesson_collapse_group',
      'Variants ranked by collapse ratio, grouped where their spreads (low to high) overlap: two variants in the same group cannot be told apart by these figures. 1 is the group that collapses least.',
      ['variant'] as const,
    ),
    quota: gauge(
      'loadgen_lesson_cpu_quota_cores',
      "The variant's CPU quota during its last turn, read from its own lab_cpu_quota_cores.",
      ['variant'] as const,
    ),
    workers: gauge(
      'loadgen_lesson_workers',
      'How many hogs the last turn ran beside perf2 in its phase beside_all_workers_long (the workers a long request can occupy): 1 for single-threaded variants.',
      ['variant'] as const,
    ),
    workersUsed: gauge(
      'loadgen_lesson_workers_used',
      "Variants with a fixed set of workers: how many of them computed requests during a phase (from their fib_worker_requests_total). On cluster, 1 beside one long request means the short connection landed on the hog's worker.",
      ['variant', 'phase'] as const,
    ),
    generatorBound: gauge(
      'loadgen_lesson_generator_bound',
      "1 when the load generator itself was the bottleneck in at least half the rounds of a phase of the variant's last turn (those figures, medians of the rounds, then describe the generator), else 0. A single bound round shows in loadgen_lesson_generator_bound_rounds.",
      ['variant'] as const,
    ),
    generatorBoundRounds: gauge(
      'loadgen_lesson_generator_bound_rounds',
      "How many of the last turn's rounds of a phase had the load generator as the bottleneck, by cause (event_loop_delay, cpu, schedule_lag); present only where some had.",
      ['variant', 'phase', 'cause'] as const,
    ),
    timestamp: gauge(
      'loadgen_lesson_timestamp_seconds',
      "When the variant's last turn ended (Unix time): the lesson figures' age.",
      ['variant'] as const,
    ),
    spotlight: gauge(
      'loadgen_spotlight',
      '1 for the variant being measured now (the background load is paused against it), 0 for the others in the rotation.',
      ['variant'] as const,
    ),
    phase: gauge(
      'loadgen_spotlight_phase',
      'Live: 1 while that phase of the spotlight runs on that variant (warm-up included: the hogs have joined), else 0. Its changes mark hogs joining and leaving.',
      ['variant', 'phase'] as const,
    ),
  };
}
