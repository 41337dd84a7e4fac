// threadpool: the event loop does all the I/O and hands each fib to a fixed pool of
// worker_threads (piscina), like the talk's ThreadPoolExecutor but without a GIL: with as many
// workers as cores, a long fib no longer stalls short ones. Requests beyond the pool wait in
// piscina's queue (that wait is fib_queue_wait_seconds), at most MAX_QUEUE of them; past that
// they are answered `overloaded`.

import { Piscina } from 'piscina';
import { RequestError } from '../common/errors.js';
import type { Executor, VariantContext } from '../common/plugin.js';
import type { FibResult, FibTask } from '../common/messages.js';
import { defineVariant } from '../common/plugin.js';
import { poolOptions, type PoolOptions } from '../common/pools.js';

export const threadpool = defineVariant<PoolOptions>({
  name: 'threadpool',
  hostPort: 25005,
  model: 'event loop for I/O + a fixed pool of worker_threads (piscina) for fib',
  shows: 'parallelism with bounded threads; queue wait vs run time',
  options: poolOptions,
  connectionCap: 10_000,
  idleTimeoutMs: 300_000,
  takesTurns: false,
  parallelism: 'fixed-workers',
  interruptible: true,
  workersOption: 'poolSize',
  queueOption: 'maxQueue',
  limits: { memory: '512m', pids: 128 },
  plugin: { level: 'executor', createExecutor },
});

async function createExecutor({ own, cpus, metrics }: VariantContext<PoolOptions>): Promise<Executor> {
  const poolSize = own.poolSize ?? cpus;
  const pool = new Piscina<FibTask, FibResult>({
    filename: new URL('./worker.js', import.meta.url).href,
    // Created full and never shrunk: the pool is sized once, at start (LAB-SPEC section 3).
    minThreads: poolSize,
    maxThreads: poolSize,
    idleTimeout: Number.MAX_SAFE_INTEGER,
    concurrentTasksPerWorker: 1,
    // Idle workers wait on their event loop, not blocked in Atomics.wait (piscina's default),
    // so each worker's event-loop utilization says how busy it really is.
    atomics: 'async',
  });
  const slots = new WorkerSlots(poolSize, () => pool.threads.map((thread) => thread.threadId));
  for (let slot = 0; slot < poolSize; slot++) metrics.initWorker(slot);
  // Warm: every worker has loaded its module before the first client is served.
  await Promise.all(Array.from({ length: poolSize }, () => pool.run({ n: 1 })));

  // The queue is bounded here, not with piscina's maxQueue: piscina keeps abortable tasks
  // (ours carry the client's AbortSignal) in a separate queue that maxQueue does not bound.
  let pending = 0;
  return {
    abortable: true,
    liveWorkers: () => pool.threads.length,
    run: async (n, signal) => {
      if (pending >= poolSize + own.maxQueue) {
        throw new RequestError('overloaded', `all ${poolSize} workers busy and ${own.maxQueue} requests queued`);
      }
      pending += 1;
      try {
        const result = await pool.run({ n }, { signal });
        if (result.worker) metrics.workerComputed(slots.slotOf(result.worker.id), result.worker.busySeconds);
        return result;
      } catch (error) {
        if ((error as Error).name === 'AbortError') throw error;
        throw new RequestError('internal', 'the worker computing this request failed');
      } finally {
        pending -= 1;
      }
    },
    close: () => pool.destroy(),
  };
}

/**
 * Gives each live pool thread a stable `worker` label 0..size-1. Piscina replaces a thread it
 * had to terminate (a client left mid-request) with a new one; the newcomer takes the slot of
 * a thread that is gone, so the label set never grows.
 */
class WorkerSlots {
  private readonly byThread = new Map<number, number>();

  constructor(
    private readonly size: number,
    private readonly liveThreads: () => number[],
  ) {}

  slotOf(threadId: number): number {
    const known = this.byThread.get(threadId);
    if (known !== undefined) return known;
    const live = new Set(this.liveThreads());
    for (const [thread] of this.byThread) if (!live.has(thread)) this.byThread.delete(thread);
    const taken = new Set(this.byThread.values());
    let slot = 0;
    while (taken.has(slot) && slot < this.size - 1) slot += 1;
    this.byThread.set(threadId, slot);
    return slot;
  }
}
