// A sweep point measured by the compose lab's own load generator (POST /measure on its control
// API), inside the compose network: the requests reach the variant over Docker's bridge, not
// through the host's port forwarding (docker-proxy), and the client runs on the generator's
// cores, not the host process's. On a 2-core host the client, docker-proxy and dockerd sharing
// the two cores being measured kept the sweep's 2-core points well under the ideal line.

import type { MeasuredProbe, MeasureOptions, Measurement, ProbeFigures } from '../loadgen/measure.js';

/** JSON has no NaN: a figure that was NaN (nothing answered) comes back as null. */
function revive(figures: Record<keyof ProbeFigures, unknown>): ProbeFigures {
  const number = (value: unknown) => (typeof value === 'number' ? value : NaN);
  return {
    requests: number(figures.requests),
    ok: number(figures.ok),
    okPerSecond: number(figures.okPerSecond),
    p50Ms: number(figures.p50Ms),
    p99Ms: number(figures.p99Ms),
    maxMs: number(figures.maxMs),
    errors: (figures.errors ?? {}) as Record<string, number>,
    // A generator older than the intervals sends none; the sweep file's schema checks what it does send.
    ...(Array.isArray(figures.intervals) ? { intervals: figures.intervals as Array<{ ms: number; ok: number }> } : {}),
  };
}

/** Measures `target` (a target the generator was configured with) through the generator at `url`. */
export async function measureThroughLoadgen(
  url: string,
  target: string,
  probes: MeasuredProbe[],
  options: Pick<MeasureOptions, 'durationMs' | 'warmupMs' | 'dropLateReplies' | 'signal'>,
  headers: Record<string, string> = {},
): Promise<Measurement> {
  const timeout = AbortSignal.timeout(options.durationMs + (options.warmupMs ?? 0) + 30_000);
  const response = await fetch(`${url}/measure`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({
      target,
      probes,
      durationMs: options.durationMs,
      warmupMs: options.warmupMs ?? 0,
      dropLateReplies: options.dropLateReplies ?? false,
    }),
    signal: options.signal ? AbortSignal.any([options.signal, timeout]) : timeout,
  });
  const body = (await response.json()) as { error?: string } & Partial<Measurement>;
  if (!response.ok) throw new Error(`POST ${url}/measure answered ${response.status}: ${body.error ?? ''}`);
  const probesBack = body.probes as unknown as Record<string, Record<keyof ProbeFigures, unknown>>;
  return {
    seconds: body.seconds ?? 0,
    probes: Object.fromEntries(Object.entries(probesBack).map(([name, figures]) => [name, revive(figures)])),
    generator: body.generator!,
  };
}
