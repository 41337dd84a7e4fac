// threadpool: the event loop does all the I/O and hands each fib to a fixed pool of
// worker_threads (piscina), like the talk's ThreadPoolExecutor but without a GIL: with as many
// workers as cores, a long fib no longer stalls short ones. Requests beyond the pool wait in
// piscina's queue (that wait is fib_queue_wait_seconds), at most MAX_QUEUE of them; past that
// they are answered `overloaded`. With POOL_FOLLOWS_QUOTA=1 the pool is resized when the CPU
// quota changes: a new pool of the new size is started warm and takes new requests, and the old
// one finishes what it runs, then closes (piscina's pools have a fixed size).

import { Piscina } from 'piscina';
import { RequestError } from '../../lab/errors.js';
import type { FibResult, FibTask } from '../../server/messages.js';
import { defineVariant, type Executor, type VariantContext } from '../../server/plugin.js';
import { followQuota, poolOptions, poolTraits, startSize, type PoolOptions } from '../../server/pools.js';

export const threadpool = defineVariant<PoolOptions>({
  name: 'threadpool',
  hostPort: 25005,
  model: 'event loop for I/O + a fixed pool of worker_threads (piscina) for fib',
  shows: 'parallelism with bounded threads; queue wait vs run time',
  ...poolTraits,
  limits: { memory: '512m', pids: 128 },
  plugin: { level: 'executor', createExecutor: (ctx) => ThreadPool.start(ctx) },
});

class ThreadPool implements Executor {
  readonly abortable = true;
  /** Requests given to the pool and not yet answered (running or queued). */
  private pending = 0;
  private retiring = new Set<Piscina<FibTask, FibResult>>();
  private stopFollowing: () => void = () => {};

  private constructor(
    private readonly ctx: VariantContext<PoolOptions>,
    private pool: Piscina<FibTask, FibResult>,
    private size: number,
    private slots: WorkerLabels,
  ) {}

  static async start(ctx: VariantContext<PoolOptions>): Promise<ThreadPool> {
    const { own } = ctx;
    const size = startSize(ctx, own.poolSize, poolOptions.poolSize, own.poolFollowsQuota);
    const pool = await warmPool(size);
    const threads = new ThreadPool(ctx, pool, size, new WorkerLabels(size, () => pool.threads.map((thread) => thread.threadId)));
    for (let slot = 0; slot < size; slot++) ctx.metrics.initWorker(slot);
    if (own.poolFollowsQuota) threads.stopFollowing = followQuota(ctx, size, (next) => threads.resize(next));
    return threads;
  }

  run = async (n: number, signal: AbortSignal): Promise<FibResult> => {
    const { maxQueue } = this.ctx.own;
    // The queue is bounded here, not with piscina's maxQueue: piscina keeps abortable tasks
    // (ours carry the client's AbortSignal) in a separate queue that maxQueue does not bound.
    if (this.pending >= this.size + maxQueue) {
      throw new RequestError('overloaded', `all ${this.size} workers busy and ${maxQueue} requests queued`);
    }
    this.pending += 1;
    const slots = this.slots;
    try {
      const result = await this.pool.run({ n }, { signal });
      if (result.worker) this.ctx.metrics.workerComputed(slots.slotOf(result.worker.id), result.worker.busySeconds);
      return result;
    } catch (error) {
      if ((error as Error).name === 'AbortError') throw error;
      throw new RequestError('internal', 'the worker computing this request failed');
    } finally {
      this.pending -= 1;
    }
  };

  liveWorkers(): number {
    let live = this.pool.threads.length;
    for (const old of this.retiring) live += old.threads.length;
    return live;
  }

  /** A new pool of `size` takes the new requests; the old one finishes what it runs, then closes. */
  private async resize(size: number): Promise<void> {
    const next = await warmPool(size);
    const old = this.pool;
    const before = this.size;
    this.pool = next;
    this.size = size;
    this.slots = new WorkerLabels(size, () => next.threads.map((thread) => thread.threadId));
    for (let slot = 0; slot < size; slot++) this.ctx.metrics.initWorker(slot);
    for (let slot = size; slot < before; slot++) this.ctx.metrics.removeWorker(slot);
    this.retiring.add(old);
    void old.close().finally(() => this.retiring.delete(old));
  }

  async close(): Promise<void> {
    this.stopFollowing();
    await Promise.all([this.pool.destroy(), ...[...this.retiring].map((old) => old.destroy())]);
  }
}

/** A pool created full, with every worker's module loaded before the first client is served. */
async function warmPool(size: number): Promise<Piscina<FibTask, FibResult>> {
  const pool = new Piscina<FibTask, FibResult>({
    filename: new URL('./worker.js', import.meta.url).href,
    // Created full and never shrunk.
    minThreads: size,
    maxThreads: size,
    idleTimeout: Number.MAX_SAFE_INTEGER,
    concurrentTasksPerWorker: 1,
    // Idle workers wait on their event loop, not blocked in Atomics.wait (piscina's default),
    // so each worker's event-loop utilization says how busy it really is.
    atomics: 'async',
  });
  await Promise.all(Array.from({ length: size }, () => pool.run({ n: 1 })));
  return pool;
}

/**
 * Gives each live pool thread a stable `worker` label (an index 0..size-1). Piscina replaces a thread it
 * had to terminate (a client left mid-request) with a new one; the newcomer takes the slot of
 * a thread that is gone, so the label set never grows.
 */
class WorkerLabels {
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
