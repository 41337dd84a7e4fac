// py-threads: the talk's first threaded server in real CPython (server.py beside this file): a
// thread per connection, fib inline. Its row sits beside `gil`, which emulates the same GIL in
// Node, so the two can be compared.

import { defineVariant } from '../../server/plugin.js';

export const pyThreads = defineVariant({
  name: 'py-threads',
  hostPort: 25011,
  group: 'threads',
  model: 'CPython: a thread per connection, fib inline',
  shows: "the real GIL's convoy: a fib(1) waits its turn behind a fib(30) in another thread",
  runtime: 'python',
  script: 'services/variants/py-threads/server.py',
  options: {},
  // A Python thread is cheap next to a V8 isolate; the cap keeps the GIL's queue short.
  connectionCap: 256,
  idleTimeoutMs: 300_000,
  takesTurns: false,
  parallelism: 'per-connection',
  // A Python thread cannot be stopped: a fib runs to its end even when its client has left.
  interruptible: false,
  limits: { memory: '512m', pids: 512 },
});
