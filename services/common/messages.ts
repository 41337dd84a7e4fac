// Typed messages between a serving thread and the threads or processes that compute for it.
// Every variant that hands work to another thread or process uses these, so a request and its
// timing look the same whichever boundary they cross.

import type { CloseReason, RequestObservation } from './metrics.js';

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

/** Parent -> the process that owns one connection (`processes`). */
export type ConnectionCommand =
  /** Sent with the socket handle: serve it with these settings. */
  | { type: 'serve'; fibMaxN: number; maxPipeline: number; idleTimeoutMs: number; lineTimeoutMs: number }
  /** Shutdown: answer what has started, then close. */
  | { type: 'drain' }
  /** The drain timeout passed: answer what is left `unavailable` and close. */
  | { type: 'abort' };

/** The process that owns a connection -> its parent, which keeps the metrics. */
export interface ObservationBatch {
  type: 'observed';
  /** Net change of requests in flight since the last batch. */
  inflight: number;
  observations: RequestObservation[];
  /** Connections that ended since the last batch, and why. */
  closed: CloseReason[];
}

/** Parent -> a pool process (`processpool`): compute this task, and answer with its id. */
export interface PoolRequest {
  id: number;
  task: FibTask;
}

/** A pool process -> its parent. */
export type PoolReply = { type: 'ready' } | { type: 'result'; id: number; result: FibResult };

/** A cluster worker -> the primary. */
export type ClusterWorkerMessage =
  | { type: 'listening'; port: number }
  /** May one more connection open (the cap is counted across the cluster)? */
  | { type: 'acquire'; id: number }
  | { type: 'release' }
  | { type: 'metrics'; id: number; metrics: unknown[] };

/** The primary -> a cluster worker. */
export type ClusterPrimaryMessage =
  | { type: 'acquired'; id: number; ok: boolean }
  | { type: 'collect'; id: number }
  | { type: 'drain' }
  /** The drain timeout passed: answer what is left `unavailable` and close. */
  | { type: 'abort' };
