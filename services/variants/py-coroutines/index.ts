// py-coroutines: the talk's last server in real CPython (server.py beside this file): generator
// tasks on a scheduler over select, each waiting on a ProcessPoolExecutor's future; the pool's
// completions wake the scheduler through a socket pair. One thread does all the I/O.

import { defineVariant } from '../../server/plugin.js';
import { poolOptions } from '../../server/pools.js';

export const pyCoroutines = defineVariant({
  name: 'py-coroutines',
  hostPort: 25013,
  group: 'coroutines',
  model: "CPython: the talk's generator scheduler over select, fib in a ProcessPoolExecutor",
  shows: 'one thread for every connection, no GIL contention: fib runs in the pool, futures wake the tasks',
  runtime: 'python',
  script: 'services/variants/py-coroutines/server.py',
  options: { poolSize: poolOptions.poolSize },
  // select() takes descriptors below 1024.
  connectionCap: 900,
  idleTimeoutMs: 300_000,
  takesTurns: false,
  parallelism: 'fixed-workers',
  interruptible: false,
  workersOption: 'poolSize',
  limits: { memory: '768m', pids: 128 },
});
