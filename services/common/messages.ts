// Typed messages between a serving thread and the threads or processes that compute for it.
// Every variant that hands work to another thread or process uses these, so a request and its
// timing look the same whichever boundary they cross.

/** Compute fib(n). */
export interface FibTask {
  n: number;
}

/** The answer to a FibTask, with when and how long it ran (for queue-wait and compute metrics). */
export interface FibResult {
  value: number;
  /** When computing started, epoch milliseconds (see clock.ts). */
  startedAt: number;
  computeSeconds: number;
}
