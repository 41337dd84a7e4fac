// The work every variant does: the naive doubly recursive Fibonacci of the talk. Its call tree
// grows about 1.618x per step of n, and that exponential CPU cost is what the lab measures, so
// it must never be memoized, iterated or replaced by a closed form.

import { performance } from 'node:perf_hooks';
import { epochMs } from '../lab/clock.js';
import type { FibResult, FibTask } from './messages.js';

/** fib(n) = 1 for n <= 2, else fib(n - 1) + fib(n - 2). */
export function fib(n: number): number {
  return n <= 2 ? 1 : fib(n - 1) + fib(n - 2);
}

/**
 * Runs one task where it is called, timing it: what every worker, thread or process does.
 * `impl` is the fib to run: the plain one, or one that makes the same calls with a variant's
 * own bookkeeping (the GIL's checks).
 */
export function computeFib(task: FibTask, impl: (n: number) => number = fib): FibResult {
  const startedAt = epochMs();
  const value = impl(task.n);
  return { value, startedAt, computeSeconds: (epochMs() - startedAt) / 1000 };
}

/**
 * computeFib in a pool worker: adds who computed it and its event-loop busy time so far.
 * `compute` runs the task (a worker computing under a lock passes its own).
 */
export function computeFibAsWorker(task: FibTask, id: number, compute: (task: FibTask) => FibResult = computeFib): FibResult {
  const result = compute(task);
  result.worker = { id, busySeconds: performance.eventLoopUtilization().active / 1000 };
  return result;
}
