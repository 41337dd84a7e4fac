// The shared thread pool: a fixed pool of worker_threads (piscina) computing fib for an event
// loop that does all the I/O, like the talk's ThreadPoolExecutor. Requests beyond the pool wait
// in piscina's queue (that wait is fib_queue_wait_seconds), at most MAX_QUEUE of them; past that
// they are answered `overloaded`. With POOL_FOLLOWS_QUOTA=1 the pool is resized when the CPU
// quota changes: a new pool of the new size is started warm and takes new requests, and the old
// one finishes what it runs, then closes (piscina's pools have a fixed size). A variant may give
// its threads a module of its own (computing under a lock, say) and data for them.

import { Piscina } from 'piscina';
import type { Worker } from 'node:worker_threads';
import { RequestError } from '../lab/errors.js';
import type { FibResult, FibTask } from './messages.js';
import type { Executor, VariantContext } from './plugin.js';
import { followQuota, poolOptions, startSize, type PoolOptions } from './pools.js';

/** What a pool's threads run, when not the plain fib of pool-thread.ts. */
export interface ThreadPoolSetup {
  /** The module piscina loads in each thread; its default export computes a FibTask. */
  filename?: URL;
  /** Given to every thread (piscina's workerData). */
  workerData?: unknown;
  /** A thread exited (terminated when its client left, or at close): its id while it ran. */
  onThreadExit?: (threadId: number) => void;
}

export class ThreadPool implements Executor {
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
    private readonly setup: ThreadPoolSetup,
  ) {}

  /** Starts a pool of the size the options say (the CPU quota by default), full and warm. */
  static async start(ctx: VariantContext<PoolOptions>, setup: ThreadPoolSetup = {}): Promise<ThreadPool> {
    const { own } = ctx;
    const size = startSize(ctx, own.poolSize, poolOptions.poolSize, own.poolFollowsQuota);
    const pool = await warmPool(size, setup);
    const threads = new ThreadPool(
      ctx,
      pool,
      size,
      new WorkerLabels(size, () => pool.threads.map((thread) => thread.threadId)),
      setup,
    );
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
    const next = await warmPool(size, this.setup);
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
async function warmPool(size: number, setup: ThreadPoolSetup): Promise<Piscina<FibTask, FibResult>> {
  const pool = new Piscina<FibTask, FibResult>({
    filename: (setup.filename ?? new URL('./pool-thread.js', import.meta.url)).href,
    workerData: setup.workerData,
    // Created full and never shrunk.
    minThreads: size,
    maxThreads: size,
    idleTimeout: Number.MAX_SAFE_INTEGER,
    concurrentTasksPerWorker: 1,
    // Idle workers wait on their event loop, not blocked in Atomics.wait (piscina's default),
    // so each worker's event-loop utilization says how busy it really is.
    atomics: 'async',
  });
  const { onThreadExit } = setup;
  if (onThreadExit) {
    // A thread's id reads -1 once it has exited: taken while it runs.
    const watched = new WeakSet<Worker>();
    const watch = () => {
      for (const thread of pool.threads) {
        if (watched.has(thread)) continue;
        watched.add(thread);
        const id = thread.threadId;
        thread.once('exit', () => onThreadExit(id));
      }
    };
    pool.on('workerCreate', watch);
    watch();
  }
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
