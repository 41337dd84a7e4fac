// How runs are shown: a live display while they run (a progress bar and a line per target on a
// terminal, plain periodic lines otherwise, always on stderr), then the results on stdout as a
// table, JSON (with the HDR histograms, so runs can be merged and compared later) or CSV.

import cliProgress from 'cli-progress';
import type { HealthReport } from './health.js';
import type { RunRecord } from '../lab/run-record.js';
import type { IntervalSample, LatencySummary } from './recorder.js';
import type { ThresholdCheck } from './thresholds.js';
import type { LoadRun } from './run.js';
import type { Probe } from './scenario.js';

export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '-';
  if (ms < 1) return `${(ms * 1000).toFixed(0)}us`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 1)}ms`;
  return `${(ms / 1000).toFixed(2)}s`;
}

function formatRate(rate: number): string {
  return rate.toFixed(rate < 10 ? 1 : 0);
}

export interface ProbeResult {
  target: string;
  scenario: string;
  probe: string;
  model: 'closed' | 'open';
  /** n, or the weights over several values of n (`1:90 20:8`). */
  n: string;
  connections: number;
  requests: number;
  ok: number;
  errors: Record<string, number>;
  requestsPerSecond: number;
  /** From the intended send time in an open loop (corrected for coordinated omission). */
  latencyMs: LatencySummary;
  /** Open loop: from the actual send, what a naive client would report. */
  uncorrectedLatencyMs: LatencySummary | null;
  /** Open loop: how long due requests waited for a free connection. */
  queueWaitMs: LatencySummary | null;
  /** Jain's index over the probe's connections (1: all got the same); null without replies. */
  fairness: number | null;
  /** The generator, not the server, may have been the bottleneck while this was measured. */
  generatorBound: boolean;
  /** Split by the scenario's phases (what else ran: "1 long"), where it has any. */
  phases: Array<{ phase: string; seconds: number; requests: number; requestsPerSecond: number; latencyMs: LatencySummary }>;
  /** HDR histograms of the latencies in microseconds, compressed and base64-encoded. */
  histograms: { latency: string; uncorrected: string | null };
  /** The run in intervals of about a second (one per flush of the sending threads), each with its own histogram: what `lab compare` resamples. */
  intervals: IntervalSample[];
  /** False when the run outlasted the intervals kept (MAX_INTERVALS): the samples end before the run. */
  intervalsComplete: boolean;
}

export interface Phase {
  targets: string[];
  durationSeconds: number;
  generator: HealthReport;
}

export interface LoadReport {
  /** Where and how the run was made (services/lab/run-record.ts). */
  run: RunRecord;
  startedAt: string;
  scenario: { name: string; description: string };
  warmupSeconds: number;
  /** One per run: all targets at once, or one per variant with --variants. */
  phases: Phase[];
  results: ProbeResult[];
  /** Each threshold against each target and probe it names (empty without thresholds). */
  thresholds: ThresholdCheck[];
}

export function describeN(n: Probe['n']): string {
  return typeof n === 'number' ? String(n) : n.map(({ n: value, weight }) => `${value}:${weight}`).join(' ');
}

/** The results of one finished run. */
export function runResults(run: LoadRun): { phase: Phase; results: ProbeResult[] } {
  const seconds = run.measuredMs() / 1000;
  const generator = run.health.report();
  const probes = run.config.scenario.probes;
  const results = run.tallies.map((recorder): ProbeResult => {
    const { target, scenario, probe: name } = recorder.key;
    const probe = probes.find((p) => p.name === name && p.scenario === scenario)!;
    const errors: Record<string, number> = {};
    for (const [outcome, count] of recorder.outcomes) if (outcome !== 'ok') errors[outcome] = count;
    const open = recorder.openLoopSummary();
    return {
      target,
      scenario,
      probe: name,
      model: probe.model,
      n: describeN(probe.n),
      connections: probe.connections,
      requests: recorder.requests,
      ok: recorder.outcomes.get('ok') ?? 0,
      errors,
      requestsPerSecond: Number((recorder.requests / Math.max(seconds, 1e-9)).toFixed(2)),
      latencyMs: recorder.summary(),
      uncorrectedLatencyMs: open?.uncorrected ?? null,
      queueWaitMs: open?.queueWait ?? null,
      fairness: recorder.fairness(),
      generatorBound: generator.generatorBound,
      phases: recorder
        .phaseSummaries()
        .map(({ phase, requests, latency }) => {
          const phaseSeconds = (run.phaseMs.get(phase) ?? 0) / 1000;
          return {
            phase,
            seconds: Number(phaseSeconds.toFixed(2)),
            requests,
            requestsPerSecond: Number((requests / Math.max(phaseSeconds, 1e-9)).toFixed(2)),
            latencyMs: latency,
          };
        })
        .sort((a, b) => a.phase.localeCompare(b.phase, 'en', { numeric: true })),
      histograms: recorder.encodedHistograms(),
      ...recorder.intervalSamples(),
    };
  });
  return {
    phase: { targets: run.config.targets.map((t) => t.name), durationSeconds: Number(seconds.toFixed(3)), generator },
    results,
  };
}

export function healthLine(health: HealthReport): string {
  const lag = health.scheduleLagP99Ms === null ? '' : `, schedule lag p99 ${formatMs(health.scheduleLagP99Ms)}`;
  const throttled = health.throttled === null ? '' : `, throttled in ${(health.throttled * 100).toFixed(0)}% of periods`;
  const verdict = health.generatorBound
    ? `GENERATOR-BOUND (${health.reasons.join('; ')}): these figures describe the generator, not the server`
    : 'not the bottleneck';
  return `generator: sending thread busy ${(health.busy * 100).toFixed(0)}%, event-loop delay p99 ${formatMs(health.eventLoopDelayP99Ms)}, process ${health.cpuCores.toFixed(2)} cores${lag}${throttled}: ${verdict}`;
}

const COLUMNS = [
  'target',
  'scenario',
  'probe',
  'n',
  'req/s',
  'p50',
  'p90',
  'p99',
  'p99.9',
  'max',
  'p99 uncorr',
  'errors',
  'fairness',
  'gen-bound',
];

export function table(report: LoadReport): string {
  const rows = report.results.flatMap((r) => [
    [
      r.target,
      r.scenario,
      r.probe,
      r.n,
      formatRate(r.requestsPerSecond),
      formatMs(r.latencyMs.p50),
      formatMs(r.latencyMs.p90),
      formatMs(r.latencyMs.p99),
      formatMs(r.latencyMs.p999),
      formatMs(r.latencyMs.max),
      formatMs(r.uncorrectedLatencyMs?.p99),
      Object.entries(r.errors)
        .map(([code, count]) => `${code}=${count}`)
        .join(',') || '0',
      r.fairness === null ? '-' : r.fairness.toFixed(2),
      r.generatorBound ? 'YES' : 'no',
    ],
    // The talk's demo in numbers: the same probe while 0, 1, 2 long requests run.
    ...(r.phases.length > 1
      ? r.phases.map((p) => [
          '',
          '',
          `  while ${p.phase}`,
          '',
          formatRate(p.requestsPerSecond),
          formatMs(p.latencyMs.p50),
          formatMs(p.latencyMs.p90),
          formatMs(p.latencyMs.p99),
          formatMs(p.latencyMs.p999),
          formatMs(p.latencyMs.max),
          '',
          '',
          '',
          '',
        ])
      : []),
  ]);
  const widths = COLUMNS.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i < 4 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const seconds = report.phases.map((p) => p.durationSeconds.toFixed(1)).join(' + ');
  const heading = `${report.scenario.name}: ${seconds} s measured${report.warmupSeconds > 0 ? ` after ${report.warmupSeconds} s of warm-up` : ''}`;
  const footer = report.phases.map(
    (p) => (report.phases.length > 1 ? `${p.targets.join(', ')}: ` : '') + healthLine(p.generator),
  );
  const note = report.results.some((r) => r.model === 'open')
    ? [
        'open loop: latency from the intended send time; "p99 uncorr" from the actual send (what coordinated omission would report)',
      ]
    : [];
  return [heading, line(COLUMNS), ...rows.map(line), ...footer, ...note].join('\n');
}

const CSV_COLUMNS = [
  'target',
  'scenario',
  'probe',
  'model',
  'n',
  'connections',
  'requests',
  'ok',
  'errors',
  'requests_per_second',
  'p50_ms',
  'p90_ms',
  'p99_ms',
  'p999_ms',
  'max_ms',
  'uncorrected_p99_ms',
  'queue_wait_p99_ms',
  'fairness',
  'generator_bound',
];

export function csv(report: LoadReport): string {
  const cell = (value: unknown) => {
    const text =
      value === null || value === undefined || (typeof value === 'number' && !Number.isFinite(value))
        ? ''
        : typeof value === 'string'
          ? value
          : JSON.stringify(value);
    return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
  };
  const rows = report.results.map((r) =>
    [
      r.target,
      r.scenario,
      r.probe,
      r.model,
      r.n,
      r.connections,
      r.requests,
      r.ok,
      Object.entries(r.errors)
        .map(([code, count]) => `${code}=${count}`)
        .join(' '),
      r.requestsPerSecond,
      r.latencyMs.p50,
      r.latencyMs.p90,
      r.latencyMs.p99,
      r.latencyMs.p999,
      r.latencyMs.max,
      r.uncorrectedLatencyMs?.p99,
      r.queueWaitMs?.p99,
      r.fairness,
      r.generatorBound,
    ]
      .map(cell)
      .join(','),
  );
  return [CSV_COLUMNS.join(','), ...rows].join('\n');
}

/** Renders a run while it goes: a bar and a line per target on a terminal, plain lines otherwise. */
export class LiveDisplay {
  private bars: cliProgress.MultiBar | null = null;
  private progress: cliProgress.SingleBar | null = null;
  private lines = new Map<string, cliProgress.SingleBar>();

  constructor(private readonly interactive = Boolean(process.stderr.isTTY)) {
    this.reset();
  }

  /**
   * One refresh: what the sending threads flushed since the last one, per target. Where none has
   * flushed yet (the threads flush every second on their own clocks), the lines stay as they are.
   */
  update(run: LoadRun, label = ''): void {
    const window = run.takeWindow();
    if (!window) return;
    const { health, probes } = window;
    const byTarget = new Map<string, string[]>();
    for (const probe of probes) {
      const parts = byTarget.get(probe.key.target) ?? [];
      const errors = probe.errors > 0 ? ` err ${probe.errors}` : '';
      const rate = probe.requestsPerSecond === null ? '-' : formatRate(probe.requestsPerSecond);
      parts.push(`${probe.key.probe} ${rate}/s p50 ${formatMs(probe.latency.p50)} p99 ${formatMs(probe.latency.p99)}${errors}`);
      byTarget.set(probe.key.target, parts);
    }
    const elapsed = run.elapsedMs() / 1000;
    const total = run.totalMs;
    const flag = health.generatorBound ? `  GENERATOR-BOUND: ${health.reasons.join('; ')}` : '';
    if (!this.bars) {
      for (const [target, parts] of byTarget)
        process.stderr.write(`[${elapsed.toFixed(0).padStart(4)}s] ${label}${target}: ${parts.join(' | ')}\n`);
      if (flag) process.stderr.write(`[${elapsed.toFixed(0).padStart(4)}s]${flag}\n`);
      return;
    }
    const text = `${label}${elapsed.toFixed(0)} s${total ? ` of ${(total / 1000).toFixed(0)} s` : ''}${run.measuredMs() < run.elapsedMs() - 1 && run.config.warmupMs > elapsed * 1000 ? ' (warm-up)' : ''}${flag}`;
    if (!this.progress) {
      this.progress = total
        ? this.bars.create(total / 1000, 0, { text }, { format: '{bar} {text}' })
        : this.bars.create(1, 0, { text }, { format: '{text}' });
    }
    this.progress.update(total ? Math.min(elapsed, total / 1000) : 0, { text });
    for (const [target, parts] of byTarget) {
      let bar = this.lines.get(target);
      if (!bar) {
        bar = this.bars.create(1, 0, { text: '' });
        this.lines.set(target, bar);
      }
      bar.update(0, { text: `  ${target}: ${parts.join(' | ')}` });
    }
  }

  /** Starts a new set of lines (the next variant of --variants, the next search step). */
  reset(): void {
    this.bars?.stop();
    this.progress = null;
    this.lines = new Map();
    this.bars = this.interactive
      ? new cliProgress.MultiBar(
          {
            stream: process.stderr,
            hideCursor: true,
            clearOnComplete: false,
            stopOnComplete: false,
            format: '{text}',
            autopadding: true,
          },
          cliProgress.Presets.shades_classic,
        )
      : null;
  }

  stop(): void {
    this.bars?.stop();
  }
}
