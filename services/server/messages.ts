// Typed messages between a serving thread and the threads or processes that compute for it: a
// task and its result look the same whichever boundary they cross; the shared process pool's
// messages (process-pool.ts) are here too. A variant's own protocol with its processes (the
// messages only it sends) lives in its own folder.

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
  /** Set by a worker of a fixed pool: who computed it, for the per-worker series. */
  worker?: WorkerReport;
}

export interface WorkerReport {
  /** The thread id or pid of the worker. */
  id: number;
  /** The worker's event-loop busy time so far, seconds. */
  busySeconds: number;
}

/** Parent -> a process of the shared process pool: compute this task, and answer with its id. */
export interface PoolRequest {
  id: number;
  task: FibTask;
}

/** A pool process -> its parent. */
export type PoolReply = { type: 'ready' } | { type: 'result'; id: number; result: FibResult };
