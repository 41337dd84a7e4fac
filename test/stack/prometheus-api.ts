// What the stack tests (compose: stack.test.ts, swarm: swarm.test.ts) share: Prometheus's query
// API, waiting for a state of the stack, and the short spotlight they both run.

import { waitUntil } from '../helpers.js';

/** The spotlight as the stack tests run it: shorter phases than make up's (SPOTLIGHT_* in .env), the same rounds. */
export const SPOTLIGHT_FOR_CI = { SPOTLIGHT_PHASE: '750ms', SPOTLIGHT_WARMUP: '250ms', SPOTLIGHT_GAP: '1s' };

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
