// processpool: the event loop does the I/O and sends each fib to a fixed pool of child
// processes over IPC (services/server/process-pool.ts), like the talk's ProcessPoolExecutor.
// Parallel like `threadpool`, but every request pays for serialization and two trips across a
// process boundary: cheap next to a fib(30), most of the cost of a fib(1). A pool process that
// dies is replaced, and the request it was computing is answered `internal`. With
// POOL_FOLLOWS_QUOTA=1 processes are added or retired (once idle) when the CPU quota changes.

import { defineVariant } from '../../server/plugin.js';
import { poolTraits, type PoolOptions } from '../../server/pools.js';
import { ProcessPool } from '../../server/process-pool.js';

export const processpool = defineVariant<PoolOptions>({
  name: 'processpool',
  hostPort: 25007,
  group: 'processpool',
  model: 'event loop + a fixed pool of child processes over IPC',
  shows: 'IPC overhead on tiny requests',
  ...poolTraits,
  limits: { memory: '768m', pids: 256 },
  plugin: { level: 'executor', createExecutor: (ctx) => ProcessPool.start(ctx) },
});
