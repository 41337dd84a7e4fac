// The work every variant does: the naive doubly recursive Fibonacci of the talk. Its call tree
// grows about 1.618x per step of n, and that exponential CPU cost is what the lab measures, so
// it must never be memoized, iterated or replaced by a closed form.

import { epochMs } from './clock.js';
import type { FibResult, FibTask } from './messages.js';

/** fib(n) = 1 for n <= 2, else fib(n - 1) + fib(n - 2). */
export function fib(n: number): number {
  return n <= 2 ? 1 : fib(n - 1) + fib(n - 2);
}

/** Runs one task where it is called, timing it: what every worker, thread or process does. */
export function computeFib(task: FibTask): FibResult {
  const startedAt = epochMs();
  const value = fib(task.n);
  return { value, startedAt, computeSeconds: (epochMs() - startedAt) / 1000 };
}
