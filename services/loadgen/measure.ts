// One measured stretch of load against one target: a few closed-loop probes for a fixed time,
// after an optional warm-up, with each probe's figures over exactly that stretch. The building
// block of the spotlight's phases (the talk's perf2 alone, then beside perf1 hogs) and of the
// quota sweep's points: each measures one thing at a time, so its figures are its own.

import type { LoadgenMetrics } from './metrics.js';
import type { HealthReport } from './health.js';
import type { Target } from './options.js';
import { LoadRun } from './run.js';
import { toScenario } from './scenario.js';

/** A closed loop: `connections` connections, each sending fib(n), waiting, thinking, repeating. */
export interface MeasuredProbe {
  /** The `probe` label and the key of the result (`short`, `long`, `cpu`). */
  name: string;
  n: number;
  connections: number;
  thinkMs?: number;
  /** A connection per request, or one kept throughout, whatever the target says (default: the target's). */
  connectPerRequest?: boolean;
}

export interface ProbeFigures {
  requests: number;
  ok: number;
  /** Requests answered `fib: ...` per second of the measured stretch. */
  okPerSecond: number;
  /** Latency of the answered requests, ms; NaN when none was answered. */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Failed requests by outcome code. */
  errors: Record<string, number>;
  /** The stretch in intervals of about a second: their length (ms) and ok replies (what `lab compare` resamples). */
  intervals?: Array<{ ms: number; ok: number }>;
}

export interface Measurement {
  seconds: number;
  probes: Record<string, ProbeFigures>;
  /** The generator watching itself over the stretch: generatorBound says its figures are its own, not the server's. */
  generator: HealthReport;
}

export interface MeasureOptions {
  durationMs: number;
  warmupMs?: number;
  timeoutMs?: number;
  /** Stops the stretch early (the figures cover what ran). */
  signal?: AbortSignal;
  /** Records into the load generator's Prometheus series as well. */
  metrics?: LoadgenMetrics | null;
  /** The `scenario` label of those series. */
  scenario?: string;
  /** Leave out replies that come back after the stretch ends, so every figure is over exactly the stretch. */
  dropLateReplies?: boolean;
}

export async function measure(target: Target, probes: MeasuredProbe[], options: MeasureOptions): Promise<Measurement> {
  const scenario = toScenario(
    {
      name: options.scenario ?? 'measure',
      duration: options.durationMs,
      probes: probes.map((p) => ({ name: p.name, n: p.n, connections: p.connections, think: p.thinkMs ?? 0 })),
    },
    'measurement',
  );
  scenario.probes.forEach((probe, i) => (probe.connectPerRequest = probes[i]!.connectPerRequest));
  const run = new LoadRun(
    {
      scenario,
      targets: [target],
      durationMs: options.durationMs,
      warmupMs: options.warmupMs ?? 0,
      timeoutMs: options.timeoutMs ?? 30_000,
      dropLateReplies: options.dropLateReplies ?? false,
      // One stretch has no report windows: a fairness gauge would only ever show its initial 1.
      fairnessGauge: false,
    },
    options.metrics ?? null,
  );
  const stop = () => run.stop();
  if (options.signal?.aborted) run.stop();
  options.signal?.addEventListener('abort', stop, { once: true });
  try {
    await run.finished;
  } finally {
    options.signal?.removeEventListener('abort', stop);
  }
  const seconds = Math.max(run.measuredMs() / 1000, 1e-9);
  const figures: Record<string, ProbeFigures> = {};
  for (const recorder of run.tallies) {
    const ok = recorder.outcomes.get('ok') ?? 0;
    const errors: Record<string, number> = {};
    for (const [outcome, count] of recorder.outcomes) if (outcome !== 'ok') errors[outcome] = count;
    const latency = recorder.summary();
    figures[recorder.key.probe] = {
      requests: recorder.requests,
      ok,
      okPerSecond: ok / seconds,
      p50Ms: latency.p50,
      p99Ms: latency.p99,
      maxMs: latency.max,
      errors,
      intervals: recorder.intervalCounts().map(({ ms, ok: answered }) => ({ ms, ok: answered })),
    };
  }
  return { seconds, probes: figures, generator: run.health.report() };
}
