// coroutines: the talk's last server. The generator scheduler of `generators` (one thread, a
// task per connection: services/server/scheduler.ts and task-per-connection.ts), but a task
// never computes fib itself: it hands fib to a pool (child processes by default, worker threads
// with COROUTINES_POOL=threads), yields the pool's future and is resumed when it completes. The
// scheduler's thread only moves bytes and futures, so it stays as responsive as the generator
// server while fib runs in parallel, as many at once as the pool has workers.
//
// In the talk the pool's completion callback writes a byte to a socket pair, so the scheduler's
// `select` wakes up and puts the waiting task back in the run queue. Here the pool's result is
// a message from the worker thread or child process that arrives on this thread's event loop
// (an IPC message, a MessagePort message); it settles the request's promise, whose callback
// completes the future and makes its task ready. Same mechanism: the event loop is the select.

import { ConfigError } from '../../lab/errors.js';
import { optionLabel, stringOption, type EnvOptionSpec } from '../../lab/options.js';
import { defineVariant, type Executor, type VariantContext } from '../../server/plugin.js';
import { poolOptions, poolTraits, type PoolOptions } from '../../server/pools.js';
import { ProcessPool } from '../../server/process-pool.js';
import { Future } from '../../server/scheduler.js';
import { TaskPerConnectionOwner, type Computation } from '../../server/task-per-connection.js';
import { ThreadPool } from '../../server/thread-pool.js';
import { coroutinesDashboards } from './dashboards.js';
import { registerCoroutineMetrics } from './metrics.js';

const POOL_KINDS = ['processes', 'threads'] as const;
type PoolKind = (typeof POOL_KINDS)[number];

/**
 * The pool's options but MAX_QUEUE: a task waits for one fib at a time (the talk's handler:
 * receive, wait on the future, send), so the pool's queue holds at most one request per
 * connection, bounded by the connection cap; nothing is refused `overloaded`.
 */
interface CoroutinesOptions extends Omit<PoolOptions, 'maxQueue'> {
  /** What computes fib: child processes (the talk's ProcessPoolExecutor) or worker threads. */
  coroutinesPool: PoolKind;
}

const spelling = stringOption({
  flag: '--coroutines-pool',
  env: 'COROUTINES_POOL',
  argument: 'processes|threads',
  description: 'what computes fib for the tasks: a pool of child processes, or of worker threads',
  default: 'processes',
});
const poolKindOption: EnvOptionSpec<PoolKind> = {
  ...spelling,
  default: 'processes',
  parse(value) {
    const text = spelling.parse(value);
    if ((POOL_KINDS as readonly string[]).includes(text)) return text as PoolKind;
    throw new ConfigError(optionLabel(spelling), `expected processes or threads, got ${JSON.stringify(text)}`);
  },
};

export const coroutines = defineVariant<CoroutinesOptions>({
  name: 'coroutines',
  hostPort: 25014,
  group: 'coroutines',
  model: "the talk's generator scheduler; each task yields the future of a fib handed to a pool of processes",
  shows: 'one thread serves every connection and never computes: fib runs in parallel in the pool, futures wake the tasks',
  ...poolTraits,
  queueOption: undefined,
  options: {
    poolSize: poolOptions.poolSize,
    poolFollowsQuota: poolOptions.poolFollowsQuota,
    coroutinesPool: poolKindOption,
  },
  limits: { memory: '768m', pids: 256 },
  dashboards: coroutinesDashboards,
  plugin: { level: 'owner', createOwner: async (ctx) => CoroutineOwner.start(ctx) },
});

/** A task per connection on one scheduler; each fib is a future of the pool. */
class CoroutineOwner extends TaskPerConnectionOwner<CoroutinesOptions> {
  /** Tasks parked on a future now (fib_coroutine_futures_waiting). */
  private waiting = 0;

  private constructor(
    ctx: VariantContext<CoroutinesOptions>,
    private readonly pool: Executor,
  ) {
    super(ctx);
    registerCoroutineMetrics(ctx.metrics.registry, () => this.waiting);
  }

  static async start(ctx: VariantContext<CoroutinesOptions>): Promise<CoroutineOwner> {
    // One request per connection at most waits for the pool: its queue never passes the cap.
    const poolCtx = { ...ctx, own: { ...ctx.own, maxQueue: ctx.options.maxConnections } };
    const pool = ctx.own.coroutinesPool === 'threads' ? await ThreadPool.start(poolCtx) : await ProcessPool.start(poolCtx);
    return new CoroutineOwner(ctx, pool);
  }

  liveWorkers(): number {
    return this.pool.liveWorkers();
  }

  /**
   * Hands fib(n) to the pool and waits on its future, as the talk's `yield ('future', fut)`
   * then `fut.result()`. A client that leaves cancels its task: the `finally` stops the pool's
   * worker (the pool replaces it). The scheduler may wake a parked task early (the drain wakes
   * every task to look at its socket): it parks again until the future is done.
   */
  protected *compute(n: number): Computation {
    const abort = new AbortController();
    const future = Future.start(() => this.pool.run(n, abort.signal));
    this.waiting += 1;
    try {
      while (!future.done) yield { kind: 'future', future };
      return future.result();
    } finally {
      this.waiting -= 1;
      if (!future.done) abort.abort();
    }
  }

  override async close(): Promise<void> {
    await this.pool.close();
  }
}
