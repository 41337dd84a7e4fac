// threadpool: the event loop does all the I/O and hands each fib to a fixed pool of
// worker_threads (piscina; services/server/thread-pool.ts), like the talk's ThreadPoolExecutor
// but without a GIL: with as many workers as cores, a long fib no longer stalls short ones.
// Requests beyond the pool wait in piscina's queue (that wait is fib_queue_wait_seconds), at
// most MAX_QUEUE of them; past that they are answered `overloaded`. With POOL_FOLLOWS_QUOTA=1
// the pool is resized when the CPU quota changes.

import { defineVariant } from '../../server/plugin.js';
import { poolTraits, type PoolOptions } from '../../server/pools.js';
import { ThreadPool } from '../../server/thread-pool.js';

export const threadpool = defineVariant<PoolOptions>({
  name: 'threadpool',
  hostPort: 25005,
  group: 'threadpool',
  model: 'event loop for I/O + a fixed pool of worker_threads (piscina) for fib',
  shows: 'parallelism with bounded threads; queue wait vs run time',
  ...poolTraits,
  limits: { memory: '512m', pids: 128 },
  plugin: { level: 'executor', createExecutor: (ctx) => ThreadPool.start(ctx) },
});
