// py-pool: the talk's threaded server handing fib to a ProcessPoolExecutor, in real CPython
// (server.py beside this file). Sized like the Node pools: POOL_SIZE, else the CPU quota.

import { defineVariant } from '../../server/plugin.js';
import { poolOptions } from '../../server/pools.js';

export const pyPool = defineVariant({
  name: 'py-pool',
  hostPort: 25012,
  group: 'processpool',
  model: 'CPython: a thread per connection handing fib to a ProcessPoolExecutor',
  shows: 'the GIL left behind: fib(1) pays a trip to a pool process instead of a turn behind fib(30)',
  runtime: 'python',
  script: 'services/variants/py-pool/server.py',
  options: { poolSize: poolOptions.poolSize },
  connectionCap: 256,
  idleTimeoutMs: 300_000,
  takesTurns: false,
  parallelism: 'fixed-workers',
  // The talk's executor cannot stop a running call: a fib runs to its end when its client has left.
  interruptible: false,
  workersOption: 'poolSize',
  limits: { memory: '768m', pids: 512 },
});
