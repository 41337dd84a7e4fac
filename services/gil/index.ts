// gil: `threads` with CPython's global interpreter lock, emulated (gil.ts). Every connection
// still has its own thread, but only the thread holding the lock computes. A CPU-bound thread
// keeps the lock until another has waited a whole switch interval (GIL_SWITCH_MS, 5 ms), so a
// short request that arrives while a long one runs waits about one interval: the convoy effect
// of the talk's perf2-during-perf1 demo, next to `threads` without it.

import { ThreadPerConnectionOwner } from '../common/thread-per-connection.js';
import type { VariantDefinition } from '../common/server.js';
import { Gil, createGilBuffer } from './gil.js';
import type { GilThreadData } from './thread.js';

export const gil: VariantDefinition = {
  name: 'gil',
  model: 'a worker_thread per connection, but fib must hold one global lock (5 ms switch interval)',
  shows: "the GIL's convoy effect in Node, next to threads without it",
  defaultMaxConnections: 128,
  async createOwner(ctx) {
    const buffer = createGilBuffer();
    const workerData: GilThreadData = { buffer, switchMs: ctx.options.gilSwitchMs };
    return new ThreadPerConnectionOwner(ctx, new URL('./thread.js', import.meta.url), {
      workerData,
      // A connection's thread is terminated when its client leaves, perhaps holding the lock.
      onExit: (threadId) => Gil.releaseIfHeldBy(buffer, threadId),
    });
  },
};
