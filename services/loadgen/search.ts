// The maximum-throughput search: an open loop whose rate steps up (each step FACTOR times the
// last) until a step's p99, measured from the intended send time, or its error rate passes its
// bound. The knee is the last rate that passed. A step where the generator itself was the
// bottleneck ends the search too, and says so: that knee is the generator's, not the server's.

import type { LoadgenMetrics } from './metrics.js';
import type { LoadOptions, Target } from './options.js';
import type { LiveDisplay } from './report.js';
import { describeN, formatMs, runResults, type ProbeResult } from './report.js';
import { LoadRun } from './run.js';
import type { Probe, Scenario } from './scenario.js';

export interface SearchStep {
  rate: number;
  achievedRate: number;
  p99Ms: number;
  errorRate: number;
  generatorBound: boolean;
  passed: boolean;
}

export interface SearchResult {
  target: string;
  probe: string;
  n: string;
  bounds: { maxP99Ms: number; maxErrorRate: number };
  steps: SearchStep[];
  /** The highest rate that passed; null when even the first step failed. */
  kneeRate: number | null;
  /** Why the search stopped. */
  stoppedBecause: string;
}

const MAX_STEPS = 40;
const FIRST_RATE = 100;

/** The probe whose rate is searched: the scenario's first open-loop probe, else its first probe made open. */
function searchProbe(scenario: Scenario, firstRate: number | null): Probe & { scenario: string } {
  const open = scenario.probes.find((p) => p.model === 'open');
  const base = open ?? { ...scenario.probes[0]!, model: 'open' as const, arrival: 'fixed' as const, depth: 1, thinkMs: 0 };
  return {
    ...base,
    rate: firstRate ?? (typeof base.rate === 'number' && base.rate > 0 ? base.rate : FIRST_RATE),
    startMs: 0,
    stopMs: null,
    staggerMs: 0,
  };
}

export async function searchMaxThroughput(
  target: Target,
  options: LoadOptions,
  metrics: LoadgenMetrics | null,
  display: LiveDisplay,
): Promise<SearchResult> {
  const search = options.search!;
  const probe = searchProbe(options.scenario, options.overrides.rate);
  const steps: SearchStep[] = [];
  let rate = probe.rate as number;
  let stoppedBecause = `reached ${MAX_STEPS} steps`;
  let last: ProbeResult | undefined;
  for (let i = 0; i < MAX_STEPS; i++) {
    const scenario: Scenario = {
      name: 'search',
      description: `step ${i + 1}: ${rate.toFixed(0)} req/s`,
      durationMs: search.stepMs,
      probes: [{ ...probe, rate }],
    };
    const warmupMs = Math.min(1000, search.stepMs / 5);
    const run = new LoadRun(
      { scenario, targets: [target], durationMs: search.stepMs, warmupMs, timeoutMs: options.timeoutMs },
      metrics,
    );
    display.reset();
    const ticker = setInterval(() => display.update(run, `${target.name} at ${rate.toFixed(0)} req/s: `), options.reportEveryMs);
    await run.finished;
    clearInterval(ticker);
    const { phase, results } = runResults(run);
    last = results[0]!;
    const achievedRate = last.ok / Math.max(1e-9, phase.durationSeconds);
    const errorRate = last.requests === 0 ? 1 : (last.requests - last.ok) / last.requests;
    const step: SearchStep = {
      rate,
      achievedRate: Number(achievedRate.toFixed(1)),
      p99Ms: last.latencyMs.p99,
      errorRate: Number(errorRate.toFixed(4)),
      generatorBound: phase.generator.generatorBound,
      passed: last.latencyMs.p99 <= search.maxP99Ms && errorRate <= search.maxErrorRate && !phase.generator.generatorBound,
    };
    steps.push(step);
    if (!step.passed) {
      stoppedBecause = step.generatorBound
        ? `the generator was the bottleneck at ${rate.toFixed(0)} req/s (${phase.generator.reasons.join('; ')}): the server may go higher`
        : step.p99Ms > search.maxP99Ms
          ? `p99 ${formatMs(step.p99Ms)} passed ${formatMs(search.maxP99Ms)} at ${rate.toFixed(0)} req/s`
          : `error rate ${(errorRate * 100).toFixed(2)}% passed ${(search.maxErrorRate * 100).toFixed(2)}% at ${rate.toFixed(0)} req/s`;
      break;
    }
    rate *= search.factor;
  }
  const passed = steps.filter((s) => s.passed);
  return {
    target: target.name,
    probe: probe.name,
    n: last?.n ?? describeN(probe.n),
    bounds: { maxP99Ms: search.maxP99Ms, maxErrorRate: search.maxErrorRate },
    steps,
    kneeRate: passed.length > 0 ? passed[passed.length - 1]!.rate : null,
    stoppedBecause,
  };
}

export function searchTable(results: SearchResult[]): string {
  const lines: string[] = [];
  for (const r of results) {
    lines.push(
      `${r.target} (${r.probe}, n=${r.n}): p99 <= ${formatMs(r.bounds.maxP99Ms)}, errors <= ${(r.bounds.maxErrorRate * 100).toFixed(1)}%`,
    );
    lines.push('  rate req/s  achieved  p99         errors  passed');
    for (const s of r.steps) {
      lines.push(
        `  ${s.rate.toFixed(0).padStart(10)}  ${s.achievedRate.toFixed(0).padStart(8)}  ${formatMs(s.p99Ms).padEnd(10)}  ${(s.errorRate * 100).toFixed(2).padStart(5)}%  ${s.passed ? 'yes' : s.generatorBound ? 'no (generator-bound)' : 'no'}`,
      );
    }
    lines.push(
      `  knee: ${r.kneeRate === null ? 'none: the first step failed' : `${r.kneeRate.toFixed(0)} req/s`}; stopped: ${r.stoppedBecause}`,
    );
  }
  return lines.join('\n');
}
