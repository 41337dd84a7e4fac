// What the stack tests (compose: stack.test.ts, swarm: swarm.test.ts) share: Prometheus's query
// API, waiting for a state of the stack, and the short spotlight they both run.

import { waitUntil } from '../helpers.js';

/**
 * The spotlight as the stack tests run it: shorter phases and gaps than make up's (SPOTLIGHT_* in
 * .env), the same 3 rounds. At 500 ms a phase still holds 90 of eventloop's fib(1) replies beside
 * a hog and 200 of gil's: the rotation's verdicts keep their margins (in CI here eventloop 54x and
 * gil 14x against 10x and 5x, the parallel ones at most 0.9x against 3x), and the rotation took
 * 106 s instead of 140 s with 750 ms phases and 1 s gaps.
 */
export const SPOTLIGHT_FOR_CI = { SPOTLIGHT_PHASE: '500ms', SPOTLIGHT_WARMUP: '250ms', SPOTLIGHT_GAP: '500ms' };

export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

/** An instant query against the Prometheus at `base`. */
export async function queryAt(base: string, expr: string): Promise<Sample[]> {
  const response = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await response.json()) as { status: string; error?: string; data?: { result: Sample[] } };
  if (body.status !== 'success') throw new Error(`query failed: ${expr}: ${body.error}`);
  return body.data!.result;
}

/** Waits for a state of the stack, asking every 2 s (Prometheus scrapes every 5 s). */
export const eventually = (what: string, check: () => Promise<string | null>, timeoutMs = 120_000) =>
  waitUntil(what, check, timeoutMs, 2000);
