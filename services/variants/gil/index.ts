// gil: `threads` with CPython's global interpreter lock, emulated
// (services/server/interpreter-lock.ts). Every connection still has its own thread, but only
// the thread holding the lock computes. A CPU-bound thread
// keeps the lock until another has waited a whole switch interval (GIL_SWITCH_MS, 5 ms), so a
// short request that arrives while a long one runs waits about one interval: the convoy effect
// of the talk's perf2-during-perf1 demo, next to `threads` without it.

import { defineVariant, type ConnectionOwner, type VariantContext } from '../../server/plugin.js';
import { ThreadPerConnectionOwner, threadPerConnectionTraits } from '../../server/thread-per-connection.js';
import { Gil, createGilBuffer, gilSwitchMsOption, type GilThreadData } from '../../server/interpreter-lock.js';

interface GilOptions {
  /** How long a thread may hold the lock while another waits (CPython's sys.getswitchinterval()). */
  gilSwitchMs: number;
}

export const gil = defineVariant<GilOptions>({
  name: 'gil',
  hostPort: 25009,
  group: 'threads',
  model: 'a worker_thread per connection, but fib must hold one global lock (5 ms switch interval)',
  shows: "the GIL's convoy effect in Node, next to threads without it",
  options: {
    gilSwitchMs: gilSwitchMsOption,
  },
  ...threadPerConnectionTraits,
  plugin: { level: 'owner', createOwner },
});

async function createOwner(ctx: VariantContext<GilOptions>): Promise<ConnectionOwner> {
  const buffer = createGilBuffer();
  const workerData: GilThreadData = { buffer, switchMs: ctx.own.gilSwitchMs };
  return new ThreadPerConnectionOwner(ctx, new URL('./thread.js', import.meta.url), {
    workerData,
    // A connection's thread is terminated when its client leaves, perhaps holding the lock.
    onExit: (threadId) => Gil.releaseIfHeldBy(buffer, threadId),
  });
}
