// gilpool: `threadpool` with CPython's global interpreter lock, emulated
// (services/server/interpreter-lock.ts): the same event loop and the same fixed pool of worker
// threads (services/server/thread-pool.ts), but a pool thread computes only while holding the one
// lock. The talk's last act: hand fib to a pool of threads instead of processes and the GIL is
// back. Beside one fib(30) hog, a short request gets a free worker at once, then waits a switch
// interval for the lock the hog holds: the convoy of `gil`, although the pool has a worker for
// it. `threadpool` beside it is the same pool without the lock.
//
// A variant of its own rather than an option of `threadpool`: a row of the table is what the
// spotlight, the dashboards and compose show, and the scoreboard must show both pools side by
// side, each with its own collapse; an option would make `threadpool` mean two models.

import { Gil, createGilBuffer, gilSwitchMsOption, type GilThreadData } from '../../server/interpreter-lock.js';
import { defineVariant } from '../../server/plugin.js';
import { poolOptions, poolTraits, type PoolOptions } from '../../server/pools.js';
import { ThreadPool } from '../../server/thread-pool.js';

interface GilPoolOptions extends PoolOptions {
  /** How long a thread may hold the lock while another waits (CPython's sys.getswitchinterval()). */
  gilSwitchMs: number;
}

export const gilpool = defineVariant<GilPoolOptions>({
  name: 'gilpool',
  hostPort: 25015,
  group: 'threadpool',
  model: 'event loop + a fixed pool of worker_threads whose fib must hold one global lock (5 ms switch interval)',
  shows: 'a thread pool under a GIL: short requests convoy behind a long one although a worker is free',
  ...poolTraits,
  options: {
    ...poolOptions,
    gilSwitchMs: gilSwitchMsOption,
  },
  limits: { memory: '512m', pids: 128 },
  plugin: {
    level: 'executor',
    createExecutor: (ctx) => {
      const buffer = createGilBuffer();
      const workerData: GilThreadData = { buffer, switchMs: ctx.own.gilSwitchMs };
      return ThreadPool.start(ctx, {
        filename: new URL('./thread.js', import.meta.url),
        workerData,
        // A pool thread is terminated when its client leaves, perhaps holding the lock.
        onThreadExit: (threadId) => Gil.releaseIfHeldBy(buffer, threadId),
      });
    },
  },
});
