// threads: one worker_thread per connection, like the talk's threaded server but without a
// GIL. Connections compute in parallel up to the CPU quota; each one costs a whole thread (a V8
// isolate: megabytes) and a thread start before its first reply.

import { ThreadPerConnectionOwner } from '../common/thread-per-connection.js';
import type { VariantDefinition } from '../common/server.js';

export const threads: VariantDefinition = {
  name: 'threads',
  model: 'one worker_thread per connection',
  shows: 'parallelism up to the CPU quota, no GIL; memory per connection',
  // Each connection holds a thread with its own V8 heap.
  defaultMaxConnections: 128,
  createOwner: async (ctx) => new ThreadPerConnectionOwner(ctx, new URL('./thread.js', import.meta.url)),
};
