// How a run is shown: a live line per interval on stderr, a final table (or JSON) on stdout.

import type { LoadOptions } from './options.js';
import type { LatencySummary, ProbeRecorder } from './recorder.js';
import { SCENARIOS } from './scenarios.js';

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  if (ms < 1) return `${(ms * 1000).toFixed(0)}us`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 1)}ms`;
  return `${(ms / 1000).toFixed(2)}s`;
}

/** One line for the last interval: requests/s, p50 and p99 and errors per target and probe. */
export function liveLine(recorders: ProbeRecorder[], elapsedMs: number, intervalMs: number): string {
  const parts = recorders.map((recorder) => {
    const { requests, latency } = recorder.takeWindow();
    const rate = requests / (intervalMs / 1000);
    const errors = recorder.errors > 0 ? ` err ${recorder.errors}` : '';
    return `${recorder.key.target}/${recorder.key.probe} ${rate.toFixed(rate < 10 ? 1 : 0)}/s p50 ${formatMs(latency.p50)} p99 ${formatMs(latency.p99)}${errors}`;
  });
  return `[${(elapsedMs / 1000).toFixed(0).padStart(4)}s] ${parts.join(' | ')}`;
}

export interface ProbeResult {
  target: string;
  scenario: string;
  probe: string;
  n: number;
  requests: number;
  ok: number;
  errors: Record<string, number>;
  requestsPerSecond: number;
  latencyMs: LatencySummary;
  /** Jain's index over the probe's connections (1: all got the same); null without replies. */
  fairness: number | null;
  /** HDR histogram of the latencies in microseconds, compressed and base64-encoded. */
  histogram: string;
}

export interface RunResult {
  startedAt: string;
  durationSeconds: number;
  options: Omit<LoadOptions, 'json'>;
  results: ProbeResult[];
}

export function collectResults(recorders: ProbeRecorder[], options: LoadOptions, startedAt: Date, elapsedMs: number): RunResult {
  const seconds = elapsedMs / 1000;
  const { json: _json, ...shown } = options;
  return {
    startedAt: startedAt.toISOString(),
    durationSeconds: Number(seconds.toFixed(3)),
    options: shown,
    results: recorders.map((recorder) => {
      const { target, scenario, probe } = recorder.key;
      const errors: Record<string, number> = {};
      for (const [outcome, count] of recorder.outcomes) if (outcome !== 'ok') errors[outcome] = count;
      return {
        target,
        scenario,
        probe,
        n: SCENARIOS[scenario as keyof typeof SCENARIOS].probes.find((p) => p.name === probe)!.n,
        requests: recorder.requests,
        ok: recorder.outcomes.get('ok') ?? 0,
        errors,
        requestsPerSecond: Number((recorder.requests / seconds).toFixed(2)),
        latencyMs: recorder.summary(),
        fairness: recorder.fairness(),
        histogram: recorder.encodedHistogram(),
      };
    }),
  };
}

export function finalTable(run: RunResult): string {
  const header = ['target', 'scenario', 'probe', 'n', 'requests', 'req/s', 'p50', 'p90', 'p99', 'max', 'fairness', 'errors'];
  const rows = run.results.map((r) => [
    r.target,
    r.scenario,
    r.probe,
    String(r.n),
    String(r.requests),
    r.requestsPerSecond.toFixed(1),
    formatMs(r.latencyMs.p50),
    formatMs(r.latencyMs.p90),
    formatMs(r.latencyMs.p99),
    formatMs(r.latencyMs.max),
    r.fairness === null ? '-' : r.fairness.toFixed(2),
    Object.entries(r.errors).map(([code, count]) => `${code}=${count}`).join(',') || '0',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [`${run.durationSeconds.toFixed(1)}s run`, line(header), ...rows.map(line)].join('\n');
}
